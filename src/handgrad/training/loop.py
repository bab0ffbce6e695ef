"""The training loop: mini-batch stochastic gradient descent (``003`` §2–4).

``fit``'s body is the algorithm — every epoch: shuffle, mini-batches, and for each batch
forward, loss, backward and update; then validate. Each other concern has one owner, named by
its file:

==================  ======================================================================
``config.py``       ``FitConfig``: every argument of ``fit`` checked once
``inputs.py``       the checked data, class labels, the validation split, the mini-batches
``step.py``         forward + loss + backward of a batch (``parallel.py``: over threads)
``accumulator.py``  the running sums of loss and metrics (shared with ``evaluate``)
``state.py``        the run state a checkpoint saves: position, sums, random streams, history
``checkpoint.py``   checkpoint files, ``Checkpointer`` (write every k steps / epoch, resume)
``guards.py``       the non-finite guard (with rollback) and the interrupt guard (signals)
``faults.py``       ``TrainingDiverged``, ``TrainingInterrupted``, the signal flag
``reducer.py``      where several processes would meet (single process: the identity);
                    ``handgrad.distributed.run``: what a K-process run (``distributed=``) adds
``progress.py``     the progress bar (a terminal only)
``callbacks.py``    hooks on the logs, early stopping, model files per epoch
``evaluation.py``   ``evaluate``; ``crossval.py``: ``cross_validate`` (imports this module)
==================  ======================================================================
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from ..losses import Loss
from . import progress
from .accumulator import MetricAccumulator
from .callbacks import Callback, CallbackList, History
from .checkpoint import Checkpointer
from .config import FitConfig
from .evaluation import evaluate
from .faults import TrainingDiverged, TrainingInterrupted
from .guards import InterruptGuard, NonFiniteGuard
from .inputs import TrainingData, as_numpy_data, check_validation_data, split_validation
from .reducer import LOCAL, check_reducer
from .state import RandomStreams, RunState
from .step import local_processes, make_step, resolve_workers


def fit(model, loss: Loss, optimizer, x, y, epochs: int = 1, batch_size: int = 32,
        validation_data=None, validation_split: float = 0.0, callbacks: Sequence[Callback] = (),
        seed: int = 0, shuffle: bool = True, metrics: Sequence[str] = ("accuracy",),
        progress_bar: bool | None = None, augment: Callable | None = None,
        checkpoint_dir: str | None = None, checkpoint_every: int = 0, keep_checkpoints: int = 3,
        resume_from: str | None = None, on_nonfinite: str = "raise",
        handle_signals: bool = True, workers: int | None = None, reducer=None, distributed="auto") -> History:
    """Train ``model`` by mini-batch gradient descent and return its ``History``.

    Each epoch shuffles the training set (seeded), splits it into mini-batches, and for each
    batch runs forward (training mode), the loss, backward and ``optimizer.step()`` — the
    stochastic gradient descent of ``003`` §2. Then the model is evaluated on the validation
    data (``validation_data=(x_val, y_val)``, or a seeded ``validation_split`` fraction held
    out of ``x``), callbacks see the epoch's logs, and the History records them.

    Logs per epoch: ``loss`` and ``accuracy`` (running means over the epoch's batches, as the
    model changed during it), ``val_loss``/``val_accuracy`` (the model at the end of the
    epoch) and ``lr``. ``seed`` fixes shuffling, the validation split, dropout masks and every
    other random draw of the run. Data may be NumPy arrays whatever the device; it is moved to
    the model's device one batch at a time. The progress bar appears only on a terminal
    (``progress_bar=None``) and never in CI or when output is piped.

    ``augment(x_batch, rng) -> x_batch`` transforms each training batch on the fly (data
    expansion, ``003`` §4; e.g. ``hg.data.RandomAffine``), with a generator derived from
    ``seed``; validation data is never augmented.

    Surviving faults:

    - ``checkpoint_dir``: write a checkpoint (weights, optimizer state, position, random
      states, history) there at the end of every epoch and, with ``checkpoint_every=k``, every
      k steps; the newest ``keep_checkpoints`` are kept. ``resume_from`` (a checkpoint file or
      folder) continues such a run exactly: called with the same arguments, an interrupted and
      resumed run ends with the same weights, bit for bit, as an uninterrupted one.
    - Ctrl-C or SIGTERM (``handle_signals``): the current step finishes, a checkpoint is written
      (with ``checkpoint_dir``) and ``TrainingInterrupted`` is raised saying how to resume.
    - ``on_nonfinite``: when the loss or the gradient holds NaN/Inf the update is never
      applied, so the weights stay the last good ones; ``"raise"`` (default) raises
      ``TrainingDiverged`` naming the step and suggesting a lower learning rate, ``"stop"``
      ends training with a warning, ``"skip"`` drops that batch and goes on (counted in the
      ``skipped_steps`` log).

    ``workers=k`` (k > 1) splits every mini-batch into k parts computed in k threads on replicas
    that share the parameters (``handgrad.training.parallel``; needs ``threadpoolctl``): the same
    mini-batch gradient up to the order of floating-point additions, faster on a multi-core CPU.
    The default ``workers=None`` uses every core (``handgrad.accel.num_threads()``: the
    ``HANDGRAD_NUM_THREADS`` or ``OMP_NUM_THREADS`` variable, else the cores this process may
    use; shared among the MPI processes of this host), one BLAS thread per worker; 1 for a
    stateful recurrent model or without ``threadpoolctl``. A run is bit-for-bit reproducible for
    a given seed and number of workers; ``workers=1`` computes each batch in one piece.
    ``reducer`` (default: one process) combines gradients and sums across processes and says
    which process writes and prints (``handgrad.training.reducer``).

    Several processes (``DESIGN.md``, "Scale-out"): under ``mpiexec -n K`` (``distributed="auto"``,
    the default: MPI only when the launcher started more than one process; ``False``: never;
    ``True``, a ``handgrad.distributed.Distributed(...)`` or a communicator: that one) every
    rank runs ``fit`` with the same arguments; ``batch_size`` is the **global** batch, rank r
    computes its shard of every batch, and the result equals one process with the same seed,
    dropout and augmentation included, to float rounding. Only rank 0 writes checkpoints,
    shows progress and runs ``ModelCheckpoint``; every rank returns the same History. See
    ``handgrad.distributed.run`` and ``docs/distributed.md``.
    """
    cfg = FitConfig.from_fit_args(
        loss, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
        validation_split=validation_split, seed=seed, shuffle=shuffle, metrics=metrics, progress_bar=progress_bar,
        augment=augment, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints, resume_from=resume_from, on_nonfinite=on_nonfinite,
        handle_signals=handle_signals, workers=workers)
    reducer, par = _reducer(reducer, distributed)                    # par: None for one process
    streams = RandomStreams(cfg.seed)
    workers = resolve_workers(cfg.workers, model, 1 if par is None else local_processes(),
                              rows=cfg.batch_size // (1 if par is None else par.size))
    with _fenced(par), make_step(model, loss, workers, reducer) as step:
        if par is None:
            train, val = _datasets(model, x, y, validation_data, cfg, streams)
        else:  # a data error on any rank raises on every rank
            train, val = par.agree(lambda: _datasets(model, x, y, validation_data, cfg, streams))
        history = History()
        cbs = CallbackList([history, *callbacks], model, reducer.is_root)
        run = RunState(cfg.identity(train.n), streams, step.models,
                       MetricAccumulator(cfg.metrics, train.labels is not None, reducer), history)
        saver = Checkpointer(cfg.checkpoint_dir, cfg.checkpoint_every, cfg.keep_checkpoints, model, optimizer,
                             run, reducer)
        guard = NonFiniteGuard(model, optimizer, cfg.on_nonfinite, run, warn=reducer.is_root)
        if par is not None:                                            # this rank's shard of every batch
            par.check_same_run(run.identity, train, val)
            par.shard_augmentation(train)
            step = par.sharded_step(step, model, loss, workers)
            if cfg.resume_from is not None:
                par.resume(saver, cfg.resume_from)
            par.broadcast_state(model, optimizer, run)
        elif cfg.resume_from is not None:
            saver.resume(cfg.resume_from)
        model.stop_training = False
        if par is None:
            train.check_labels(model)
        else:
            par.agree(lambda: train.check_labels(model))
        show = reducer.is_root and (progress.enabled() if cfg.progress_bar is None else cfg.progress_bar)
        with run.training(cbs), InterruptGuard(cfg.handle_signals, saver, reducer) as signals:
            for epoch in range(run.epoch, cfg.epochs):
                order = run.begin_epoch(model, train)                     # shuffle: a new random partition
                guard.remember()
                cbs.on_epoch_begin(epoch, {})
                with progress.epoch_bar(train.steps, f"epoch {epoch + 1}/{cfg.epochs}", show, run.batch) as bar:
                    for b in range(run.batch, train.steps):
                        idx = train.indices(order, b)                     # the b-th mini-batch
                        xb, yb = train.batch(idx)
                        cbs.on_batch_begin(b, {})
                        if par is not None:
                            par.at(epoch, b)
                        value, outputs, spans = step(xb, yb)             # forward, loss, backward
                        run.advance(b)
                        verdict = guard.verdict(value, epoch, b)          # NaN/Inf: no update
                        if verdict == "stop":
                            break
                        if verdict is None:
                            optimizer.step()                              # update
                            run.metrics.add(value, outputs, spans, train.batch_labels(idx))
                        cbs.on_batch_end(b, {"loss": value})
                        bar.update(1)
                        if verdict == "skip":
                            if model.stop_training:
                                break
                            continue
                        if b % 20 == 0:
                            bar.set_postfix_str(f"loss {run.metrics.running_loss:.4f}")
                        saver.after_step(train.steps)
                        signals.check(f"at epoch {epoch + 1}, batch {b + 1}")
                if model.stop_training and run.metrics.seen == 0:
                    break
                logs = run.metrics.result()                               # validate
                if val is not None:
                    res = evaluate(model, loss, *val, batch_size=max(cfg.batch_size, 1024), metrics=cfg.metrics,
                                   reducer=reducer)
                    logs.update({f"val_{k}": v for k, v in res.items()})
                logs["lr"] = optimizer.lr
                logs.update(run.epoch_logs(cfg.on_nonfinite))
                cbs.on_epoch_end(epoch, logs)
                run.end_epoch()
                signals.check(f"after epoch {epoch + 1}", saver.write())
                if model.stop_training:
                    break
    return history


def _reducer(reducer, distributed):
    """``(reducer, DistributedRun or None)`` for ``fit``'s ``reducer`` and ``distributed``."""
    reducer = check_reducer(reducer)
    if distributed is False or (reducer is not LOCAL and (distributed is None or distributed == "auto")):
        return reducer, None
    from .. import distributed as dist

    comm, settings = dist.resolve(distributed)  # None/"auto": MPI only under a launcher with K > 1
    if comm is None:
        return reducer, None
    if reducer is not LOCAL:
        raise ValueError("fit: give reducer= or distributed=, not both (distributed builds its own reducer)")
    par = dist.DistributedRun(comm, settings)
    return par.reducer, par


def _fenced(par):
    """The error fence of a K-process run (``DistributedRun.fence``); nothing for one process."""
    if par is None:
        return contextlib.nullcontext()
    return par.fence((TrainingDiverged, TrainingInterrupted))


def _datasets(model, x, y, validation_data, cfg: FitConfig, streams: RandomStreams):
    """The training data and the (checked) validation pair, held out of ``x`` when
    ``cfg.validation_split`` is set (seeded by ``streams.split``)."""
    x, y = as_numpy_data(x, y, "fit")
    if cfg.validation_split:
        (x, y), validation_data = split_validation(x, y, cfg.validation_split, streams.split)
    val = None if validation_data is None else check_validation_data(validation_data, x)
    return TrainingData(x, y, model, cfg.batch_size, cfg.shuffle, cfg.augment, streams.augment), val
