"""Fixed input transforms that travel inside a model, so a saved model carries its own
preprocessing."""
from __future__ import annotations

import math

from .base import Layer, register


@register
class Normalize(Layer):
    """y = (x − mean) / std with fixed scalars (no parameters, nothing learned).

    Backward: dC/dx = dC/dy / std. Standardizing inputs to zero mean and unit variance keeps
    first-layer units out of saturation early in training (``003`` §4).
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
