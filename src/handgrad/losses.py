"""Cost functions. ``value = loss.forward(output, target)`` returns a Python float: the
**mean over samples** (and over time steps when ``output`` is ``(N, T, C)``) of the
per-sample cost c of ``003``. ``loss.backward()`` returns dC/d(output), already divided by
that count, so layers below only sum over the batch (``003`` §2 statements (5)–(6)).

Class targets may be integer labels ``(N,)``/``(N, T)`` or one-hot/probability arrays of the
output's shape. Labels are validated before use (on a GPU an out-of-range index would wrap).
"""
from __future__ import annotations

import numpy

from . import accel, backend, functional as F
from ._checks import check_float_array

_REGISTRY: dict[str, type["Loss"]] = {}


def _register(cls):
    _REGISTRY[cls.__name__] = cls
    return cls


class Loss:
    """Base class: validates, keeps what backward needs, exposes ``forward``/``backward``."""

    #: whether integer class labels make sense for this loss
    accepts_labels = True
    #: label value that marks a sample or time step to leave out of the cost (None: none)
    ignore_index: int | None = None

    def __init__(self) -> None:
        self._grad = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __call__(self, output, target) -> float:
        return self.forward(output, target)

    def forward(self, output, target) -> float:
        """The cost C (a float) for a batch; prepares ``backward``."""
        check_float_array(output, f"{self}.forward", ndim=(1, 2, 3), name="output")
        target = self._targets(output, target)
        count = output.shape[0] * (output.shape[1] if output.ndim == 3 else 1)
        if self.ignore_index is not None and target.dtype.kind in "iu":
            # padded steps / unlabeled samples: no cost, no gradient; the mean is over the rest
            count = max(1, int((target != self.ignore_index).sum()))
        value, grad = self._compute(output, target, count)
        self._grad = grad
        #: how many items (samples, or labelled steps) the mean ran over
        self.last_count = count
        return float(value)

    def backward(self):
        """dC/d(output) for the last ``forward``."""
        if self._grad is None:
            raise RuntimeError(f"{self}.backward called before forward")
        return self._grad

    def per_sample(self, output, target):
        """The per-sample costs c (averaged over time steps for sequences), shape ``(N,)``."""
        check_float_array(output, f"{self}.per_sample", ndim=(1, 2, 3), name="output")
        target = self._targets(output, target)
        c = self._cost_terms(output, target)
        return c.reshape(c.shape[0], -1).mean(axis=1) if c.ndim > 1 else c

    # -- helpers ------------------------------------------------------------------------------
    def _targets(self, output, target):
        """Validate ``target``; returns integer labels or a float array of output's shape."""
        where = f"{self}.forward"
        xp = backend.array_module(output)
        if not hasattr(target, "shape"):
            raise TypeError(f"{where}: expected target to be an array, got {type(target).__name__}")
        if backend.array_module(target) is not xp:
            target = backend.asarray(target, xp=xp)
        if target.dtype.kind in "iub" and target.dtype.kind != "b" and self.accepts_labels:
            if output.ndim < 2 or tuple(target.shape) != tuple(output.shape[:-1]):
                raise ValueError(
                    f"{where}: integer labels must have shape {tuple(output.shape[:-1])} for output of "
                    f"shape {tuple(output.shape)}, got {tuple(target.shape)}")
            k = output.shape[-1]
            low = -1 if self.ignore_index is not None else 0
            if target.size and (int(target.min()) < low or int(target.max()) >= k):
                allowed = f"[0, {k - 1}]" + (" or -1 (ignored)" if low < 0 else "")
                raise ValueError(f"{where}: labels must be in {allowed}, got values in "
                                 f"[{int(target.min())}, {int(target.max())}]")
            return target
        if target.dtype.kind != "f":
            raise TypeError(f"{where}: expected float targets or integer labels, got dtype {target.dtype}")
        if tuple(target.shape) != tuple(output.shape):
            raise ValueError(f"{where}: expected target of shape {tuple(output.shape)}, got {tuple(target.shape)}")
        if not bool(xp.isfinite(target).all()):
            raise ValueError(f"{where}: target contains NaN or Inf values")
        return target.astype(output.dtype, copy=False)

    def _dense_target(self, output, target):
        if target.dtype.kind == "f":
            return target
        return F.one_hot(target, output.shape[-1], output.dtype)

    def _compute(self, output, target, count):
        raise NotImplementedError

    def _cost_terms(self, output, target):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


@_register
class MeanSquaredError(Loss):
    """Halved squared error (``003`` §2).

    Forward: c = ½ Σ_j (a_j − y_j)².

    Backward: ∇_a c = a − y. With a linear output this gives δ⁽ᴸ⁾ = a − y (``003`` §3); with
    sigmoid outputs statement (1) multiplies by σ'(z), the slow learning of saturated units
    that §3 discusses. ``001`` eqs. (9)–(14) use the same halved L2 loss.
    """

    def _compute(self, output, target, count):
        diff = output - self._dense_target(output, target)
        value = 0.5 * float((diff * diff).sum()) / count
        diff /= count
        return value, diff

    def _cost_terms(self, output, target):
        diff = output - self._dense_target(output, target)
        return 0.5 * (diff * diff).sum(axis=-1) if output.ndim > 1 else 0.5 * diff * diff


