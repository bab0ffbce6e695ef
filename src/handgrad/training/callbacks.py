"""Callbacks for ``fit``: hooks on a ``logs`` dict and a ``model.stop_training`` flag.

Hooks: ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
``on_batch_begin/end(batch, logs)``. Every callback resets its state in ``on_train_begin``,
so one instance can be reused across runs.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Any

from .._checks import check_int


class Callback:
    model: Any = None
    #: False on the processes of a K-process ``fit`` other than rank 0: callbacks that write
    #: files (``ModelCheckpoint``) write only where it is True; every callback still sees the
    #: same logs on every rank (so ``EarlyStopping`` stops all ranks at the same epoch)
    is_root: bool = True

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None) -> None: ...
    def on_train_end(self, logs=None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs=None) -> None: ...
    def on_epoch_end(self, epoch: int, logs=None) -> None: ...
    def on_batch_begin(self, batch: int, logs=None) -> None: ...
    def on_batch_end(self, batch: int, logs=None) -> None: ...



def _monitored(callback, logs) -> float | None:
    """The value of ``callback.monitor`` in this epoch's logs, or None — with one warning per
    run naming the metrics that are available (``callback._warned``, reset at train begin)."""
    logs = logs or {}
    if callback.monitor in logs:
        return float(logs[callback.monitor])
    if not callback._warned:
        warnings.warn(f"{type(callback).__name__}: metric {callback.monitor!r} is not available; "
                      f"available metrics are {sorted(logs)}", stacklevel=3)
        callback._warned = True
    return None


class History(Callback):
    """Records every epoch's logs: ``history.history["val_loss"][e]`` is epoch e's value."""

    def __init__(self) -> None:
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None) -> None:
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, metrics={sorted(self.history)})"


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"expected mode 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs (``003`` §4: halt when validation accuracy stops improving significantly).

    With ``restore_best_weights=True`` the model gets back the weights of its best epoch
    **however training ends**: stopped by patience, by another callback, or because the epoch
    budget ran out first (Keras restores only in the first case). ``best_epoch`` and ``best``
    tell which epoch won. The History still records every epoch as it happened.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping: expected monitor to be a metric name, got {monitor!r}")
        patience = check_int(patience, "EarlyStopping", "patience", minimum=0)
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"EarlyStopping: expected min_delta >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode = _mode_for(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.on_train_begin()

    def on_train_begin(self, logs=None) -> None:
        self.best = math.inf if getattr(self, "mode", "min") == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._warned = False

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        value = _monitored(self, logs)
        if value is None:
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model with ``hg.save`` after each epoch. ``path`` may contain ``{epoch}``
    (1-based) and any metric name, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``.
    With ``save_best_only`` only epochs that improve ``monitor`` are written."""

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = False) -> None:
        self.path = os.fspath(path)
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode)
        self.save_best_only = save_best_only
        self.on_train_begin()

    def on_train_begin(self, logs=None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[str] = []
        self._warned = False

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        from ..serialization import save

        logs = logs or {}
        if self.save_best_only:
            value = _monitored(self, logs)
            if value is None:
                return
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **{k: v for k, v in logs.items() if isinstance(v, (int, float))})
        if self.is_root:
            save(self.model, path)
        self.saved.append(path)


class TerminateOnNaN(Callback):
    """Stop training after the first batch whose loss is NaN or Inf (for runs with
    ``fit(on_nonfinite="skip")`` that should nevertheless end at the first bad batch)."""

    def on_batch_end(self, batch: int, logs=None) -> None:
        value = (logs or {}).get("loss")
        if value is not None and not math.isfinite(value):
            self.model.stop_training = True


class LambdaCallback(Callback):
    """Build a callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, **hooks) -> None:
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)


class CallbackList:
    def __init__(self, callbacks, model, is_root: bool = True) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: expected callbacks to be Callback instances, got {type(cb).__name__}")
            cb.set_model(model)
            cb.is_root = is_root

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args):
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
        return call
