"""A random generator that draws what a whole batch would draw and keeps a part's rows.

Splitting a mini-batch into parts (threads of ``fit(workers=k)``, ranks of an MPI job) must not
change the random numbers a stochastic layer uses for a given sample: a dropout mask for the
rows ``a:b`` of a batch of N must be the rows ``a:b`` of the mask one piece would draw. A
:class:`RowShardGenerator` with the view ``(N, a, b)`` answers a request for ``(b − a, ...)``
numbers by drawing ``(N, ...)`` from its stream and returning rows ``a:b``; every part whose
generator starts from the same state then uses exactly one piece's numbers, and the stream moves
on as one piece's would.
"""
from __future__ import annotations

import sys

import numpy


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

    def random_uint32(self, size) -> numpy.ndarray:
        """:func:`raw_uint32` of this stream, row-sharded as the other draws."""
        size, keep = self._global(size)
        r = raw_uint32(self.bit_generator, size)
        return r if keep is None else numpy.ascontiguousarray(r[keep])

    def integers(self, low, high=None, size=None, dtype=numpy.int64, endpoint=False):
        size, keep = self._global(size)
        r = super().integers(low, high, size, dtype=dtype, endpoint=endpoint)
        return r if keep is None else numpy.ascontiguousarray(r[keep])


def raw_uint32(bit_generator, size) -> numpy.ndarray:
    """``size`` uniform 32-bit integers from ``bit_generator``: ⌈n/2⌉ of its raw 64-bit outputs
    (``BitGenerator.random_raw``), each split into two, its low half first: on a fresh stream
    the same 32 bits, in the same order, that ``Generator.random(dtype=float32)`` turns into
    floats, at half its cost (no conversion, no half buffered between calls)."""
    shape = (int(size),) if numpy.isscalar(size) else tuple(int(s) for s in size)
    n = 1
    for d in shape:
        n *= d
    raw = bit_generator.random_raw((n + 1) // 2)
    if sys.byteorder == "little":
        halves = raw.view(numpy.uint32)
    else:  # pragma: no cover - big-endian machines: the same integers, split explicitly
        halves = numpy.stack([raw & 0xFFFFFFFF, raw >> 32], axis=-1).astype(numpy.uint32).reshape(-1)
    return halves[:n].reshape(shape)


def random_uint32(rng: numpy.random.Generator, size) -> numpy.ndarray:
    """:func:`raw_uint32` from ``rng``'s bit generator; a :class:`RowShardGenerator` with a row
    view draws the whole batch's integers and returns its rows, as its other draws do."""
    if isinstance(rng, RowShardGenerator):
        return rng.random_uint32(size)
    if not isinstance(rng, numpy.random.Generator):
        raise TypeError(f"random_uint32: expected a numpy.random.Generator, got {type(rng).__name__}")
    return raw_uint32(rng.bit_generator, size)


def row_sharded(rng: numpy.random.Generator) -> RowShardGenerator:
    """``rng``'s stream as a :class:`RowShardGenerator` (``rng`` itself if it already is one)."""
    if isinstance(rng, RowShardGenerator):
        return rng
    if not isinstance(rng, numpy.random.Generator):
        raise TypeError(f"row_sharded: expected a numpy.random.Generator, got {type(rng).__name__}")
    return RowShardGenerator(rng.bit_generator)
