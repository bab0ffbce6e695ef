"""Communicators: the few collective operations data-parallel training needs.

:class:`MPICommunicator` wraps an ``mpi4py`` communicator and uses only its buffer
(upper-case) methods on contiguous arrays — no pickled Python objects cross the wire.
:class:`LocalCommunicator` is the stand-in for tests and single-process runs: it plays rank
``rank`` of ``size`` but its collectives see only this process (the other ranks contribute
nothing to a sum; a broadcast keeps this process's data).

Every communicator counts the time spent inside gradient reductions and the bytes sent
(``stats``), which is how the benchmark measures the communication share of a step.
"""
from __future__ import annotations

import sys
import time

import numpy


class CommStats:
    """Seconds and bytes spent in ``allreduce_sum`` since the last ``reset``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds, self.bytes, self.calls = 0.0, 0, 0


class Communicator:
    """Interface: ``rank``, ``size`` and in-place collectives on contiguous NumPy arrays."""

    rank: int = 0
    size: int = 1

    def __init__(self) -> None:
        self.stats = CommStats()

    @property
    def is_root(self) -> bool:
        """Whether this process prints and writes files (rank 0)."""
        return self.rank == 0

    def allreduce_sum(self, buf: numpy.ndarray) -> numpy.ndarray:
        """Sum ``buf`` over all ranks, in place; returns ``buf``."""
        if not (isinstance(buf, numpy.ndarray) and buf.flags.c_contiguous):
            raise TypeError(f"{type(self).__name__}.allreduce_sum: expected a C-contiguous NumPy array, "
                            f"got {type(buf).__name__}")
        t0 = time.perf_counter()
        self._allreduce_sum(buf)
        self.stats.seconds += time.perf_counter() - t0
        self.stats.bytes += buf.nbytes
        self.stats.calls += 1
        return buf

    def allreduce_max(self, buf: numpy.ndarray) -> numpy.ndarray:
        """Element-wise maximum over all ranks, in place."""
        raise NotImplementedError

    def bcast(self, buf: numpy.ndarray, root: int = 0) -> numpy.ndarray:
        """Overwrite ``buf`` on every rank with root's ``buf``, in place."""
        raise NotImplementedError

    def bcast_bytes(self, data: bytes | None, root: int = 0) -> bytes:
        """Root's ``data`` on every rank (the others pass anything, e.g. None)."""
        n = numpy.array([len(data) if self.rank == root else 0], dtype=numpy.int64)
        self.bcast(n, root)
        raw = numpy.frombuffer(data, dtype=numpy.uint8).copy() if self.rank == root else numpy.empty(int(n[0]), numpy.uint8)
        self.bcast(raw, root)
        return raw.tobytes()

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        """Every rank's ``data``, in rank order, on every rank."""
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (never returns)."""
        raise NotImplementedError

    def _allreduce_sum(self, buf) -> None:
        raise NotImplementedError


class LocalCommunicator(Communicator):
    """Rank ``rank`` of a pretend job of ``size`` processes whose collectives see only this
    one: for tests of sharding and weighting, and for single-process runs (the default 0 of 1)."""

    def __init__(self, rank: int = 0, size: int = 1) -> None:
        super().__init__()
        for name, v in (("rank", rank), ("size", size)):
            if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)):
                raise TypeError(f"LocalCommunicator: expected {name} to be an int, got {type(v).__name__}")
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"LocalCommunicator: expected 0 <= rank < size, got rank={rank}, size={size}")
        self.rank, self.size = int(rank), int(size)

    def _allreduce_sum(self, buf) -> None:
        pass

    def allreduce_max(self, buf):
        return buf

    def bcast(self, buf, root: int = 0):
        return buf

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        return [data if r == self.rank else b"" for r in range(self.size)]

    def barrier(self) -> None:
        pass

    def abort(self, code: int = 1) -> None:
        sys.stderr.flush()
        raise SystemExit(code)


class MPICommunicator(Communicator):
    """An ``mpi4py`` communicator (``MPI.COMM_WORLD`` by default), buffer methods only."""

    def __init__(self, comm=None) -> None:
        super().__init__()
        from .env import import_mpi

        self.MPI = import_mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def _allreduce_sum(self, buf) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def allreduce_max(self, buf):
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.MAX)
        return buf

    def bcast(self, buf, root: int = 0):
        self.comm.Bcast(buf, root=root)
        return buf

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        lengths = numpy.zeros(self.size, dtype=numpy.int64)
        lengths[self.rank] = len(data)
        self.comm.Allreduce(self.MPI.IN_PLACE, lengths, op=self.MPI.SUM)
        out = numpy.empty(int(lengths.sum()), dtype=numpy.uint8)
        displs = numpy.concatenate([[0], numpy.cumsum(lengths)[:-1]])
        mine = numpy.frombuffer(data, dtype=numpy.uint8)
        self.comm.Allgatherv(mine, [out, lengths.tolist(), displs.tolist(), self.MPI.BYTE])
        return [out[d:d + n].tobytes() for d, n in zip(displs, lengths)]

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)
