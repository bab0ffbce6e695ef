"""Run under ``mpiexec -n K python fit_worker.py OUT JOB [JOB ...]``: ``hg.fit`` itself on tiny
data, one job after another in one launch. Rank 0 saves each job's final model to
``OUT/JOB.safetensors`` and its history to ``OUT/JOB.json``; the test runs the same job in one
process (:func:`run_job` with ``distributed=False``) and compares.

Every rank records the files it opens for writing (an audit hook) into
``$AUDIT_DIR/rank-R.json`` at exit, and with ``$AUDIT_DIR`` set its stdout and stderr go to
``$AUDIT_DIR/rank-R.out``: the test checks that ranks other than 0 wrote and printed nothing.

Jobs ``fit:KIND:DTYPE`` (KIND mlp | cnn | lstm): two epochs of 10 samples in global batches of
4 (4, 4, 2 rows: at -n 3 a rank has no row of the last batch), Adam, dropout, validation data;
the MLP with a custom augmenter (every rank augments the global batch), the CNN with
``RandomAffine`` (each rank augments its rows). ``interrupt:KIND:DTYPE``: the same, stopped by
a SIGINT on rank 0 at global step 4 (a checkpoint in ``OUT/ckpt-KIND``); ``resume:KIND:DTYPE``:
continue it (the test runs it with another number of ranks). ``workers:KIND:DTYPE``: the fit
with ``workers=2`` threads inside each rank. ``fail-step``: rank 1's forward
raises at step 2; ``fail-callback``: rank 1's callback raises at the end of epoch 1. ``mismatch`` / ``badlabel``:
the last rank has one sample fewer / a label out of range; every rank raises ``ValueError``
(rank 0 writes the message to ``OUT/NAME.txt``) and the job goes on.
"""
from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

import handgrad as hg
from handgrad import layers as L
from handgrad import losses, optim

N, BATCH, EPOCHS = 10, 4, 2


def build(kind: str, dtype: str):
    if kind == "mlp":
        return hg.Sequential([L.Dense(6, 8, rng=1, dtype=dtype), L.Tanh(), L.Dropout(0.3),
                              L.Dense(8, 3, rng=2, dtype=dtype)])
    if kind == "cnn":
        return hg.Sequential([L.Conv2D(1, 2, 3, padding=1, rng=1, dtype=dtype), L.Tanh(), L.MaxPool2D(2),
                              L.Flatten(), L.Dropout(0.25), L.Dense(2 * 3 * 3, 3, rng=2, dtype=dtype)])
    if kind == "mlp0":  # no stochastic layer: with threads inside each rank too, equal to one process
        return hg.Sequential([L.Dense(6, 8, rng=1, dtype=dtype), L.Tanh(), L.Dense(8, 3, rng=2, dtype=dtype)])
    if kind == "lstm":  # per-step labels with -1 padding: uneven (sample, step) counts per shard
        return hg.Sequential([L.LSTM(4, 5, rng=1, dtype=dtype), L.Dropout(0.2), L.Dense(5, 3, rng=2, dtype=dtype)])
    raise ValueError(kind)


def data(kind: str, n: int, seed: int = 42):
    rng = np.random.default_rng(seed)
    if kind in ("mlp", "mlp0"):
        return rng.standard_normal((n, 6)), rng.integers(0, 3, n)
    if kind == "cnn":
        return rng.standard_normal((n, 1, 6, 6)), rng.integers(0, 3, n)
    x, y = rng.standard_normal((n, 5, 4)), rng.integers(0, 3, (n, 5))
    y[rng.random((n, 5)) < 0.3] = -1
    y[0] = -1
    return x, y


def jitter(x, rng):
    """An augmenter that is not handgrad's: every rank augments the whole global batch."""
    return x + 0.05 * rng.standard_normal(x.shape)


class SignalAt(hg.Callback):
    """SIGINT to this process after global step ``step`` (only where ``active``)."""

    def __init__(self, step: int, active: bool) -> None:
        self.step, self.active, self.seen = step, active, 0

    def on_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.active and self.seen == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def run_job(kind: str, dtype: str, distributed=False, callbacks=(), **kw):
    """The job's model and History; ``kw`` goes to ``hg.fit``."""
    model = build(kind, dtype)
    x, y = data(kind, N)
    augment = {"mlp": jitter, "mlp0": jitter, "cnn": hg.data.RandomAffine(max_shift=1, image_shape=(6, 6), flip=True)}.get(kind)
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.Adam(model, lr=0.01), x, y, epochs=EPOCHS,
                  batch_size=BATCH, validation_data=data(kind, 5, seed=7), seed=3, augment=augment,
                  progress_bar=False, callbacks=list(callbacks), distributed=distributed, **kw)
    return model, hist


def fail_step(rank: int) -> None:
    """``fit`` where rank 1's first layer raises at its second forward (the first step's)."""
    model = build("mlp", "float64")
    forward, calls = model.layers[0].forward, []

    def failing(x, training=False):
        calls.append(1)
        if rank == 1 and len(calls) == 2:  # the first is the label check's probe
            raise ValueError("bad batch on rank 1")
        return forward(x, training)

    model.layers[0].forward = failing
    x, y = data("mlp", N)
    hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, epochs=2, batch_size=4)


def main() -> None:
    from handgrad import distributed as dist

    out, jobs = sys.argv[1], sys.argv[2:]
    comm = dist.MPICommunicator()
    for job in jobs:
        name, *rest = job.split(":")
        if name == "fail-step":
            fail_step(comm.rank)
            continue
        if name == "fail-callback":
            def on_epoch_end(epoch, logs):
                if comm.rank == 1:
                    raise OSError("disk full on rank 1")
            run_job("mlp", "float64", callbacks=[hg.LambdaCallback(on_epoch_end=on_epoch_end)], distributed="auto")
            continue
        if name in ("mismatch", "badlabel"):  # one rank's data differs: every rank raises
            model = build("mlp", "float64")
            x, y = data("mlp", N)
            if comm.rank == comm.size - 1:
                x, y = (x[:-1], y[:-1]) if name == "mismatch" else (x, np.where(np.arange(N) == 3, 7, y))
            try:
                hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, batch_size=4)
            except ValueError as exc:
                if comm.rank == 0:
                    with open(os.path.join(out, f"{name}.txt"), "w") as f:
                        f.write(str(exc))
            continue
        kind, dtype = rest
        kw = {}
        callbacks = []
        if name == "workers":  # two threads inside each rank
            kw["workers"] = 2
        if name in ("interrupt", "resume"):
            kw["checkpoint_dir"] = os.path.join(out, f"ckpt-{kind}-{dtype}")
            if name == "resume":
                kw["resume_from"] = kw["checkpoint_dir"]
            else:
                callbacks.append(SignalAt(4, comm.rank == 0))  # the others learn it through the reducer
        try:
            model, hist = run_job(kind, dtype, distributed="auto", callbacks=callbacks, **kw)
        except hg.training.TrainingInterrupted:
            continue
        if comm.rank == 0:
            hg.save(model, os.path.join(out, f"{job.replace(':', '-')}.safetensors"))
            with open(os.path.join(out, f"{job.replace(':', '-')}.json"), "w") as f:
                json.dump(hist.history, f)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import audit

    audit.install()
    main()
