"""Export a ``Sequential`` to a standard ONNX file (opset 17, dynamic batch axis).

Each layer becomes the standard operators that compute its inference forward pass:

=====================================  ==================================================
layer                                  ONNX
=====================================  ==================================================
``Dense``                              ``Gemm`` (transB) on ``(N, F)``; ``MatMul`` + ``Add`` on ``(N, T, F)``
``Conv2D``                             ``Conv`` (pads, strides); untied biases: ``Conv`` + ``Add`` of ``b`` ``(D, OH, OW)``
``MaxPool2D`` / ``AvgPool2D``          ``MaxPool`` / ``AveragePool`` (no padding, floor)
``RNN`` / ``LSTM``                     ``RNN`` / ``LSTM``; peepholes or masking: a ``Scan`` (see ``onnx_recurrent``)
``Sigmoid``, ``Tanh``, ``ReLU``        ``Sigmoid``, ``Tanh``, ``Relu``
``Softmax``                            ``Softmax`` (axis −1)
``Identity``, ``Dropout``              ``Identity`` (dropout is the identity in inference)
``StochasticBinary``                   ``Sigmoid`` (its inference output, the expectation σ(z))
``BinaryThreshold``                    ``GreaterOrEqual`` + ``Cast``
``Normalize``                          ``Sub`` + ``Mul`` by 1/std (as the layer computes it)
``Flatten``                            ``Flatten`` (axis 1, C order)
=====================================  ==================================================

Stateful recurrent layers are exported as ``predict`` runs them: every batch starts from zero
states. Any other layer raises ``ValueError`` naming it.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy

from .. import backend
from .. import layers as L
from ..fsutil import atomic_write_bytes
from ..model import Sequential
from .onnx_graph import GraphBuilder
from .onnx_recurrent import export_recurrent

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17, readable by every runtime that runs opset 17

_SIMPLE = {L.Sigmoid: "Sigmoid", L.Tanh: "Tanh", L.ReLU: "Relu", L.Identity: "Identity",
           L.Dropout: "Identity", L.StochasticBinary: "Sigmoid", L.Flatten: "Flatten"}


def _import_onnx():
    try:
        import onnx
        import onnx.checker
        import onnx.numpy_helper
    except ImportError as exc:
        raise ImportError("to_onnx needs the onnx package: pip install 'handgrad[onnx]'") from exc
    return onnx


def _check_input_shape(input_shape) -> tuple:
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or not input_shape:
        raise TypeError(f"to_onnx: expected input_shape to be a non-empty tuple of one sample's dimensions "
                        f"(no batch axis), e.g. (1, 28, 28), got {input_shape!r}")
    out = []
    for d in input_shape:
        if d is None:
            out.append(None)
        elif isinstance(d, (int, numpy.integer)) and not isinstance(d, bool) and d > 0:
            out.append(int(d))
        else:
            raise ValueError(f"to_onnx: expected input_shape entries to be positive ints (or None for a "
                             f"dynamic time axis), got {tuple(input_shape)!r}")
    return tuple(out)


def _probe_shapes(model: Sequential, shape: tuple, dtype) -> list[list]:
    """Per layer, the output shape (batch axis first, "N") with the dynamic axes named: the
    model is run on two tiny probes that differ only in the ``None`` axes, so an output axis
    that differs between them follows the input's dynamic axis."""
    runs = []
    for fill in (7, 8):
        x = numpy.zeros((1, *(fill if d is None else d for d in shape)), dtype=dtype)
        shapes = []
        with model.stateless():
            for i, layer in enumerate(model.layers):
                try:
                    x = layer.forward(backend.asarray(x, dtype=dtype, xp=model.xp), training=False)
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"to_onnx: input_shape {shape} does not fit the model: layer {i} "
                                     f"{layer!r}: {exc}") from None
                shapes.append(tuple(x.shape))
        runs.append(shapes)
    return [["N", *(a if a == b else "T" for a, b in zip(s7[1:], s8[1:]))] for s7, s8 in zip(*runs)]


def _np(layer, key):
    return numpy.asarray(backend.to_numpy(layer.params[key]))


