"""Compiled loop nests (``accel.kernel``) for one time step of the LSTM and RNN layers.

Each kernel is one pass over a step's arrays doing what the NumPy path of ``lstm.py`` and
``recurrent.py`` does in several passes and temporaries; the layers call them when
:func:`handgrad.accel.jit_enabled` is True and the arrays are NumPy arrays, and keep their NumPy
code beside them for the other case (the tests compare the two). The transcendental functions
(tanh) are NumPy calls between the kernels for float64 (NumPy's tanh is more accurate than
numba's scalar one and, with SIMD, faster); float32 forward steps (:func:`lstm_step_float32`,
:func:`rnn_step_tanh_float32`) compute tanh inline as a rational function that vectorizes. The kernels are serial loops; arithmetic is IEEE in the order written (no
fast-math), and nothing depends on timing, so results are bit for bit the same from run to run.

Legend: N batch, H memory blocks / hidden units. LSTM gate blocks are in the layer's internal
order (I, F, O, g) along the last axis of a ``(N, 4H)`` step slice. Rows of a 2-D argument may
be strided (a time step of a batch-first array); the last axis is contiguous.
"""
from __future__ import annotations

from .. import accel
from .._math_kernels import tanh32


# Constants are cast to the arrays' dtype (``x.dtype.type``) so float32 arithmetic stays float32,
# and each inner loop touches few arrays: both keep the loops vectorizable.

# -- LSTM forward (``000`` eqs. (30)–(35); ``003`` §7) ------------------------------------------
@accel.kernel
def lstm_preactivation(a, r, b, peep, c_prev):
    """a ← a + r + b (+ ψ ⊙ c_{t−1} on the I, F, O blocks when ``peep`` has 3 rows): the
    weighted inputs A_t = x_t W_ihᵀ + h_{t−1} W_hhᵀ + b of one step, before the tanh
    (``a`` holds x_t W_ihᵀ, ``r`` h_{t−1} W_hhᵀ; with the layer's halved weights the sigmoid
    blocks hold A/2). ``peep`` ``(3, H)`` or ``(0, H)`` for none."""
    n, m = a.shape
    h = m // 4
    for k in range(n):
        for j in range(m):
            a[k, j] = (a[k, j] + r[k, j]) + b[j]
        if peep.shape[0] == 3:
            for q in range(3):
                for j in range(h):
                    a[k, q * h + j] = a[k, q * h + j] + peep[q, j] * c_prev[k, j]


@accel.kernel
def lstm_cell(a, c_prev, c):
    """Given a = tanh(A/2) on the I, F, O blocks and tanh(A_g) on the g block: the gates
    i, f, o = σ(A) = ½ tanh(A/2) + ½ written back into ``a``, and the cell state
    c_t = f ⊙ c_{t−1} + i ⊙ g into ``c`` (``000`` eqs. (30)–(34))."""
    n, m = a.shape
    h = m // 4
    half = a.dtype.type(0.5)
    for k in range(n):
        for j in range(3 * h):
            a[k, j] = a[k, j] * half + half
        for j in range(h):
            c[k, j] = a[k, h + j] * c_prev[k, j] + a[k, j] * a[k, 3 * h + j]


@accel.kernel
def lstm_step_float32(a, r, b, peep, c_prev, c, tc, h_out):
    """A whole float32 forward step in one pass (``000`` eqs. (30)–(35)): what
    :func:`lstm_preactivation`, ``tanh``, :func:`lstm_cell`, ``tanh(c_t)`` and ``o ⊙ tanh(c_t)``
    do in five, with tanh computed inline as a rational function so the loop vectorizes. On exit
    ``a`` holds i, f, o, g, ``c`` c_t, ``tc`` tanh(c_t), ``h_out`` h_t.

    tanh is :func:`handgrad._math_kernels.tanh32` (a rational function: within 4e-7 of the true
    tanh, 7 float32 ulp of 1; NumPy's: 6e-8). Only for float32: float64 steps (the gradient
    checks) keep NumPy's tanh; the backward is the same either way, the exact derivatives
    (``003`` §7) evaluated on the stored activations."""
    n, m = a.shape
    h = m // 4
    half = a.dtype.type(0.5)
    for k in range(n):
        for j in range(m):                                     # A_t (halved on I, F, O)
            a[k, j] = (a[k, j] + r[k, j]) + b[j]
        if peep.shape[0] == 3:
            for q in range(3):
                for j in range(h):
                    a[k, q * h + j] = a[k, q * h + j] + peep[q, j] * c_prev[k, j]
        for j in range(3 * h):                                 # i, f, o = ½ tanh(A/2) + ½
            a[k, j] = tanh32(a[k, j]) * half + half
        for j in range(h):                                     # g = tanh(A_g)
            a[k, 3 * h + j] = tanh32(a[k, 3 * h + j])
        for j in range(h):                                     # c_t, tanh(c_t), h_t = o ⊙ tanh(c_t)
            s = a[k, h + j] * c_prev[k, j] + a[k, j] * a[k, 3 * h + j]
            c[k, j] = s
            t = tanh32(s)
            tc[k, j] = t
            h_out[k, j] = a[k, 2 * h + j] * t


