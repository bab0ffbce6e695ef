"""Evaluation and k-fold cross-validation (``003`` §4), and the data checks shared with
``fit``."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy

from .. import backend
from .. import metrics as M
from .._checks import check_finite, check_positive_int
from ..losses import Loss


def _as_numpy_data(x, y, where: str):
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


def _class_labels(y) -> numpy.ndarray | None:
    """Integer labels if ``y`` holds classes (labels or one-hot rows), else None."""
    if y.dtype.kind in "iu":
        return y
    if y.ndim >= 2 and y.shape[-1] > 1:
        rowsum_ok = numpy.allclose(y.sum(axis=-1), 1.0)
        binary = numpy.isin(y, (0.0, 1.0)).all()
        if rowsum_ok and binary:
            return y.argmax(axis=-1)
    return None


def evaluate(model, loss: Loss, x, y, batch_size: int = 1024,
             metrics: Sequence[str] = ("accuracy",)) -> dict:
    """Mean loss and metrics of ``model`` on ``(x, y)`` in inference mode.

    Returns ``{"loss": float, "accuracy": float, ...}``; accuracy-type metrics are reported
    only when ``y`` holds classes (integer labels or one-hot rows).
    """
    where = "evaluate"
    batch_size = check_positive_int(batch_size, where, "batch_size")
    names = M.parse(metrics)
    x, y = _as_numpy_data(x, y, where)
    labels = _class_labels(y)
    xp, dtype = model.xp, model.dtype
    with model.stateless():
        return _evaluate_batches(model, loss, x, y, labels, names, batch_size, xp, dtype)


def _evaluate_batches(model, loss, x, y, labels, names, batch_size, xp, dtype) -> dict:
    total = 0.0
    count = 0
    hits = {n: 0 for n in names}
    outputs = [] if "per_class_accuracy" in names else None
    for s in range(0, x.shape[0], batch_size):
        xb = backend.asarray(x[s:s + batch_size], dtype=dtype, xp=xp)
        yb = backend.asarray(y[s:s + batch_size], xp=xp)
        out = model.forward(xb, training=False)
        n = xb.shape[0]
        total += loss.forward(out, yb) * n
        count += n
        if labels is not None:
            lb = backend.asarray(labels[s:s + batch_size], xp=xp)
            for name in names:
                if name == "accuracy":
                    hits[name] += M.correct(out, lb)
                elif (k := M.topk_of(name)) is not None:
                    hits[name] += M.top_k_correct(out, lb, k)
            if outputs is not None:
                outputs.append(backend.to_numpy(out))
    result = {"loss": total / count}
    if labels is not None:
        items = max(1, M.count(labels))
        for name in names:
            if name == "per_class_accuracy":
                result[name] = M.per_class_accuracy(numpy.concatenate(outputs), labels)
            else:
                result[name] = hits[name] / items
    return result


def cross_validate(make_model: Callable[[], object], make_optimizer: Callable[[object], object],
                   loss: Loss, x, y, k: int = 5, seed: int = 0, **fit_kwargs) -> dict:
    """k-fold cross-validation (``003`` §4): train a fresh model on k − 1 folds, evaluate on
    the held-out fold, k times. Returns ``{"folds": [per-fold evaluate dicts], "mean": {...},
    "std": {...}}`` over the scalar metrics.
    """
    k = check_positive_int(k, "cross_validate", "k")
    x, y = _as_numpy_data(x, y, "cross_validate")
    if k < 2 or k > x.shape[0]:
        raise ValueError(f"cross_validate: expected 2 <= k <= {x.shape[0]} (the number of samples), got {k}")
    perm = numpy.random.default_rng(seed).permutation(x.shape[0])
    folds = numpy.array_split(perm, k)
    results = []
    for i in range(k):
        val_idx = folds[i]
        train_idx = numpy.concatenate([f for j, f in enumerate(folds) if j != i])
        model = make_model()
        opt = make_optimizer(model)
        from .loop import fit  # (training imports this module)

        fit(model, loss, opt, x[train_idx], y[train_idx], seed=seed + i, **fit_kwargs)
        results.append(evaluate(model, loss, x[val_idx], y[val_idx],
                                metrics=fit_kwargs.get("metrics", ("accuracy",))))
    keys = [key for key, v in results[0].items() if isinstance(v, float)]
    mean = {key: float(numpy.mean([r[key] for r in results])) for key in keys}
    std = {key: float(numpy.std([r[key] for r in results])) for key in keys}
    return {"folds": results, "mean": mean, "std": std}
