"""``fit``'s arguments, checked once: ``FitConfig``.

Every argument check of ``fit`` lives here (the data's own checks are in ``inputs.py``); the
loop reads a ``FitConfig`` and never re-validates. ``identity(n)`` is what a checkpoint
records of the run that wrote it: resuming needs the same epochs, batch size, seed and
number of training samples.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .. import metrics as M
from .._checks import check_bool, check_int, check_option, check_positive_int, check_probability
from ..losses import Loss

NONFINITE_POLICIES = ("raise", "stop", "skip")


@dataclass(frozen=True)
class FitConfig:
    epochs: int
    batch_size: int
    seed: int
    shuffle: bool
    metrics: tuple[str, ...]             # accuracy-type names logged per epoch (no per-class)
    validation_split: float
    progress_bar: bool | None
    augment: Callable | None
    checkpoint_dir: str | None
    checkpoint_every: int                # 0: only at the end of each epoch
    keep_checkpoints: int
    resume_from: str | None
    on_nonfinite: str                    # one of NONFINITE_POLICIES
    handle_signals: bool
    workers: int | None                  # None: auto (step.auto_workers)

    @classmethod
    def from_fit_args(cls, loss, *, epochs, batch_size, validation_data, validation_split, seed, shuffle,
                      metrics, progress_bar, augment, checkpoint_dir, checkpoint_every, keep_checkpoints,
                      resume_from, on_nonfinite, handle_signals, workers, where: str = "fit") -> FitConfig:
        """Check every argument of ``fit`` (except the data); errors name ``where``."""
        epochs = check_positive_int(epochs, where, "epochs")
        batch_size = check_positive_int(batch_size, where, "batch_size")
        if not isinstance(loss, Loss):
            raise TypeError(f"{where}: expected loss to be a handgrad Loss, got {type(loss).__name__}")
        shuffle = check_bool(shuffle, where, "shuffle")
        seed = check_int(seed, where, "seed", minimum=0)
        on_nonfinite = check_option(on_nonfinite, where, "on_nonfinite", NONFINITE_POLICIES)
        checkpoint_every = 0 if checkpoint_every is None else check_int(checkpoint_every, where, "checkpoint_every",
                                                                        minimum=0)
        if checkpoint_every and not checkpoint_dir:
            raise ValueError(f"{where}: checkpoint_every needs checkpoint_dir")
        keep_checkpoints = check_positive_int(keep_checkpoints, where, "keep_checkpoints")
        if checkpoint_dir is not None and os.path.exists(checkpoint_dir) and not os.path.isdir(checkpoint_dir):
            raise ValueError(f"{where}: checkpoint_dir {checkpoint_dir!r} exists and is not a folder")
        names = tuple(n for n in M.parse(metrics) if n != "per_class_accuracy")
        if augment is not None and not callable(augment):
            raise TypeError(f"{where}: expected augment to be callable (x_batch, rng) -> x_batch, "
                            f"got {type(augment).__name__}")
        if validation_data is not None and validation_split:
            raise ValueError(f"{where}: give validation_data or validation_split, not both")
        split = check_probability(validation_split, where, "validation_split") if validation_split else 0.0
        workers = None if workers is None else check_positive_int(workers, where, "workers")
        return cls(epochs, batch_size, seed, shuffle, names, split, progress_bar, augment, checkpoint_dir,
                   checkpoint_every, keep_checkpoints, resume_from, on_nonfinite, handle_signals, workers)

    def identity(self, n: int) -> dict:
        """What a checkpoint records of this run (JSON-ready), compared on resume."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed, "n": n}