# -- LSTM backward (``003`` §7 statements (2)–(7)) ----------------------------------------------
@accel.kernel
def lstm_step_back(gates, c_prev, tc, eps_a, dc, peep, d):
    """One step back through the cell, from the stored gates i, f, o, g, c_{t−1} and tanh(c_t):
    with ε_a = ``eps_a`` (7) and ``dc`` = ε_s[t+1] f_{t+1} + Σ_G ψ_G ⊙ δ_G[t+1] on entry::

        ε_s = ε_a ⊙ o ⊙ (1 − tanh² c_t) + dc                   (6)
        δ_I = ε_s ⊙ g ⊙ i(1 − i)                               (5)
        δ_F = ε_s ⊙ c_{t−1} ⊙ f(1 − f)                         (4)
        δ_O = ε_a ⊙ tanh(c_t) ⊙ o(1 − o)                       (2)
        δ_g = ε_s ⊙ i ⊙ (1 − g²)                               (3)

    into ``d`` ``(N, 4H)`` (blocks I, F, O, g), and on exit ``dc`` = ε_s ⊙ f + Σ_G ψ_G ⊙ δ_G,
    the cell-state error reaching step t − 1 (``peep`` ``(3, H)`` rows I, F, O, or ``(0, H)``).
    ``dc`` holds ε_s in between."""
    n, h = eps_a.shape
    one = gates.dtype.type(1.0)
    for k in range(n):
        for j in range(h):                                     # (6)
            t = tc[k, j]
            dc[k, j] = eps_a[k, j] * (gates[k, 2 * h + j] * (one - t * t)) + dc[k, j]
        for j in range(h):                                     # (5)
            i = gates[k, j]
            d[k, j] = dc[k, j] * (gates[k, 3 * h + j] * (i * (one - i)))
        for j in range(h):                                     # (4)
            f = gates[k, h + j]
            d[k, h + j] = dc[k, j] * (c_prev[k, j] * (f * (one - f)))
        for j in range(h):                                     # (2)
            o = gates[k, 2 * h + j]
            d[k, 2 * h + j] = eps_a[k, j] * (tc[k, j] * (o * (one - o)))
        for j in range(h):                                     # (3)
            g = gates[k, 3 * h + j]
            d[k, 3 * h + j] = dc[k, j] * (gates[k, j] * (one - g * g))
        if peep.shape[0] == 3:
            for j in range(h):
                dc[k, j] = dc[k, j] * gates[k, h + j] + (
                    (peep[0, j] * d[k, j] + peep[1, j] * d[k, h + j]) + peep[2, j] * d[k, 2 * h + j])
        else:
            for j in range(h):
                dc[k, j] = dc[k, j] * gates[k, h + j]


# -- RNN forward (``003`` §6) -------------------------------------------------------------------
@accel.kernel
def rnn_step_tanh_float32(z, r, h):
    """h_t = tanh(z + r) with z = x_t W_ihᵀ + b and r = h_{t−1} W_hhᵀ, in one pass (tanh by
    :func:`handgrad._math_kernels.tanh32`; float32 only)."""
    n, m = z.shape
    for k in range(n):
        for j in range(m):
            h[k, j] = tanh32(z[k, j] + r[k, j])


# -- RNN backward (``003`` §6 statement (2)) ----------------------------------------------------
@accel.kernel
def rnn_step_back(eps, h, delta, tanh):
    """δ[t] = act'(z_t) ⊙ ε[t] with act' = 1 − h² (tanh) or h(1 − h) (sigmoid), from h_t."""
    n, m = eps.shape
    one = h.dtype.type(1.0)
    for k in range(n):
        if tanh:
            for j in range(m):
                v = h[k, j]
                delta[k, j] = eps[k, j] * (one - v * v)
        else:
            for j in range(m):
                v = h[k, j]
                delta[k, j] = eps[k, j] * (v * (one - v))
