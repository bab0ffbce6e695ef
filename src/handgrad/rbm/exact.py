r"""Exact quantities of small RBMs by enumeration: log Z, log p(v), the exact log-likelihood
gradient and the pseudo-log-likelihood — the references CD's estimates are checked against.

Enumeration runs over the 2^k joint states of one **bernoulli** layer (the smaller one when
both are; k ≤ 20) with the other layer summed or integrated out in closed form: with x the
enumerated layer and y the other one, F(x) = −log Σ_y exp(−E(x, y)) is (F1)/(F2) of
:mod:`handgrad.rbm.machine` with the roles of the layers as needed, and::

    log Z = log Σ_x exp(−F(x))                       by log-sum-exp (max subtracted first)
    p(x)  = exp(−F(x) − log Z)

The model statistics of the gradient (G2) are then exact sums over x with y replaced by its
conditional mean: ⟨y xᵀ⟩ = Σ_x p(x) E[y | x] xᵀ, ⟨x⟩ = Σ_x p(x) x, ⟨y⟩ = Σ_x p(x) E[y | x].
Everything is computed in float64 whatever the RBM's dtype, vectorized over blocks of states.
"""
from __future__ import annotations

import numpy

from .. import backend
from .energy import is_rbm, own_term, sigmoid, softplus, summed_out

MAX_ENUMERATED_UNITS = 20
_BLOCK_ELEMENTS = 1 << 22  # states × other-layer width per vectorized block (32 MiB in float64)


def _float64_params(r):
    return {k: backend.to_numpy(p).astype(numpy.float64) for k, p in r.params.items()}


def _side(r, where: str):
    """(enumerated side, k): the smaller bernoulli layer; ValueError past 2^20 states."""
    options = [(n, side) for side, kind, n in (("visible", r.visible, r.n_visible), ("hidden", r.hidden, r.n_hidden))
               if kind == "bernoulli"]
    n, side = min(options)
    if n > MAX_ENUMERATED_UNITS:
        raise ValueError(f"{where}: exact enumeration needs a bernoulli layer of at most {MAX_ENUMERATED_UNITS} "
                         f"units (2^{MAX_ENUMERATED_UNITS} states); {r!r} has none smaller than {n} units")
    return side, n


def _layers(r, P, side: str):
    """(M, b_x, b_y, kind_y): x @ M + b_y is the input to the other layer."""
    if side == "visible":
        return P["W"].T, P["b_visible"], P["b_hidden"], r.hidden
    return P["W"], P["b_hidden"], P["b_visible"], r.visible


