"""Classification metrics on outputs ``(N, C)`` (or ``(N, T, C)``) and integer labels."""
from __future__ import annotations

import re

import numpy

from . import backend


def labels_of(target):
    """Integer labels from labels or one-hot/probability rows (argmax)."""
    if target.dtype.kind in "iu":
        return target
    xp = backend.array_module(target)
    return xp.argmax(target, axis=-1)


def correct(output, labels):
    """Number of samples (or time steps) whose argmax equals the label; labels < 0 (padding)
    never count."""
    xp = backend.array_module(output)
    return int((xp.argmax(output, axis=-1) == labels).sum())


def count(labels) -> int:
    """Number of labelled items (labels ≥ 0; −1 marks padding)."""
    return int((labels >= 0).sum())


def accuracy(output, labels) -> float:
    return correct(output, labels) / max(1, count(labels))


def top_k_correct(output, labels, k: int) -> int:
    xp = backend.array_module(output)
    k = min(k, output.shape[-1])
    top = xp.argpartition(-output, k - 1, axis=-1)[..., :k]
    return int((top == labels[..., None]).any(axis=-1).sum())


def top_k_accuracy(output, labels, k: int = 5) -> float:
    return top_k_correct(output, labels, k) / max(1, count(labels))


def confusion_matrix(output, labels, num_classes: int | None = None) -> numpy.ndarray:
    """``M[i, j]`` = number of samples of true class i predicted as j (NumPy array)."""
    pred = backend.to_numpy(backend.array_module(output).argmax(output, axis=-1)).ravel()
    true = backend.to_numpy(labels).ravel()
    keep = true >= 0
    pred, true = pred[keep], true[keep]
    k = num_classes or output.shape[-1]
    return numpy.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def per_class_accuracy(output, labels, num_classes: int | None = None) -> list[float]:
    cm = confusion_matrix(output, labels, num_classes)
    totals = cm.sum(axis=1)
    return [float(cm[i, i] / totals[i]) if totals[i] else float("nan") for i in range(len(cm))]


_TOPK = re.compile(r"^top(\d+)_accuracy$")


def parse(names) -> list[str]:
    """Validate metric names: 'accuracy', 'topK_accuracy', 'per_class_accuracy'."""
    names = [names] if isinstance(names, str) else list(names or ())
    for n in names:
        if n not in ("accuracy", "per_class_accuracy") and not _TOPK.match(n):
            raise ValueError(f"metrics: unknown metric {n!r}; expected 'accuracy', 'topK_accuracy' "
                             "(e.g. 'top5_accuracy') or 'per_class_accuracy'")
    return names


def topk_of(name: str) -> int | None:
    m = _TOPK.match(name)
    return int(m.group(1)) if m else None
