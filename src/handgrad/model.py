"""``Sequential``: a stack of layers, the feedforward network of ``003`` §2.

Forward applies the layers in order (a⁽ˡ⁾ = σ(W⁽ˡ⁾a⁽ˡ⁻¹⁾ + b⁽ˡ⁾) split into a ``Dense`` and
an activation layer); backward runs them in reverse, each turning dC/d(output) into
dC/d(input) — statement (2) of ``003`` §2 applied layer by layer.
"""
from __future__ import annotations

import contextlib
from typing import Iterable

import numpy

from . import backend
from ._checks import check_finite, check_option, check_positive_int
from .layers.activations import ReLU
from .layers.base import REGISTRY, Layer
from .layers.conv import Conv2D
from .layers.pool import MaxPool2D
from .replicas import Inference


# the methods the fused passes stand in for, as defined: a class whose method was replaced
# later (a spy, a patch) runs its own calls again
_AS_DEFINED = {cls: {name: cls.__dict__.get(name, getattr(cls, name)) for name in names} for cls, names in (
    (Conv2D, ("forward", "_forward", "backward", "_backward", "_backward_checked")),
    (ReLU, ("forward", "_forward", "backward", "_backward", "_backward_checked", "_backward_owned")),
    (MaxPool2D, ("forward", "_forward", "backward", "_backward", "_backward_checked", "_backward_owned")))}


def _as_defined(layer) -> bool:
    """Whether ``layer``'s class is exactly one of the fused ones, with its methods as defined
    and none replaced on the instance."""
    methods = _AS_DEFINED.get(type(layer))
    return (methods is not None and not methods.keys() & layer.__dict__.keys()
            and all(type(layer).__dict__.get(k, getattr(type(layer), k)) is v for k, v in methods.items()))


def _conv_relu(layers, i: int) -> bool:
    """Whether ``layers[i]``, ``layers[i + 1]`` are a ``Conv2D`` and a ``ReLU`` of handgrad's own
    (not subclasses, no method replaced on the class or the instance): ``Sequential.forward``
    then runs them as one pass (``Conv2D.forward_relu``)."""
    if i + 1 >= len(layers):
        return False
    conv, relu = layers[i], layers[i + 1]
    return type(conv) is Conv2D and type(relu) is ReLU and _as_defined(conv) and _as_defined(relu)


def _conv_relu_pool(layers, i: int) -> bool:
    """Whether ``layers[i - 2 : i + 1]`` are a ``Conv2D``, a ``ReLU`` and a ``MaxPool2D`` of
    handgrad's own (no method replaced on the class or the instance): ``Sequential.backward``
    then runs their backward as one pass where ``Conv2D.backs_through``."""
    if i < 2:
        return False
    trio = layers[i - 2:i + 1]
    return [type(layer) for layer in trio] == [Conv2D, ReLU, MaxPool2D] and all(map(_as_defined, trio))


