"""Long short-term memory layer with backpropagation through time (``003`` §7; ``000`` §3.3).

Legend: N batch, T time steps, F input features, H memory blocks (single-celled).
"""
from __future__ import annotations

from typing import Any

from .. import backend, init
from .base import register
from .recurrent import _Recurrent


def _sigmoid_(a):
    """In-place σ(a) = ½(1 + tanh(a/2)) for the gates: one transcendental, no overflow (its far
    negative tail loses relative precision, irrelevant for gate values)."""
    xp = backend.array_module(a)
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


@register
class LSTM(_Recurrent):
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
    all (n, t) after the loop.

    Input ``(N, T, F)``; output ``(N, T, H)``, or ``(N, H)`` with ``return_sequences=False``.
    Params ``W_ih`` ``(4H, F)``, ``W_hh`` ``(4H, H)``, ``b`` ``(4H,)`` (weights N(0, 1/fan_in),
    biases zero, forget-gate bias ``forget_bias``, default 1), and with peepholes ``w_peep``
    ``(3, H)`` rows (I, F, O), zero-initialized. PyTorch's ``nn.LSTM`` has two biases
    b_ih + b_hh; ours is their sum.
    """

    n_states = 2

    def __init__(self, input_size: int, hidden_size: int, peepholes: bool = False, return_sequences: bool = True,
                 *, stateful: bool = False, mask_value: float | None = None, record_delta_norms: bool = False,
                 forget_bias: float = 1.0, weight_init: str = "normal_fan_in", rng=None,
                 dtype=backend.DEFAULT_DTYPE) -> None:
        super().__init__()
        where = self._setup(input_size, hidden_size, return_sequences, stateful, mask_value, record_delta_norms)
        if not isinstance(peepholes, bool):
            raise TypeError(f"{where}: expected peepholes to be a bool, got {peepholes!r}")
        self.peepholes = peepholes
        self.forget_bias = float(forget_bias)
        self.weight_init = weight_init
        dt = backend.resolve_dtype(dtype, where)
        gen = backend.make_rng(rng)
        xp = backend.default_xp()
        H, Fin = hidden_size, input_size
        b = init.bias("zeros", (4 * H,), gen, dt, where)
        if self.forget_bias and not init.is_deferred():
            b = b.copy()
            b[H:2 * H] = self.forget_bias
        self.params = {
            "W_ih": backend.asarray(init.weights(weight_init, (4 * H, Fin), Fin, 4 * H, gen, dt, where), xp=xp),
            "W_hh": backend.asarray(init.weights(weight_init, (4 * H, H), H, 4 * H, gen, dt, where), xp=xp),
            "b": backend.asarray(b, xp=xp),
        }
        if peepholes:
            self.params["w_peep"] = backend.asarray(init.bias("zeros", (3, H), gen, dt, where), xp=xp)
        self.zero_grads()

    def __repr__(self) -> str:
        return f"LSTM({self.input_size}→{self.hidden_size}{', peepholes' if self.peepholes else ''})"

    def _forward(self, x, training, states):
        xp = backend.array_module(x)
        W_ih, W_hh, b = self.params["W_ih"], self.params["W_hh"], self.params["b"]
        H = self.hidden_size
        n, T, _ = x.shape
        mask = self._step_mask(x)
        xw = x @ W_ih.T
        xw += b
        dt = xw.dtype
        hs = xp.empty((n, T + 1, H), dtype=dt)     # hs[:, t] = h_{t−1} for step t (hs[:, 0] = h_0)
        cs = xp.empty((n, T + 1, H), dtype=dt)     # cs[:, 0] = c_0
        gates = xp.empty((n, T, 4 * H), dtype=dt)  # activated i, f, g, o
        tcs = xp.empty((n, T, H), dtype=dt)        # tanh(c_t)
        hs[:, 0], cs[:, 0] = states
        W_hhT = W_hh.T
        peep = self.params.get("w_peep")
        for t in range(T):
            c_prev = cs[:, t]
            a = gates[:, t]
            xp.matmul(hs[:, t], W_hhT, out=a)
            a += xw[:, t]
            if peep is not None:
                a[:, :2 * H] += (c_prev[:, None, :] * peep[:2]).reshape(n, 2 * H)
                a[:, 3 * H:] += c_prev * peep[2]
            _sigmoid_(a[:, :2 * H])
            _sigmoid_(a[:, 3 * H:])
            xp.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            c = f * c_prev
            c += i * g
            tc = xp.tanh(c)
            h = o * tc
            if mask is not None:  # padding carries (h, c) unchanged
                m = mask[:, t]
                c = c_prev + m * (c - c_prev)
                h = hs[:, t] + m * (h - hs[:, t])
            cs[:, t + 1], hs[:, t + 1], tcs[:, t] = c, h, tc
        if training:
            self._x, self._hs, self._cs, self._gates, self._tcs, self._mask = x, hs, cs, gates, tcs, mask
        return self._output(hs[:, 1:]), [hs[:, T], cs[:, T]]

    def _backward(self, grad_y, need_input_grad):
        xp = backend.array_module(grad_y)
        x, hs, cs, gates, tcs, mask = self._x, self._hs, self._cs, self._gates, self._tcs, self._mask
        H = self.hidden_size
        n, T, _ = x.shape
        W_hh = self.params["W_hh"]
        peep = self.params.get("w_peep")
        e = self._grad_hs(grad_y, (n, T, H))
        dA = xp.empty((n, T, 4 * H), dtype=e.dtype)              # δ_I, δ_F, δ_g, δ_O per step
        dh = xp.zeros((n, H), dtype=e.dtype)                      # Σ_G δ_G[t+1] W_hh,G
        dc = xp.zeros((n, H), dtype=e.dtype)                      # ε_s[t+1] f_{t+1} + Σ_G ψ_G δ_G[t+1]
        for t in range(T - 1, -1, -1):
            a = gates[:, t]
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            tc, c_prev = tcs[:, t], cs[:, t]
            eps_a = e[:, t] + dh                                  # (7)
            if mask is not None:
                m = mask[:, t]
                carry_h, carry_c = (1 - m) * eps_a, (1 - m) * dc
                eps_a = eps_a * m
                dc = dc * m
            eps_s = eps_a * o * (1 - tc * tc) + dc                # (6)
            d = dA[:, t]
            d[:, 3 * H:] = eps_a * tc * o * (1 - o)               # (2) δ_O
            d[:, 2 * H:3 * H] = eps_s * i * (1 - g * g)           # (3) δ_g
            d[:, H:2 * H] = eps_s * c_prev * f * (1 - f)          # (4) δ_F
            d[:, :H] = eps_s * g * i * (1 - i)                    # (5) δ_I
            dh = d @ W_hh
            dc = eps_s * f
            if peep is not None:
                dc += d[:, :H] * peep[0] + d[:, H:2 * H] * peep[1] + d[:, 3 * H:] * peep[2]
            if mask is not None:
                dh += carry_h
                dc += carry_c
        d2 = dA.reshape(-1, 4 * H)
        if self.trainable:
            self.grads["b"] = d2.sum(axis=0)                                       # (8), (12)
            self.grads["W_ih"] = d2.T @ x.reshape(-1, self.input_size)              # (9), (13)
            self.grads["W_hh"] = d2.T @ hs[:, :T].reshape(-1, H)                    # (10), (14)
            if peep is not None:                                                    # (11)
                c_prev_all = cs[:, :T]
                self.grads["w_peep"] = xp.stack([
                    (dA[..., :H] * c_prev_all).sum(axis=(0, 1)),
                    (dA[..., H:2 * H] * c_prev_all).sum(axis=(0, 1)),
                    (dA[..., 3 * H:] * c_prev_all).sum(axis=(0, 1))])
        self.grad_initial_state = (dh, dc)
        self.delta_norms = (backend.to_numpy(xp.sqrt((dA * dA).sum(axis=2)).mean(axis=0)).tolist()
                            if self.record_delta_norms else None)
        return dA @ self.params["W_ih"] if need_input_grad else None

    def get_config(self) -> dict[str, Any]:
        return {**self._common_config(), "peepholes": self.peepholes, "forget_bias": self.forget_bias,
                "weight_init": self.weight_init}
