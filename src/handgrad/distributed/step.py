"""The step of a K-process run: this rank's shard of the global batch, forward, loss and
backward on it, and the reducer's collectives (``handgrad.training.step`` interface:
``step(xb, yb) -> (value, outputs, spans)``, ``.models``, ``.close()``).

``xb, yb`` are the **global** batch (every rank draws the same shuffle and, for augmentation
in "global" mode, the same augmented batch). Rank r keeps rows ``a_r:b_r``
(``sharding.shard_bounds``); ``spans`` are returned in global-batch rows, so a metric
accumulator given the global batch's labels counts only this rank's rows.

Dropout equal to one process: the stochastic layers' generators are replaced by
:class:`~handgrad.distributed.sharding.RowShardGenerator` views of the same streams
(:func:`install_row_sharding`); during the step each draws the global batch's mask and hands
the layer its rows. A rank with no rows (a last batch smaller than K) draws nothing, so after
such a step the generators are re-broadcast from rank 0 (which always has rows).
"""
from __future__ import annotations

from .. import backend
from .buffers import broadcast_generators
from .reducer import MPIReducer, RankFailure
from .sharding import RowShardGenerator, counted_items, row_sharded, shard_bounds


def install_row_sharding(models) -> list[RowShardGenerator]:
    """Give every stochastic layer of ``models`` a row-sharded view of its own generator
    (same stream and state); returns the views. Call it after the layers were seeded."""
    views = []
    for m in models:
        for layer in m.layers:
            if getattr(layer, "stochastic", False):
                layer.set_rng(row_sharded(layer.rng))
                views.append(layer.rng)
    return views


class ShardedStep:
    """Data-parallel step over the ranks of ``reducer``.

    ``inner``: the step run on this rank's shard — a ``handgrad.training`` step built with
    this reducer (it calls ``reducer.gradients`` and ``reducer.loss``), or None for the plain
    forward/loss/backward of ``model`` done here. ``generators``: the row-sharded generators
    to keep in step (``install_row_sharding`` plus, in "rows" augmentation, the augmenter's).
    """

    def __init__(self, model, loss, reducer: MPIReducer, inner=None, generators=()) -> None:
        if not isinstance(reducer, MPIReducer):
            raise TypeError(f"ShardedStep: expected an MPIReducer, got {type(reducer).__name__}")
        if any(getattr(layer, "stateful", False) for layer in model.layers):
            raise ValueError("fit: distributed training cannot train stateful recurrent layers (their state runs "
                             "through the batch rows in order across batches)")
        self.model, self.loss, self.reducer, self.inner = model, loss, reducer, inner
        self.models = list(inner.models) if inner is not None else [model]
        self.generators = list(generators)
        self.last_rows = (0, 0)

    def rows(self, n: int) -> tuple[int, int]:
        """This rank's rows ``(a, b)`` of a global batch of ``n``."""
        return shard_bounds(n, self.reducer.size)[self.reducer.rank]

    def _plain(self, xb, yb):
        out = self.model.forward(xb, training=True)
        value = self.loss.forward(out, yb)
        self.model.backward(self.loss.backward(), input_grad=False)
        count = self.loss.last_count
        self.reducer.gradients(self.model, count)
        return self.reducer.loss(value, count), [out], [(0, xb.shape[0])]

    def _empty(self):
        """No rows here: zero gradients into the same collectives."""
        for layer in self.model.layers:
            if layer.trainable:
                for k, p in layer.params.items():
                    layer.grads[k] = backend.array_module(p).zeros_like(p)
        self.reducer.gradients(self.model, 0)
        return self.reducer.loss(0.0, 0), [], []

    def __call__(self, xb, yb):
        n = xb.shape[0]
        a, b = self.rows(n)
        self.last_rows = (a, b)
        for g in self.generators:
            g.set_view(n, a, b)
        self.reducer.count_override = counted_items(self.loss, yb[a:b])
        try:
            if b == a:
                value, outs, spans = self._empty()
            elif self.inner is None:
                value, outs, spans = self._plain(xb[a:b], yb[a:b])
            else:
                value, outs, spans = self.inner(xb[a:b], yb[a:b])
        except RankFailure:
            raise
        except Exception as exc:  # noqa: BLE001 — any error of this rank's step is reported to all ranks
            self.reducer.fail(self.model, exc)
        finally:
            for g in self.generators:
                g.view = None
        if n < self.reducer.size:  # some rank had no rows and drew nothing
            broadcast_generators(self.reducer.comm, self.generators)
        return value, outs, [(a + s, a + e) for s, e in spans]

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