class Sequential:
    """A model made of ``layers`` applied one after the other.

    ``forward(x, training=False)``, ``backward(grad)`` (returns dC/dx), ``predict(x)``
    (NumPy in, NumPy out, in batches, inference mode), ``summary()``.
    """

    def __init__(self, layers: Iterable[Layer]) -> None:
        try:
            layers = list(layers)
        except TypeError:
            raise TypeError(f"Sequential: expected a list of layers, got {type(layers).__name__}") from None
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: expected layers to be Layer instances, got "
                                f"{type(layer).__name__} at position {i}")
        self.layers = layers
        self.stop_training = False
        #: when True, backward stores ‖δ⁽ˡ⁾‖ (mean over the batch of the norm of dC/d(output)
        #: arriving at each layer with parameters) in ``delta_norms`` {layer index: float}
        self.record_delta_norms = False
        self.delta_norms: dict[int, float] = {}

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}\n])"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    # -- computation ----------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        if training:  # a new pass: no layer keeps the last pass's arrays while this one runs
            for layer in self.layers:
                layer._forget()
        layers, i = self.layers, 0
        while i < len(layers):
            if (_conv_relu_pool(layers, i + 2) and layers[i].fuses_relu_pool(x, layers[i + 2])):
                x = layers[i].forward_relu_pool(x, layers[i + 1], layers[i + 2], training)  # and the pool in cache
                i += 3
                continue
            if _conv_relu(layers, i) and layers[i].fuses_relu(x):  # the ReLU where the output is made
                x = layers[i].forward_relu(x, layers[i + 1], training)
                i += 2
                continue
            x = layers[i].forward(x, training)
            i += 1
        return x

    __call__ = forward

    def backward(self, grad, input_grad: bool = True):
        """Backpropagate dC/d(output) through every layer; returns dC/d(input).

        With ``input_grad=False`` the first layers skip computing the gradient of their
        input (nothing needs it during training) and ``None`` is returned. Layers that are
        frozen (``trainable = False``) and lie below every trainable layer are not visited.
        """
        layers = self.layers
        first = 0
        if not input_grad:
            trainable = [i for i, layer in enumerate(layers) if layer.trainable and layer.params]
            first = trainable[0] if trainable else len(layers)
        record = self.record_delta_norms
        # The caller's gradient is never written. One returned by a handgrad layer within this
        # call is a new array (or a view of the gradient it was given), so the next layer may
        # write into it; one from a layer defined elsewhere might alias what that layer keeps.
        given, fresh = grad, False
        xp = backend.array_module(grad)
        i = len(layers) - 1
        while i >= first:
            if (not record and i - 2 >= first and _conv_relu_pool(layers, i)
                    and layers[i - 2].backs_through(grad, layers[i - 1], layers[i])):
                # the max-pool's and the ReLU's backward where the convolution lays out its error
                grad = layers[i - 2].backward_through(grad, layers[i - 1], layers[i],
                                                      need_input_grad=input_grad or i - 2 > first)
                fresh, i = True, i - 3  # the convolution's input gradient is a new array
                continue
            if record and layers[i].params:
                xp = backend.array_module(grad)
                g2 = grad.reshape(grad.shape[0], -1)
                self.delta_norms[i] = float(xp.sqrt((g2 * g2).sum(axis=1)).mean())
            owned = fresh and not xp.may_share_memory(grad, given)
            out = layers[i]._backward_checked(grad, need_input_grad=input_grad or i > first, owned=owned)
            if out is not None:  # new, or a view of what the layer was given (as fresh as that was)
                ours = type(layers[i]) is REGISTRY.get(type(layers[i]).__name__)
                fresh = ours and (fresh or not xp.may_share_memory(out, grad))
            grad = out
            i -= 1
        return grad if input_grad else None

    @contextlib.contextmanager
    def stateless(self):
        """Inside: stateful recurrent layers neither use nor carry a state (each batch starts from
        zeros, as independent samples should); their carried state is put back afterwards."""
        saved = [(layer, layer.stateful, layer.initial_state) for layer in self.layers
                 if getattr(layer, "stateful", False)]
        for layer, _, _ in saved:
            layer.stateful, layer.initial_state = False, None
        try:
            yield self
        finally:
            for layer, flag, state in saved:
                layer.stateful, layer.initial_state = flag, state

    def reset_states(self) -> None:
        """Zero the carried state of every stateful recurrent layer."""
        for layer in self.layers:
            if hasattr(layer, "reset_state"):
                layer.reset_state()

    def predict(self, x, batch_size: int = 1024) -> numpy.ndarray:
        """Outputs for ``x`` (NumPy or device array), in inference mode, as a NumPy array.

        A batch of at least 64 rows per thread is split over the threads
        (``handgrad.accel.num_threads()``), each part on a replica of the model sharing its
        parameters (``handgrad.replicas``); smaller batches, and every batch of a model of
        Dense-like layers only (no layer that ``splits_well``: BLAS threads its products
        better), run in one piece."""
        batch_size = check_positive_int(batch_size, "Sequential.predict", "batch_size")
        xp = self.xp
        dtype = self.dtype
        x = numpy.asarray(x) if not hasattr(x, "__cuda_array_interface__") else x
        if x.dtype.kind not in "fiu":
            raise TypeError(f"Sequential.predict: expected a numeric array, got dtype {x.dtype}")
        if x.ndim == 0 or x.shape[0] == 0:
            check_finite(x, "Sequential.predict", "x")
            raise ValueError("Sequential.predict: expected at least one sample, got an empty array")
        outs = []
        with self.stateless():
            infer = Inference(self, min(batch_size, x.shape[0]), x)  # batches split over the cores
            for start in range(0, x.shape[0], batch_size):
                # checked batch by batch, just before its forward reads it again from cache (a
                # check of the whole input first made every batch come from memory twice);
                # nothing is returned unless every batch is finite
                part = x[start:start + batch_size]
                check_finite(part, "Sequential.predict", "x")
                xb = backend.asarray(part, dtype=dtype, xp=xp)
                outs.append(backend.to_numpy(infer(xb)))
        return numpy.concatenate(outs, axis=0)

    # -- parameters -----------------------------------------------------------------------
    def parameters(self):
        """Yield ``(name, array)`` for every parameter, names like ``"0.W"``."""
        for i, layer in enumerate(self.layers):
            for k, p in layer.params.items():
                yield f"{i}.{k}", p

    @property
    def num_params(self) -> int:
        return sum(layer.num_params for layer in self.layers)

    @property
    def dtype(self):
        for _, p in self.parameters():
            return p.dtype
        return numpy.dtype(backend.DEFAULT_DTYPE)

    @property
    def xp(self):
        for _, p in self.parameters():
            return backend.array_module(p)
        return backend.default_xp()

    def get_weights(self) -> dict[str, object]:
        """Copies of every parameter, keyed as in ``parameters()``."""
        return {name: p.copy() for name, p in self.parameters()}

    def set_weights(self, weights: dict[str, object]) -> None:
        """Copy ``weights`` (from ``get_weights``) into the parameters, in place."""
        own = dict(self.parameters())
        if set(weights) != set(own):
            raise ValueError(f"Sequential.set_weights: expected keys {sorted(own)}, got {sorted(weights)}")
        for name, p in own.items():
            w = weights[name]
            if tuple(w.shape) != tuple(p.shape):
                raise ValueError(f"Sequential.set_weights: {name} expected shape {tuple(p.shape)}, "
                                 f"got {tuple(w.shape)}")
            p[...] = backend.asarray(w, dtype=p.dtype, xp=backend.array_module(p))

    def astype(self, dtype) -> "Sequential":
        """Convert every parameter (and gradient) to ``dtype`` in place; returns self."""
        dt = backend.resolve_dtype(dtype, "Sequential.astype")
        for layer in self.layers:
            for k in layer.params:
                layer.params[k] = layer.params[k].astype(dt)
            layer.zero_grads()
        return self

    def to(self, device: str) -> "Sequential":
        """Move every parameter to ``device`` (``"cpu"`` or ``"cuda"``); returns self."""
        check_option(device, "Sequential.to", "device", ("cpu", "cuda"))
        if device == "cuda":
            backend.set_device("cuda")  # raises with install instructions when unavailable
        for layer in self.layers:
            for k in layer.params:
                layer.params[k] = backend.to_numpy(layer.params[k])
            layer.zero_grads()
        return self

    # -- description ------------------------------------------------------------------------
    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table of layer, output shape (per sample) and parameter count."""
        if input_shape is None:
            # infer from the first layer with parameters, when its input width says it all
            first = next((layer for layer in self.layers if layer.params), None)
            if getattr(first, "in_features", None):
                input_shape = (first.in_features,)
            elif getattr(first, "input_size", None):
                input_shape = (None, first.input_size)  # (T, F) with T free
        rows = [("layer", "output shape", "params")]
        shape = tuple(input_shape) if input_shape is not None else None
        for layer in self.layers:
            if shape is not None:
                shape = layer.output_shape(shape)
            rows.append((repr(layer), "(" + ", ".join(["N", *("T" if d is None else str(d) for d in shape)]) + ")" if shape is not None else "?", f"{layer.num_params:,}"))
        rows.append(("total", "", f"{self.num_params:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(3)]
        line = "-" * (sum(widths) + 4)
        out = [f"{rows[0][0]:<{widths[0]}}  {rows[0][1]:<{widths[1]}}  {rows[0][2]:>{widths[2]}}", line]
        for r in rows[1:-1]:
            out.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}")
        out += [line, f"{rows[-1][0]:<{widths[0]}}  {'':<{widths[1]}}  {rows[-1][2]:>{widths[2]}}"]
        return "\n".join(out)
