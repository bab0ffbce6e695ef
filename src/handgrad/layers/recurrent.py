"""Elman recurrent layer with backpropagation through time (``003`` §6; ``000`` §3).

Legend: N batch, T time steps, F input features, H hidden units. Sequences are batch-first
``(N, T, F)``.

Shared machinery for ``RNN`` and ``LSTM``: an optional initial state (``initial_state`` argument
of ``forward``, or the ``initial_state`` attribute), its gradient after backward
(``grad_initial_state``), ``stateful=True`` for truncated BPTT (the last state of one call is the
initial state of the next, with no gradient across the boundary), ``mask_value`` for padded
variable-length sequences (a step whose features all equal ``mask_value`` is padding: the
state is carried through it unchanged, so it adds nothing to the output nor to any gradient;
``return_sequences=False`` then returns the state after each sequence's last real step), and
``record_delta_norms`` for gradient diagnostics (``delta_norms[t]`` = mean over the batch of
‖δ[t]‖ = ‖dC/dz_t‖ after each backward — for LSTM z_t stacks the four modules' weighted
inputs: watch it vanish along t in an RNN and survive in an LSTM).
"""
from __future__ import annotations

from typing import Any

from .. import backend, functional as F, init
from .._checks import check_float_array, check_positive_int
from .base import Layer, register


class _Recurrent(Layer):
    """Validation, state handling and masking common to RNN and LSTM."""

    n_states = 1  # RNN: h; LSTM: (h, c)

    def _setup(self, input_size, hidden_size, return_sequences, stateful, mask_value, record_delta_norms):
        where = f"{type(self).__name__}({input_size!r}→{hidden_size!r})"
        self.input_size = check_positive_int(input_size, where, "input_size")
        self.hidden_size = check_positive_int(hidden_size, where, "hidden_size")
        if not isinstance(return_sequences, bool):
            raise TypeError(f"{where}: expected return_sequences to be a bool, got {return_sequences!r}")
        self.return_sequences = return_sequences
        if not isinstance(stateful, bool):
            raise TypeError(f"{where}: expected stateful to be a bool, got {stateful!r}")
        self.stateful = stateful
        if mask_value is not None and (isinstance(mask_value, bool) or not isinstance(mask_value, (int, float))
                                       or mask_value != mask_value):
            raise ValueError(f"{where}: expected mask_value to be None or a number, got {mask_value!r}")
        self.mask_value = None if mask_value is None else float(mask_value)
        self.record_delta_norms = bool(record_delta_norms)
        self.initial_state = None
        self.grad_initial_state = None
        self.delta_norms = None
        return where

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_size}→{self.hidden_size})"

    def reset_state(self) -> None:
        """Forget the carried state (stateful layers start the next call from zeros)."""
        self.initial_state = None

    def forward(self, x, training: bool = False, initial_state=None):
        """``x`` ``(N, T, F)`` → ``(N, T, H)`` (or ``(N, H)`` without return_sequences).
        ``initial_state``: h0 ``(N, H)`` for RNN, ``(h0, c0)`` for LSTM; default: the
        ``initial_state`` attribute, else zeros."""
        self._check_input(x)
        states = self._initial_states(x, initial_state)
        y, last = self._forward(x, training, states)
        if self.stateful:
            self.initial_state = tuple(s.copy() for s in last) if self.n_states > 1 else last[0].copy()
        if training:
            self._out_shape = y.shape
        return y

    def _check_input(self, x) -> None:
        check_float_array(x, str(self), ndim=3)
        if x.shape[2] != self.input_size:
            raise ValueError(f"{self}: expected input of shape (N, T, {self.input_size}), got {tuple(x.shape)}")
        if x.shape[1] < 1:
            raise ValueError(f"{self}: expected at least one time step, got shape {tuple(x.shape)}")

    def _initial_states(self, x, given):
        xp = backend.array_module(x)
        n, h = x.shape[0], self.hidden_size
        given = self.initial_state if given is None else given
        if given is None:
            return [xp.zeros((n, h), dtype=x.dtype) for _ in range(self.n_states)]
        parts = list(given) if self.n_states > 1 else [given]
        if len(parts) != self.n_states:
            raise ValueError(f"{self}: expected initial_state with {self.n_states} arrays, got {len(parts)}")
        out = []
        for s in parts:
            if tuple(s.shape) != (n, h):
                raise ValueError(f"{self}: expected initial state of shape ({n}, {h}), got {tuple(s.shape)}")
            out.append(backend.asarray(s, dtype=x.dtype, xp=xp))
        return out

    def _step_mask(self, x):
        """``(N, T, 1)`` float mask: 1 for real steps, 0 for padding (or None without masking)."""
        if self.mask_value is None:
            return None
        return (x != self.mask_value).any(axis=2, keepdims=True).astype(x.dtype)

    def output_shape(self, input_shape):
        t = input_shape[0]
        return (t, self.hidden_size) if self.return_sequences else (self.hidden_size,)

    def _common_config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "return_sequences": self.return_sequences, "stateful": self.stateful,
                "mask_value": self.mask_value}


