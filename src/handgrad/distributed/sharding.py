"""Sharding a global mini-batch across ranks, and the weights that make the averaged
gradient exactly the global batch's.

Every rank holds the whole training set and draws the same seeded shuffle, so all ranks
agree on the global batch ``idx`` of every step without communicating; rank r computes the
contiguous rows ``idx[a_r:b_r]`` (:func:`shard_bounds`), and across ranks every sample is
seen once per epoch.

The loss of a batch is a mean over its counted items c (samples; (sample, time step) pairs
for sequence outputs; labelled items when labels −1 mark padding), so with C = Σ_r c_r the
global gradient regroups as (``003`` §2 statements (5)–(6), the mean split into parts)

    ∇C_global = Σ_r (c_r / C) ∇C_r,

∇C_r the gradient of rank r's own mean loss. Each rank scales its gradient by its share
c_r / C (:func:`counted_items`; C is known locally since every rank sees the global batch's
labels) and one Allreduce SUM gives every rank the global gradient.

Random draws: a stochastic layer's generator (dropout masks) and the augmentation generator
are in the same state on every rank. :class:`RowShardGenerator` draws, for a request of
shape ``(n_r, ...)`` from rank r's rows, the whole global batch's ``(N, ...)`` and returns
rows ``a_r:b_r`` — exactly the numbers the single-process run uses for those rows, and the
generator moves on identically on every rank.
"""
from __future__ import annotations

import numpy

from ..training.rowshard import RowShardGenerator, row_sharded  # noqa: F401  (re-exported)


def shard_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """Contiguous row ranges ``[(a_0, b_0), ...]`` of a batch of ``n`` rows over ``size``
    ranks: sizes differ by at most one, the first ``n mod size`` ranks take the extra row,
    so rank 0 has a row whenever ``n >= 1`` (later ranks may get none when n < size)."""
    for name, v in (("n", n), ("size", size)):
        if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v < (0 if name == "n" else 1):
            raise ValueError(f"shard_bounds: expected {name} to be an int >= {0 if name == 'n' else 1}, got {v!r}")
    base, extra = divmod(int(n), int(size))
    bounds, a = [], 0
    for r in range(int(size)):
        b = a + base + (1 if r < extra else 0)
        bounds.append((a, b))
        a = b
    return bounds


def counted_items(loss, target) -> int:
    """How many items the mean of ``loss.forward(output, target)`` runs over, for targets
    ``(n, ...)`` of any number of rows (0 too), without the forward pass — the rule of
    ``Loss.forward`` before its ``max(1, ·)`` guard: integer labels ``(N,)``/``(N, T)`` count
    every entry, or the entries ≠ ``ignore_index`` when the loss ignores one; float targets
    ``(N, C)`` count N, ``(N, T, C)`` count N·T."""
    if not hasattr(target, "shape") or not hasattr(target, "dtype"):
        raise TypeError(f"counted_items: expected target to be an array, got {type(target).__name__}")
    t = numpy.asarray(target) if isinstance(target, numpy.ndarray) else target
    if t.dtype.kind in "iu" and getattr(loss, "accepts_labels", True):
        if getattr(loss, "ignore_index", None) is not None:
            return int((t != loss.ignore_index).sum())
        return int(t.size)
    n = int(t.shape[0])
    return n * int(t.shape[1]) if t.ndim == 3 else n


def shares(loss, target_global, bounds) -> tuple[list[int], int]:
    """Counted items of each rank's rows and of the whole batch: ``([c_0, ...], C)``."""
    counts = [counted_items(loss, target_global[a:b]) for a, b in bounds]
    return counts, sum(counts)