def _export_layer(g: GraphBuilder, layer, x: str, rank: int, i: int) -> str:
    kind = type(layer)
    if kind in _SIMPLE:
        return g.node(_SIMPLE[kind], [x], kind.__name__.lower(), **({"axis": 1} if kind is L.Flatten else {}))
    if kind is L.Softmax:
        return g.node("Softmax", [x], "softmax", axis=-1)
    if kind is L.BinaryThreshold:
        ge = g.node("GreaterOrEqual", [x, g.const("theta", layer.theta)], "fires")
        return g.node("Cast", [ge], "threshold", to=g.elem)
    if kind is L.Normalize:
        centred = g.node("Sub", [x, g.const("mean", layer.mean)], "centred")
        return g.node("Mul", [centred, g.const("inv_std", 1.0 / layer.std)], "normalized")
    if kind is L.Dense:
        if rank == 2:
            return g.node("Gemm", [x, g.const("W", _np(layer, "W")), g.const("b", _np(layer, "b"))], "dense", transB=1)
        y = g.node("MatMul", [x, g.const("WT", _np(layer, "W").T)], "xw")
        return g.node("Add", [y, g.const("b", _np(layer, "b"))], "dense")
    if kind is L.Conv2D:
        (ph, pw), untied = layer.padding, layer.untied_bias is not None
        ins = [x, g.const("W", _np(layer, "W"))] + ([] if untied else [g.const("b", _np(layer, "b"))])
        y = g.node("Conv", ins, "conv", kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                   pads=[ph, pw, ph, pw])
        return g.node("Add", [y, g.const("b_untied", _np(layer, "b"))], "conv_b") if untied else y
    if kind in (L.MaxPool2D, L.AvgPool2D):
        op = "MaxPool" if kind is L.MaxPool2D else "AveragePool"
        return g.node(op, [x], op.lower(), kernel_shape=list(layer.kernel_size), strides=list(layer.stride))
    if kind in (L.RNN, L.LSTM):
        return export_recurrent(g, layer, x, i)
    raise ValueError(f"to_onnx: layer {i} {layer!r} ({kind.__name__}) cannot be expressed in ONNX by handgrad; "
                     f"exportable layers: {sorted(c.__name__ for c in (*_SIMPLE, L.Softmax, L.BinaryThreshold, L.Normalize, L.Dense, L.Conv2D, L.MaxPool2D, L.AvgPool2D, L.RNN, L.LSTM))}")


def build_onnx(model: Sequential, input_shape):
    """The ``onnx.ModelProto`` of ``model`` for samples of ``input_shape`` (checked with
    ``onnx.checker``, full check); ``to_onnx`` writes it."""
    from .. import __version__

    onnx = _import_onnx()
    if not isinstance(model, Sequential):
        raise TypeError(f"to_onnx: expected a handgrad Sequential model, got {type(model).__name__}")
    if not model.layers:
        raise ValueError("to_onnx: the model has no layers")
    shape = _check_input_shape(input_shape)
    dtype = numpy.dtype(model.dtype)
    shapes = _probe_shapes(model, shape, dtype)
    g = GraphBuilder(onnx, dtype)
    x, rank = "input", len(shape) + 1
    for i, layer in enumerate(model.layers):
        g.prefix = f"l{i}_{type(layer).__name__}_"
        x = _export_layer(g, layer, x, rank, i)
        rank = len(shapes[i])
    g.prefix = ""
    out = g.node("Identity", [x], outputs=["output"])
    in_info = g.value_info("input", ["N", *("T" if d is None else d for d in shape)])
    graph = g.graph("handgrad", [in_info], [g.value_info(out, shapes[-1])])
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="handgrad", producer_version=__version__,
                                   doc_string=repr(model))
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model: Sequential, path: str | os.PathLike, input_shape) -> None:
    """Write ``model`` to ``path`` as a standard ONNX file (opset 17, standard operators only)
    that computes ``model.predict``: input ``"input"`` ``(N, *input_shape)`` with a dynamic
    batch axis N (and a dynamic time axis where ``input_shape`` has ``None``), output
    ``"output"``, in the model's dtype. ``input_shape`` is one sample's shape without the batch
    axis, e.g. ``(1, 28, 28)`` or ``(28, 28)``. The file is written atomically.

    Raises ``ValueError`` naming the layer that cannot be expressed, or when ``input_shape``
    does not fit the model; ``ImportError`` when the ``onnx`` package is missing."""
    proto = build_onnx(model, input_shape)
    atomic_write_bytes(path, proto.SerializeToString())
