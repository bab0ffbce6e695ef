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


class RowShardGenerator(numpy.random.Generator):
    """A ``numpy.random.Generator`` on an existing bit generator (same stream, same state
    object — checkpoints and ``set_rng_state`` reach it) that, while a row view
    ``(N, a, b)`` is set, answers a draw whose leading dimension is the local row count
    ``b − a`` by drawing ``(N, ...)`` and returning rows ``a:b``. Other draws pass through,
    identical on every rank. With no view (or N = b − a) it is a plain Generator."""

    def __init__(self, bit_generator) -> None:
        super().__init__(bit_generator)
        self.view: tuple[int, int, int] | None = None

    def set_view(self, n_global: int, a: int, b: int) -> None:
        if not 0 <= a <= b <= n_global:
            raise ValueError(f"RowShardGenerator.set_view: expected 0 <= a <= b <= N, got N={n_global}, a={a}, b={b}")
        self.view = (int(n_global), int(a), int(b))

    def _global(self, size):
        """(size to draw, slice to keep) for a request of ``size``."""
        if self.view is None or size is None:
            return size, None
        n, a, b = self.view
        shape = (int(size),) if numpy.isscalar(size) else tuple(int(s) for s in size)
        if not shape or shape[0] != b - a or n == b - a:
            return size, None
        return (n, *shape[1:]), slice(a, b)

    def random(self, size=None, dtype=numpy.float64, out=None):
        if out is not None:
            return super().random(size, dtype=dtype, out=out)
        size, keep = self._global(size)
        r = super().random(size, dtype=dtype)
        return r if keep is None else numpy.ascontiguousarray(r[keep])

    def standard_normal(self, size=None, dtype=numpy.float64, out=None):
        if out is not None:
            return super().standard_normal(size, dtype=dtype, out=out)
        size, keep = self._global(size)
        r = super().standard_normal(size, dtype=dtype)
        return r if keep is None else numpy.ascontiguousarray(r[keep])

    def uniform(self, low=0.0, high=1.0, size=None):
        size, keep = self._global(size)
        r = super().uniform(low, high, size)
        return r if keep is None else numpy.ascontiguousarray(r[keep])

    def normal(self, loc=0.0, scale=1.0, size=None):
        size, keep = self._global(size)
        r = super().normal(loc, scale, size)
        return r if keep is None else numpy.ascontiguousarray(r[keep])

    def integers(self, low, high=None, size=None, dtype=numpy.int64, endpoint=False):
        size, keep = self._global(size)
        r = super().integers(low, high, size, dtype=dtype, endpoint=endpoint)
        return r if keep is None else numpy.ascontiguousarray(r[keep])


def row_sharded(rng: numpy.random.Generator) -> RowShardGenerator:
    """``rng``'s stream as a :class:`RowShardGenerator` (``rng`` itself if it already is one)."""
    if isinstance(rng, RowShardGenerator):
        return rng
    if not isinstance(rng, numpy.random.Generator):
        raise TypeError(f"row_sharded: expected a numpy.random.Generator, got {type(rng).__name__}")
    return RowShardGenerator(rng.bit_generator)
