"""Learning-rate schedules: callbacks that set ``optimizer.lr`` at the start of each epoch.

Use them in ``fit(..., callbacks=[CosineLR(opt, epochs)])`` or call ``schedule.step(epoch)``
by hand in your own loop.
"""
from __future__ import annotations

import math

from .._checks import check_nonnegative, check_positive_int
from ..training.callbacks import Callback


class Schedule(Callback):
    def __init__(self, optimizer) -> None:
        super().__init__()
        self.optimizer = optimizer
        self.base_lr = optimizer.lr

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self, epoch: int) -> float:
        self.optimizer.lr = self.lr_at(epoch)
        return self.optimizer.lr

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.step(epoch)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if logs is not None:
            logs["lr"] = self.optimizer.lr


class StepLR(Schedule):
    """η_e = η₀ · γ^⌊e / step_size⌋ (epoch e counted from 0)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = check_positive_int(step_size, "StepLR", "step_size")
        self.gamma = check_nonnegative(gamma, "StepLR", "gamma")

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(Schedule):
    """η_e = η_min + ½(η₀ − η_min)(1 + cos(π e / T)), e = 0 … T−1 (cosine annealing)."""

    def __init__(self, optimizer, total_epochs: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.total_epochs = check_positive_int(total_epochs, "CosineLR", "total_epochs")
        self.eta_min = check_nonnegative(eta_min, "CosineLR", "eta_min")

    def lr_at(self, epoch: int) -> float:
        frac = min(epoch, self.total_epochs) / self.total_epochs
        return self.eta_min + 0.5 * (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * frac))
