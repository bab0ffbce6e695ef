"""Data-parallel training steps on a multi-core CPU.

NumPy runs its element-wise work (im2col copies, pooling, activations) on one core, and BLAS
parallelizes only the matrix products. ``fit(..., workers=k)`` instead splits every mini-batch
into k contiguous parts and runs forward and backward of each part in its own thread, on
*replicas* of the model that share its parameter arrays but keep their own caches and gradients,
with BLAS limited to one thread each (``threadpoolctl``); NumPy releases the GIL inside its
loops, so the parts truly run side by side. The gradient of the mini-batch mean is then

    ∇C = Σ_w (n_w / n) ∇C_w,

n_w the items of part w (the mean of ``003`` §2 statements (5)–(6) regrouped): each thread runs
forward, loss and backward of its part, then the parts' parameter gradients are combined with
these weights — the mini-batch gradient up to the order of floating-point additions.

Random draws are those of one piece: before each step every worker's stochastic layer (dropout)
gets a generator in the state of the model's own layer, viewing its rows ``a:b`` of the batch
(``rowshard.RowShardGenerator``: it draws the whole batch's numbers and keeps those rows), so
the masks, and hence the trained weights, equal ``workers=1``'s up to float rounding, and the
model's generators move on as one piece's would. Under MPI the model's generators view the
rank's rows of the global batch, and each worker's view is its part of those rows: K ranks of k
threads draw one process's masks.

``DataParallel`` is a step with the interface of ``step.py`` (``step(xb, yb) -> (value, outputs,
spans)``); under several processes its combined gradient goes on to ``reducer.gradients``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy

from .. import accel
from ..model import Sequential
from ..replicas import layer_replicas
from .reducer import LOCAL
from .rowshard import RowShardGenerator, row_sharded


def available() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def replica(model: Sequential) -> Sequential:
    """A model sharing ``model``'s parameter arrays (the same dict objects) with its own caches
    and gradients (``handgrad.replicas``)."""
    return Sequential(layer_replicas(model.layers))


class DataParallel:
    """Runs forward + loss + backward of the parts of a batch in ``workers`` threads."""

    def __init__(self, model: Sequential, loss, workers: int, reducer=LOCAL) -> None:
        import copy

        from threadpoolctl import threadpool_limits

        if any(getattr(layer, "stateful", False) for layer in model.layers):
            raise ValueError("fit: workers > 1 cannot train stateful recurrent layers (their state runs "
                             "through the whole batch in order)")
        self.models = [model] + [replica(model) for _ in range(workers - 1)]
        self.losses = [loss] + [copy.copy(loss) for _ in range(workers - 1)]
        self.pool = ThreadPoolExecutor(workers - 1)
        # one BLAS thread per worker for the whole run
        self._limit = threadpool_limits(limits=1, user_api="blas")
        self.workers = workers
        self.reducer = reducer
        self._stochastic = [i for i, layer in enumerate(model.layers) if layer.stochastic]

    def stochastic_layers(self):
        return [layer for m in self.models for layer in m.layers if layer.stochastic]

    def close(self) -> None:
        self.pool.shutdown()
        self._limit.restore_original_limits()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def step(self, xb, yb):
        """Forward and backward of one batch; returns (loss value, [outputs of the parts])."""
        n = xb.shape[0]
        bounds = numpy.linspace(0, n, self.workers + 1).astype(int)
        parts = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

        def run(w, a, b):  # forward, loss and backward of one part, in one thread
            with accel.limit_threads(1):  # the layers' own work stays in this thread too
                out = self.models[w].forward(xb[a:b], training=True)
                value = self.losses[w].forward(out, yb[a:b])
                self.models[w].backward(self.losses[w].backward(), input_grad=False)
            return out, value, self.losses[w].last_count

        self._share_streams(n, parts)
        try:  # the last part runs in this thread, the others in the pool
            futures = [self.pool.submit(run, w, a, b) for w, (a, b) in enumerate(parts[:-1])]
            last = run(len(parts) - 1, *parts[-1])
            fwd = [f.result() for f in futures] + [last]
        finally:
            for i, outer in zip(self._stochastic, self._views):  # as before the step (no view: plain draws)
                self.models[0].layers[i].rng.view = outer
        total = sum(c for _, _, c in fwd) or 1
        weights = [c / total for _, _, c in fwd]
        main = self.models[0]
        for i, layer in enumerate(main.layers):
            if not layer.trainable:
                continue
            for k in layer.params:  # ∇C = Σ_w (n_w / n) ∇C_w
                g = layer.grads[k] * weights[0]
                for w, m in enumerate(self.models[1:len(parts)], start=1):
                    g += m.layers[i].grads[k] * weights[w]
                layer.grads[k] = g
        value = sum(v * c for _, v, c in fwd) / total
        if self.reducer is not LOCAL:  # other processes hold other shards
            self.reducer.gradients(main, total)
            value = self.reducer.loss(value, total)
        return value, [out for out, _, _ in fwd], parts

    def _share_streams(self, n: int, parts) -> None:
        """Every worker's stochastic layers draw this step's numbers from the state of the
        model's own layer, keeping their part's rows (the model's layer is worker 0's)."""
        self._views = []
        for i in self._stochastic:
            main = self.models[0].layers[i]
            if not isinstance(main.rng, RowShardGenerator):
                main.set_rng(row_sharded(main.rng))  # same stream and state object
            # under MPI the rank's batch is rows A:B of a global batch of N (the rank's view):
            # worker rows a:b are then rows A + a : A + b of the global draw
            outer = main.rng.view
            total, offset = (n, 0) if outer is None or outer[2] - outer[1] != n else (outer[0], outer[1])
            self._views.append(outer)
            state = main.rng.bit_generator.state
            for w, (a, b) in enumerate(parts):
                layer = self.models[w].layers[i]
                if w > 0:
                    bits = type(main.rng.bit_generator)()
                    bits.state = state
                    layer.rng = RowShardGenerator(bits)
                layer.rng.set_view(total, offset + a, offset + b)

    __call__ = step
