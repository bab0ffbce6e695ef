"""Max and mean pooling over kH×kW windows with stride (sH, sW) (no padding; a partial
window at the border is dropped, as in PyTorch).

Legend: N batch, C channels, H×W input, OH = ⌊(H − kH)/sH⌋ + 1, OW likewise.
Both layers work on views of the input at each of the kH·kW kernel offsets, so the only
Python loop is over those offsets; overlapping windows (stride < kernel) are allowed. With the
JIT on (``accel.jit_enabled``), max pooling runs as two compiled passes instead
(``_conv_kernels.maxpool_forward`` / ``maxpool_backward``): the same maxima, winners and sums.
"""
from __future__ import annotations

from typing import Any

import numpy

from .. import accel, backend
from .._checks import check_float_array
from ..kernels import offset_slices, out_size, pair
from . import _conv_kernels as _ck
from .base import Layer, register


class _Pool2D(Layer):
    _cache = ("_winners", "_in_shape")  # AvgPool2D keeps only the shape

    def __init__(self, kernel_size, stride=None) -> None:
        super().__init__()
        where = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", where)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", where)

    def __repr__(self) -> str:
        k, s = self.kernel_size, self.stride
        ks = k[0] if k[0] == k[1] else k
        ss = "" if s == k else f", stride={s[0] if s[0] == s[1] else s}"
        return f"{type(self).__name__}({ks}{ss})"

    def _check_input(self, x) -> None:
        check_float_array(x, self, ndim=4)
        if x.shape[2] < self.kernel_size[0] or x.shape[3] < self.kernel_size[1]:
            raise ValueError(f"{self}: input {tuple(x.shape)} is smaller than the window {self.kernel_size}")

    def _geometry(self, x):
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return kh, kw, sh, sw, out_size(x.shape[2], kh, sh), out_size(x.shape[3], kw, sw)

    def output_shape(self, input_shape):
        c, h, w = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return (c, out_size(h, kh, sh), out_size(w, kw, sw))

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride)}


@register
class MaxPool2D(_Pool2D):
    """y[n, c, p, q] = max over the window of x (``001`` §3.3; ``004``).

    Backward routes each error to the unit that won its window and gives the others zero
    (``001`` §3.3): dC/dx[winner] += δ[n, c, p, q]. Ties are broken deterministically: the
    first maximum in row-major order inside the window wins (as PyTorch's CPU kernel does).
    With overlapping windows a unit that wins several windows receives the sum of their errors.
    """

    splits_well = True

    def _forward(self, x, training):
        xp = backend.array_module(x)
        kh, kw, sh, sw, oh, ow = self._geometry(x)
        if xp is numpy and x.dtype in (numpy.float32, numpy.float64) and accel.jit_enabled():
            # one pass: the maximum and its winner as the offset o = i·kW + j (kH·kW: none, a NaN)
            n, c, h, w = x.shape
            x3 = xp.ascontiguousarray(x).reshape(n * c, h, w)
            y = xp.empty((n, c, oh, ow), dtype=x.dtype)
            idx = xp.empty(y.shape, dtype=numpy.uint8 if kh * kw < 255 else numpy.int32)
            y3, idx3 = y.reshape(n * c, oh, ow), idx.reshape(n * c, oh, ow)
            self._forward_maps(x3, y3, idx3)
            if training:
                self._winners, self._in_shape = idx, x.shape
            return y
        views = [v for _, v in offset_slices(x, kh, kw, sh, sw, oh, ow)]
        y = views[0].copy()
        for v in views[1:]:
            xp.maximum(y, v, out=y)
        if training:
            # winners[o] marks the windows whose first maximum (row-major) sits at offset o
            winners = xp.empty((len(views),) + y.shape, dtype=bool)
            xp.equal(views[0], y, out=winners[0])
            seen = winners[0].copy()  # some earlier offset already holds the maximum
            for o, v in enumerate(views[1:], start=1):
                hit = v == y
                xp.greater(hit, seen, out=winners[o])  # a hit not preceded by one (True > False)
                if o < len(views) - 1:
                    seen |= hit
            self._winners, self._in_shape = winners, x.shape
        return y

    def _forward_maps(self, x3, y3, idx3) -> None:
        """The compiled forward of maps ``x3`` ``(M, H, W)``: their maxima into ``y3`` and the
        winners' offsets into ``idx3`` (also run block by block inside ``Conv2D.forward_relu_pool``,
        while a block of the ReLU's output is in cache)."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if (kh, kw, sh, sw) == (2, 2, 2, 2):
            if _ck.maxpool2x2s2_forward(x3, y3, idx3):  # a NaN (or inf − inf) somewhere
                _ck.maxpool2x2_forward(x3, sh, sw, y3, idx3)
        elif (kh, kw) == (2, 2):
            _ck.maxpool2x2_forward(x3, sh, sw, y3, idx3)
        else:
            _ck.maxpool_forward(x3, kh, kw, sh, sw, y3, idx3)

    def _backward(self, grad_y, need_input_grad):
        xp = backend.array_module(grad_y)
        kh, kw, sh, sw = *self.kernel_size, *self.stride
        oh, ow = grad_y.shape[2:]
        if self._winners.shape == grad_y.shape:  # the forward ran compiled: winner offsets
            n, c, h, w = self._in_shape
            g = xp.ascontiguousarray(grad_y).reshape(n * c, oh, ow)
            dx = xp.empty(self._in_shape, dtype=g.dtype)
            winners = self._winners.reshape(n * c, oh, ow)
            if (kh, kw, sh, sw) == (2, 2, 2, 2):
                _ck.maxpool2x2s2_backward(g, winners, dx.reshape(n * c, h, w))
            else:
                _ck.maxpool_backward(g, winners, kh, kw, sh, sw, dx.reshape(n * c, h, w))
            return dx
        dx = xp.zeros(self._in_shape, dtype=grad_y.dtype)
        disjoint = sh >= kh and sw >= kw  # each input unit lies in at most one window
        for o, view in offset_slices(dx, kh, kw, sh, sw, oh, ow):
            if disjoint:
                xp.multiply(grad_y, self._winners[o], out=view)
            else:
                view += grad_y * self._winners[o]
        return dx


@register
class AvgPool2D(_Pool2D):
    """Mean pooling (``000`` eq. (13)): y = (1/(kH·kW)) Σ_window x.

    Backward (``001`` §3.3): every unit of a window receives δ/(kH·kW), summed over the
    windows that contain it when they overlap. (``000`` eq. (49) multiplies by p₁p₂ instead of
    dividing: errata entry 9.)
    """

    splits_well = True

    def _forward(self, x, training):
        kh, kw, sh, sw, oh, ow = self._geometry(x)
        views = offset_slices(x, kh, kw, sh, sw, oh, ow)
        _, first = next(views)
        y = first.copy()
        for _, v in views:
            y += v
        y *= 1.0 / (kh * kw)
        if training:
            self._in_shape = x.shape
        return y

    def _backward(self, grad_y, need_input_grad):
        xp = backend.array_module(grad_y)
        kh, kw, sh, sw = *self.kernel_size, *self.stride
        oh, ow = grad_y.shape[2:]
        share = grad_y * (1.0 / (kh * kw))
        dx = xp.zeros(self._in_shape, dtype=grad_y.dtype)
        disjoint = sh >= kh and sw >= kw
        for _, view in offset_slices(dx, kh, kw, sh, sw, oh, ow):
            if disjoint:
                view[...] = share
            else:
                view += share
        return dx
