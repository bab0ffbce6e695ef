"""Validation across ranks: each rank evaluates a contiguous run of whole evaluation batches
and the sums are added over ranks, so the result is the single-process ``evaluate``'s — the
same batches, each batch's mean loss weighted by its samples (``loss = Σ_b C_b·m_b / Σ_b m_b``),
accuracy = Σ correct / Σ labelled items — up to the order of the additions."""
from __future__ import annotations

from collections.abc import Sequence

from .. import backend
from .. import metrics as M
from .sharding import shard_bounds


def evaluate_sharded(model, loss, x, y, reducer, batch_size: int = 1024,
                     metrics: Sequence[str] = ("accuracy",), labels=None) -> dict:
    """``{"loss": ..., metric: ...}`` of ``model`` on ``(x, y)`` (NumPy, every rank the whole
    set), the work split over ``reducer``'s ranks. ``labels``: the integer classes of ``y``
    or None (loss only). A collective: every rank calls it."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluate_sharded: expected batch_size to be an int >= 1, got {batch_size!r}")
    names = [k for k in M.parse(metrics) if k != "per_class_accuracy"]
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    first, last = shard_bounds(n_batches, reducer.size)[reducer.rank]
    xp, dtype = model.xp, model.dtype
    totals = {"loss": 0.0, "seen": 0, "items": 0, **{f"correct.{k}": 0 for k in names}}
    with model.stateless():
        for bi in range(first, last):
            s = bi * batch_size
            xb = backend.asarray(x[s:s + batch_size], dtype=dtype, xp=xp)
            yb = backend.asarray(y[s:s + batch_size], xp=xp)
            out = model.forward(xb, training=False)
            m = xb.shape[0]
            totals["loss"] += loss.forward(out, yb) * m
            totals["seen"] += m
            if labels is not None:
                lb = backend.asarray(labels[s:s + batch_size], xp=xp)
                totals["items"] += M.count(lb)
                for k in names:
                    topk = M.topk_of(k)
                    totals[f"correct.{k}"] += M.correct(out, lb) if topk is None else M.top_k_correct(out, lb, topk)
    total = reducer.sums(totals)
    result = {"loss": total["loss"] / max(1, total["seen"])}
    if labels is not None:
        for k in names:
            result[k] = total[f"correct.{k}"] / max(1, total["items"])
    return result


__all__ = ["evaluate_sharded"]
