"""Element-wise activations and the neuron models of ``003`` §1.

Each activation σ maps z to a = σ(z) element-wise, so the backward pass is the element-wise
product of ``003`` §2 statement (2): dC/dz = dC/da ⊙ σ'(z). Layers cache what that needs and
nothing more (the output for sigmoid and tanh, whose derivatives are functions of it).

Input and output shapes are equal and arbitrary, ``(N, ...)``.
"""
from __future__ import annotations

import numpy

from .. import accel, backend, functional as F
from . import _conv_kernels as _ck
from .base import Layer, register


def _fused(xp, x) -> bool:
    """Whether the compiled kernels serve this array (NumPy, float32/float64, JIT on)."""
    return xp is numpy and x.dtype in (numpy.float32, numpy.float64) and x.size > 0 and accel.jit_enabled()


def _row_view(x):
    """``x`` as a 2-D view of rows (its last axis contiguous, the others mergeable into one), or
    None when it is C-contiguous (the flat kernels serve it) or cannot be viewed so."""
    if x.flags.c_contiguous or x.ndim < 2 or x.strides[-1] != x.itemsize:
        return None
    rows = x.view()
    try:
        rows.shape = (-1, x.shape[-1])  # raises instead of copying
    except AttributeError:
        return None
    return rows



def _writable_like(grad_y, y) -> bool:
    """Whether ``grad_y`` can take the input gradient in place: a writable array of the
    cached activation's shape and dtype (a product in the same dtype then stays exact)."""
    return (getattr(grad_y.flags, "writeable", True)  # CuPy's arrays are always writable
            and grad_y.shape == y.shape and grad_y.dtype == y.dtype)

@register
class Identity(Layer):
    """The linear neurons of ``003`` §1 (and §3's linear output units).

    Forward: a = z.

    Backward: σ'(z) = 1, so dC/dz = dC/da.
    """

    def _forward(self, x, training):
        return x

    def _backward(self, grad_y, need_input_grad):
        return grad_y


@register
class Sigmoid(Layer):
    """Sigmoid neurons (``003`` §1–§2).

    Forward: a = σ(z) = 1/(1 + e^{−z}), computed from e^{−|z|} (``functional.sigmoid``): no
    overflow, and full relative precision in the far negative tail.

    Backward: σ'(z) = σ(z)(1 − σ(z)) (``003`` §2), so backward returns ``grad_y * a * (1 − a)``
    using the cached output a. ``000`` eqs. (1), (8) use the same derivative a(1 − a).
    """

    _cache = ("_y",)

    def _forward(self, x, training):
        y = F.sigmoid(x)
        if training:
            self._y = y
        return y

    def _backward(self, grad_y, need_input_grad):
        y = self._y
        return grad_y * y * (1 - y)

    def _backward_owned(self, grad_y, need_input_grad):
        if not _writable_like(grad_y, self._y):
            return self._backward(grad_y, need_input_grad)
        y = self._y
        grad_y *= y
        grad_y *= 1 - y
        return grad_y


@register
class Tanh(Layer):
    """Hyperbolic-tangent neurons.

    Forward: a = tanh(z) (``functional.tanh``: for float32 with the JIT, a rational function
    within 4e-7 of it).

    Backward: tanh'(z) = 1 − tanh²(z), so backward returns ``grad_y * (1 − a²)`` using the
    cached output a.
    """

    _cache = ("_y",)

    def _forward(self, x, training):
        y = F.tanh(x)
        if training:
            self._y = y
        return y

    def _backward(self, grad_y, need_input_grad):
        y = self._y
        return grad_y * (1 - y * y)

    def _backward_owned(self, grad_y, need_input_grad):
        if not _writable_like(grad_y, self._y):
            return self._backward(grad_y, need_input_grad)
        grad_y *= 1 - self._y * self._y
        return grad_y