@_register
class BinaryCrossEntropy(Loss):
    """Multi-label cross-entropy (``000`` §1.2, eq. (6); ``003`` §3).

    Forward: c = −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)]. ``from_logits=True`` (default):
    ``output`` is z and a = σ(z); then c = Σ_j [softplus(z_j) − y_j z_j], stable for any z.
    ``from_logits=False``: ``output`` is a in (0, 1), clipped to [ε, 1 − ε] with ε the
    dtype's machine epsilon.

    Backward: with logits dc/dz = σ(z) − y (``003`` §3: δ⁽ᴸ⁾ = a − y, ``000`` eq. (7));
    with probabilities dc/da = (a − y) / (a(1 − a)).

    Targets: probabilities in [0, 1] of the output's shape, or integer labels (one-hot).
    """

    def __init__(self, from_logits: bool = True) -> None:
        super().__init__()
        if not isinstance(from_logits, bool):
            raise TypeError(f"BinaryCrossEntropy: expected from_logits to be a bool, got {from_logits!r}")
        self.from_logits = from_logits

    def __repr__(self) -> str:
        return f"BinaryCrossEntropy(from_logits={self.from_logits})"

    def _targets(self, output, target):
        t = super()._targets(output, target)
        if t.dtype.kind == "f":
            xp = backend.array_module(t)
            if t.size and (float(t.min()) < 0 or float(t.max()) > 1):
                raise ValueError(f"{self}.forward: expected targets in [0, 1], got values in "
                                 f"[{float(t.min())}, {float(t.max())}]")
            del xp
        return t

    def _check_probabilities(self, output):
        if not self.from_logits and output.size and (float(output.min()) < 0 or float(output.max()) > 1):
            raise ValueError(f"{self}.forward: with from_logits=False expected outputs in [0, 1], got values in "
                             f"[{float(output.min())}, {float(output.max())}]")

    def _clip(self, a):
        xp = backend.array_module(a)
        eps = float(xp.finfo(a.dtype).eps)
        return xp.clip(a, eps, 1 - eps)

    def _cost_terms(self, output, target):
        xp = backend.array_module(output)
        y = self._dense_target(output, target)
        if self.from_logits:
            terms = F.softplus(output) - y * output
        else:
            a = self._clip(output)
            terms = -(y * xp.log(a) + (1 - y) * xp.log1p(-a))
        return terms.sum(axis=-1) if output.ndim > 1 else terms

    def _compute(self, output, target, count):
        self._check_probabilities(output)
        y = self._dense_target(output, target)
        value = float(self._cost_terms(output, y).sum()) / count
        if self.from_logits:
            grad = F.sigmoid(output)
            grad -= y
        else:
            a = self._clip(output)
            grad = (a - y) / (a * (1 - a))
        grad /= count
        return value, grad

    def get_config(self):
        return {"from_logits": self.from_logits}


@accel.kernel
def _xent_labels_kernel(z, labels, count, grad):
    """Softmax cross-entropy with integer labels in one pass over the rows of ``z`` (N, C):
    ``grad`` ← (softmax(z) − onehot(label)) / count, and the return value Σ_n ln softmax(z_n)[label_n]
    (summed in float64). Rows labelled below 0 (``ignore_index``) get a zero gradient and add
    nothing. The formulas of ``SoftmaxCrossEntropy._compute``'s NumPy lines, one e^x per
    element: ln softmax(z)_k = z_k − max z − ln s and softmax(z)_j = e^{z_j − max z} / s, with
    s = Σ_j e^{z_j − max z}."""
    n, c = z.shape
    total = 0.0
    for i in range(n):
        k = labels[i]
        if k < 0:
            for j in range(c):
                grad[i, j] = 0
            continue
        m = z[i, 0]
        for j in range(1, c):
            if z[i, j] > m:
                m = z[i, j]
        s = z[i, 0] - z[i, 0]  # zero in z's dtype
        for j in range(c):
            e = numpy.exp(z[i, j] - m)
            grad[i, j] = e
            s += e
        for j in range(c):
            grad[i, j] = grad[i, j] / s
        grad[i, k] -= 1
        for j in range(c):
            grad[i, j] /= count
        total += (z[i, k] - m) - numpy.log(s)
    return total


