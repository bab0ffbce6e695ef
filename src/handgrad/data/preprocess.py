"""Preprocessing: scaling, standardization (``003`` §4: zero mean, unit variance inputs avoid
early saturation), one-hot labels and seeded splits."""
from __future__ import annotations

import numpy

from .. import backend
from .._checks import check_int


def to_float(images, dtype=backend.DEFAULT_DTYPE, flatten: bool = True) -> numpy.ndarray:
    """uint8 images → floats in [0, 1]; ``(N, H, W)`` → ``(N, H·W)`` when ``flatten``."""
    x = numpy.asarray(images)
    if x.dtype.kind not in "uif" or x.ndim < 2:
        raise ValueError(f"to_float: expected numeric images (N, ...) , got dtype {x.dtype} and shape {x.shape}")
    dt = numpy.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"to_float: expected a float dtype, got {dt}")
    out = x.astype(dt) / dt.type(255) if x.dtype == numpy.uint8 else x.astype(dt)
    return out.reshape(out.shape[0], -1) if flatten else out


class Standardizer:
    """x ↦ (x − μ)/σ with μ, σ measured on the training data (per feature or one global pair)."""

    def __init__(self, per_feature: bool = False, eps: float = 1e-7) -> None:
        self.per_feature, self.eps = per_feature, eps
        self.mean = self.std = None

    def fit(self, x) -> "Standardizer":
        x = numpy.asarray(x, dtype=numpy.float64)
        axis = 0 if self.per_feature else None
        self.mean, self.std = x.mean(axis=axis), x.std(axis=axis) + self.eps
        return self

    def transform(self, x, dtype=None):
        if self.mean is None:
            raise RuntimeError("Standardizer.transform called before fit")
        x = numpy.asarray(x)
        if self.per_feature and (x.ndim < 2 or x.shape[1:] != numpy.shape(self.mean)):
            raise ValueError(f"Standardizer.transform: fitted on samples of shape {numpy.shape(self.mean)}, "
                             f"got data of shape {x.shape}")
        dtype = dtype or (x.dtype if x.dtype.kind == "f" else backend.DEFAULT_DTYPE)
        return ((x - self.mean) / self.std).astype(dtype)

    def fit_transform(self, x, dtype=None):
        return self.fit(x).transform(x, dtype)

    def state(self) -> dict:
        return {"mean": numpy.asarray(self.mean).tolist(), "std": numpy.asarray(self.std).tolist(),
                "per_feature": self.per_feature}


def standardize(x_train, *others, per_feature: bool = False):
    """Standardize ``x_train`` and every array in ``others`` with the training statistics."""
    s = Standardizer(per_feature).fit(x_train)
    out = [s.transform(x_train)] + [s.transform(o) for o in others]
    return out if others else out[0]


def one_hot(labels, num_classes: int, dtype=backend.DEFAULT_DTYPE) -> numpy.ndarray:
    """Integer labels ``(N,)`` → one-hot ``(N, num_classes)``; labels out of range raise."""
    y = numpy.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected integer labels, got dtype {y.dtype}")
    num_classes = check_int(num_classes, "one_hot", "num_classes", minimum=1)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"one_hot: labels must be in [0, {num_classes - 1}], got [{y.min()}, {y.max()}]")
    out = numpy.zeros(y.shape + (num_classes,), dtype=dtype)
    numpy.put_along_axis(out, y[..., None].astype(numpy.int64), 1, axis=-1)
    return out


def train_val_split(x, y, val_fraction: float = 0.1, seed: int = 0, stratify: bool = True):
    """Seeded split into ``(x_train, y_train), (x_val, y_val)``; stratified by class for labels."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ValueError(f"train_val_split: expected 0 < val_fraction < 1, got {val_fraction!r}")
    x, y = numpy.asarray(x), numpy.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"train_val_split: x has {x.shape[0]} samples, y has {y.shape[0]}")
    rng = numpy.random.default_rng(seed)
    if stratify and y.ndim == 1 and y.dtype.kind in "iu":
        val = []
        for c in numpy.unique(y):
            members = rng.permutation(numpy.flatnonzero(y == c))
            val.append(members[:int(round(len(members) * val_fraction))])
        val_idx = numpy.sort(numpy.concatenate(val))
    else:
        val_idx = numpy.sort(rng.permutation(x.shape[0])[:int(round(x.shape[0] * val_fraction))])
    mask = numpy.ones(x.shape[0], bool)
    mask[val_idx] = False
    return (x[mask], y[mask]), (x[val_idx], y[val_idx])
