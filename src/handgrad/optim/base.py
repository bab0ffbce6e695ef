"""Optimizer base: walks the model's trainable parameters, applies weight decay and
gradient clipping, and leaves the update rule to subclasses."""
from __future__ import annotations

import math

from .. import backend
from .._checks import check_nonnegative


def _layers_of(model):
    layers = getattr(model, "layers", None)
    if layers is None:
        if hasattr(model, "params") and hasattr(model, "grads"):
            return [model]
        raise TypeError(f"optimizer: expected a Sequential model or a layer, got {type(model).__name__}")
    return list(layers)


def global_grad_norm(model) -> float:
    """‖g‖₂ over every trainable parameter's gradient, as one vector."""
    total = 0.0
    for layer in _layers_of(model):
        if not layer.trainable:
            continue
        for g in layer.grads.values():
            xp = backend.array_module(g)
            total += float(xp.vdot(g.ravel(), g.ravel()).real)
    return math.sqrt(total)


def clip_grad_norm(model, max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm/‖g‖₂) in place; returns the norm before."""
    max_norm = check_nonnegative(max_norm, "clip_grad_norm", "max_norm")
    norm = global_grad_norm(model)
    if norm > max_norm and norm > 0:
        scale = max_norm / (norm + 1e-12)
        for layer in _layers_of(model):
            if layer.trainable:
                for g in layer.grads.values():
                    g *= scale
    return norm


def clip_grad_value(model, clip_value: float) -> None:
    """Clamp every gradient element to [−clip_value, clip_value] in place."""
    clip_value = check_nonnegative(clip_value, "clip_grad_value", "clip_value")
    for layer in _layers_of(model):
        if layer.trainable:
            for g in layer.grads.values():
                backend.array_module(g).clip(g, -clip_value, clip_value, out=g)


class Optimizer:
    """Updates every trainable layer's ``params`` in place (the same array objects).

    ``weight_decay`` λ adds λ·W to the gradient of every parameter except biases (those
    named ``b`` or ``b_…``, e.g. an RBM's ``b_hidden``/``b_visible``), the gradient of
    ``003`` §4's L2 term (λ/2)ΣW² (the notes' λ/n with the data size n folded into λ).
    ``clip_norm`` rescales the global gradient norm and ``clip_value`` clamps elements
    before each update. ``lr`` is a plain attribute that may change between steps
    (schedules set it).
    """

    def __init__(self, model, lr: float, weight_decay: float = 0.0, clip_norm: float | None = None,
                 clip_value: float | None = None) -> None:
        name = type(self).__name__
        self.model = model
        self._layers = _layers_of(model)
        lr_v = check_nonnegative(lr, name, "lr")
        self.lr = lr_v
        self.weight_decay = check_nonnegative(weight_decay, name, "weight_decay")
        self.clip_norm = None if clip_norm is None else check_nonnegative(clip_norm, name, "clip_norm")
        self.clip_value = None if clip_value is None else check_nonnegative(clip_value, name, "clip_value")
        self.state: dict[tuple[int, str], dict] = {}
        self.steps = 0

    def _items(self):
        for i, layer in enumerate(self._layers):
            if not layer.trainable:
                continue
            for k, p in layer.params.items():
                yield (i, k), p, layer.grads[k]

    def step(self) -> None:
        """Apply one update to every trainable parameter from its current gradient."""
        if self.clip_norm is not None:
            clip_grad_norm(self.model, self.clip_norm)
        if self.clip_value is not None:
            clip_grad_value(self.model, self.clip_value)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"{type(self).__name__}.step: expected lr to be a finite number >= 0, got {self.lr!r}")
        self.steps += 1
        for key, p, g in self._items():
            if g.shape != p.shape:
                raise ValueError(f"{type(self).__name__}.step: gradient of {key} has shape "
                                 f"{tuple(g.shape)}, parameter has {tuple(p.shape)}")
            decay = self.weight_decay and not (key[1] == "b" or key[1].startswith("b_"))  # biases: b, b_hidden, ...
            if self.fused_decay:  # the rule adds λp itself, in the same pass as its update
                self._update(key, p, g, self.weight_decay if decay else 0.0)
                continue
            if decay:
                g = g + self.weight_decay * p
            self._update(key, p, g)

    #: True when ``_update(key, p, g, wd)`` applies the weight decay λ = ``wd`` itself
    #: (g + λp, in one pass with the update); False: ``step`` passes ``g + λp`` as ``g``
    fused_decay = False

    def _slot(self, key, name, p):
        st = self.state.setdefault(key, {})
        buf = st.get(name)
        if buf is None or buf.shape != p.shape or buf.dtype != p.dtype:
            buf = backend.array_module(p).zeros_like(p)
            st[name] = buf
        return buf

    def _update(self, key, p, g) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Learning rate, step count and per-parameter buffers (for checkpoints); buffers are
        keyed ``"{layer index}.{param name}"``."""
        return {"lr": self.lr, "steps": self.steps,
                "state": {f"{i}.{k}": dict(v) for (i, k), v in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (buffers are copied onto the params' device)."""
        where = f"{type(self).__name__}.load_state_dict"
        params = {(i, k): p for (i, k), p, _ in self._items_all()}
        new: dict[tuple[int, str], dict] = {}
        for key, slots in state.get("state", {}).items():
            i, _, k = key.partition(".")
            if not i.isdigit() or (int(i), k) not in params:
                raise ValueError(f"{where}: state for unknown parameter {key!r}")
            p = params[(int(i), k)]
            new[(int(i), k)] = {}
            for slot, arr in slots.items():
                if tuple(arr.shape) != tuple(p.shape):
                    raise ValueError(f"{where}: buffer {key}.{slot} has shape {tuple(arr.shape)}, "
                                     f"parameter has {tuple(p.shape)}")
                new[(int(i), k)][slot] = backend.asarray(arr, dtype=p.dtype, xp=backend.array_module(p))
        self.state = new
        self.lr = float(state["lr"])
        self.steps = int(state["steps"])

    def _items_all(self):
        for i, layer in enumerate(self._layers):
            for k, p in layer.params.items():
                yield (i, k), p, layer.grads[k]
