"""Replicas of a model's layers and inference split over threads.

A replica of a layer is the same layer rebuilt from its ``get_config`` with the *same*
``params`` dict (so an optimizer's in-place update, or a parameter swapped for a float64 copy,
reaches both) but its own caches, buffers and gradients. ``fit(workers=k)`` trains on k of them
(``training/parallel.py``); :func:`forward_in_parts` runs inference on them: the rows of a batch
are split into contiguous parts, each part goes through its own replica in its own thread with
one BLAS thread, and the outputs are joined in order. Inference keeps no state in a layer, so
each row's output is the function of that row alone that one piece computes — up to the
blocking of the matrix products, identical for a given thread count.
"""
from __future__ import annotations

import numpy

from . import accel, backend

#: fewest rows per thread worth a part of inference (below, one piece with every BLAS thread)
MIN_ROWS_PER_THREAD = 64


def layer_replicas(layers) -> list:
    """A replica of each layer: shared ``params``, own caches and zeroed gradients."""
    out = []
    for layer in layers:
        twin = type(layer).from_config(layer.get_config(), deferred=True)
        twin.params = layer.params          # shared: in-place updates reach both
        twin.trainable = layer.trainable
        twin.grads = {k: backend.array_module(p).zeros(p.shape, dtype=p.dtype) for k, p in layer.params.items()}
        out.append(twin)
    return out


def replicable(layers) -> bool:
    """Whether the layers can be replicated faithfully: handgrad's own layers (a user's layer
    may keep state its config does not rebuild) and no stateful recurrent layer."""
    return all(type(layer).__module__.split(".")[0] == "handgrad" and not getattr(layer, "stateful", False)
               for layer in layers)


def inference_threads(layers, n_rows: int, xb) -> int:
    """How many threads :func:`forward_in_parts` would use for ``n_rows`` rows (1: none). One
    for a model without a layer that ``splits_well`` (Dense-like layers: the products dominate,
    and BLAS threads them better than split rows do; measured on 2 cores, the MLP preset's
    ``predict`` of 10,240 rows at batch 1024 took 58 ms in one piece, 66 ms in two parts), as
    ``fit``'s default workers."""
    k = min(accel.num_threads(), n_rows // MIN_ROWS_PER_THREAD)
    if k <= 1 or not isinstance(xb, numpy.ndarray) or not accel.blas_available() or not replicable(layers):
        return 1
    if not any(getattr(layer, "splits_well", False) for layer in layers):
        return 1
    return k


def forward_in_parts(layers, xb, replicas: list, k: int):
    """``xb`` through ``layers`` (inference) in ``k`` row parts, part 0 on ``layers`` in this
    thread and part w on ``replicas[w − 1]``; the outputs concatenated in row order."""
    k = min(k, accel.num_threads())
    parts = accel.split(xb.shape[0], k)
    index = {a: w for w, (a, _) in enumerate(parts)}
    outs: list = [None] * k

    def run(a: int, b: int) -> None:
        w = index[a]
        h = xb[a:b]
        for layer in (layers if w == 0 else replicas[w - 1]):
            h = layer.forward(h, False)
        outs[w] = h

    with accel.blas_limit(1):
        accel.parallel_for(xb.shape[0], run, parts=k)
    return numpy.concatenate(outs, axis=0)


class Inference:
    """Inference of ``model`` batch after batch (``predict``, ``evaluate``): batches of at least
    ``MIN_ROWS_PER_THREAD`` rows per thread are split over the threads, each with its replica
    (built once here, for every batch); smaller ones run in one piece with every BLAS thread."""

    def __init__(self, model, batch_rows: int, sample) -> None:
        self.model = model
        layers = model.layers
        if any(getattr(layer, "initial_state", None) is not None for layer in layers):
            self.k = 1  # a given initial state belongs to the whole batch
        else:
            self.k = inference_threads(layers, batch_rows, sample)
        self.replicas = [layer_replicas(layers) for _ in range(self.k - 1)]

    def __call__(self, xb):
        k = min(self.k, xb.shape[0] // MIN_ROWS_PER_THREAD)
        if k > 1:
            return forward_in_parts(self.model.layers, xb, self.replicas, k)
        return self.model.forward(xb, training=False)
