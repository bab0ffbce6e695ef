"""What ``fit`` raises when training cannot go on normally, and the signal flag.

``SignalFlag`` is usable by any training loop (the RBM trainer's too): inside ``with
SignalFlag(True) as flag:``, the first SIGINT/SIGTERM only sets ``flag.raised`` (the signal
number), to be checked after each step; a second SIGINT interrupts at once. Outside the main
thread, or with ``enabled=False``, it installs nothing. ``interruption(...)`` builds the one
``TrainingInterrupted`` message saying where training stopped and how to resume.
"""
from __future__ import annotations

import signal
import threading

from .callbacks import History


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or Inf; ``history`` holds the epochs completed."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during ``fit``: the current step finished, a checkpoint was written
    (when ``checkpoint_dir`` was given) and ``checkpoint`` names it."""

    def __init__(self, message: str, checkpoint: str | None, history: History) -> None:
        super().__init__(message)
        self.checkpoint, self.history = checkpoint, history


def interruption(where: str, step: int, checkpoint_dir: str | None, saved: str | None,
                 history: History) -> TrainingInterrupted:
    """The exception for a run stopped by a signal ``where`` (e.g. "at epoch 2, batch 5") at
    global ``step``, with the checkpoint ``saved`` (None when there is no ``checkpoint_dir``)."""
    how = (f"resume with fit(..., resume_from={checkpoint_dir!r}) or `handgrad train --resume RUN_DIR`"
           if saved else "no checkpoint was written (pass checkpoint_dir= to fit to make one)")
    return TrainingInterrupted(f"training interrupted {where} (step {step}); {how}", saved, history)


class SignalFlag:
    """Turns the first SIGINT/SIGTERM during training into a flag checked after each step;
    a second SIGINT interrupts at once. The previous handlers come back on exit."""

    def __init__(self, enabled: bool) -> None:
        self.raised: int | None = None
        self._old = {}
        self.enabled = enabled and threading.current_thread() is threading.main_thread()

    def __enter__(self):
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.raised is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.raised = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
