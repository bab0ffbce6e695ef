"""Backpropagation through time, shared by the recurrent layers (``003`` §6–7; ``000`` §3).

Legend: N batch, T time steps, F input features, H hidden units (memory blocks), G weight
blocks per unit (RNN 1, LSTM 4: the gates). Sequences are batch-first ``(N, T, F)``; inside,
buffers are time-major ``(T, N, ·)`` so every per-step slice is contiguous and BLAS writes
into it directly.

``Recurrent`` owns what RNN and LSTM have in common; each cell's file holds only its own
equations (one forward step, one backward step, with the notes' equation numbers):

- parameters ``W_ih`` ``(G·H, F)``, ``W_hh`` ``(G·H, H)``, ``b`` ``(G·H,)``, drawn by
  ``weight_init`` (N(0, 1/fan_in) by default), biases zero;
- the input term A_t = x_t W_ihᵀ + b of every step as one matrix product before the loop
  (LSTM adds b inside each step, in the pass that adds h_{t−1} W_hhᵀ);
- an optional initial state (``initial_state`` argument of ``forward``, or the
  ``initial_state`` attribute; default zeros) and its gradient after backward
  (``grad_initial_state``); ``stateful=True`` for truncated BPTT (the last state of one call
  is the initial state of the next, with no gradient across the boundary);
- ``mask_value`` for padded variable-length sequences: a step whose features all equal
  ``mask_value`` is padding; every state is carried through it unchanged (s_t = s_{t−1}), so
  it adds nothing to the output nor to any gradient, and ``return_sequences=False`` returns
  the state after each sequence's last real step;
- the upstream error e_t = dC/dh_t (every step with ``return_sequences``, the last step
  only without), the parameter sums dC/db = Σ δ, dC/dW_ih = Σ δᵀ x_t, dC/dW_hh = Σ δᵀ h_{t−1}
  (single matrix products over all (n, t) after the loop) and dC/dx_t = δ[t] W_ih;
- ``record_delta_norms`` for gradient diagnostics: ``delta_norms[t]`` = mean over the batch
  of ‖δ[t]‖ = ‖dC/dz_t‖ after each backward (for LSTM z_t stacks the four modules' weighted
  inputs: watch it vanish along t in an RNN and survive in an LSTM).

A cell implements ``_step(run, t)`` (write the states of step t from those of step t − 1),
``_step_back(run, back, t, errs, delta)`` (given the errors reaching step t's states, write
δ[t] and return the errors reaching step t − 1's states) and, where it needs them, the hooks
``_weights``, ``_input_term``, ``_begin_forward``, ``_begin_backward`` and ``_public_grads``.
With several threads the batch rows are split into blocks (``run.parts``, see ``part_rows``)
and each thread runs the steps of its block: the step hooks see a block's namespace, whose
arrays are row-slices of the pass's (``rows`` = (a, b)); ``_input_term``, ``_public_grads``
and the parameter sums see the whole pass.
``run`` is the pass's namespace: ``xp``, ``x``, ``x_tm`` (x time-major and contiguous),
``mask``, ``A`` (the input terms, which a cell may overwrite with its activations), ``states``
(one ``(T + 1, N, H)`` buffer per state, ``states[k][t]`` = the state before step t), ``w``
(the weights the pass computed with) and ``jit`` (whether the cell's compiled step kernels of
``layers/_recurrent_kernels.py`` run: :func:`handgrad.accel.jit_enabled` and NumPy arrays;
otherwise its NumPy steps, which compute the same equations).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy

from .. import accel, backend, init
from .._checks import check_bool, check_float_array, check_positive_int
from .base import Layer


class Recurrent(Layer):
    """Validation, parameters, state handling, masking and the BPTT loops of RNN and LSTM."""

    _cache = ("_run",)

    n_states = 1  # RNN: h; LSTM: (h, c)
    n_gates = 1   # G: blocks of H rows in W_ih, W_hh, b

    def _setup(self, input_size, hidden_size, return_sequences, stateful, mask_value, record_delta_norms):
        where = f"{type(self).__name__}({input_size!r}→{hidden_size!r})"
        self.input_size = check_positive_int(input_size, where, "input_size")
        self.hidden_size = check_positive_int(hidden_size, where, "hidden_size")
        self.return_sequences = check_bool(return_sequences, where, "return_sequences")
        self.stateful = check_bool(stateful, where, "stateful")
        if mask_value is not None and (isinstance(mask_value, bool) or not isinstance(mask_value, (int, float))
                                       or mask_value != mask_value):
            raise ValueError(f"{where}: expected mask_value to be None or a number, got {mask_value!r}")
        self.mask_value = None if mask_value is None else float(mask_value)
        self.record_delta_norms = bool(record_delta_norms)
        self.initial_state = None
        self.grad_initial_state = None
        self.delta_norms = None
        return where

    def _init_params(self, weight_init: str, rng, dtype, where: str):
        """``W_ih`` ``(G·H, F)``, ``W_hh`` ``(G·H, H)`` drawn by ``weight_init``, ``b`` zeros;
        returns the generator, dtype and array module for a cell's extra parameters."""
        self.weight_init = weight_init
        dt = backend.resolve_dtype(dtype, where)
        gen = backend.make_rng(rng)
        xp = backend.default_xp()
        GH, F, H = self.n_gates * self.hidden_size, self.input_size, self.hidden_size
        self.params = {
            "W_ih": backend.asarray(init.weights(weight_init, (GH, F), F, GH, gen, dt, where), xp=xp),
            "W_hh": backend.asarray(init.weights(weight_init, (GH, H), H, GH, gen, dt, where), xp=xp),
            "b": backend.asarray(init.bias("zeros", (GH,), gen, dt, where), xp=xp),
        }
        return gen, dt, xp

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
        if training:
            self._forget()
        states = self._initial_states(x, initial_state)
        y, last = self._forward(x, training, states)
        if self.stateful:
            self.initial_state = tuple(s.copy() for s in last) if self.n_states > 1 else last[0].copy()
        if training:
            self._out_shape = y.shape
        return y

    def _check_input(self, x) -> None:
        check_float_array(x, self, ndim=3)
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

    # -- the two loops ----------------------------------------------------------------------
    # Rows of the batch are independent, so with more than one thread (``accel.own_threads()``:
    # the thread budget, or 1 where idle BLAS threads would spin beside ours) and at least
    # ``part_rows`` rows per thread, each thread runs both loops over its own
    # contiguous block of rows (``run.parts``: one namespace per block, holding row-slices of the
    # pass's buffers) with BLAS held to one thread: the per-step products are too small to split
    # well, and the element-wise work between them is split too. The blocks depend only on N
    # and the thread count, so results are the same bits run to run.
    part_rows = 32

    def _forward(self, x, training, states):
        xp = backend.array_module(x)
        n, T, _ = x.shape
        w = self._weights()
        x_tm = xp.ascontiguousarray(x.transpose(1, 0, 2))          # (T, N, F): small, kept for dC/dW_ih
        A = self._input_term(xp, x_tm, w)                          # (T, N, G·H)
        run = SimpleNamespace(xp=xp, x=x, x_tm=x_tm, mask=self._step_mask(x), A=A, w=w,
                              jit=accel.jit_enabled() and xp is numpy,
                              states=tuple(xp.empty((T + 1, n, self.hidden_size), dtype=A.dtype)
                                           for _ in range(self.n_states)))
        for buf, s0 in zip(run.states, states):
            buf[0] = s0
        run.parts = [self._part(run, a, b) for a, b in _row_blocks(xp, n, self.part_rows)]
        for part in run.parts:
            self._begin_forward(part)
        _run_parts(run.parts, self._forward_steps)
        if training:
            self._run = run
        hs = run.states[0]
        out = hs[1:].transpose(1, 0, 2) if self.return_sequences else hs[T]
        return out, [buf[T] for buf in run.states]

    @staticmethod
    def _part(run, a: int, b: int):
        """The pass's namespace for rows a:b of the batch (a copy of the pass's own when that is
        all: ``run.parts`` holding ``run`` itself would be a reference cycle, and the pass's
        buffers would wait for the garbage collector instead of going when the next pass
        replaces them — measured, an Elman RNN epoch's peak memory grew by 330 MB)."""
        if (a, b) == (0, run.x.shape[0]):
            return SimpleNamespace(**vars(run), rows=(a, b))
        return SimpleNamespace(xp=run.xp, x=run.x[a:b], x_tm=run.x_tm[:, a:b], A=run.A[:, a:b], w=run.w,
                               jit=run.jit, mask=None if run.mask is None else run.mask[a:b],
                               states=tuple(buf[:, a:b] for buf in run.states), rows=(a, b))

    def _forward_steps(self, run) -> None:
        for t in range(run.A.shape[0]):
            self._step(run, t)
            if run.mask is not None:  # padding carries every state: s_t = s_{t−1} + m (s_t − s_{t−1})
                m = run.mask[:, t]
                for buf in run.states:
                    s = buf[t + 1]
                    s -= buf[t]
                    s *= m
                    s += buf[t]

    def _backward(self, grad_y, need_input_grad):
        run = self._run
        xp, x = run.xp, run.x
        n, T, _ = x.shape
        H, dt = self.hidden_size, grad_y.dtype
        deltas = xp.empty((T, n, self.n_gates * H), dtype=dt)      # δ[t] = dC/dz_t
        carried = [xp.empty((n, H), dtype=dt) for _ in range(self.n_states)]  # errors reaching the initial state

        def steps(part):
            a, b = getattr(part, "rows", (0, n))
            self._backward_steps(part, grad_y[a:b], deltas[:, a:b], [c[a:b] for c in carried])

        _run_parts(run.parts, steps)
        if self.trainable:
            d2 = deltas.reshape(-1, self.n_gates * H)                  # rows ordered (t, n)
            self.grads.update(self._public_grads(run, deltas, {   # RNN (3)–(5); LSTM (8)–(10), (12)–(14)
                "b": xp.ones(d2.shape[0], dtype=dt) @ d2,                        # Σ δ (a product: one pass, 2× a sum's speed)
                "W_ih": d2.T @ run.x_tm.reshape(-1, self.input_size),             # Σ δᵀ x_t
                "W_hh": d2.T @ run.states[0][:T].reshape(-1, H),                   # Σ δᵀ h_{t−1}
            }))
        self.grad_initial_state = tuple(carried) if self.n_states > 1 else carried[0]
        self.delta_norms = (backend.to_numpy(xp.sqrt((deltas * deltas).sum(axis=2)).mean(axis=1)).tolist()
                            if self.record_delta_norms else None)
        if not need_input_grad:
            return None
        # one (T·N, G·H)(G·H, F) product over the (t, n) rows: 1.25× faster than T stacked ones
        return (deltas.reshape(-1, self.n_gates * H) @ run.w["W_ih"]).reshape(T, n, -1).transpose(1, 0, 2)

    def _backward_steps(self, run, grad_y, deltas, out) -> None:
        """The loop t = T … 1 for the rows of ``run``: δ[t] into ``deltas[t]``, the errors
        reaching the initial states into ``out``."""
        xp, T = run.xp, deltas.shape[0]
        n, H = deltas.shape[1], self.hidden_size
        carried = [xp.zeros((n, H), dtype=deltas.dtype) for _ in range(self.n_states)]  # errors from step t+1
        back = self._begin_backward(run, deltas.dtype)
        for t in range(T - 1, -1, -1):
            e_h = carried[0]
            if self.return_sequences:
                e_h = grad_y[:, t] + e_h                               # e_t + error from step t+1
            elif t == T - 1:
                e_h = e_h + grad_y                                     # e_T: only the last step's output is used
            errs = [e_h, *carried[1:]]
            if run.mask is not None:  # padding passes every error straight on to the step before
                m = run.mask[:, t]
                passed = [(1 - m) * e for e in errs]
                errs = [e * m for e in errs]
            carried = self._step_back(run, back, t, errs, deltas[t])
            if run.mask is not None:
                for c, p in zip(carried, passed):
                    c += p
        for o, c in zip(out, carried):
            o[...] = c

    # -- what a cell may override -----------------------------------------------------------
    def _weights(self) -> dict[str, Any]:
        """The weights one pass computes with, in the cell's internal order: at least ``W_ih``,
        ``W_hh`` and ``b`` (backward uses these ``W_ih``, ``W_hh``, so it differentiates the
        forward it follows)."""
        return {k: self.params[k] for k in ("W_ih", "W_hh", "b")}

    def _input_term(self, xp, x_tm, w):
        """A_t = x_t W_ihᵀ + b for every step at once, ``(T, N, G·H)``, as one matrix product
        over the (t, n) rows of the time-major contiguous ``x_tm``."""
        T, n, F = x_tm.shape
        A = (x_tm.reshape(T * n, F) @ w["W_ih"].T).reshape(T, n, -1)
        A += w["b"]
        return A

    def _begin_forward(self, run) -> None:  # noqa: B027 - optional hook
        """Per-pass buffers of the forward steps (called once per block of rows, with that
        block's namespace; backward sees the same namespaces)."""

    def _begin_backward(self, run, dtype) -> Any:
        """What the backward steps of this pass need that does not depend on the errors (kept
        only while backward runs; once per block of rows); passed to ``_step_back`` as ``back``."""
        return None

    def _public_grads(self, run, deltas, grads: dict[str, Any]) -> dict[str, Any]:
        """Map the parameter sums from the internal order to ``params``' (and add others)."""
        return grads

    def _step(self, run, t: int) -> None:
        raise NotImplementedError

    def _step_back(self, run, back, t: int, errs: list, delta) -> list:
        raise NotImplementedError


