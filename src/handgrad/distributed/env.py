"""Which process am I: rank and world size from the MPI launcher's environment, and the
explicit ``fit(..., distributed=...)`` setting.

``mpiexec`` / ``mpirun`` (MPICH's Hydra, Intel MPI: ``PMI_RANK``/``PMI_SIZE``; Open MPI:
``OMPI_COMM_WORLD_RANK``/``OMPI_COMM_WORLD_SIZE``; MVAPICH: ``MV2_COMM_WORLD_*``; PMIx
launchers such as ``srun --mpi=pmix``: ``PMIX_RANK`` with the Open MPI names) tells every
process it starts its place in the job through environment variables. Reading them needs no
MPI library, so a single-process run never imports ``mpi4py``; a run under a launcher with
more than one process does, and says how to install it when it is missing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

#: (rank variable, size variable, launcher family), in the order they are looked for
LAUNCHER_VARIABLES = (
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI"),
    ("PMI_RANK", "PMI_SIZE", "MPICH/Hydra (PMI)"),
    ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "MVAPICH"),
)

INSTALL_HINT = "pip install 'handgrad[dist]'  (installs mpi4py and the MPICH wheel)"


@dataclass(frozen=True)
class LauncherWorld:
    """What the launcher's environment says: this process's ``rank`` of ``size``."""

    rank: int
    size: int
    launcher: str
    variable: str  # the size variable that was read, for messages


def launcher_world(environ=None) -> LauncherWorld | None:
    """The launcher's (rank, size) if this process runs under an MPI launcher, else None.

    A malformed value raises ``RuntimeError`` (a half-set environment would otherwise hang
    every rank at the first collective)."""
    env = os.environ if environ is None else environ
    for rank_var, size_var, name in LAUNCHER_VARIABLES:
        if size_var not in env:
            continue
        try:
            size, rank = int(env[size_var]), int(env.get(rank_var, "0"))
        except ValueError:
            raise RuntimeError(f"handgrad.distributed: expected integers in {size_var}/{rank_var}, got "
                               f"{env.get(size_var)!r}/{env.get(rank_var)!r}") from None
        if size < 1 or not 0 <= rank < size:
            raise RuntimeError(f"handgrad.distributed: {rank_var}={rank} and {size_var}={size} "
                               f"do not describe a rank of the job")
        return LauncherWorld(rank, size, name, size_var)
    return None


def import_mpi(world: LauncherWorld | None = None):
    """``mpi4py.MPI``, or an ``ImportError`` that names mpi4py and the ``dist`` extra."""
    try:
        from mpi4py import MPI  # noqa: PLC0415 (optional dependency)
    except ImportError as exc:
        where = (f"this process runs under an MPI launcher ({world.variable}={world.size}, {world.launcher}) and"
                 if world is not None else "distributed training")
        raise ImportError(f"handgrad.distributed: {where} needs mpi4py, which is not installed: "
                          f"{INSTALL_HINT}; or run without mpiexec") from exc
    return MPI


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
    from .comm import Communicator, MPICommunicator

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