@register
class ReLU(Layer):
    """The rectified linear neurons of ``003`` §1.

    Forward: a = max(0, z).

    Backward: σ'(z) = 1 for z > 0 and 0 otherwise (we take 0 at the kink z = 0, as PyTorch
    does), so backward returns ``grad_y * (a > 0)``.

    With the JIT on (``accel.jit_enabled``) both are one compiled pass over memory
    (``_conv_kernels.relu_forward`` / ``relu_backward``) instead of NumPy's two or three; the
    output is then C-ordered whatever the input's layout.
    """

    _cache = ("_y",)

    def _forward(self, x, training):
        xp = backend.array_module(x)
        if _fused(xp, x):
            y = xp.empty(x.shape, dtype=x.dtype)
            rows = _row_view(x)
            if rows is not None:  # strided rows, read in place
                _ck.relu_forward_rows(rows, y.reshape(rows.shape))
            else:
                _ck.relu_forward(xp.ascontiguousarray(x).reshape(-1), y.reshape(-1))
        else:
            y = xp.maximum(x, 0)
        if training:
            self._y = y
        return y

    def _backward(self, grad_y, need_input_grad):
        xp = backend.array_module(grad_y)
        y = self._y
        if _fused(xp, grad_y) and grad_y.dtype == y.dtype and y.flags.c_contiguous:
            g = xp.ascontiguousarray(grad_y)
            dx = xp.empty(g.shape, dtype=g.dtype)
            _ck.relu_backward(g.reshape(-1), y.reshape(-1), dx.reshape(-1))
            return dx
        # multiplying by the boolean mask is an order of magnitude faster than xp.where here
        return grad_y * (y > 0)

    def _backward_owned(self, grad_y, need_input_grad):
        xp, y = backend.array_module(grad_y), self._y
        if not _writable_like(grad_y, y):
            return self._backward(grad_y, need_input_grad)
        if _fused(xp, grad_y) and grad_y.flags.c_contiguous and y.flags.c_contiguous:
            _ck.relu_backward_inplace(grad_y.reshape(-1), y.reshape(-1))
            return grad_y
        grad_y *= y > 0
        return grad_y


@register
class Softmax(Layer):
    """Softmax over the last axis (``003`` §3).

    Forward: a_j = e^{z_j} / Σ_k e^{z_k}, along the last axis.

    Backward: every output depends on every input of the row: ∂a_h/∂z_j = a_h(δ_hj − a_j)
    (the case analysis of ``003`` §3). Backward applies that Jacobian without forming it:
    dC/dz_j = a_j (g_j − Σ_h g_h a_h), with g = dC/da. For classification prefer the fused
    ``losses.SoftmaxCrossEntropy`` (δ = a − y, cheaper and stabler).
    """

    _cache = ("_y",)

    def _forward(self, x, training):
        y = F.softmax(x, axis=-1)
        if training:
            self._y = y
        return y

    def _backward(self, grad_y, need_input_grad):
        y = self._y
        return y * (grad_y - (grad_y * y).sum(axis=-1, keepdims=True))


@register
class BinaryThreshold(Layer):
    """Binary thresholded neurons (``003`` §1).

    Forward: a = 1 if z ≥ θ, else 0.

    Backward: the derivative is 0 everywhere except at z = θ, where it does not exist, so
    backward returns zeros: no error flows through a threshold unit, which is why such
    networks cannot be trained by backpropagation (the reason smooth sigmoid neurons exist).
    """

    def __init__(self, theta: float = 0.0) -> None:
        super().__init__()
        try:
            self.theta = float(theta)
        except (TypeError, ValueError):
            raise TypeError(f"BinaryThreshold: expected theta to be a number, got {theta!r}") from None
        if self.theta != self.theta:
            raise ValueError(f"BinaryThreshold: expected theta to be a number, got {theta!r}")

    def _forward(self, x, training):
        return (x >= self.theta).astype(x.dtype)

    def _backward(self, grad_y, need_input_grad):
        xp = backend.array_module(grad_y)
        return xp.zeros_like(grad_y)

    def get_config(self):
        return {"theta": self.theta}


@register
class StochasticBinary(Layer):
    """Stochastic binary neurons (``003`` §1): P(a = 1) = σ(z).

    Forward: when training, samples a ~ Bernoulli(σ(z)) from the layer's generator; otherwise
    returns the expectation σ(z).

    Backward: the sample has no derivative, so backward returns the derivative of the
    expected output, ``grad_y * σ(z)(1 − σ(z))`` (the unbiased-mean "straight-through"
    estimator). Setting ``sample = False`` makes training forwards return σ(z) too;
    ``gradcheck`` does so, since that is the function whose derivative backward computes.
    """

    _cache = ("_p",)

    stochastic = True

    def __init__(self, rng=None) -> None:
        super().__init__()
        self.rng = backend.make_rng(rng)
        self.sample = True

    def set_rng(self, rng) -> None:
        self.rng = backend.make_rng(rng)

    def _forward(self, x, training):
        p = F.sigmoid(x)
        if not training:
            return p
        self._p = p
        if not self.sample:
            return p
        xp = backend.array_module(x)
        u = backend.asarray(self.rng.random(x.shape, dtype=x.dtype), xp=xp)
        return (u < p).astype(x.dtype)

    def _backward(self, grad_y, need_input_grad):
        p = self._p
        return grad_y * p * (1 - p)
