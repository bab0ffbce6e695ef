"""What ``fit`` raises when training cannot go on normally, and its signal handling."""
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


class _SignalFlag:
    """Turns the first SIGINT/SIGTERM during training into a flag checked after each step;
    a second SIGINT interrupts at once."""

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


