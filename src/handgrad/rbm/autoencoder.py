r"""Fine-tuning an unrolled stack (``003`` §9; Hinton & Salakhutdinov 2006) and measuring it.

After ``unroll``, the autoencoder is an ordinary ``Sequential`` of ``Dense`` and ``Sigmoid``
layers, so fine-tuning is backpropagation through the existing hand-derived layers
(``003`` §2) with ``hg.fit(model, loss, optimizer, x, x, ...)``: the target is the input.
Two costs, both in ``handgrad.losses``:

- ``"bce"``: ``BinaryCrossEntropy(from_logits=True)`` on ``unroll(rbms, logits=True)`` —
  the cross-entropy of the 2006 paper for [0, 1] pixels read as probabilities; from logits
  its gradient at the output is simply (σ(z) − x)/N (no saturation of the last sigmoid).
- ``"mse"``: ``MeanSquaredError()`` (½Σ(x̂ − x)², halved as in ``003``) on ``unroll(rbms)``.

The measure reported is the paper's: squared error Σ_pixels (x − x̂)² per image, averaged over
the images, on pixels scaled to [0, 1].
"""
from __future__ import annotations

import numpy

from .. import losses
from ..model import Sequential
from .pca import squared_error_per_image

LOSSES = ("bce", "mse")


def loss_for(name: str):
    """The fine-tuning cost and whether the model must output logits."""
    if name == "bce":
        return losses.BinaryCrossEntropy(from_logits=True), True
    if name == "mse":
        return losses.MeanSquaredError(), False
    raise ValueError(f"autoencoder: expected loss 'bce' or 'mse', got {name!r}")


def reconstruct(model: Sequential, x, logits: bool, batch_size: int = 1000) -> numpy.ndarray:
    """The model's reconstruction of ``x`` ``(N, F)`` in [0, 1] (σ applied to logits)."""
    out = model.predict(x, batch_size=batch_size)
    if logits:
        out = 0.5 * (1.0 + numpy.tanh(0.5 * out))   # σ(z) without overflow
    return out


def reconstruction_error(model: Sequential, x, logits: bool, batch_size: int = 1000) -> float:
    """Σ over pixels of (x − x̂)², averaged over images (Hinton & Salakhutdinov 2006's unit)."""
    return squared_error_per_image(x, reconstruct(model, x, logits, batch_size))


def encode(model: Sequential, x, code_layer: int, batch_size: int = 1000) -> numpy.ndarray:
    """The code: the output of the first ``code_layer`` layers (``stack.encoder_length``)."""
    return Sequential(model.layers[:code_layer]).predict(x, batch_size=batch_size)