@_register
class SoftmaxCrossEntropy(Loss):
    """Softmax output fused with the negative log-likelihood (``003`` §3).

    Forward: c = −Σ_j y_j ln softmax(z)_j, with ln softmax computed as
    z − max z − ln Σ e^{z − max z}, stable for logits of any size.

    Backward: dc/dz = softmax(z) − y — the δ⁽ᴸ⁾ = a − y that replaces statement (1).

    Targets: integer labels or one-hot/probability rows. For sequences ``(N, T, C)`` the cost
    is averaged over samples and steps (``003`` §6: δ[t] = (a − y)/T per sequence); an integer
    label of ``ignore_index`` (−1 by default; ``None`` disables it) marks a padded step that
    adds neither cost nor gradient, the mean running over the other steps.
    """

    def __init__(self, ignore_index: int | None = -1) -> None:
        super().__init__()
        if ignore_index is not None and ignore_index != -1:
            raise ValueError(f"SoftmaxCrossEntropy: ignore_index must be -1 or None, got {ignore_index!r}")
        self.ignore_index = ignore_index

    def _check_rank(self, output):
        if output.ndim < 2:
            raise ValueError(f"{self}.forward: expected output (N, C) or (N, T, C), got shape {tuple(output.shape)}")

    def _cost_terms(self, output, target):
        self._check_rank(output)
        xp = backend.array_module(output)
        logp = F.log_softmax(output, axis=-1)
        if target.dtype.kind == "f":
            return -(target * logp).sum(axis=-1)
        valid = target >= 0
        idx = xp.where(valid, target, 0)[..., None].astype(xp.int64)
        return -xp.take_along_axis(logp, idx, axis=-1)[..., 0] * valid

    def _compute(self, output, target, count):
        self._check_rank(output)
        xp = backend.array_module(output)
        if (xp is numpy and target.dtype.kind in "iu" and output.dtype in (numpy.float32, numpy.float64)
                and output.size and accel.jit_enabled()):
            z = numpy.ascontiguousarray(output).reshape(-1, output.shape[-1])
            grad = numpy.empty_like(z)
            total = _xent_labels_kernel(z, numpy.ascontiguousarray(target).reshape(-1), z.dtype.type(count), grad)
            return -total / count, grad.reshape(output.shape)
        logp = F.log_softmax(output, axis=-1)
        grad = xp.exp(logp)
        if target.dtype.kind == "f":
            value = -float((target * logp).sum()) / count
            # Σ_j y_j may differ from 1 for soft targets: dc/dz = a Σ_j y_j − y
            s = target.sum(axis=-1, keepdims=True)
            grad *= s
            grad -= target
        else:
            if self.ignore_index is not None and bool((target < 0).any()):
                valid = (target >= 0)
                idx = xp.where(valid, target, 0)[..., None].astype(xp.int64)
                value = -float((xp.take_along_axis(logp, idx, axis=-1)[..., 0] * valid).sum()) / count
                picked = xp.take_along_axis(grad, idx, axis=-1)
                xp.put_along_axis(grad, idx, picked - 1, axis=-1)
                grad *= valid[..., None]
            else:
                idx = target[..., None].astype(xp.int64)
                value = -float(xp.take_along_axis(logp, idx, axis=-1).sum()) / count
                picked = xp.take_along_axis(grad, idx, axis=-1)
                xp.put_along_axis(grad, idx, picked - 1, axis=-1)
        grad /= count
        return value, grad


@_register
class NegativeLogLikelihood(Loss):
    """Negative log-likelihood of probabilities (``003`` §3), e.g. after ``Softmax``.

    Forward: c = −Σ_j y_j ln a_j with ``output`` already probabilities, floored at the dtype's
    smallest normal number so ln never gives −inf.

    Backward: dc/da_j = −y_j / a_j (the ``001`` eqs. (17)–(20) factor −t_i/y_i).
    """

    def _floor(self, a):
        xp = backend.array_module(a)
        return xp.maximum(a, xp.finfo(a.dtype).tiny)

    def _cost_terms(self, output, target):
        xp = backend.array_module(output)
        y = self._dense_target(output, target)
        return -(y * xp.log(self._floor(output))).sum(axis=-1)

    def _compute(self, output, target, count):
        if output.ndim < 2:
            raise ValueError(f"{self}.forward: expected output (N, C) or (N, T, C), got shape {tuple(output.shape)}")
        xp = backend.array_module(output)
        if output.size and float(output.min()) < 0:
            raise ValueError(f"{self}.forward: expected probabilities >= 0, got minimum {float(output.min())}")
        y = self._dense_target(output, target)
        a = self._floor(output)
        value = -float((y * xp.log(a)).sum()) / count
        grad = -y / a
        grad /= count
        return value, grad


def get(name_or_loss) -> Loss:
    """A loss from its class name (``"SoftmaxCrossEntropy"``) or a short alias."""
    if isinstance(name_or_loss, Loss):
        return name_or_loss
    aliases = {"mse": "MeanSquaredError", "bce": "BinaryCrossEntropy",
               "cross_entropy": "SoftmaxCrossEntropy", "nll": "NegativeLogLikelihood"}
    name = aliases.get(name_or_loss, name_or_loss)
    if name not in _REGISTRY:
        raise ValueError(f"losses.get: unknown loss {name_or_loss!r}; expected one of "
                         f"{sorted(_REGISTRY) + sorted(aliases)}")
    return _REGISTRY[name]()


__all__ = ["Loss", "MeanSquaredError", "BinaryCrossEntropy", "SoftmaxCrossEntropy",
           "NegativeLogLikelihood", "get"]
