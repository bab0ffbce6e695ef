"""k-fold cross-validation (``003`` §4): train a fresh model on k − 1 folds, evaluate it on the
held-out fold, k times. Imports both ``loop`` (fit) and ``evaluation`` (evaluate); neither
imports this module."""
from __future__ import annotations

from collections.abc import Callable

import numpy

from .._checks import check_positive_int
from ..losses import Loss
from .evaluation import evaluate
from .inputs import as_numpy_data
from .loop import fit


def cross_validate(make_model: Callable[[], object], make_optimizer: Callable[[object], object],
                   loss: Loss, x, y, k: int = 5, seed: int = 0, **fit_kwargs) -> dict:
    """Returns ``{"folds": [per-fold evaluate dicts], "mean": {...}, "std": {...}}`` over the
    scalar metrics; fold i is trained with ``fit(..., seed=seed + i, **fit_kwargs)``."""
    k = check_positive_int(k, "cross_validate", "k")
    x, y = as_numpy_data(x, y, "cross_validate")
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
        fit(model, loss, opt, x[train_idx], y[train_idx], seed=seed + i, **fit_kwargs)
        results.append(evaluate(model, loss, x[val_idx], y[val_idx],
                                metrics=fit_kwargs.get("metrics", ("accuracy",))))
    keys = [key for key, v in results[0].items() if isinstance(v, float)]
    mean = {key: float(numpy.mean([r[key] for r in results])) for key in keys}
    std = {key: float(numpy.std([r[key] for r in results])) for key in keys}
    return {"folds": results, "mean": mean, "std": std}
