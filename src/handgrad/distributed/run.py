"""What ``fit`` does differently on K processes: :class:`DistributedRun`.

``fit(..., distributed=...)`` resolves its setting (``settings.resolve``); for a K-process job
it builds one ``DistributedRun`` and calls it at these points of the loop, in this order:

1. ``fence()`` — around everything after the argument checks: an exception on one rank that
   the others cannot know about (a callback, validation, a checkpoint write on rank 0) prints
   the rank's traceback and ends every rank (``faults.abort_on_error``); errors every rank
   raises at the same point (``RankFailure``, divergence, interruption, a rejected resume)
   pass through to the caller on every rank.
2. ``agree(check)`` — the data checks run on every rank and, if one fails anywhere, raise on
   every rank; ``check_same_run(identity, train, val)`` — the ranks compare the run's identity (epochs, global
   batch, seed, sample counts and shapes) with rank 0's and all raise ``ValueError`` if any
   differs (different data on different ranks would hang or train garbage).
3. ``shard_augmentation(train)`` — in ``"rows"`` mode each rank augments only its rows of the
   global batch through a row-sharded view of the augmentation stream (``sharding``).
4. ``sharded_step(step, ...)`` — after ``RunState`` seeded the stochastic layers: the layers'
   generators become row-sharded views of the same streams (dropout equal to one process) and
   the step is wrapped in a :class:`~handgrad.distributed.step.ShardedStep`.
5. ``resume(checkpointer, path)`` — rank 0 alone reads the checkpoint (the folder need exist
   only where rank 0 runs) and broadcasts the run state (JSON); a rejected checkpoint raises
   on every rank. Nothing in a checkpoint depends on K: the state is the global batch's, so a
   run written by K ranks resumes on any K' (or on one process).
6. ``broadcast_state(model, optimizer, run)`` — parameters, optimizer state and every random
   generator set to rank 0's, at the start and after a resume.

With ``workers > 1`` threads inside each rank, each thread's replica draws its part of the
rank's rows of the global draw (``training.parallel``), so K ranks of k threads equal one
process, dropout included, to float rounding.
"""
from __future__ import annotations

import numpy

from .buffers import (
    broadcast_generators,
    broadcast_json,
    broadcast_optimizer,
    broadcast_parameters,
)
from .faults import abort_on_error, agreed
from .reducer import MPIReducer
from .sharding import RowShardGenerator, row_sharded, shard_bounds
from .step import ShardedStep, install_row_sharding


def augment_mode(setting: str, augment) -> str:
    """``"rows"`` or ``"global"`` for ``Distributed.augment`` = ``setting`` and the augmenter:
    ``"auto"`` picks ``"rows"`` for handgrad's own augmenters (their per-sample draws run
    along the batch axis), ``"global"`` for any other callable."""
    if setting != "auto":
        return setting
    return "rows" if type(augment).__module__.startswith("handgrad.") else "global"


class DistributedRun:
    """One K-process ``fit``: ``comm`` (a ``Communicator``), ``settings`` (``Distributed``)."""

    def __init__(self, comm, settings) -> None:
        self.comm, self.settings = comm, settings
        self.reducer = MPIReducer(comm, settings.bucket_bytes)
        self.rank, self.size = comm.rank, comm.size
        self.generators: list[RowShardGenerator] = []
        self.workers = 1

    def fence(self, collective=()):
        return abort_on_error(self.comm, collective)

    def at(self, epoch: int, batch: int) -> None:
        """Where the run is, for a failing rank's message."""
        self.reducer.where = f"epoch {epoch + 1}, batch {batch + 1}"

    def agree(self, check):
        """``check()``'s result; if it raises ``ValueError``/``TypeError`` on some rank, every
        rank raises (that rank's error, or one pointing to it), marked :func:`agreed` — a data
        check that fails on every rank is an ordinary error, not an abort, and one that fails
        on some ranks only cannot leave the others waiting."""
        try:
            result, error = check(), None
        except (ValueError, TypeError) as exc:
            result, error = None, exc
        if self.reducer.any(error is not None):
            raise agreed(error if error is not None else
                         ValueError(f"fit: another rank rejected its data or arguments (rank {self.rank} did not)"))
        return result

    def check_same_run(self, identity: dict, train, val) -> None:
        mine = {"fit": identity, "x": list(train.x.shape), "y": list(train.y.shape),
                "dtype": str(train.x.dtype),
                "val": None if val is None else [list(val[0].shape), list(val[1].shape)]}
        root = broadcast_json(self.comm, mine)
        if self.reducer.any(root != mine):
            raise agreed(ValueError(f"fit: the {self.size} ranks disagree about the run: rank 0 has {root}"
                                    + (f", rank {self.rank} has {mine}" if root != mine else "")
                                    + "; every rank must get the same data and arguments"))

    def shard_augmentation(self, train) -> None:
        if train.augment is None or augment_mode(self.settings.augment, train.augment) != "rows":
            return
        view = row_sharded(train.augment_rng)
        train.augment_rng = view
        train.shard = lambda n: shard_bounds(n, self.size)[self.rank]
        self.generators.append(view)

    def sharded_step(self, step, model, loss, workers: int) -> ShardedStep:
        """``step`` (built with ``self.reducer``) on this rank's shard. Call it after the
        stochastic layers were seeded: their generators become row-sharded views."""
        self.workers = workers
        # the model's own layers view the rank's rows; threads' replicas (workers > 1) take
        # their views of those rows from the model's layers at every step (training.parallel)
        self.generators += install_row_sharding(step.models[:1])
        return ShardedStep(model, loss, self.reducer, inner=step, generators=self.generators)

    def resume(self, checkpointer, path: str) -> str:
        """Rank 0 loads the newest checkpoint at ``path`` into the model, the optimizer and the
        run; the others get the run state from it (weights and optimizer follow in
        ``broadcast_state``). Raises the same error on every rank if rank 0 rejects it."""
        msg = {"error": None, "state": None, "path": None}
        if self.reducer.is_root:
            try:
                msg["path"] = checkpointer.resume(path)
                msg["state"] = checkpointer.resumed_state
            except (OSError, ValueError) as exc:
                msg["error"] = [type(exc).__name__, str(exc)]
        msg = broadcast_json(self.comm, msg)
        if msg["error"] is not None:
            kind, text = msg["error"]
            raise agreed((FileNotFoundError if kind == "FileNotFoundError" else ValueError)(text))
        if not self.reducer.is_root:
            checkpointer.run.load_state_dict(msg["state"], f"fit(resume_from={msg['path']!r})")
        return msg["path"]

    def broadcast_state(self, model, optimizer, run) -> None:
        """Rank 0's parameters, optimizer state and random generators on every rank."""
        broadcast_parameters(self.comm, model)
        broadcast_optimizer(self.comm, optimizer)
        gens = [run.streams.shuffle, run.streams.augment, *(layer.rng for layer in run.stochastic),
                *run.generators.values()]
        broadcast_generators(self.comm, gens)
