r"""Deep autoencoders from stacks of RBMs (``003`` §9; Hinton & Salakhutdinov 2006).

Greedy layer-wise pretraining: RBM 1 models the data; RBM i+1 models the hidden *means*
E[h | v] of RBM i over the training set (the 2006 code feeds probabilities, not samples, to
the next layer: they carry more information and no sampling noise). The top RBM has gaussian
hidden units, so the code is linear (real-valued, unbounded) like PCA's. Each RBM added this
way improves a variational lower bound on the data's log-likelihood (Hinton, Osindero & Teh
2006), which is why the stack is a good starting point for fine-tuning.

``unroll`` turns the stack into an encoder–decoder: the encoder computes the hidden means
layer after layer (Dense with W_i, b_hidden,i, then σ for bernoulli units), the decoder the
visible means back down (Dense with W_iᵀ, b_visible,i, then σ for bernoulli units) — the
deterministic "mean-field" version of going up and down the stack. Weights are untied copies,
so backpropagation (fine-tuning, 2006 §"fine-tuning") adjusts encoder and decoder separately.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

from .. import backend
from ..layers import Dense, Sigmoid
from ..model import Sequential
from .machine import RBM
from .trainer import train_rbm


def check_stack(rbms, where: str) -> list[RBM]:
    """A non-empty list of RBMs whose sizes chain; TypeError/ValueError otherwise."""
    if isinstance(rbms, RBM):
        rbms = [rbms]
    try:
        rbms = list(rbms)
    except TypeError:
        raise TypeError(f"{where}: expected a list of RBMs, got {type(rbms).__name__}") from None
    if not rbms:
        raise ValueError(f"{where}: expected at least one RBM, got an empty list")
    for i, r in enumerate(rbms):
        if not isinstance(r, RBM):
            raise TypeError(f"{where}: expected RBMs, got {type(r).__name__} at position {i}")
    for i in range(len(rbms) - 1):
        if rbms[i].n_hidden != rbms[i + 1].n_visible:
            raise ValueError(f"{where}: rbms[{i}].n_hidden = {rbms[i].n_hidden} does not match "
                             f"rbms[{i + 1}].n_visible = {rbms[i + 1].n_visible}")
    return rbms


def _dense(n_in: int, n_out: int, W, b) -> Dense:
    layer = Dense(n_in, n_out, dtype=W.dtype, rng=0)
    xp = backend.array_module(layer.params["W"])
    layer.params["W"] = backend.asarray(W, dtype=W.dtype, xp=xp).copy()
    layer.params["b"] = backend.asarray(b, dtype=b.dtype, xp=xp).copy()
    layer.zero_grads()
    return layer


def unroll(rbms: Sequence[RBM], logits: bool = False) -> Sequential:
    """The autoencoder ``Sequential`` of a stack (see the module docstring), weights copied.

    Encoder, for i = 1..L: ``Dense(V_i, H_i)`` (W = W_i, b = b_hidden,i), then ``Sigmoid()``
    when RBM i's hidden units are bernoulli. Decoder, for i = L..1: ``Dense(H_i, V_i)``
    (W = W_iᵀ, b = b_visible,i), then ``Sigmoid()`` when its visible units are bernoulli.
    ``logits=True`` leaves out the last ``Sigmoid()`` (for ``BinaryCrossEntropy(from_logits=
    True)``). Input ``(N, V_1)``, output ``(N, V_1)``; the code is the output of layer
    ``encoder_length(rbms) - 1``.
    """
    rbms = check_stack(rbms, "unroll")
    layers = []
    for r in rbms:
        layers.append(_dense(r.n_visible, r.n_hidden, r.params["W"], r.params["b_hidden"]))
        if r.hidden == "bernoulli":
            layers.append(Sigmoid())
    for r in reversed(rbms):
        layers.append(_dense(r.n_hidden, r.n_visible, r.params["W"].T, r.params["b_visible"]))
        if r.visible == "bernoulli":
            layers.append(Sigmoid())
    if logits and isinstance(layers[-1], Sigmoid):
        layers.pop()
    return Sequential(layers)


def encoder_length(rbms: Sequence[RBM]) -> int:
    """How many layers of ``unroll(rbms)`` make the encoder (the code is their output)."""
    rbms = check_stack(rbms, "encoder_length")
    return sum(2 if r.hidden == "bernoulli" else 1 for r in rbms)


def random_autoencoder(sizes: Sequence[int], logits: bool = False, rng=0, dtype=backend.DEFAULT_DTYPE) -> Sequential:
    """The same architecture as ``unroll`` of a ``pretrain(sizes)`` stack, randomly initialised
    (Dense's N(0, 1/fan_in) weights, zero biases): the baseline pretraining is compared with."""
    gen = backend.make_rng(rng)
    layers = []
    pairs = list(itertools.pairwise(sizes))
    for i, (a, b) in enumerate(pairs):
        layers.append(Dense(a, b, rng=gen, dtype=dtype))
        if i < len(pairs) - 1:
            layers.append(Sigmoid())
    for a, b in reversed(pairs):
        layers.append(Dense(b, a, rng=gen, dtype=dtype))
        layers.append(Sigmoid())
    if logits:
        layers.pop()
    return Sequential(layers)


def pretrain(sizes: Sequence[int], x, epochs: int = 10, batch_size: int = 100, k: int = 1,
             persistent: bool = False, lr: float | None = None, linear_lr: float | None = None,
             validation_data=None, seed: int = 0, linear_code: bool = True, mean_visible: bool = True,
             dtype=backend.DEFAULT_DTYPE, progress_bar: bool | None = None, callback=None, **train_kw):
    """Greedy layer-wise pretraining of a stack of RBMs with the given ``sizes`` (e.g. ``(784,
    1000, 500, 250, 30)``) on ``x`` ``(N, sizes[0])``; returns ``(rbms, histories)``.

    RBM i is trained by :func:`train_rbm` on the hidden means of RBM i−1 (and on their
    validation counterparts); the top one has gaussian hidden units when ``linear_code`` and
    is trained with ``linear_lr`` (default 0.001, the 2006 code's rate); ``lr`` None means
    ``train_rbm``'s default (0.1, or 0.01 for PCD). ``mean_visible``
    (default True, the 2006 code) reconstructs with E[v | h]; it is turned off for PCD.
    ``callback(i, rbm, history)`` is called after each RBM.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"pretrain: expected at least two sizes (visible, hidden), got {sizes!r}")
    rbms, histories = [], []
    inp, val = x, validation_data
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        top = i == len(sizes) - 2
        hidden = "gaussian" if (top and linear_code) else "bernoulli"
        r = RBM(a, b, hidden=hidden, rng=seed * 1000 + i, dtype=dtype)
        rate = linear_lr if hidden == "gaussian" else lr      # None: train_rbm's default_lr
        h = train_rbm(r, inp, epochs=epochs, batch_size=batch_size, lr=rate, k=k, persistent=persistent,
                      mean_visible=mean_visible and not persistent, validation_data=val, seed=seed + i,
                      progress_bar=progress_bar, desc=f"rbm {i + 1}/{len(sizes) - 1}", **train_kw)
        rbms.append(r)
        histories.append(h)
        if callback is not None:
            callback(i, r, h)
        if not top:
            inp = hidden_means(r, inp)
            val = None if val is None else hidden_means(r, val)
    return rbms, histories


def hidden_means(r: RBM, x, batch: int = 10000):
    """E[h | v] over a whole data set, in blocks (the input of the next RBM)."""
    xp = backend.array_module(r.params["W"])
    return xp.concatenate([r.hidden_mean(x[s:s + batch]) for s in range(0, x.shape[0], batch)])
