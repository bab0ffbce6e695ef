"""Ready-made models with the training recipes that reach their reported accuracy.

A preset builds a ``Sequential`` for inputs of shape ``input_shape`` (pixels scaled to
[0, 1]; the model standardizes them itself with a ``Normalize`` layer) and names its loss and
default hyperparameters. ``handgrad train PRESET`` and ``handgrad gradcheck PRESET`` use them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import layers as L, losses
from .model import Sequential

# Fashion-MNIST pixel statistics over the 60,000 training images (scaled to [0, 1]).
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530

ACTIVATIONS = {"relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh}


@dataclass
class Preset:
    name: str
    description: str
    build: Callable[..., Sequential]
    loss: Callable[[], losses.Loss]
    input_shape: tuple[int, ...]
    defaults: dict = field(default_factory=dict)
    #: which data set and evaluation it uses (see ``handgrad.tasks``)
    task: str = "fashion"


def mlp(hidden=(256, 128), activation: str = "relu", dropout: float = 0.0, in_features: int = 784,
        classes: int = 10, weight_init: str | None = None, seed: int = 0, dtype="float32") -> Sequential:
    """Normalize → [Dense → activation (→ Dropout)] × len(hidden) → Dense(classes) (logits)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"mlp: unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    if not hidden or any((not isinstance(h, int)) or h < 1 for h in hidden):
        raise ValueError(f"mlp: expected hidden to be a non-empty list of positive widths, got {hidden!r}")
    init = weight_init or ("he_normal" if activation == "relu" else "normal_fan_in")
    layers: list[L.Layer] = [L.Normalize(FASHION_MEAN, FASHION_STD)]
    widths = [in_features, *hidden]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [L.Dense(a, b, weight_init=init, rng=seed * 1000 + i, dtype=dtype), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(L.Dropout(dropout))
    layers.append(L.Dense(widths[-1], classes, weight_init="normal_fan_in", rng=seed * 1000 + len(hidden), dtype=dtype))
    return Sequential(layers)


def textbook(hidden: int = 100, seed: int = 0, dtype="float32", **_) -> Sequential:
    """The network of ``003`` §2: one sigmoid hidden layer and sigmoid outputs, trained with
    the halved squared error and plain SGD; weights N(0, 1/fan_in), biases N(0, 1) (§4)."""
    return Sequential([
        L.Normalize(FASHION_MEAN, FASHION_STD),
        L.Dense(784, hidden, bias_init="normal", rng=seed * 1000, dtype=dtype), L.Sigmoid(),
        L.Dense(hidden, 10, bias_init="normal", rng=seed * 1000 + 1, dtype=dtype), L.Sigmoid(),
    ])


POOLS = {"max": L.MaxPool2D, "avg": L.AvgPool2D}


def lenet5(activation: str = "relu", pool: str = "max", dropout: float = 0.0, classes: int = 10,
           seed: int = 0, dtype="float32", **_) -> Sequential:
    """LeNet-5 (``001`` §3; LeCun et al. 1998) for 1×28×28 images: conv 6@5×5 (padding 2) →
    act → pool 2 → conv 16@5×5 → act → pool 2 → dense 120 → act → dense 84 → act → dense 10.
    ``activation="sigmoid", pool="avg"`` gives the notes' classic sigmoid / mean-pooling net."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"lenet5: unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    if pool not in POOLS:
        raise ValueError(f"lenet5: unknown pool {pool!r}; expected one of {sorted(POOLS)}")
    act, P = ACTIVATIONS[activation], POOLS[pool]
    init = "he_normal" if activation == "relu" else "normal_fan_in"
    r = seed * 1000
    layers: list[L.Layer] = [
        L.Normalize(FASHION_MEAN, FASHION_STD),
        L.Conv2D(1, 6, 5, padding=2, weight_init=init, rng=r, dtype=dtype), act(), P(2),
        L.Conv2D(6, 16, 5, weight_init=init, rng=r + 1, dtype=dtype), act(), P(2),
        L.Flatten(),
        L.Dense(400, 120, weight_init=init, rng=r + 2, dtype=dtype), act(),
    ]
    if dropout:
        layers.append(L.Dropout(dropout))
    layers += [L.Dense(120, 84, weight_init=init, rng=r + 3, dtype=dtype), act()]
    if dropout:
        layers.append(L.Dropout(dropout))
    layers.append(L.Dense(84, classes, rng=r + 4, dtype=dtype))
    return Sequential(layers)


CELLS = {"lstm": L.LSTM, "rnn": L.RNN}


def sequence_classifier(cell: str = "lstm", hidden: int = 128, seed: int = 0, dtype="float32", **_) -> Sequential:
    """Sequential Fashion-MNIST: each image is 28 steps of 28 pixels (its rows); a recurrent
    layer reads them and a Dense layer classifies its last state (many-to-one)."""
    if cell not in CELLS:
        raise ValueError(f"sequence_classifier: unknown cell {cell!r}; expected one of {sorted(CELLS)}")
    return Sequential([
        L.Normalize(FASHION_MEAN, FASHION_STD),
        CELLS[cell](28, hidden, return_sequences=False, rng=seed * 1000, dtype=dtype),
        L.Dense(hidden, 10, rng=seed * 1000 + 1, dtype=dtype),
    ])


def reber_net(cell: str = "lstm", hidden: int = 16, seed: int = 0, dtype="float32", **_) -> Sequential:
    """Next-symbol prediction on embedded Reber strings (Hochreiter & Schmidhuber 1997):
    one-hot symbols in, at every step the logits of the 7 symbols (multi-label: every legal
    successor is a target). Zero vectors mark padding (``mask_value=0``)."""
    if cell not in CELLS:
        raise ValueError(f"reber_net: unknown cell {cell!r}; expected one of {sorted(CELLS)}")
    return Sequential([
        CELLS[cell](7, hidden, mask_value=0.0, rng=seed * 1000, dtype=dtype),
        L.Dense(hidden, 7, rng=seed * 1000 + 1, dtype=dtype),
    ])


def adding_net(cell: str = "lstm", hidden: int = 64, seed: int = 0, dtype="float32", **_) -> Sequential:
    """The adding problem (Hochreiter & Schmidhuber 1997): (value, marker) pairs in, the sum of
    the two marked values out, read from the last state."""
    if cell not in CELLS:
        raise ValueError(f"adding_net: unknown cell {cell!r}; expected one of {sorted(CELLS)}")
    return Sequential([
        CELLS[cell](2, hidden, return_sequences=False, rng=seed * 1000, dtype=dtype),
        L.Dense(hidden, 1, rng=seed * 1000 + 1, dtype=dtype),
    ])


def char_lm(vocab_size: int = 64, hidden: int = 128, cell: str = "lstm", seed: int = 0, dtype="float32",
            stateful: bool = True, **_) -> Sequential:
    """Character-level language model: one-hot characters in, next-character logits out at every
    step; stateful, so truncated BPTT carries the state across consecutive chunks."""
    if cell not in CELLS:
        raise ValueError(f"char_lm: unknown cell {cell!r}; expected one of {sorted(CELLS)}")
    return Sequential([
        CELLS[cell](vocab_size, hidden, stateful=stateful, rng=seed * 1000, dtype=dtype),
        L.Dense(hidden, vocab_size, rng=seed * 1000 + 1, dtype=dtype),
    ])


PRESETS: dict[str, Preset] = {
    "mlp": Preset(
        "mlp", "MLP 784-256-128-10, ReLU, dropout 0.2, softmax cross-entropy, SGD momentum 0.9, L2 5e-4, cosine decay",
        mlp, losses.SoftmaxCrossEntropy, (784,),
        dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=30, batch_size=128,
             schedule="cosine", dropout=0.2)),
    "lenet5": Preset(
        "lenet5", "LeNet-5 (conv 6@5x5, max-pool, conv 16@5x5, max-pool, 120, 84, 10), ReLU, SGD momentum 0.9, cosine decay",
        lenet5, losses.SoftmaxCrossEntropy, (1, 28, 28),
        dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=30, batch_size=128,
             schedule="cosine", dropout=0.0)),
    "lstm": Preset(
        "lstm", "LSTM(28→128) over the 28 rows of each image, Dense(128→10) on the last state, Adam, cosine",
        lambda **kw: sequence_classifier("lstm", **kw), losses.SoftmaxCrossEntropy, (28, 28),
        dict(optimizer="adam", lr=2e-3, momentum=0.0, weight_decay=0.0, epochs=25, batch_size=128,
             schedule="cosine", dropout=0.0, clip_norm=5.0)),
    "rnn": Preset(
        "rnn", "Elman RNN(28→128, tanh) over the 28 rows of each image, Dense(128→10), Adam, cosine",
        lambda **kw: sequence_classifier("rnn", **kw), losses.SoftmaxCrossEntropy, (28, 28),
        dict(optimizer="adam", lr=1e-3, momentum=0.0, weight_decay=0.0, epochs=25, batch_size=128,
             schedule="cosine", dropout=0.0, clip_norm=1.0)),
    "reber": Preset(
        "reber", "embedded Reber grammar, next-symbol prediction: LSTM(7→16) → Dense(16→7), multi-label cross-entropy",
        reber_net, lambda: losses.BinaryCrossEntropy(), (None, 7),
        dict(optimizer="adam", lr=1e-2, momentum=0.0, weight_decay=0.0, epochs=30, batch_size=32,
             schedule="none", dropout=0.0, clip_norm=None), task="reber"),
    "adding": Preset(
        "adding", "adding problem (T=100): LSTM(2→64) → Dense(64→1) on the last state, halved MSE",
        adding_net, losses.MeanSquaredError, (None, 2),
        dict(optimizer="adam", lr=1e-2, momentum=0.0, weight_decay=0.0, epochs=20, batch_size=64,
             schedule="none", dropout=0.0, clip_norm=1.0), task="adding"),
    "charlm": Preset(
        "charlm", "character language model: stateful LSTM(V→128) → Dense(128→V), truncated BPTT over 50-char chunks",
        char_lm, lambda: losses.SoftmaxCrossEntropy(), (None, None),
        dict(optimizer="adam", lr=3e-3, momentum=0.0, weight_decay=0.0, epochs=10, batch_size=32,
             schedule="none", dropout=0.0, clip_norm=5.0), task="charlm"),
    "textbook": Preset(
        "textbook", "003 §2: 784-100-10 sigmoid network, halved MSE, plain SGD",
        textbook, losses.MeanSquaredError, (784,),
        dict(optimizer="sgd", lr=3.0, momentum=0.0, weight_decay=0.0, epochs=30, batch_size=10,
             schedule="none", dropout=0.0)),
}


def get(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]
