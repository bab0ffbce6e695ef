"""The arrays ``fit`` and ``evaluate`` read: checked data, class labels, the seeded validation
split, and the mini-batches of an epoch (``003`` §2: the training set partitioned at random into
batches considered in sequence, a new partition every epoch).

Data stays a NumPy array whatever the device; ``TrainingData.batch`` moves one batch at a time.
"""
from __future__ import annotations

import numpy

from .. import backend
from .._checks import check_finite, check_probability


def as_numpy_data(x, y, where: str) -> tuple[numpy.ndarray, numpy.ndarray]:
    """``(x, y)`` as NumPy arrays, checked: numeric ``x`` of shape (N, ...), ``y`` with N rows,
    N ≥ 1, no NaN/Inf. Errors name ``where``."""
    if not hasattr(x, "shape") or not hasattr(y, "shape"):
        raise TypeError(f"{where}: expected x and y to be arrays, got {type(x).__name__} and {type(y).__name__}")
    x = backend.to_numpy(x)
    y = backend.to_numpy(y)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{where}: expected numeric x, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{where}: expected x of shape (N, ...) with N samples, got shape {x.shape}")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: x has {x.shape[0]} samples but y has shape {y.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: expected at least one sample, got x of shape {x.shape}")
    check_finite(x, where, "x")
    check_finite(y, where, "y")
    return x, y


def class_labels(y: numpy.ndarray) -> numpy.ndarray | None:
    """Integer labels if ``y`` holds classes (labels, or exactly one-hot rows), else None."""
    if y.dtype.kind in "iu":
        return y
    if y.ndim >= 2 and y.shape[-1] > 1:
        rowsum_ok = numpy.allclose(y.sum(axis=-1), 1.0)
        binary = numpy.isin(y, (0.0, 1.0)).all()
        if rowsum_ok and binary:
            return y.argmax(axis=-1)
    return None


def split_validation(x, y, fraction, rng: numpy.random.Generator, where: str = "fit"):
    """Hold out a random ``fraction`` of ``(x, y)`` (``003`` §4: validation data to choose, kept
    apart from the data to learn). Returns ``((x_train, y_train), (x_val, y_val))``."""
    fraction = check_probability(fraction, where, "validation_split")
    n_val = int(round(x.shape[0] * fraction))
    if fraction > 0 and (n_val < 1 or n_val >= x.shape[0]):
        raise ValueError(f"{where}: validation_split={fraction} leaves no training or no validation "
                         f"samples out of {x.shape[0]}")
    perm = rng.permutation(x.shape[0])
    val, train = perm[:n_val], perm[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def check_validation_data(validation_data, x: numpy.ndarray, where: str = "fit"):
    """``validation_data=(x_val, y_val)`` checked against the training ``x``: same sample shape
    (sequences (N, T, F) may differ in length T)."""
    if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise ValueError(f"{where}: expected validation_data to be a pair (x_val, y_val)")
    xv, yv = as_numpy_data(*validation_data, f"{where} (validation_data)")
    free = 2 if x.ndim == 3 else 1
    if xv.ndim != x.ndim or xv.shape[free:] != x.shape[free:]:
        raise ValueError(f"{where}: validation x has sample shape {xv.shape[1:]}, training x has {x.shape[1:]}")
    return xv, yv


class TrainingData:
    """The training set in the model's dtype, cut into the mini-batches of an epoch.

    ``x``: (N, ...) converted once (not per batch); ``y``: targets, integer labels as int64;
    ``labels``: the integer classes of ``y`` or None (regression, multi-label)."""

    def __init__(self, x: numpy.ndarray, y: numpy.ndarray, model, batch_size: int, shuffle: bool,
                 augment=None, augment_rng: numpy.random.Generator | None = None) -> None:
        self.labels = class_labels(y)
        self.xp, self.dtype = model.xp, model.dtype
        self.x = x.astype(self.dtype, copy=False)
        self.y = y.astype(self.dtype, copy=False) if y.dtype.kind == "f" else y.astype(numpy.int64, copy=False)
        self.n = x.shape[0]
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps = -(-self.n // batch_size)
        self.augment, self.augment_rng = augment, augment_rng
        #: under several processes with row-sharded augmentation: ``shard(n) -> (a, b)``, this
        #: process's rows of a batch of n (``handgrad.distributed.run``); None: augment all rows
        self.shard = None

    def order(self, rng: numpy.random.Generator) -> numpy.ndarray:
        """This epoch's sample order: a fresh random permutation (``003`` §2), or 0..N−1."""
        return rng.permutation(self.n) if self.shuffle else numpy.arange(self.n)

    def indices(self, order: numpy.ndarray, b: int) -> numpy.ndarray:
        idx = order[b * self.batch_size:(b + 1) * self.batch_size]
        return numpy.sort(idx) if self.shuffle else idx  # same batch, friendlier memory access

    def batch(self, idx: numpy.ndarray):
        """``(x_batch, y_batch)`` on the model's device, the input augmented (``003`` §4, data
        expansion) when an ``augment`` was given."""
        xb = self.x[idx]
        if self.augment is not None:
            if self.shard is None:
                xb = self.augment(xb, self.augment_rng)
            else:  # only this process's rows, with the global batch's draws (rows a:b)
                a, b = self.shard(len(idx))
                if b > a:
                    self.augment_rng.set_view(len(idx), a, b)
                    try:
                        xb[a:b] = self.augment(xb[a:b], self.augment_rng)
                    finally:
                        self.augment_rng.view = None
        return backend.asarray(xb, dtype=self.dtype, xp=self.xp), backend.asarray(self.y[idx], xp=self.xp)

    def batch_labels(self, idx: numpy.ndarray):
        return None if self.labels is None else backend.asarray(self.labels[idx], xp=self.xp)

    def check_labels(self, model, where: str = "fit") -> None:
        """Integer labels must index the model's output classes: checked once on the whole
        training set before any update (not batch by batch, after earlier updates)."""
        if self.y.dtype.kind not in "iu":
            return
        with model.stateless():
            probe = backend.asarray(self.x[:1], dtype=self.dtype, xp=self.xp)
            width = model.forward(probe, training=False).shape[-1]
        lo, hi = int(self.y.min()), int(self.y.max())
        if lo < -1 or hi >= width:
            raise ValueError(f"{where}: class labels must be in [0, {width - 1}] (or -1 for padding) for a model "
                             f"with {width} outputs, got labels in [{lo}, {hi}]")
