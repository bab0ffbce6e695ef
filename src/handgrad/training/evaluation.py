"""Evaluation: the mean loss and metrics of a fixed model on data, in inference mode
(``003`` §4: validation data to choose, test data once at the end)."""
from __future__ import annotations

from collections.abc import Sequence

from .. import backend
from .. import metrics as M
from .._checks import check_positive_int
from ..losses import Loss
from ..replicas import Inference
from .accumulator import MetricAccumulator
from .inputs import as_numpy_data, class_labels
from .reducer import check_reducer


def evaluate(model, loss: Loss, x, y, batch_size: int = 1024,
             metrics: Sequence[str] = ("accuracy",), reducer=None) -> dict:
    """Mean loss and metrics of ``model`` on ``(x, y)`` in inference mode.

    Returns ``{"loss": float, "accuracy": float, ...}``; accuracy-type metrics are reported
    only when ``y`` holds classes (integer labels or one-hot rows). Stateful recurrent layers
    neither use nor carry a state here (``Sequential.stateless``). ``reducer``: see
    ``handgrad.training.reducer``: with K processes (``reducer.size``), process r evaluates the
    r-th contiguous run of whole batches (the same batches as one process) and the sums are
    added over processes, so every process gets one process's result up to the order of the
    additions; a collective (every process calls it). Batches are split over the threads
    as in ``Sequential.predict``.
    """
    where = "evaluate"
    batch_size = check_positive_int(batch_size, where, "batch_size")
    names = M.parse(metrics)
    x, y = as_numpy_data(x, y, where)
    labels = class_labels(y)
    sums = MetricAccumulator(names, labels is not None, check_reducer(reducer, where))
    xp, dtype = model.xp, model.dtype
    size = getattr(sums.reducer, "size", 1)
    first, last = 0, -(-x.shape[0] // batch_size)
    if size > 1:  # this process's run of whole batches (the batches decide the loss weighting)
        first, last = _batch_run(last, sums.reducer.rank, size)
    with model.stateless():
        infer = Inference(model, min(batch_size, x.shape[0]), x)  # batches split over the cores
        for s in range(first * batch_size, min(x.shape[0], last * batch_size), batch_size):
            xb = backend.asarray(x[s:s + batch_size], dtype=dtype, xp=xp)
            yb = backend.asarray(y[s:s + batch_size], xp=xp)
            out = infer(xb)
            lb = None if labels is None else backend.asarray(labels[s:s + batch_size], xp=xp)
            sums.add(loss.forward(out, yb), [out], [(0, xb.shape[0])], lb)
    return sums.result()


def _batch_run(n_batches: int, rank: int, size: int) -> tuple[int, int]:
    """Batches ``[first, last)`` of process ``rank`` of ``size``: contiguous, sizes differing by
    at most one (``handgrad.distributed.sharding.shard_bounds``)."""
    base, extra = divmod(n_batches, size)
    first = rank * base + min(rank, extra)
    return first, first + base + (1 if rank < extra else 0)
