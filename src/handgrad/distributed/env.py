"""Which process am I: rank and world size from the MPI launcher's environment.

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
        from mpi4py import MPI
    except ImportError as exc:
        where = (f"this process runs under an MPI launcher ({world.variable}={world.size}, {world.launcher}) and"
                 if world is not None else "distributed training")
        raise ImportError(f"handgrad.distributed: {where} needs mpi4py, which is not installed: "
                          f"{INSTALL_HINT}; or run without mpiexec") from exc
    return MPI
