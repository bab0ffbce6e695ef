"""Evaluation: the mean loss and metrics of a fixed model on data, in inference mode
(``003`` §4: validation data to choose, test data once at the end)."""
from __future__ import annotations

from collections.abc import Sequence

from .. import backend
from .. import metrics as M
from .._checks import check_positive_int
from ..losses import Loss
from .accumulator import MetricAccumulator
from .inputs import as_numpy_data, class_labels
from .reducer import check_reducer


def evaluate(model, loss: Loss, x, y, batch_size: int = 1024,
             metrics: Sequence[str] = ("accuracy",), reducer=None) -> dict:
    """Mean loss and metrics of ``model`` on ``(x, y)`` in inference mode.

    Returns ``{"loss": float, "accuracy": float, ...}``; accuracy-type metrics are reported
    only when ``y`` holds classes (integer labels or one-hot rows). Stateful recurrent layers
    neither use nor carry a state here (``Sequential.stateless``). ``reducer``: see
    ``handgrad.training.reducer`` (the sums over the batches are summed over processes).
    """
    where = "evaluate"
    batch_size = check_positive_int(batch_size, where, "batch_size")
    names = M.parse(metrics)
    x, y = as_numpy_data(x, y, where)
    labels = class_labels(y)
    sums = MetricAccumulator(names, labels is not None, check_reducer(reducer, where))
    xp, dtype = model.xp, model.dtype
    with model.stateless():
        for s in range(0, x.shape[0], batch_size):
            xb = backend.asarray(x[s:s + batch_size], dtype=dtype, xp=xp)
            yb = backend.asarray(y[s:s + batch_size], xp=xp)
            out = model.forward(xb, training=False)
            lb = None if labels is None else backend.asarray(labels[s:s + batch_size], xp=xp)
            sums.add(loss.forward(out, yb), [out], [(0, xb.shape[0])], lb)
    return sums.result()