@register
class RNN(_Recurrent):
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

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh",
                 return_sequences: bool = True, *, stateful: bool = False, mask_value: float | None = None,
                 record_delta_norms: bool = False, weight_init: str = "normal_fan_in", rng=None,
                 dtype=backend.DEFAULT_DTYPE) -> None:
        super().__init__()
        where = self._setup(input_size, hidden_size, return_sequences, stateful, mask_value, record_delta_norms)
        if activation not in ("tanh", "sigmoid"):
            raise ValueError(f"{where}: activation must be 'tanh' or 'sigmoid', got {activation!r}")
        self.activation = activation
        self.weight_init = weight_init
        dt = backend.resolve_dtype(dtype, where)
        gen = backend.make_rng(rng)
        xp = backend.default_xp()
        H, Fin = hidden_size, input_size
        self.params = {
            "W_ih": backend.asarray(init.weights(weight_init, (H, Fin), Fin, H, gen, dt, where), xp=xp),
            "W_hh": backend.asarray(init.weights(weight_init, (H, H), H, H, gen, dt, where), xp=xp),
            "b": backend.asarray(init.bias("zeros", (H,), gen, dt, where), xp=xp),
        }
        self.zero_grads()

    def _act(self, z):
        if self.activation == "tanh":
            return backend.array_module(z).tanh(z)
        return F.sigmoid(z)

    def _forward(self, x, training, states):
        xp = backend.array_module(x)
        W_ih, W_hh, b = self.params["W_ih"], self.params["W_hh"], self.params["b"]
        n, T, _ = x.shape
        mask = self._step_mask(x)
        # time-major buffers: every per-step slice is contiguous
        xw = xp.matmul(x.transpose(1, 0, 2), W_ih.T)  # (T, N, H)
        xw += b
        hs = xp.empty((T + 1, n, self.hidden_size), dtype=xw.dtype)  # hs[0] = h_0
        hs[0] = states[0]
        W_hhT = W_hh.T
        for t in range(T):
            z = xw[t]
            z += hs[t] @ W_hhT
            h = hs[t + 1]
            if self.activation == "tanh":
                xp.tanh(z, out=h)
            else:
                h[...] = F.sigmoid(z)
            if mask is not None:  # padding carries the state: h_t = h_{t−1} + m (h − h_{t−1})
                h -= hs[t]
                h *= mask[:, t]
                h += hs[t]
        if training:
            self._x, self._hs, self._mask = x, hs, mask
        out = hs[1:].transpose(1, 0, 2) if self.return_sequences else hs[T]
        return out, [hs[T]]

    def _backward(self, grad_y, need_input_grad):
        xp = backend.array_module(grad_y)
        x, hs, mask = self._x, self._hs, self._mask
        n, T, _ = x.shape
        W_hh = self.params["W_hh"]
        deltas = xp.empty((T, n, self.hidden_size), dtype=grad_y.dtype)
        dh = xp.zeros((n, self.hidden_size), dtype=grad_y.dtype)  # δ[t+1] W_hh
        for t in range(T - 1, -1, -1):
            h = hs[t + 1]
            if self.return_sequences:
                total = grad_y[:, t] + dh                          # ε[t] = e_t + δ[t+1] W_hh
            else:
                total = dh + grad_y if t == T - 1 else dh
            deriv = 1 - h * h if self.activation == "tanh" else h * (1 - h)
            delta = deltas[t]
            if mask is not None:
                m = mask[:, t]
                xp.multiply(total * deriv, m, out=delta)
                dh = delta @ W_hh + (1 - m) * total               # padding passes dC/dh straight on
            else:
                xp.multiply(total, deriv, out=delta)               # statement (2)
                dh = delta @ W_hh
        d2 = deltas.reshape(-1, self.hidden_size)                  # rows ordered (t, n)
        if self.trainable:
            self.grads["b"] = d2.sum(axis=0)                                                   # (3)
            self.grads["W_ih"] = d2.T @ x.transpose(1, 0, 2).reshape(-1, self.input_size)       # (4)
            self.grads["W_hh"] = d2.T @ hs[:T].reshape(-1, self.hidden_size)                    # (5)
        self.grad_initial_state = dh
        self.delta_norms = (backend.to_numpy(xp.sqrt((deltas * deltas).sum(axis=2)).mean(axis=1)).tolist()
                            if self.record_delta_norms else None)
        if not need_input_grad:
            return None
        return xp.matmul(deltas, self.params["W_ih"]).transpose(1, 0, 2)

    def get_config(self) -> dict[str, Any]:
        return {**self._common_config(), "activation": self.activation, "weight_init": self.weight_init}
