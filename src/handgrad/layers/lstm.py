"""Long short-term memory layer with backpropagation through time (``003`` §7; ``000`` §3.3).

Legend: N batch, T time steps, F input features, H memory blocks (single-celled).
"""
from __future__ import annotations

from typing import Any

from .. import backend, init
from .base import register
from .recurrent import _Recurrent


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
        if self.forget_bias != self.forget_bias or abs(self.forget_bias) == float("inf"):
            raise ValueError(f"{where}: expected forget_bias to be a finite number, got {forget_bias!r}")
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

    # Internally the gate blocks are kept in the order (I, F, O, g), so the three sigmoid gates
    # are one contiguous block; the public parameters keep PyTorch's order (I, F, g, O).
    @staticmethod
    def _perm(H):
        import numpy

        return numpy.concatenate([numpy.arange(0, 2 * H), numpy.arange(3 * H, 4 * H), numpy.arange(2 * H, 3 * H)])

    def _forward(self, x, training, states):
        xp = backend.array_module(x)
        H = self.hidden_size
        perm = self._perm(H)
        # σ(a) = ½ tanh(a/2) + ½: the I, F, O rows of the weights are halved once here, so one tanh
        # over all four blocks then ½·+½ on the gate blocks gives every activation
        half = xp.ones(4 * H, dtype=self.params["W_ih"].dtype)
        half[:3 * H] = 0.5
        W_ih, W_hh, b = (self.params[k][perm] for k in ("W_ih", "W_hh", "b"))
        W_ih, W_hh, b = W_ih * half[:, None], W_hh * half[:, None], b * half
        n, T, _ = x.shape
        mask = self._step_mask(x)
        # time-major buffers, so every per-step slice is contiguous (BLAS writes into it directly)
        gates = xp.matmul(x.transpose(1, 0, 2), W_ih.T)  # (T, N, 4H): A_t, then activated i, f, o, g
        gates += b
        dt = gates.dtype
        hs = xp.empty((T + 1, n, H), dtype=dt)     # hs[t] = h_{t−1} for step t (hs[0] = h_0)
        cs = xp.empty((T + 1, n, H), dtype=dt)     # cs[0] = c_0
        tcs = xp.empty((T, n, H), dtype=dt)        # tanh(c_t)
        hs[0], cs[0] = states
        W_hhT = W_hh.T
        peep = self.params.get("w_peep")
        half_peep = None if peep is None else peep * 0.5
        tmp = xp.empty((n, 4 * H), dtype=dt)
        for t in range(T):
            c_prev = cs[t]
            a = gates[t]
            xp.matmul(hs[t], W_hhT, out=tmp)
            a += tmp
            if peep is not None:  # ψ ⊙ c_{t−1} into the (halved) I, F, O blocks
                a[:, :3 * H] += (c_prev[:, None, :] * half_peep).reshape(n, 3 * H)
            xp.tanh(a, out=a)
            sig = a[:, :3 * H]
            sig *= 0.5
            sig += 0.5
            g = a[:, 3 * H:]
            c = cs[t + 1]
            xp.multiply(a[:, H:2 * H], c_prev, out=c)
            c += a[:, :H] * g
            tc = tcs[t]
            xp.tanh(c, out=tc)
            h = hs[t + 1]
            xp.multiply(a[:, 2 * H:3 * H], tc, out=h)
            if mask is not None:  # padding carries (h, c) unchanged
                m = mask[:, t]
                c -= c_prev
                c *= m
                c += c_prev
                h -= hs[t]
                h *= m
                h += hs[t]
        if training:
            self._x, self._hs, self._cs, self._gates, self._tcs, self._mask = x, hs, cs, gates, tcs, mask
        out = hs[1:].transpose(1, 0, 2) if self.return_sequences else hs[T]
        return out, [hs[T], cs[T]]

    def _backward(self, grad_y, need_input_grad):
        xp = backend.array_module(grad_y)
        x, hs, cs, gates, tcs, mask = self._x, self._hs, self._cs, self._gates, self._tcs, self._mask
        H = self.hidden_size
        n, T, _ = x.shape
        perm = self._perm(H)
        W_hh = self.params["W_hh"][perm]
        peep = self.params.get("w_peep")
        dt = grad_y.dtype
        i, f, o, g = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:3 * H], gates[..., 3 * H:]
        c_prev_all = cs[:T]
        # Every factor of statements (2)–(6) that does not depend on the errors, for all steps at
        # once (large vectorized operations instead of many small ones inside the loop):
        #   δ_I = ε_s ⊙ [g i(1−i)],  δ_F = ε_s ⊙ [c_{t−1} f(1−f)],  δ_O = ε_a ⊙ [tanh(c_t) o(1−o)],
        #   δ_g = ε_s ⊙ [i(1−g²)],   ε_s gets ε_a ⊙ [o(1 − tanh² c_t)]
        coef = xp.empty((T, n, 4 * H), dtype=dt)
        coef[..., :H] = g * i * (1 - i)
        coef[..., H:2 * H] = c_prev_all * f * (1 - f)
        coef[..., 2 * H:3 * H] = tcs * o * (1 - o)
        coef[..., 3 * H:] = i * (1 - g * g)
        to_s = o * (1 - tcs * tcs)
        dA = xp.empty((T, n, 4 * H), dtype=dt)                   # δ_I, δ_F, δ_O, δ_g per step
        dh = xp.zeros((n, H), dtype=dt)                           # Σ_G δ_G[t+1] W_hh,G
        dc = xp.zeros((n, H), dtype=dt)                           # ε_s[t+1] f_{t+1} + Σ_G ψ_G δ_G[t+1]
        for t in range(T - 1, -1, -1):
            if self.return_sequences:
                eps_a = grad_y[:, t] + dh                         # (7)
            else:
                eps_a = dh + grad_y if t == T - 1 else dh
            if mask is not None:
                m = mask[:, t]
                carry_h, carry_c = (1 - m) * eps_a, (1 - m) * dc
                eps_a = eps_a * m
                dc = dc * m
            eps_s = eps_a * to_s[t]                               # (6)
            eps_s += dc
            d, k = dA[t], coef[t]
            xp.multiply(k[:, :2 * H].reshape(n, 2, H), eps_s[:, None, :], out=d[:, :2 * H].reshape(n, 2, H))  # (5), (4)
            xp.multiply(k[:, 2 * H:3 * H], eps_a, out=d[:, 2 * H:3 * H])                                      # (2)
            xp.multiply(k[:, 3 * H:], eps_s, out=d[:, 3 * H:])                                                 # (3)
            dh = d @ W_hh
            dc = eps_s * f[t]
            if peep is not None:
                dc += (d[:, :3 * H].reshape(n, 3, H) * peep).sum(axis=1)
            if mask is not None:
                dh += carry_h
                dc += carry_c
        d2 = dA.reshape(-1, 4 * H)                                # rows ordered (t, n)
        inv = xp.argsort(xp.asarray(perm))                        # back to the public (I, F, g, O) order
        if self.trainable:
            self.grads["b"] = d2.sum(axis=0)[inv]                                              # (8), (12)
            self.grads["W_ih"] = (d2.T @ x.transpose(1, 0, 2).reshape(-1, self.input_size))[inv]  # (9), (13)
            self.grads["W_hh"] = (d2.T @ hs[:T].reshape(-1, H))[inv]                            # (10), (14)
            if peep is not None:                                                                # (11)
                self.grads["w_peep"] = (dA[..., :3 * H].reshape(T, n, 3, H) * c_prev_all[:, :, None, :]).sum(axis=(0, 1))
        self.grad_initial_state = (dh, dc)
        self.delta_norms = (backend.to_numpy(xp.sqrt((dA * dA).sum(axis=2)).mean(axis=1)).tolist()
                            if self.record_delta_norms else None)
        if not need_input_grad:
            return None
        return xp.matmul(dA, self.params["W_ih"][perm]).transpose(1, 0, 2)

    def get_config(self) -> dict[str, Any]:
        return {**self._common_config(), "peepholes": self.peepholes, "forget_bias": self.forget_bias,
                "weight_init": self.weight_init}
