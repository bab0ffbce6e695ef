"""Data-parallel training across processes on MPI (``DESIGN.md``, "Scale-out").

``mpiexec -n K handgrad train ...`` or ``hg.fit`` under ``mpiexec`` trains one model on K
processes: the same seeded shuffle on every rank, rank r computing its contiguous shard of
every global mini-batch, the gradients averaged with one Allreduce on one flattened buffer,
parameters and optimizer state broadcast from rank 0, metrics summed across ranks, and only
rank 0 printing and writing files. Needs the ``dist`` extra (``pip install 'handgrad[dist]'``).

Modules: ``env`` (launcher detection), ``settings`` (``Distributed``, ``resolve``), ``comm``
(communicators), ``sharding`` (rows and weights, row-sharded generators), ``buffers``
(flattened gradient buffer, broadcasts), ``reducer`` (the collectives ``fit`` calls, failure
agreement), ``step`` (the sharded step), ``faults`` (abort on a one-rank error), ``run``
(what ``fit`` does on K processes: the order of the pieces above). Validation and metrics are
summed over ranks by ``handgrad.training``'s own ``MetricAccumulator`` through the reducer.
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
from .faults import abort_on_error, agreed, install_excepthook
from .reducer import MPIReducer, RankFailure
from .run import DistributedRun, augment_mode
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
                      "DistributedRun",
                      "GradientBuffer",
                      "LauncherWorld",
                      "LocalCommunicator",
                      "MPICommunicator",
                      "MPIReducer",
                      "RankFailure",
                      "RowShardGenerator",
                      "ShardedStep",
                      "abort_on_error",
                      "agreed",
                      "augment_mode",
                      "broadcast_generators",
                      "broadcast_json",
                      "broadcast_optimizer",
                      "broadcast_parameters",
                      "counted_items",
                      "import_mpi",
                      "install_excepthook",
                      "install_row_sharding",
                      "launcher_world",
                      "resolve",
                      "row_sharded",
                      "shard_bounds",
                      "shares",
]
