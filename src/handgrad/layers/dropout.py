"""Dropout and reshaping layers."""
from __future__ import annotations

import numpy

from .. import accel, backend
from .._checks import check_probability
from ..training.rowshard import random_uint32
from .base import Layer, register


@register
class Dropout(Layer):
    """Inverted dropout (``003`` §4).

    ``003`` §4 removes half the hidden units at random during training and halves the
    outgoing weights after training. Inverted dropout is the same model in expectation with
    the scaling moved to training time: each unit is kept with probability 1 − p and kept
    units are divided by 1 − p, so inference is the identity and needs no weight change::

        training:  y = x ⊙ m / (1 − p),  m_i ~ Bernoulli(1 − p);   dC/dx = dC/dy ⊙ m / (1 − p)
        otherwise: y = x

    Input and output ``(N, ...)``. The mask is drawn from the layer's generator (``rng``);
    ``fit(seed=...)`` gives it one derived from the run's seed. Unit i (in C order) is kept
    where u_i < 1 − p, u ~ U[0, 1). In float32, u_i = (r_i >> 8)·2⁻²⁴ with r the 32-bit
    halves of the generator's raw 64-bit outputs, low half first
    (``training.rowshard.random_uint32``): the floats ``Generator.random(dtype=float32)``
    makes of the same bits, at half its cost (2.1 against 4.8 ns a unit on the AVX2 machine of
    ``docs/benchmarks.md``), and no half is left buffered between calls. In float64,
    ``Generator.random``'s 53-bit uniforms. With the JIT on, the mask and the output are one
    compiled pass over the draws (``_conv_kernels.dropout_forward_bits`` /
    ``dropout_forward``, the same bits as the NumPy lines).
    """

    _cache = ("_mask",)

    stochastic = True

    def __init__(self, p: float = 0.5, rng=None) -> None:
        super().__init__()
        self.p = check_probability(p, "Dropout", "p")
        self.rng = backend.make_rng(rng)

    def set_rng(self, rng) -> None:
        self.rng = backend.make_rng(rng)

    def _forward(self, x, training):
        if not training or self.p == 0.0:
            self._mask = None
            return x
        xp = backend.array_module(x)
        keep = 1.0 - self.p
        jit = xp is numpy and accel.jit_enabled() and x.dtype in (numpy.float32, numpy.float64)
        if x.dtype == numpy.float32:  # 32 random bits a unit, read from the raw stream
            draws = backend.asarray(random_uint32(self.rng, x.shape), xp=xp)
            if not jit:
                draws = (draws >> 8).astype(numpy.float32) * numpy.float32(2.0 ** -24)
        else:
            draws = backend.asarray(self.rng.random(x.shape, dtype=x.dtype), xp=xp)
        if jit:
            from . import _conv_kernels as _ck  # noqa: PLC0415 - the compiled pass, one over memory

            x = numpy.ascontiguousarray(x)
            mask, y = numpy.empty_like(x), numpy.empty_like(x)
            kernel = _ck.dropout_forward_bits if draws.dtype == numpy.uint32 else _ck.dropout_forward
            kernel(x.reshape(-1), draws.reshape(-1), keep, mask.reshape(-1), y.reshape(-1))
            self._mask = mask
            return y
        mask = (draws < keep).astype(x.dtype)
        mask *= 1.0 / keep
        self._mask = mask
        return x * mask

    def _backward(self, grad_y, need_input_grad):
        return grad_y if self._mask is None else grad_y * self._mask

    def _backward_owned(self, grad_y, need_input_grad):
        mask = self._mask
        if mask is None or not getattr(grad_y.flags, "writeable", True) or grad_y.dtype != mask.dtype:
            return self._backward(grad_y, need_input_grad)
        grad_y *= mask
        return grad_y

    def get_config(self):
        return {"p": self.p}


@register
class Flatten(Layer):
    """``(N, d1, d2, ...) → (N, d1·d2·…)`` in C order, like ``torch.flatten(x, 1)``;
    backward reshapes the gradient back (``000`` eqs. (14)–(15), Z and Z⁻¹)."""

    _cache = ("_in_shape",)

    def _check_input(self, x) -> None:
        super()._check_input(x)
        if x.ndim < 2:
            raise ValueError(f"Flatten: expected input of rank >= 2 (N, ...), got shape {tuple(x.shape)}")

    def _forward(self, x, training):
        if training:
            self._in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def _backward(self, grad_y, need_input_grad):
        return grad_y.reshape(self._in_shape)

    def output_shape(self, input_shape):
        size = 1
        for d in input_shape:
            size *= d
        return (size,)
