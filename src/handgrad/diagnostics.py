"""Gradient diagnostics: watch the error signal vanish or explode (``003`` §4; ``000`` §3.2).

``DeltaNormRecorder`` is a callback that records, averaged over each epoch's batches,

- ``layers``: ‖δ⁽ˡ⁾‖ = ‖dC/dz⁽ˡ⁾‖ for every layer with parameters (the error arriving at its
  output, mean over the batch of the per-sample norm) — in a deep sigmoid network the early
  layers' errors are orders of magnitude smaller (``003`` §4's product of σ' factors);
- ``time``: for every recurrent layer, ‖δ[t]‖ at each time step t — in an Elman RNN it decays
  geometrically from the last step back to the first (the ∏ W_hh σ' of ``000`` eq. (29)),
  while an LSTM's cell path keeps it alive.

``plot_delta_norms`` draws both as PNGs (needs matplotlib).
"""
from __future__ import annotations

import os

import numpy

from .training.callbacks import Callback


class DeltaNormRecorder(Callback):
    """Record per-layer and per-time-step error norms during ``fit``.

    After training: ``layers[epoch] = {layer index: mean ‖δ⁽ˡ⁾‖}`` and
    ``time[epoch] = {layer index: [mean ‖δ[t]‖ for t = 1 … T]}``.
    """

    def __init__(self) -> None:
        self.layers: list[dict[int, float]] = []
        self.time: list[dict[int, list[float]]] = []

    def on_train_begin(self, logs=None) -> None:
        self.layers, self.time = [], []
        self.model.record_delta_norms = True
        self._recurrent = [i for i, layer in enumerate(self.model.layers) if hasattr(layer, "record_delta_norms")]
        for i in self._recurrent:
            self.model.layers[i].record_delta_norms = True

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._sum_layers: dict[int, float] = {}
        self._sum_time: dict[int, numpy.ndarray] = {}
        self._batches = 0

    def on_batch_end(self, batch, logs=None) -> None:
        self._batches += 1
        for i, v in self.model.delta_norms.items():
            self._sum_layers[i] = self._sum_layers.get(i, 0.0) + v
        for i in self._recurrent:
            norms = self.model.layers[i].delta_norms
            if norms is not None:
                arr = numpy.asarray(norms, dtype=numpy.float64)
                prev = self._sum_time.get(i)
                self._sum_time[i] = arr if prev is None or prev.shape != arr.shape else prev + arr

    def on_epoch_end(self, epoch, logs=None) -> None:
        n = max(1, self._batches)
        self.layers.append({i: v / n for i, v in sorted(self._sum_layers.items())})
        self.time.append({i: (v / n).tolist() for i, v in self._sum_time.items()})

    def on_train_end(self, logs=None) -> None:
        self.model.record_delta_norms = False
        for i in self._recurrent:
            self.model.layers[i].record_delta_norms = False


def plot_delta_norms(curves: dict[str, list[float]], path: str | os.PathLike, title: str = "",
                     xlabel: str = "time step t", ylabel: str = "mean ‖δ[t]‖") -> None:
    """One log-scale line per entry of ``curves`` (label → values), written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import save_png

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in curves.items():
        values = numpy.maximum(numpy.asarray(values, dtype=float), 1e-300)
        ax.semilogy(numpy.arange(1, len(values) + 1), values, marker="o", markersize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_png(fig, path)
