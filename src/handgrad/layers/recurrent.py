"""Elman recurrent layer with backpropagation through time (``003`` §6; ``000`` §3).

Legend: N batch, T time steps, F input features, H hidden units. Sequences are batch-first
``(N, T, F)``. Initial states, ``stateful``, ``mask_value``, ``record_delta_norms`` and the
loops over time are shared with ``LSTM`` (``layers/bptt.py``); this file holds the RNN's own
equations.
"""
from __future__ import annotations

from typing import Any

import numpy

from .. import backend, functional as F
from .._checks import check_option
from . import _recurrent_kernels as K
from .base import register
from .bptt import Recurrent


@register
class RNN(Recurrent):
    r"""Elman recurrent layer: h_t = act(W_ih x_t + W_hh h_{t−1} + b), h_0 = 0 (or given).

    Forward (``003`` §6: z[t]⁽²⁾ = b + W a[t]⁽¹⁾ + ω a[t−1]⁽²⁾; ``000`` §3): the input term
    X W_ihᵀ + b is one matrix product for all steps; the loop over t adds h_{t−1} W_hhᵀ.

    Backward through time, with e_t = dC/dh_t arriving from the layer above and
    δ[t] = dC/dz_t (``003`` §6 statements (2)–(5)), for t = T … 1::

        δ[t]      = act'(z_t) ⊙ (e_t + δ[t+1] W_hh)       (2), δ[T+1] = 0
        dC/db     = Σ_t Σ_n δ[t]                          (3)
        dC/dW_ih  = Σ_t δ[t]ᵀ x_t                         (4)
        dC/dW_hh  = Σ_t δ[t]ᵀ h_{t−1}                     (5)
        dC/dx_t   = δ[t] W_ih,   dC/dh_0 = δ[1] W_hh

    (``003`` writes statement (2) with the output layer's w⁽³⁾δ⁽³⁾ in place of e_t: here the
    output layer is a separate ``Dense`` whose backward supplies e_t.) The three parameter
    sums are single matrix products over all (n, t) after the loop. act is tanh
    (act' = 1 − h²) or sigmoid (act' = h(1 − h)).

    Input ``(N, T, F)``; output ``(N, T, H)``, or ``(N, H)`` (last step) with
    ``return_sequences=False``. Params ``W_ih`` ``(H, F)``, ``W_hh`` ``(H, H)``, ``b`` ``(H,)``;
    weights N(0, 1/fan_in) by default, biases zero.
    """

    # One gate block: a step's work is a quarter of the LSTM's, and splitting 64-row blocks over
    # threads cost more than it saved (measured on 2 cores at batch 128; it gains at 512).
    part_rows = 128

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh",
                 return_sequences: bool = True, *, stateful: bool = False, mask_value: float | None = None,
                 record_delta_norms: bool = False, weight_init: str = "normal_fan_in", rng=None,
                 dtype=backend.DEFAULT_DTYPE) -> None:
        super().__init__()
        where = self._setup(input_size, hidden_size, return_sequences, stateful, mask_value, record_delta_norms)
        self.activation = check_option(activation, where, "activation", ("tanh", "sigmoid"))
        self._init_params(weight_init, rng, dtype, where)
        self.zero_grads()

    def _begin_forward(self, run) -> None:
        run.W_hhT = run.w["W_hh"].T
        run.tmp = run.xp.empty(run.A.shape[1:], dtype=run.A.dtype)

    def _step(self, run, t: int) -> None:
        """h_t = act(A_t + h_{t−1} W_hhᵀ), A_t = x_t W_ihᵀ + b (``003`` §6: z[t]⁽²⁾)."""
        hs = run.states[0]
        z, h = run.A[t], hs[t + 1]
        r = run.xp.matmul(hs[t], run.W_hhT, out=run.tmp)
        if run.jit and self.activation == "tanh" and z.dtype == numpy.float32:
            K.rnn_step_tanh_float32(z, r, h)                # z + r and tanh in one pass
            return
        z += r
        if self.activation == "tanh":
            run.xp.tanh(z, out=h)
        else:
            h[...] = F.sigmoid(z)

    def _begin_backward(self, run, dtype):
        return run.xp.empty((run.A.shape[1], self.hidden_size), dtype=dtype)  # δ[t] W_hh of the latest step

    def _step_back(self, run, back, t: int, errs, delta):
        """δ[t] = act'(z_t) ⊙ ε[t] (statement (2)), ε[t] = e_t + δ[t+1] W_hh; returns δ[t] W_hh."""
        xp, (eps,), h = run.xp, errs, run.states[0][t + 1]
        tanh = self.activation == "tanh"
        if run.jit:
            K.rnn_step_back(eps, h, delta, tanh)                     # (2) in one pass
        else:                                                        # act' = 1 − h² or (1 − h) h
            if tanh:
                xp.multiply(h, h, out=delta)
                xp.subtract(1, delta, out=delta)
            else:
                xp.subtract(1, h, out=delta)
                delta *= h
            delta *= eps                                             # (2)
        return [xp.matmul(delta, run.w["W_hh"], out=back)]

    def get_config(self) -> dict[str, Any]:
        return {**self._common_config(), "activation": self.activation, "weight_init": self.weight_init}
