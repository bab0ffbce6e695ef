"""Fixed input transforms that travel inside a model, so a saved model carries its own
preprocessing."""
from __future__ import annotations

import math

import numpy

from .. import accel
from .base import Layer, register


@accel.kernel
def _normalize_kernel(x, mean, scale, y):
    """y = (x − mean) · scale over flat arrays in one pass, the scalars already in the arrays'
    dtype: the same bits as NumPy's ``(x - mean) * scale`` (two passes and a temporary)."""
    for i in range(x.shape[0]):
        y[i] = (x[i] - mean) * scale


@register
class Normalize(Layer):
    """y = (x − mean) / std with fixed scalars (no parameters, nothing learned).

    Backward: dC/dx = dC/dy / std. Standardizing inputs to zero mean and unit variance keeps
    first-layer units out of saturation early in training (``003`` §4). Computed as
    (x − mean) · (1/std) in the input's dtype; with the JIT on, one compiled pass (the same bits).
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        try:
            self.mean, self.std = float(mean), float(std)
        except (TypeError, ValueError):
            raise TypeError(f"Normalize: expected numbers for mean and std, got {mean!r}, {std!r}") from None
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"Normalize: expected a finite mean and a finite std > 0, got {mean!r}, {std!r}")

    def _forward(self, x, training):
        if (type(x) is numpy.ndarray and x.flags.c_contiguous and x.dtype in (numpy.float32, numpy.float64)
                and accel.jit_enabled()):
            t = x.dtype.type
            y = numpy.empty_like(x)
            _normalize_kernel(x.reshape(-1), t(self.mean), t(1.0 / self.std), y.reshape(-1))
            return y
        return (x - self.mean) * (1.0 / self.std)

    def _backward(self, grad_y, need_input_grad):
        return grad_y * (1.0 / self.std)

    def _backward_owned(self, grad_y, need_input_grad):
        if not getattr(grad_y.flags, "writeable", True) or grad_y.dtype.kind != "f":
            return self._backward(grad_y, need_input_grad)
        grad_y *= 1.0 / self.std  # the same bits as the product above
        return grad_y

    def get_config(self):
        return {"mean": self.mean, "std": self.std}
