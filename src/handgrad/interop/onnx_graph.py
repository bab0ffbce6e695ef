"""A small builder over ``onnx.helper`` that names tensors, turns NumPy constants into
initializers of the model's dtype, and collects nodes (the exporters in ``onnx_export`` and
``onnx_recurrent`` write graphs through it). ``onnx`` is imported by the caller and passed in,
so importing handgrad never needs it."""
from __future__ import annotations

from typing import Any

import numpy


class GraphBuilder:
    """Nodes and initializers of one ONNX graph; every tensor name carries ``prefix``."""

    def __init__(self, onnx: Any, dtype, prefix: str = "") -> None:
        self.onnx, self.helper = onnx, onnx.helper
        self.dtype = numpy.dtype(dtype)
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.prefix = prefix
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, hint: str, value, dtype=None) -> str:
        """An initializer holding ``value`` (in the graph's float dtype unless ``dtype``)."""
        arr = numpy.ascontiguousarray(numpy.asarray(value, dtype=dtype or self.dtype))
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def ints(self, hint: str, values) -> str:
        return self.const(hint, numpy.asarray(values, dtype=numpy.int64), dtype=numpy.int64)

    def node(self, op: str, inputs: list[str], hint: str | None = None, n_out: int = 1, outputs=None, **attrs):
        """Append ``op``; returns its output name (or the list of names when ``n_out > 1``)."""
        if outputs is None:
            outputs = [self.name(hint or op.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=self.name(f"{op}"), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def value_info(self, name: str, shape) -> Any:
        return self.helper.make_tensor_value_info(name, self.elem, shape)

    def graph(self, name: str, inputs: list, outputs: list):
        return self.helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.initializers)