def _blocks(k: int, other: int):
    total = 1 << k
    step = max(1, min(total, _BLOCK_ELEMENTS // max(1, other, k)))
    for start in range(0, total, step):
        idx = numpy.arange(start, min(total, start + step), dtype=numpy.int64)
        yield ((idx[:, None] >> numpy.arange(k, dtype=numpy.int64)) & 1).astype(numpy.float64)


def _neg_free(x, M, b_x, b_y, kind_y):
    a = x @ M + b_y
    return -(own_term(x, b_x, "bernoulli") + summed_out(a, b_y, kind_y)), a


def _log_partition(r, P, where: str) -> float:
    side, k = _side(r, where)
    M, b_x, b_y, kind_y = _layers(r, P, side)
    negf = numpy.concatenate([_neg_free(x, M, b_x, b_y, kind_y)[0] for x in _blocks(k, M.shape[1])])
    top = float(negf.max())
    return top + float(numpy.log(numpy.exp(negf - top).sum()))


def log_partition(r) -> float:
    """log Z, exact (see the module docstring); ``ValueError`` when no bernoulli layer has at
    most 20 units."""
    if not is_rbm(r):
        raise TypeError(f"log_partition: expected an RBM, got {type(r).__name__}")
    return _log_partition(r, _float64_params(r), "log_partition")


def _free_energy64(r, P, v):
    a = v @ P["W"].T + P["b_hidden"]
    return own_term(v, P["b_visible"], r.visible) + summed_out(a, P["b_hidden"], r.hidden)


def log_likelihood(r, v):
    """log p(v) = −F(v) − log Z ``(N,)`` float64, exact (a log-density for gaussian visibles;
    a log-probability for binary v on bernoulli visibles)."""
    if not is_rbm(r):
        raise TypeError(f"log_likelihood: expected an RBM, got {type(r).__name__}")
    v = backend.to_numpy(r._check(v, "visible", "log_likelihood")).astype(numpy.float64)
    P = _float64_params(r)
    return -_free_energy64(r, P, v) - _log_partition(r, P, "log_likelihood")


def exact_grads(r, v) -> dict:
    """The exact gradient of the mean negative log-likelihood of ``v`` ``(N, V)``, (G1)–(G2)
    with both expectations computed exactly: ``{"W": (H, V), "b_hidden": (H,), "b_visible":
    (V,)}`` in the RBM's dtype (same limit as ``log_partition``)."""
    if not is_rbm(r):
        raise TypeError(f"exact_grads: expected an RBM, got {type(r).__name__}")
    v = backend.to_numpy(r._check(v, "visible", "exact_grads")).astype(numpy.float64)
    if v.shape[0] == 0:
        raise ValueError("exact_grads: expected at least one row of data, got shape (0, ...)")
    P = _float64_params(r)
    side, k = _side(r, "exact_grads")
    M, b_x, b_y, kind_y = _layers(r, P, side)
    log_z = _log_partition(r, P, "exact_grads")
    xy = numpy.zeros((M.shape[0], M.shape[1]))          # Σ p(x) x E[y|x]ᵀ  (k, other)
    ex, ey = numpy.zeros(M.shape[0]), numpy.zeros(M.shape[1])
    for x in _blocks(k, M.shape[1]):
        negf, a = _neg_free(x, M, b_x, b_y, kind_y)
        p = numpy.exp(negf - log_z)
        my = sigmoid(a) if kind_y == "bernoulli" else a
        xy += (x * p[:, None]).T @ my
        ex += p @ x
        ey += p @ my
    hv_model, h_model, v_model = (xy.T, ey, ex) if side == "visible" else (xy, ex, ey)
    a_data = v @ P["W"].T + P["b_hidden"]
    h_data = sigmoid(a_data) if r.hidden == "bernoulli" else a_data
    n = v.shape[0]
    grads = {"W": -(h_data.T @ v / n - hv_model),
             "b_hidden": -(h_data.mean(axis=0) - h_model),
             "b_visible": -(v.mean(axis=0) - v_model)}
    xp = backend.array_module(r.params["W"])
    return {key: backend.asarray(g, dtype=r.dtype, xp=xp) for key, g in grads.items()}


def pseudo_log_likelihood(r, v):
    r"""Σ_i log p(v_i | v_−i) ``(N,)`` float64, exact, for binary v on bernoulli visibles.

    p(v_i | v_−i) = e^{−F(v)} / (e^{−F(v)} + e^{−F(ṽ⁽ⁱ⁾)}), ṽ⁽ⁱ⁾ = v with unit i flipped, so
    log p(v_i | v_−i) = −softplus(F(v) − F(ṽ⁽ⁱ⁾)) (Besag 1975; the monitor of Marlin et al.
    2010). Flipping v_i changes −vᵀb_v by −(1 − 2v_i) b_v,i and a_h by (1 − 2v_i) W[:, i], so
    all V flips of a row are one ``(V, H)`` block, computed for blocks of rows at once.
    """
    where = "pseudo_log_likelihood"
    if not is_rbm(r):
        raise TypeError(f"{where}: expected an RBM, got {type(r).__name__}")
    if r.visible != "bernoulli":
        raise ValueError(f"{where}: needs bernoulli visible units, {r!r} has gaussian ones")
    v = backend.to_numpy(r._check(v, "visible", where)).astype(numpy.float64)
    if not numpy.all((v == 0) | (v == 1)):
        raise ValueError(f"{where}: needs binary data (0 or 1 in every entry); got values in "
                         f"[{v.min():g}, {v.max():g}] that are not all 0 or 1")
    P = _float64_params(r)
    W, b_h, b_v = P["W"], P["b_hidden"], P["b_visible"]
    H, V = W.shape
    out = numpy.empty(v.shape[0])
    rows = max(1, _BLOCK_ELEMENTS // (V * H))
    for s in range(0, v.shape[0], rows):
        vb = v[s:s + rows]
        a = vb @ W.T + b_h                                  # (n, H)
        sign = 1.0 - 2.0 * vb                               # +1 where v_i = 0 is flipped to 1
        a_flip = a[:, None, :] + sign[:, :, None] * W.T[None, :, :]   # (n, V, H)
        delta = -sign * b_v + summed_out(a_flip, b_h, r.hidden) - summed_out(a, b_h, r.hidden)[:, None]
        # delta = F(ṽ⁽ⁱ⁾) − F(v); log p(v_i | v_−i) = −softplus(−delta)
        out[s:s + rows] = -softplus(-delta).sum(axis=1)
    return out
