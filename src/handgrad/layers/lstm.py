"""Long short-term memory layer with backpropagation through time (``003`` §7; ``000`` §3.3).

Legend: N batch, T time steps, F input features, H memory blocks (single-celled). Initial
states, ``stateful``, ``mask_value``, ``record_delta_norms`` and the loops over time are shared
with ``RNN`` (``layers/bptt.py``); this file holds the LSTM's own equations.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy

from .. import backend, init
from . import _recurrent_kernels as K
from .._checks import check_bool
from .base import ParamCache, register
from .bptt import Recurrent


@register
class LSTM(Recurrent):
    r"""LSTM with input (I), forget (F) and output (O) gates and a cell candidate (g), gate rows
    stacked in the order I, F, g, O (as PyTorch).

    Forward (``000`` eqs. (30)–(35); ``003`` §7), with A_t = x_t W_ihᵀ + h_{t−1} W_hhᵀ + b
    split into four blocks of H and, with ``peepholes=True``, ψ_G ⊙ c_{t−1} added to the
    I, F and O blocks (``003`` §7 peeks at the *previous* cell state for all three gates)::

        i = σ(A_I),  f = σ(A_F),  g = tanh(A_g),  o = σ(A_O)
        c_t = f ⊙ c_{t−1} + i ⊙ g                 (s[t] of 003)
        h_t = o ⊙ tanh(c_t)                       (a[t]⁽²⁾ of 003)

    Backward through time (``003`` §7 statements (2)–(11)), with e_t = dC/dh_t from above,
    for t = T … 1::

        ε_a[t] = e_t + Σ_G δ_G[t+1] W_hh,G                                   (7)
        ε_s[t] = ε_a[t] ⊙ o ⊙ (1 − tanh² c_t) + ε_s[t+1] ⊙ f_{t+1}
                 + Σ_G ψ_G ⊙ δ_G[t+1]                                          (6)
        δ_O = ε_a ⊙ tanh(c_t) ⊙ o(1 − o)                                      (2)
        δ_g = ε_s ⊙ i ⊙ (1 − g²)                                              (3)
        δ_F = ε_s ⊙ c_{t−1} ⊙ f(1 − f)                                        (4)
        δ_I = ε_s ⊙ g ⊙ i(1 − i)                                              (5)
        dC/db = Σ δ,  dC/dW_ih = Σ δᵀ x_t,  dC/dW_hh = Σ δᵀ h_{t−1}          (8)–(10), (12)–(14)
        dC/dψ_G = Σ_t Σ_n δ_G ⊙ c_{t−1}                                       (11)

    The sigmoid gates use σ' = σ(1 − σ); ``000`` eqs. (37)–(41) differentiate them as tanh,
    a slip recorded in ``docs/errata.md``. The parameter sums are single matrix products over
    all (n, t) after the loop. With the JIT on (:func:`handgrad.accel.jit_enabled`), each
    step's element-wise work runs as the compiled kernels of ``layers/_recurrent_kernels.py``
    (a float32 forward step in one pass, with a vectorized rational tanh within 4e-7 of
    the true tanh; the backward step (2)–(6) in one pass from the stored gates); otherwise as NumPy
    operations computing the same equations.

    Input ``(N, T, F)``; output ``(N, T, H)``, or ``(N, H)`` with ``return_sequences=False``.
    Params ``W_ih`` ``(4H, F)``, ``W_hh`` ``(4H, H)``, ``b`` ``(4H,)`` (weights N(0, 1/fan_in),
    biases zero, forget-gate bias ``forget_bias``, default 1), and with peepholes ``w_peep``
    ``(3, H)`` rows (I, F, O), zero-initialized. PyTorch's ``nn.LSTM`` has two biases
    b_ih + b_hh; ours is their sum.
    """

    splits_well = True
    split_min_rows = 64  # 16-row parts of a batch of 32 made the epoch 1.5× slower than one piece (2 cores)

    n_states = 2
    n_gates = 4

    def __init__(self, input_size: int, hidden_size: int, peepholes: bool = False, return_sequences: bool = True,
                 *, stateful: bool = False, mask_value: float | None = None, record_delta_norms: bool = False,
                 forget_bias: float = 1.0, weight_init: str = "normal_fan_in", rng=None,
                 dtype=backend.DEFAULT_DTYPE) -> None:
        super().__init__()
        where = self._setup(input_size, hidden_size, return_sequences, stateful, mask_value, record_delta_norms)
        self.peepholes = check_bool(peepholes, where, "peepholes")
        self.forget_bias = float(forget_bias)
        if self.forget_bias != self.forget_bias or abs(self.forget_bias) == float("inf"):
            raise ValueError(f"{where}: expected forget_bias to be a finite number, got {forget_bias!r}")
        gen, dt, xp = self._init_params(weight_init, rng, dtype, where)
        H = hidden_size
        if self.forget_bias and not init.is_deferred():  # a deferred bias is a read-only placeholder
            self.params["b"][H:2 * H] = self.forget_bias
        if peepholes:
            self.params["w_peep"] = backend.asarray(init.bias("zeros", (3, H), gen, dt, where), xp=xp)
        self.zero_grads()
        self._internal = ParamCache(("W_ih", "W_hh", "b", "w_peep"))

    def __repr__(self) -> str:
        return f"LSTM({self.input_size}→{self.hidden_size}{', peepholes' if self.peepholes else ''})"

    # -- the weights in the internal gate order, built once per parameter change ------------
    def _weights(self) -> dict[str, Any]:
        return self._internal.get(self.params, self._build_internal)

    def _build_internal(self, W_ih, W_hh, b, w_peep) -> dict[str, Any]:
        """Internally the gate blocks are kept in the order (I, F, O, g), so the three sigmoid
        gates are one contiguous block (the public parameters keep PyTorch's order I, F, g, O);
        ``*_half`` have the sigmoid rows halved for the forward: σ(a) = ½ tanh(a/2) + ½, so one
        tanh over all four blocks then ½·+½ on the gate block gives every activation. Built at
        the first forward, never by the constructor (a rebuilt layer allocates nothing until
        its parameters are real)."""
        xp = backend.array_module(W_ih)
        H = self.hidden_size
        perm = numpy.concatenate([numpy.arange(0, 2 * H), numpy.arange(3 * H, 4 * H), numpy.arange(2 * H, 3 * H)])
        half = xp.ones(4 * H, dtype=W_ih.dtype)
        half[:3 * H] = 0.5
        W_ih, W_hh, b = W_ih[perm], W_hh[perm], b[perm]
        return {"inv": numpy.argsort(perm), "W_ih": W_ih, "W_hh": W_hh, "b": b,
                "W_ih_half": W_ih * half[:, None], "W_hh_half": W_hh * half[:, None], "b_half": b * half,
                "W_hh_halfT": xp.ascontiguousarray((W_hh * half[:, None]).T),
                "w_peep": w_peep, "w_peep_half": None if w_peep is None else w_peep * 0.5}

    def _input_term(self, xp, x_tm, w):
        """x_t W_ihᵀ for every step at once, ``(T, N, 4H)`` (halved on the sigmoid rows); the
        bias is added inside each step, in the same pass as h_{t−1} W_hhᵀ."""
        T, n, F = x_tm.shape
        return (x_tm.reshape(T * n, F) @ w["W_ih_half"].T).reshape(T, n, 4 * self.hidden_size)

    # -- forward: 000 eqs. (30)–(35) ----------------------------------------------------------
    def _begin_forward(self, run) -> None:
        xp, (T, n, _) = run.xp, run.A.shape
        run.W_hhT = run.w["W_hh_halfT"]  # (H, 4H) C-ordered: the per-step product reads it row by row
        run.tcs = xp.empty((T, n, self.hidden_size), dtype=run.A.dtype)   # tanh(c_t)
        run.tmp = xp.empty((n, 4 * self.hidden_size), dtype=run.A.dtype)
        if run.jit:  # the kernels take "no peepholes" as an empty (0, H) array
            peep = run.w["w_peep_half"]
            run.peep = peep if peep is not None else numpy.empty((0, self.hidden_size), dtype=run.A.dtype)

    def _step(self, run, t: int) -> None:
        xp, H = run.xp, self.hidden_size
        hs, cs = run.states                        # hs[t] = h_{t−1} for step t (hs[0] = h_0)
        c_prev, a, r, c = cs[t], run.A[t], run.tmp, cs[t + 1]
        xp.matmul(hs[t], run.W_hhT, out=r)         # h_{t−1} W_hhᵀ
        if run.jit and a.dtype == numpy.float32:   # the whole step in one pass
            K.lstm_step_float32(a, r, run.w["b_half"], run.peep, c_prev, c, run.tcs[t], hs[t + 1])
            return
        if run.jit:
            K.lstm_preactivation(a, r, run.w["b_half"], run.peep, c_prev)
            xp.tanh(a, out=a)
            K.lstm_cell(a, c_prev, c)              # i, f, o = ½ tanh + ½;  c_t = f ⊙ c_{t−1} + i ⊙ g
        else:
            a += r                                 # A_t = x_t W_ihᵀ + h_{t−1} W_hhᵀ + b
            a += run.w["b_half"]
            peep = run.w["w_peep_half"]
            if peep is not None:  # ψ ⊙ c_{t−1} into the (halved) I, F, O blocks
                for q in range(3):
                    a[:, q * H:(q + 1) * H] += c_prev * peep[q]
            xp.tanh(a, out=a)
            sig = a[:, :3 * H]                     # i, f, o = σ(A_I), σ(A_F), σ(A_O)
            sig *= 0.5
            sig += 0.5
            ig = r[:, :H]                          # r is free again: i ⊙ g, g = tanh(A_g)
            xp.multiply(a[:, :H], a[:, 3 * H:], out=ig)
            xp.multiply(a[:, H:2 * H], c_prev, out=c)  # c_t = f ⊙ c_{t−1} + i ⊙ g
            c += ig
        tc = run.tcs[t]
        xp.tanh(c, out=tc)
        xp.multiply(a[:, 2 * H:3 * H], tc, out=hs[t + 1])  # h_t = o ⊙ tanh(c_t)

    # -- backward: 003 §7 statements (2)–(11) ---------------------------------------------------
    def _begin_backward(self, run, dt):
        xp, H = run.xp, self.hidden_size
        T, n, _ = run.A.shape
        back = SimpleNamespace(dh=xp.empty((n, H), dtype=dt))  # Σ_G δ_G[t] W_hh,G of the latest step
        if run.jit:  # the step kernel reads the gates directly
            peep = run.w["w_peep"]
            back.peep = peep if peep is not None else numpy.empty((0, H), dtype=dt)
            return back
        gates, tcs, c_prev_all = run.A, run.tcs, run.states[1][:-1]
        i, f, o, g = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:3 * H], gates[..., 3 * H:]
        # Every factor of statements (2)–(6) that does not depend on the errors, for all steps at
        # once (large vectorized operations instead of many small ones inside the loop):
        #   δ_I = ε_s ⊙ [g i(1−i)],  δ_F = ε_s ⊙ [c_{t−1} f(1−f)],  δ_O = ε_a ⊙ [tanh(c_t) o(1−o)],
        #   δ_g = ε_s ⊙ [i(1−g²)],   ε_s gets ε_a ⊙ [o(1 − tanh² c_t)]
        coef = xp.empty((T, n, 4 * H), dtype=dt)
        for k, (u, v) in enumerate(((i, g), (f, c_prev_all), (o, tcs))):  # v ⊙ u(1 − u)
            blk = coef[..., k * H:(k + 1) * H]
            xp.subtract(1, u, out=blk)
            blk *= u
            blk *= v
        blk = coef[..., 3 * H:]
        xp.multiply(g, g, out=blk)
        xp.subtract(1, blk, out=blk)
        blk *= i
        to_s = xp.multiply(tcs, tcs)
        xp.subtract(1, to_s, out=to_s)
        to_s *= o
        back.coef, back.to_s, back.f = coef, to_s, f
        back.eps_s = xp.empty((n, H), dtype=dt)
        return back

    def _step_back(self, run, back, t: int, errs, d):
        """Given ε_a[t] (7) and the cell-state error from step t+1, write δ_I, δ_F, δ_O, δ_g of
        step t into ``d``; return the errors reaching h_{t−1} and c_{t−1}."""
        xp, H = run.xp, self.hidden_size
        eps_a, dc = errs                                      # dc = ε_s[t+1] f_{t+1} + Σ_G ψ_G δ_G[t+1]
        if run.jit:                                           # (2)–(6) in one pass; dc becomes step t's
            K.lstm_step_back(run.A[t], run.states[1][t], run.tcs[t], eps_a, dc, back.peep, d)
        else:
            n = eps_a.shape[0]
            eps_s = xp.multiply(eps_a, back.to_s[t], out=back.eps_s)  # (6)
            eps_s += dc
            k = back.coef[t]
            xp.multiply(k[:, :H], eps_s, out=d[:, :H])                 # (5)
            xp.multiply(k[:, H:2 * H], eps_s, out=d[:, H:2 * H])       # (4)
            xp.multiply(k[:, 2 * H:3 * H], eps_a, out=d[:, 2 * H:3 * H])  # (2)
            xp.multiply(k[:, 3 * H:], eps_s, out=d[:, 3 * H:])         # (3)
            dc = xp.multiply(eps_s, back.f[t], out=dc)
            peep = run.w["w_peep"]
            if peep is not None:
                dc += (d[:, :3 * H].reshape(n, 3, H) * peep).sum(axis=1)
        xp.matmul(d, run.w["W_hh"], out=back.dh)              # Σ_G δ_G[t] W_hh,G, into (7) at t−1
        return [back.dh, dc]

    def _public_grads(self, run, deltas, grads):
        inv = run.w["inv"]                                    # back to the public (I, F, g, O) order
        out = {k: v[inv] for k, v in grads.items()}
        if run.w["w_peep"] is not None:                       # (11)
            T, n, _ = deltas.shape
            H = self.hidden_size
            c_prev_all = run.states[1][:-1]
            out["w_peep"] = (deltas[..., :3 * H].reshape(T, n, 3, H) * c_prev_all[:, :, None, :]).sum(axis=(0, 1))
        return out

    def get_config(self) -> dict[str, Any]:
        return {**self._common_config(), "peepholes": self.peepholes, "forget_bias": self.forget_bias,
                "weight_init": self.weight_init}
