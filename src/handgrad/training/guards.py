"""Guards around the training steps, in the manner of Chainer's trainer extensions and Keras
callbacks: the loop asks them after each step, they decide.

``NonFiniteGuard``: when the loss or a gradient holds NaN/Inf the update is not applied (the
weights stay the last good ones; if an earlier update already overflowed them, they roll back
to the start of the epoch), and ``on_nonfinite`` decides: raise ``TrainingDiverged``, stop
with a warning, or skip the batch.

``InterruptGuard``: a context manager around the epochs; inside it the first Ctrl-C/SIGTERM
sets a flag (``faults.SignalFlag``) and ``check()`` — after each step and each epoch — writes
a checkpoint and raises ``TrainingInterrupted`` saying how to resume.

Both work for any loop that has a ``RunState`` (``state.py``) and a ``checkpoint.Checkpointer``.
"""
from __future__ import annotations

import math
import warnings

from .. import backend
from ..optim.base import global_grad_norm
from .faults import SignalFlag, TrainingDiverged, interruption
from .reducer import LOCAL


def all_finite_params(model) -> bool:
    return all(bool(backend.array_module(p).isfinite(p).all()) for _, p in model.parameters())


class NonFiniteGuard:
    """``verdict(value, epoch, b)`` after batch ``b``'s backward: None (apply the update),
    ``"skip"`` (counted in ``run.skipped``) or ``"stop"`` (``model.stop_training`` set, warned);
    with ``policy="raise"`` it raises ``TrainingDiverged`` instead."""

    def __init__(self, model, optimizer, policy: str, run, warn: bool = True) -> None:
        self.model, self.optimizer, self.policy, self.run = model, optimizer, policy, run
        self.warn = warn  # False on the processes that do not print (rank != 0)
        self.good_weights = None

    def remember(self) -> None:
        """Keep the weights at the start of an epoch: the fallback if an update overflows them."""
        self.good_weights = self.model.get_weights()

    def _problem(self, value: float) -> str | None:
        if not math.isfinite(value):
            return f"the loss is {value}"
        return None if math.isfinite(global_grad_norm(self.model)) else "a gradient holds NaN or Inf"

    def verdict(self, value: float, epoch: int, b: int) -> str | None:
        bad = self._problem(value)
        if bad is None:
            return None
        restored = ""
        if not all_finite_params(self.model):  # an earlier update overflowed the weights
            self.model.set_weights(self.good_weights)
            restored = f" (restored from the start of epoch {epoch + 1})"
        message = (f"fit: {bad} at epoch {epoch + 1}, batch {b + 1} (step {self.run.step}); the update was not "
                   f"applied, so the weights are the last good ones{restored}. Try a lower learning rate (now "
                   f"{self.optimizer.lr:g}) or gradient clipping (clip_norm=...).")
        if self.policy == "skip":
            self.run.skipped += 1
            return "skip"
        if self.policy == "stop":
            if self.warn:
                warnings.warn(message, RuntimeWarning, stacklevel=3)
            self.model.stop_training = True
            return "stop"
        raise TrainingDiverged(message, self.run.history)


class InterruptGuard:
    """``with InterruptGuard(enabled, checkpointer) as signals:`` … ``signals.check(where)``."""

    def __init__(self, enabled: bool, checkpointer, reducer=LOCAL) -> None:
        self.flag = SignalFlag(enabled)
        self.checkpointer, self.reducer = checkpointer, reducer

    def __enter__(self) -> InterruptGuard:
        self.flag.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.flag.__exit__(*exc)

    def check(self, where: str, saved: str | None = None) -> None:
        """After a step (``where`` e.g. "at epoch 2, batch 5") or an epoch whose checkpoint is
        ``saved``: if a signal came, write a checkpoint (unless just written) and raise."""
        if not self.reducer.any(self.flag.raised is not None):
            return
        if saved is None:
            saved = self.checkpointer.write()
        run = self.checkpointer.run
        raise interruption(where, run.step, self.checkpointer.folder, saved, run.history)
