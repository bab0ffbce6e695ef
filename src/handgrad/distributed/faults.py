"""Ending every rank when one rank fails outside a step, and signals under ``mpiexec``.

Inside a step, failures are agreed through the gradient Allreduce (``reducer.py``). Anywhere
else — a callback, validation, a checkpoint write on rank 0 — an error raised on one rank
would leave the others waiting forever in their next collective. :func:`abort_on_error`
turns such an error into a message on stderr naming the rank, then ``MPI_Abort``, which makes
the launcher end every rank with a non-zero exit within seconds. Errors every rank raises at
the same point (``collective`` types: :class:`RankFailure`, divergence, interruption, and
any exception marked with :func:`agreed`) pass through unchanged, so a caller may still catch
them.

Signals: ``mpiexec`` forwards SIGINT/SIGTERM to every rank, but not necessarily between the
same two steps; ``fit``'s signal flag is therefore agreed with ``reducer.any(flag)`` after
each step, so every rank stops at the same step and rank 0 alone writes the checkpoint.
"""
from __future__ import annotations

import contextlib
import sys
import traceback

from .reducer import RankFailure


def agreed(exc: BaseException) -> BaseException:
    """Mark ``exc`` as raised on every rank at the same point (a decision the ranks took
    together, e.g. a rejected checkpoint broadcast from rank 0): :func:`abort_on_error` lets
    it through instead of aborting the job. Returns ``exc``."""
    exc.handgrad_agreed = True
    return exc


def format_failure(rank: int, size: int, exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"handgrad: rank {rank} of {size} failed; ending all ranks.\n{tb}"


@contextlib.contextmanager
def abort_on_error(comm, collective: tuple[type[BaseException], ...] = ()):
    """Run the block; an exception not of a ``collective`` type (nor :class:`RankFailure`)
    prints its traceback with the rank and aborts the whole job (exit code 1). A
    ``KeyboardInterrupt`` outside the signal flag aborts too (the others cannot know)."""
    passing = (RankFailure, *collective)
    try:
        yield
    except passing:
        raise
    except BaseException as exc:
        if (comm is None or comm.size == 1 or isinstance(exc, SystemExit) and not exc.code
                or getattr(exc, "handgrad_agreed", False)):
            raise
        # the process's own stderr, even where a command line silenced sys.stderr on rank != 0
        err = sys.__stderr__ or sys.stderr
        err.write(format_failure(comm.rank, comm.size, exc))
        err.flush()
        comm.abort(1)
        raise  # LocalCommunicator.abort raises SystemExit; MPI's never returns


def install_excepthook(comm) -> None:
    """Make an uncaught exception on any rank end the whole job (``MPI_Abort``), as
    ``python -m mpi4py`` does, instead of leaving the other ranks waiting."""
    if comm is None or comm.size == 1:
        return
    previous = sys.excepthook

    def hook(kind, exc, tb):
        previous(kind, exc, tb)
        err = sys.__stderr__ or sys.stderr
        err.write(f"handgrad: rank {comm.rank} of {comm.size} ended with an uncaught {kind.__name__}; "
                  f"ending all ranks\n")
        err.flush()
        comm.abort(1)

    sys.excepthook = hook
