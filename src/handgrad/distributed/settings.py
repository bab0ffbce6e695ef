"""The explicit ``fit(..., distributed=...)`` setting and how it resolves to a communicator."""
from __future__ import annotations

from dataclasses import dataclass

from .comm import Communicator, MPICommunicator
from .env import import_mpi, launcher_world


@dataclass(frozen=True)
class Distributed:
    """Explicit setting for ``fit(..., distributed=Distributed(...))``.

    ``comm``: a :class:`~handgrad.distributed.comm.Communicator` or an ``mpi4py`` communicator
    (default: ``MPI.COMM_WORLD``). ``bucket_bytes``: the gradient allreduce sends the one
    flattened gradient buffer in pieces of at most this many bytes (0: one piece; MPI counts
    are 32-bit, so pieces also keep huge models legal). ``augment``: ``"rows"`` — each rank
    augments only its rows, drawing the random parameters of the whole global batch and
    keeping its own (exact for augmenters whose per-sample draws run along the batch axis,
    such as ``hg.data.RandomAffine``); ``"global"`` — each rank augments the whole global
    batch and keeps its rows (exact for any augmenter, K times the augmentation work);
    ``"auto"`` — ``"rows"`` for handgrad's own augmenters, else ``"global"``.
    """

    comm: object = None
    bucket_bytes: int = 0
    augment: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.bucket_bytes, bool) or not isinstance(self.bucket_bytes, int) or self.bucket_bytes < 0:
            raise ValueError(f"Distributed: expected bucket_bytes to be an int >= 0, got {self.bucket_bytes!r}")
        if self.augment not in ("auto", "rows", "global"):
            raise ValueError(f"Distributed: expected augment 'auto', 'rows' or 'global', got {self.augment!r}")


def resolve(distributed, where: str = "fit", environ=None):
    """The communicator a run should use, or None for a plain single-process run.

    ``distributed``: ``None``/``"auto"`` — MPI's world when the launcher started more than
    one process, else None; ``False`` — None even under a launcher; ``True`` — MPI's world
    (one rank when not launched, which is a valid job of size 1); a :class:`Distributed`,
    a ``Communicator`` or an ``mpi4py`` communicator — that one. Returns
    ``(communicator or None, Distributed settings)``.
    """
    if distributed is None or distributed == "auto":
        world = launcher_world(environ)
        if world is None or world.size == 1:
            return None, Distributed()
        MPI = import_mpi(world)
        return MPICommunicator(MPI.COMM_WORLD), Distributed()
    if distributed is False:
        return None, Distributed()
    if distributed is True:
        return MPICommunicator(import_mpi(launcher_world(environ)).COMM_WORLD), Distributed()
    settings = distributed if isinstance(distributed, Distributed) else Distributed(comm=distributed)
    comm = settings.comm
    if comm is None:
        comm = MPICommunicator(import_mpi(launcher_world(environ)).COMM_WORLD)
    elif not isinstance(comm, Communicator):
        if not (hasattr(comm, "Allreduce") and hasattr(comm, "Get_rank")):
            raise TypeError(f"{where}: expected distributed to be None, 'auto', a bool, a Distributed, a "
                            f"handgrad Communicator or an mpi4py communicator, got {type(comm).__name__}")
        comm = MPICommunicator(comm)
    return comm, settings