# -- splitting the batch over threads ---------------------------------------------------------
_blas = None  # threadpoolctl's controller of the loaded BLAS (False: threadpoolctl is missing)


def _blas_controller():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - optional (the fast extra)
        except ImportError:
            _blas = False
        else:
            _blas = ThreadpoolController().select(user_api="blas")
            _blas = _blas if _blas.lib_controllers else False  # no BLAS found: it cannot be held
    return _blas


def _row_blocks(xp, n: int, min_rows: int) -> list[tuple[int, int]]:
    """One (start, stop) block of rows per thread (``accel.own_threads()``), each at least
    ``min_rows`` long; one block for other array modules than NumPy, when BLAS cannot be held to
    one thread, or when its idle threads would spin beside ours (``accel.blas_threads_spin``)."""
    k = min(accel.own_threads(), n // max(1, min_rows))
    if k <= 1 or xp is not numpy or not _blas_controller():
        return [(0, n)]
    return accel.split(n, k)


def _run_parts(parts, fn) -> None:
    """``fn(part)`` for every part, side by side when there are several (BLAS on one thread)."""
    if len(parts) == 1:
        fn(parts[0])
        return
    with _blas_controller().limit(limits=1):
        accel.parallel_for(len(parts), lambda a, b: [fn(p) for p in parts[a:b]])
