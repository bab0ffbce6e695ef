"""Shared by ``test_errata_000.py`` … ``test_errata_004.py``, the numerical evidence for
``docs/errata.md``: the slips in the MLP, CNN, RNN and LSTM derivations of the source notes
(``seeds/000``, ``seeds/001``, ``seeds/003``, ``seeds/004``) and the statements checked as
correct, one test file per note.

Every test computes a formula *as the note writes it*, the corrected formula, and a
finite-difference gradient (fourth-order central differences in float64), and compares them
with the norm-wise relative error

    rel(a, b) = max|a − b| / max(max|a|, max|b|).

A slip shows up as rel ≳ 0.1 against finite differences; a correct formula (and handgrad's
backward) as rel < 1e-6 (in practice 1e-10 or smaller). Running a note's file as a script
(``python tests/test_errata_003.py``) prints every number quoted in ``docs/errata.md`` for
that note.

Conventions: the notes write one sample as a column vector; here a batch is rows ``(N, F)``
and a weight matrix is ``(out, in)`` as in ``handgrad.layers.Dense``.
"""
from __future__ import annotations

import numpy as np

F64 = np.float64
FAIL = 0.1    # a note's formula "fails" if it is at least this far off
PASS = 1e-6   # a correct formula "passes" below this


def rel(a, b) -> float:
    a = np.asarray(a, dtype=F64)
    b = np.asarray(b, dtype=F64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-300)
    return float(np.abs(a - b).max() / scale)


def fd(f, arr, h=1e-4):
    """Fourth-order central differences of the scalar f() w.r.t. every entry of arr (in place)."""
    g = np.zeros_like(arr, dtype=F64)
    flat, gflat = arr.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        x0 = flat[i]
        vals = []
        for s in (2 * h, h, -h, -2 * h):
            flat[i] = x0 + s
            vals.append(f())
        flat[i] = x0
        gflat[i] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    return g


def sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def conv_true(X, W):
    """Valid *convolution* (flipped kernel) of a 2-D X with kernels W ``(..., m, m)``:
    out[..., a, b] = Σ_{k1,k2} W[..., k1, k2] X[a + m−1−k1, b + m−1−k2].

    This is ``000`` eq. (12) and ``004`` eq. (10) in 0-based indices: the note's output position
    i ∈ {m, …, n} (1-based) is a = i − m, and X(i − k1) is X[a + m − 1 − k1]."""
    m, n = W.shape[-1], X.shape[0]
    out = n - m + 1
    Z = np.zeros(W.shape[:-2] + (out, out))
    for k1 in range(m):
        for k2 in range(m):
            Z += W[..., k1, k2, None, None] * X[m - 1 - k1:m - 1 - k1 + out, m - 1 - k2:m - 1 - k2 + out]
    return Z
