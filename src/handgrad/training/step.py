"""One training step's computation: forward, loss and backward of a mini-batch (``003`` §2,
statements (1)–(6): the error of the output layer, propagated back, gives every parameter's
partial derivatives). The update itself is the optimizer's, applied by ``fit`` only after the
non-finite guard accepted the step.

The interface every step shares::

    step(xb, yb) -> (value, outputs, spans)

``value``: the batch's mean loss (a float); ``outputs[i]``: the model's output for rows
``spans[i] = (a, b)`` of the batch; afterwards every trainable ``layer.grads`` holds the
mini-batch gradient. ``step.models`` lists the models whose layers draw random numbers (the
model and any replicas; ``fit`` seeds their stochastic layers), ``step.close()`` releases what
the step holds (``with step:`` closes it on exit).

Steps: ``PlainStep`` (this module) and ``parallel.DataParallel`` (the batch split over threads).
Extension points: an MPI step keeps its rank's shard of the global batch and calls
``reducer.gradients`` and ``reducer.loss`` (``reducer.py``); an RBM trainer supplies a step whose
``value`` is the reconstruction error and whose gradients are CD-k's (``DESIGN.md``, RBM).
"""
from __future__ import annotations

import warnings

from .reducer import LOCAL


class PlainStep:
    """Forward (training mode), loss and backward of the whole batch in this thread."""

    def __init__(self, model, loss, reducer=LOCAL) -> None:
        self.model, self.loss, self.reducer = model, loss, reducer
        self.models = [model]

    def __call__(self, xb, yb):
        out = self.model.forward(xb, training=True)
        value = self.loss.forward(out, yb)
        self.model.backward(self.loss.backward(), input_grad=False)
        if self.reducer is not LOCAL:  # other processes hold other shards
            count = self.loss.last_count
            self.reducer.gradients(self.model, count)
            value = self.reducer.loss(value, count)
        return value, [out], [(0, xb.shape[0])]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def local_processes() -> int:
    """How many processes of this MPI job share this host (1 outside a launcher): MPICH's
    ``MPI_LOCALNRANKS``, Open MPI's ``OMPI_COMM_WORLD_LOCAL_SIZE``, else the job's size."""
    import os

    for var in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return 1


def auto_workers(model, processes: int = 1, rows: int | None = None) -> int:
    """``fit``'s default ``workers``: this process's share of the thread budget
    (``accel.num_threads()``: ``HANDGRAD_NUM_THREADS``, ``OMP_NUM_THREADS`` or the cores,
    divided among the ``processes`` on this host), or 1 where threads cannot help: a model
    without a layer that ``splits_well`` (only Dense-like layers: the products dominate and
    BLAS threads them better than a split batch; measured on 2 cores, the MLP preset's epoch
    took 1.5–1.8× longer with two workers), a stateful
    recurrent layer (its state runs through the batch in order), a layer defined outside
    handgrad (a replica is rebuilt from ``get_config`` and would not carry what such a layer
    keeps besides its parameters) or no ``threadpoolctl`` (BLAS could not be held to one
    thread per worker, and the threads would oversubscribe the cores). ``rows``: the batch rows
    of this process; the workers are capped so each gets at least the ``split_min_rows`` of
    every splitting layer (32; LSTM 64)."""
    from .. import accel
    from ..replicas import replicable
    from . import parallel

    if not replicable(model.layers) or not parallel.available():
        return 1
    split = [layer for layer in model.layers if getattr(layer, "splits_well", False)]
    if not split:
        return 1  # Dense-like layers only: one batch, BLAS threads do the products
    workers = max(1, accel.num_threads() // max(1, processes))
    if rows is not None:  # each worker keeps at least the rows its layers need to gain
        need = max(getattr(layer, "split_min_rows", 32) for layer in split)
        workers = max(1, min(workers, rows // need))
    return workers


def resolve_workers(workers, model, processes: int = 1, rows: int | None = None) -> int:
    """``workers`` as given, or :func:`auto_workers` for ``None``."""
    return auto_workers(model, processes, rows) if workers is None else workers


def make_step(model, loss, workers: int | None = None, reducer=LOCAL, processes: int = 1):
    """The step for ``fit(..., workers=k)``: data-parallel threads for k > 1 when
    ``threadpoolctl`` is installed (else a warning and the plain step); ``None`` picks k
    (:func:`auto_workers`)."""
    workers = resolve_workers(workers, model, processes)
    if workers > 1:
        from . import parallel

        if parallel.available():
            return parallel.DataParallel(model, loss, workers, reducer)
        warnings.warn("fit: workers > 1 needs threadpoolctl (pip install threadpoolctl); training with one",
                      RuntimeWarning, stacklevel=3)
    return PlainStep(model, loss, reducer)
