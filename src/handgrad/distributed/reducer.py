"""The reducer of a K-process run: the collectives ``fit``'s step and metric accumulator
call (the protocol of ``handgrad.training.reducer``: ``is_root``, ``gradients``, ``loss``,
``sums``, ``any``), plus the failure agreement.

Every member is a collective: all ranks call it at the same point of the run.

Failure agreement: ``gradients`` reduces one buffer holding the scaled gradients, the rank's
item count and an "I failed" flag (``buffers.GradientBuffer``). A rank whose forward or
backward raised calls :meth:`MPIReducer.fail` instead, which joins the same Allreduce with
zeros and the flag set; every rank then sees the flag, the ranks exchange their messages
(one Allgatherv, only on failure) and all raise :class:`RankFailure` with the failing rank's
message at the same step — within one step's time, never a hang.
"""
from __future__ import annotations

import traceback

import numpy

from .buffers import GradientBuffer
from .comm import Communicator


class RankFailure(RuntimeError):
    """Raised on every rank when some rank failed during a step; the message is the failing
    rank's (``rank``: the lowest failing rank)."""

    def __init__(self, message: str, rank: int) -> None:
        super().__init__(message)
        self.rank = rank


class MPIReducer:
    """Reductions over the ranks of ``comm`` (a :class:`~handgrad.distributed.comm.Communicator`)."""

    def __init__(self, comm: Communicator, bucket_bytes: int = 0) -> None:
        if not isinstance(comm, Communicator):
            raise TypeError(f"MPIReducer: expected a handgrad Communicator, got {type(comm).__name__}")
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        self.bucket_bytes = bucket_bytes
        self._buffers: dict[int, GradientBuffer] = {}
        #: this rank's exact item count for the next ``gradients`` call (set by the sharded
        #: step; ``Loss.last_count`` is max(1, ·), wrong for a shard of padding only)
        self.count_override: int | None = None
        #: where the run is, for failure messages ("epoch 2, batch 5")
        self.where = ""

    @property
    def is_root(self) -> bool:
        return self.comm.rank == 0

    def _buffer(self, model) -> GradientBuffer:
        buf = self._buffers.get(id(model))
        if buf is None or buf.model is not model:
            buf = self._buffers[id(model)] = GradientBuffer(model, self.bucket_bytes)
        return buf

    # -- the reducer protocol ------------------------------------------------------------
    def gradients(self, model, count: int) -> None:
        """Replace every trainable gradient by ∇C = Σ_r c_r ∇C_r / Σ_r c_r (one Allreduce);
        raise :class:`RankFailure` on every rank if some rank called :meth:`fail` instead."""
        c = self.count_override if self.count_override is not None else count
        buf = self._buffer(model)
        buf.pack(float(c), count=float(c))
        buf.allreduce(self.comm)
        if buf.failed:
            self._raise_failure(None)
        total = buf.count
        buf.unpack(1.0 / total if total > 0 else 0.0)

    def loss(self, value: float, count: int) -> float:
        """Σ_r c_r C_r / Σ_r c_r, from this rank's mean loss ``value`` over ``count`` items."""
        c = float(self.count_override if self.count_override is not None else count)
        self.count_override = None
        v = numpy.array([value * c if c else 0.0, c], dtype=numpy.float64)
        self.comm.allreduce_sum(v)
        return float(v[0] / v[1]) if v[1] > 0 else 0.0

    def sums(self, totals: dict) -> dict:
        """Element-wise sum over ranks of a flat dict of numbers (float64; ints stay ints)."""
        keys = sorted(totals)
        v = numpy.array([float(totals[k]) for k in keys], dtype=numpy.float64)
        if self.comm.size > 1:
            self.comm.allreduce_sum(v)
        return {k: (round(x) if isinstance(totals[k], (int, numpy.integer)) and not isinstance(totals[k], bool)
                    else float(x)) for k, x in zip(keys, v)}

    def any(self, flag: bool) -> bool:
        v = numpy.array([1 if flag else 0], dtype=numpy.int32)
        if self.comm.size > 1:
            self.comm.allreduce_max(v)
        return bool(v[0])

    # -- failures ------------------------------------------------------------------------
    def fail(self, model, exc: BaseException) -> None:
        """Called on the rank whose step raised ``exc`` (where the healthy ranks are in
        ``gradients``): join their Allreduce with the flag set, then raise
        :class:`RankFailure` (from ``exc``) on this rank, as they do on theirs."""
        self.count_override = None
        buf = self._buffer(model)
        buf.pack(0.0, count=0.0, failed=True)
        buf.allreduce(self.comm)
        self._raise_failure(exc)

    def _raise_failure(self, exc: BaseException | None):
        mine = b""
        if exc is not None:
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            mine = f"rank {self.rank} of {self.size} failed{' at ' + self.where if self.where else ''}: {text}".encode()
        messages = self.comm.allgather_bytes(mine)
        failing = [(r, m.decode(errors="replace")) for r, m in enumerate(messages) if m]
        rank, message = failing[0] if failing else (-1, "a rank failed (no message)")
        if len(failing) > 1:
            message += f" (ranks {', '.join(str(r) for r, _ in failing)} failed)"
        if exc is not None:
            raise RankFailure(message, rank) from exc
        raise RankFailure(message, rank)
