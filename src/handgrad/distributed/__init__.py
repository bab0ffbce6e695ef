"""Data-parallel training across processes on MPI (``DESIGN.md``, "Scale-out").

``mpiexec -n K handgrad train ...`` or ``hg.fit`` under ``mpiexec`` trains one model on K
processes: the same seeded shuffle on every rank, rank r computing its contiguous shard of
every global mini-batch, the gradients averaged with one Allreduce on one flattened buffer,
parameters and optimizer state broadcast from rank 0, metrics summed across ranks, and only
rank 0 printing and writing files. Needs the ``dist`` extra (``pip install 'handgrad[dist]'``).

Modules: ``env`` (launcher detection), ``settings`` (``Distributed``, ``resolve``), ``comm``
(communicators), ``sharding`` (rows and weights, row-sharded generators), ``buffers``
(flattened gradient buffer, broadcasts), ``reducer`` (the collectives ``fit`` calls, failure
agreement), ``step`` (the sharded step), ``faults`` (abort on a one-rank error), ``evaluation``
(validation sums over ranks).
"""
from .buffers import (
                      GradientBuffer,
                      broadcast_generators,
                      broadcast_json,
                      broadcast_optimizer,
                      broadcast_parameters,
)
from .comm import Communicator, LocalCommunicator, MPICommunicator
from .env import INSTALL_HINT, LauncherWorld, import_mpi, launcher_world
from .evaluation import evaluate_sharded
from .faults import abort_on_error, install_excepthook
from .reducer import MPIReducer, RankFailure
from .settings import Distributed, resolve
from .sharding import (
                      RowShardGenerator,
                      counted_items,
                      row_sharded,
                      shard_bounds,
                      shares,
)
from .step import ShardedStep, install_row_sharding

__all__ = [
                      "INSTALL_HINT",
                      "Communicator",
                      "Distributed",
                      "GradientBuffer",
                      "LauncherWorld",
                      "LocalCommunicator",
                      "MPICommunicator",
                      "MPIReducer",
                      "RankFailure",
                      "RowShardGenerator",
                      "ShardedStep",
                      "abort_on_error",
                      "broadcast_generators",
                      "broadcast_json",
                      "broadcast_optimizer",
                      "broadcast_parameters",
                      "counted_items",
                      "evaluate_sharded",
                      "import_mpi",
                      "install_excepthook",
                      "install_row_sharding",
                      "launcher_world",
                      "resolve",
                      "row_sharded",
                      "shard_bounds",
                      "shares",
]
