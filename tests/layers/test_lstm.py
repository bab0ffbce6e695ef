"""LSTM (with and without peepholes): a per-sample reference written from the equations,
finite differences, PyTorch parity, masking, initial and carried state, gradient-norm
diagnostics, param shapes, bad input and the once-per-change internal weights (the contract
every layer keeps — overwriting grads, save/load — is checked in ``test_contract.py``)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    assert_close_to_torch,
    assert_gradcheck,
    numeric_grad,
    padded_batch,
    rel_error,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad import layers

DTYPES = [np.float32, np.float64]
# (N, T, F, H): batch 1, one step, input width 1, hidden size 1, a longer sequence
SHAPES = [(1, 1, 1, 1), (3, 1, 2, 4), (1, 5, 3, 1), (2, 12, 3, 3), (4, 6, 1, 3), (2, 3, 5, 2)]
SHAPE_IDS = ["N1T1F1H1", "T1", "N1H1", "T12", "F1", "F5H2"]
GATES = ("I", "F", "g", "O")  # row blocks of W_ih, W_hh, b, in PyTorch's order


def make_lstm(F, H, peepholes=False, return_sequences=True, dtype=np.float64, seed=0, scale=1.0, **kw):
    """An LSTM with a random bias and (with peepholes) random, nonzero peephole weights: the
    defaults (zero bias but for the forget gate, zero peepholes) would hide mistakes."""
    layer = layers.LSTM(F, H, peepholes=peepholes, return_sequences=return_sequences, rng=seed, dtype=dtype, **kw)
    rng = np.random.default_rng(seed + 100)
    layer.params["W_ih"] = (layer.params["W_ih"] * scale).astype(dtype)
    layer.params["W_hh"] = (layer.params["W_hh"] * scale).astype(dtype)
    layer.params["b"] = (0.5 * rng.standard_normal(4 * H)).astype(dtype)
    if peepholes:
        layer.params["w_peep"] = (0.7 * rng.standard_normal((3, H))).astype(dtype)
    return layer


# -- the reference: 003 §7 / PyTorch equations, per sample and per step -----------------------------

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def blocks(v, H):
    """The (I, F, g, O) blocks of a stacked (4H, ...) array."""
    return [v[k * H:(k + 1) * H] for k in range(4)]


def ref_lstm_forward(x, p, h0=None, c0=None, mask_value=None):
    """Per sample n and step t (peepholes see the previous cell state c_{t-1})::

        i = σ(W_I x + U_I h + b_I + p_I ⊙ c_{t-1})     f = σ(... + p_F ⊙ c_{t-1})
        g = tanh(W_g x + U_g h + b_g)                   o = σ(... + p_O ⊙ c_{t-1})
        c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

    A padded step (every feature == mask_value) leaves (h, c) unchanged. Returns hs, cs
    (index 0 the initial state) and the per-step gate values for the backward pass."""
    W, U, b = p["W_ih"], p["W_hh"], p["b"]
    peep = p.get("w_peep")
    N, T, F = x.shape
    H = U.shape[1]
    hs, cs = np.zeros((N, T + 1, H)), np.zeros((N, T + 1, H))
    cache = {}
    for n in range(N):
        h = np.zeros(H) if h0 is None else np.array(h0[n], np.float64)
        c = np.zeros(H) if c0 is None else np.array(c0[n], np.float64)
        hs[n, 0], cs[n, 0] = h, c
        for t in range(T):
            if mask_value is not None and np.all(x[n, t] == mask_value):
                hs[n, t + 1], cs[n, t + 1] = h, c
                continue
            aI, aF, ag, aO = blocks(W @ x[n, t] + U @ h + b, H)
            if peep is not None:
                aI, aF, aO = aI + peep[0] * c, aF + peep[1] * c, aO + peep[2] * c
            i, f, g, o = sigmoid(aI), sigmoid(aF), np.tanh(ag), sigmoid(aO)
            c = f * c + i * g
            h = o * np.tanh(c)
            hs[n, t + 1], cs[n, t + 1] = h, c
            cache[n, t] = (i, f, g, o)
    return hs, cs, cache


def ref_lstm_backward(x, p, hs, cs, cache, e, mask_value=None):
    """The chain rule through the forward above. ``e[n, t]`` = ∂C/∂h_t from above. Returns
    grads, dx, (dh0, dc0) and the deltas ∂C/∂a_t (the four gates' weighted inputs)."""
    W, U = p["W_ih"], p["W_hh"]
    peep = p.get("w_peep")
    N, T, F = x.shape
    H = U.shape[1]
    grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in p.items()}
    dx = np.zeros((N, T, F))
    dh0, dc0 = np.zeros((N, H)), np.zeros((N, H))
    deltas = np.zeros((N, T, 4 * H))
    for n in range(N):
        dh_future = np.zeros(H)  # ∂C/∂h_t through step t+1
        dc_future = np.zeros(H)  # ∂C/∂c_t through step t+1 (c_{t+1} and the peepholes)
        for t in range(T - 1, -1, -1):
            dh = e[n, t] + dh_future
            if mask_value is not None and np.all(x[n, t] == mask_value):
                dh_future, dc_future = dh, dc_future  # (h, c) passed through unchanged
                continue
            i, f, g, o = cache[n, t]
            c, c_prev, h_prev = cs[n, t + 1], cs[n, t], hs[n, t]
            tc = np.tanh(c)
            dc = dc_future + dh * o * (1 - tc ** 2)
            da_O = dh * tc * o * (1 - o)
            da_I = dc * g * i * (1 - i)
            da_g = dc * i * (1 - g ** 2)
            da_F = dc * c_prev * f * (1 - f)
            da = np.concatenate([da_I, da_F, da_g, da_O])
            deltas[n, t] = da
            grads["b"] += da
            grads["W_ih"] += np.outer(da, x[n, t])
            grads["W_hh"] += np.outer(da, h_prev)
            dx[n, t] = W.T @ da
            dh_future = U.T @ da
            dc_future = dc * f
            if peep is not None:
                grads["w_peep"] += np.stack([da_I, da_F, da_O]) * c_prev
                dc_future = dc_future + peep[0] * da_I + peep[1] * da_F + peep[2] * da_O
        dh0[n], dc0[n] = dh_future, dc_future
    return grads, dx, (dh0, dc0), deltas


def output_grad_per_step(g, T, return_sequences):
    if return_sequences:
        return g
    e = np.zeros((g.shape[0], T, g.shape[1]))
    e[:, -1] = g
    return e


def run_layer(layer, x, g, initial_state=None):
    y = layer.forward(x, training=True, initial_state=initial_state)
    gx = layer.backward(g)
    return y, gx, {k: v.copy() for k, v in layer.grads.items()}


def check_against_reference(layer, x, g, state=None, tol=1e-12):
    p = layer.params
    h0, c0 = state if state is not None else (None, None)
    y, gx, grads = run_layer(layer, x, g, state)
    hs, cs, cache = ref_lstm_forward(x, p, h0, c0, layer.mask_value)
    y_ref = hs[:, 1:] if layer.return_sequences else hs[:, -1]
    e = output_grad_per_step(g, x.shape[1], layer.return_sequences)
    rgrads, rdx, (rdh0, rdc0), _ = ref_lstm_backward(x, p, hs, cs, cache, e, layer.mask_value)
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, rdx, rtol=tol, atol=tol)
    assert set(grads) == set(rgrads)
    for k in grads:
        np.testing.assert_allclose(grads[k], rgrads[k], rtol=tol, atol=tol, err_msg=k)
    dh0, dc0 = layer.grad_initial_state
    np.testing.assert_allclose(dh0, rdh0, rtol=tol, atol=tol)
    np.testing.assert_allclose(dc0, rdc0, rtol=tol, atol=tol)


@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
@pytest.mark.parametrize("n,T,F,H", SHAPES, ids=SHAPE_IDS)
def test_matches_reference(n, T, F, H, peepholes, return_sequences):
    layer = make_lstm(F, H, peepholes, return_sequences, scale=1.5)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, T, H) if return_sequences else (n, H))
    check_against_reference(layer, x, g)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 4), T=st.integers(1, 8), F=st.integers(1, 4), H=st.integers(1, 4),
       peepholes=st.booleans(), return_sequences=st.booleans(), with_state=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matches_reference_random_shapes(n, T, F, H, peepholes, return_sequences, with_state, seed):
    layer = make_lstm(F, H, peepholes, return_sequences, seed=seed % 50, scale=1.3)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, T, H) if return_sequences else (n, H))
    state = (rng.standard_normal((n, H)), rng.standard_normal((n, H))) if with_state else None
    check_against_reference(layer, x, g, state)


@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
def test_matches_reference_with_mask_peepholes_and_initial_state(return_sequences):
    layer = make_lstm(3, 4, True, return_sequences, mask_value=0.0, scale=1.2)
    x = padded_batch([6, 2, 1, 4], 6, 3, seed=3)
    rng = np.random.default_rng(4)
    g = rng.standard_normal((4, 6, 4) if return_sequences else (4, 4))
    state = (rng.standard_normal((4, 4)), rng.standard_normal((4, 4)))
    check_against_reference(layer, x, g, state)


def gappy_batch(seed=0):
    """Padding anywhere: at the start (pre-padding), in the middle and at the end."""
    x = np.random.default_rng(seed).standard_normal((4, 7, 3))
    x[0, :3] = 0.0          # pre-padded
    x[1, 2:4] = 0.0         # a gap
    x[2, 1] = 0.0
    x[2, 5:] = 0.0          # a gap and end padding
    return x


@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_padding_anywhere_matches_reference_and_finite_differences(peepholes, return_sequences):
    layer = make_lstm(3, 3, peepholes, return_sequences, mask_value=0.0, scale=1.3)
    x = gappy_batch()
    rng = np.random.default_rng(8)
    g = rng.standard_normal((4, 7, 3) if return_sequences else (4, 3))
    check_against_reference(layer, x, g)
    check_against_reference(layer, x, g, (rng.standard_normal((4, 3)), rng.standard_normal((4, 3))))
    assert_gradcheck(layer, x, max_entries=None, check_input=False)
    # a sequence with gaps is the same sequence with the padded steps removed
    y = layer.forward(x)
    if not return_sequences:
        for n in range(4):
            real = ~np.all(x[n] == 0.0, axis=1)
            np.testing.assert_allclose(y[n], layer.forward(np.ascontiguousarray(x[n:n + 1, real]))[0],
                                       rtol=1e-13, atol=1e-15)


def test_reference_itself_on_a_hand_computed_case():
    """One cell, one step, every gate written out; peepholes see c0."""
    p = {"W_ih": np.array([[0.5], [-0.3], [0.8], [0.2]]), "W_hh": np.array([[0.1], [0.2], [-0.4], [0.3]]),
         "b": np.array([0.1, 1.0, -0.2, 0.05]), "w_peep": np.array([[0.3], [-0.6], [0.9]])}
    x = np.array([[[2.0]]])
    h0, c0 = np.array([[0.4]]), np.array([[-0.7]])
    i = sigmoid(0.5 * 2 + 0.1 * 0.4 + 0.1 + 0.3 * -0.7)
    f = sigmoid(-0.3 * 2 + 0.2 * 0.4 + 1.0 - 0.6 * -0.7)
    g = np.tanh(0.8 * 2 - 0.4 * 0.4 - 0.2)
    o = sigmoid(0.2 * 2 + 0.3 * 0.4 + 0.05 + 0.9 * -0.7)
    c = f * -0.7 + i * g
    h = o * np.tanh(c)
    hs, cs, cache = ref_lstm_forward(x, p, h0, c0)
    np.testing.assert_allclose([hs[0, 1, 0], cs[0, 1, 0]], [h, c], rtol=1e-15)
    # C = h_1: every partial derivative by hand
    grads, dx, (dh0, dc0), _ = ref_lstm_backward(x, p, hs, cs, cache, np.ones((1, 1, 1)))
    dh_dc = o * (1 - np.tanh(c) ** 2)
    dI, dF, dO = dh_dc * g * i * (1 - i), dh_dc * c0[0, 0] * f * (1 - f), np.tanh(c) * o * (1 - o)
    dg = dh_dc * i * (1 - g ** 2)
    np.testing.assert_allclose(grads["b"], [dI, dF, dg, dO], rtol=1e-14)
    np.testing.assert_allclose(grads["w_peep"][:, 0], [dI * -0.7, dF * -0.7, dO * -0.7], rtol=1e-14)
    np.testing.assert_allclose(dc0[0, 0], dh_dc * f + 0.3 * dI - 0.6 * dF + 0.9 * dO, rtol=1e-14)
    np.testing.assert_allclose(dh0[0, 0], 0.1 * dI + 0.2 * dF - 0.4 * dg + 0.3 * dO, rtol=1e-14)


def test_zero_peepholes_equal_plain_lstm():
    plain = make_lstm(3, 4, False, scale=1.3)
    peep = make_lstm(3, 4, True, scale=1.3)
    peep.params["w_peep"] = np.zeros((3, 4))
    for k in ("W_ih", "W_hh", "b"):
        peep.params[k] = plain.params[k].copy()
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 4))
    y1, gx1, g1 = run_layer(plain, x, g)
    y2, gx2, g2 = run_layer(peep, x, g)
    np.testing.assert_allclose(y1, y2, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(gx1, gx2, rtol=1e-13, atol=1e-15)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-13, atol=1e-15)
    assert np.abs(g2["w_peep"]).max() > 1e-3  # zero peepholes still get a gradient


def test_peepholes_see_the_previous_cell_state():
    """With c0 ≠ 0, the first step's gates already depend on the peepholes (they see c_{t−1} =
    c0, not c_t); with c0 = 0 the first step does not depend on them at all."""
    layer = make_lstm(2, 3, True)
    x = np.random.default_rng(0).standard_normal((2, 1, 2))
    h0 = np.zeros((2, 3))
    c0 = np.random.default_rng(1).standard_normal((2, 3))
    y = layer.forward(x, initial_state=(h0, c0))
    y_zero = layer.forward(x)
    layer.params["w_peep"] = layer.params["w_peep"] * 2
    assert not np.allclose(layer.forward(x, initial_state=(h0, c0)), y)
    np.testing.assert_array_equal(layer.forward(x), y_zero)


# -- finite differences ---------------------------------------------------------------------------

@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
@pytest.mark.parametrize("n,T,F,H", SHAPES, ids=SHAPE_IDS)
def test_gradcheck(n, T, F, H, peepholes, return_sequences):
    layer = make_lstm(F, H, peepholes, return_sequences, scale=1.5)
    x = np.random.default_rng(1).standard_normal((n, T, F))
    result = assert_gradcheck(layer, x, max_entries=None)
    expected = {"W_ih", "W_hh", "b", "input"} | ({"w_peep"} if peepholes else set())
    assert set(result.errors) == expected


def test_gradcheck_float32_layer_checked_in_float64_and_restored():
    layer = layers.LSTM(3, 2, peepholes=True, rng=0)
    assert layer.params["W_ih"].dtype == np.float32
    before = {k: v.copy() for k, v in layer.params.items()}
    objs = dict(layer.params)
    assert_gradcheck(layer, np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32))
    for k in before:
        assert layer.params[k] is objs[k]
        assert layer.params[k].dtype == np.float32
        np.testing.assert_array_equal(layer.params[k], before[k])


@pytest.mark.parametrize("make_x", [
    lambda r: r.standard_normal((5, 3, 4)).transpose(1, 0, 2),      # time-major storage
    lambda r: r.standard_normal((3, 10, 4))[:, ::2],                 # strided steps
    lambda r: r.standard_normal((3, 5, 8))[..., 1::2],               # strided features
], ids=["time-major", "sliced-steps", "sliced-features"])
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_non_contiguous_input(make_x, peepholes):
    x = make_x(np.random.default_rng(3))
    assert x.shape == (3, 5, 4) and not x.flags.c_contiguous
    layer = make_lstm(4, 3, peepholes)
    assert_gradcheck(layer, x, max_entries=None)
    g = np.random.default_rng(4).standard_normal((3, 5, 3))
    y_nc, gx_nc, grads_nc = run_layer(layer, x, g)
    y_c, gx_c, grads_c = run_layer(layer, np.ascontiguousarray(x), g)
    np.testing.assert_allclose(y_nc, y_c, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gx_nc, gx_c, rtol=1e-13, atol=1e-14)
    for k in grads_c:
        np.testing.assert_allclose(grads_nc[k], grads_c[k], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_gradcheck_with_initial_state(peepholes, return_sequences):
    n, T, F, H = 3, 4, 2, 3
    layer = make_lstm(F, H, peepholes, return_sequences, scale=1.4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, T, F))
    h0, c0 = rng.standard_normal((n, H)), rng.standard_normal((n, H))
    layer.initial_state = (h0, c0)  # the default initial state of forward
    assert_gradcheck(layer, x, max_entries=None)
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x, initial_state=(h0, c0)))
    layer.initial_state = None
    assert not np.allclose(layer.forward(x), layer.forward(x, initial_state=(h0, c0)))

    R = rng.standard_normal((n, T, H) if return_sequences else (n, H))
    layer.forward(x, training=True, initial_state=(h0, c0))
    layer.backward(R)
    dh0, dc0 = (np.array(a) for a in layer.grad_initial_state)
    assert dh0.shape == dc0.shape == (n, H)
    assert np.abs(dh0).max() > 1e-3 and np.abs(dc0).max() > 1e-3
    hw, cw = h0.copy(), c0.copy()
    f = lambda: float((layer.forward(x, initial_state=(hw, cw)) * R).sum())  # noqa: E731
    assert rel_error(dh0, numeric_grad(f, hw)) < 1e-6
    assert rel_error(dc0, numeric_grad(f, cw)) < 1e-6


# -- masked variable-length sequences --------------------------------------------------------------

LENGTHS = [7, 4, 1, 5]


@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_gradcheck_masked(peepholes, return_sequences):
    layer = make_lstm(3, 3, peepholes, return_sequences, mask_value=0.0, scale=1.3)
    x = padded_batch(LENGTHS, 7, 3)
    result = assert_gradcheck(layer, x, max_entries=None, check_input=False)
    assert "input" not in result.errors


@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
def test_masked_input_gradient(return_sequences):
    H = 3
    layer = make_lstm(3, H, True, return_sequences, mask_value=0.0, scale=1.3)
    x = padded_batch(LENGTHS, 7, 3, seed=2)
    rng = np.random.default_rng(1)
    R = rng.standard_normal((4, 7, H) if return_sequences else (4, H))
    state = (rng.standard_normal((4, H)), rng.standard_normal((4, H)))
    layer.forward(x, training=True, initial_state=state)
    gx = layer.backward(R)
    real = np.zeros(x.shape[:2], bool)
    for n, L in enumerate(LENGTHS):
        real[n, :L] = True
    assert not gx[~real].any()
    xw = x.copy()
    f = lambda: float((layer.forward(xw, initial_state=state) * R).sum())  # noqa: E731
    for n, t in zip(*np.nonzero(real)):
        assert rel_error(gx[n, t], numeric_grad(f, xw[n, t])) < 1e-6, (n, t)


@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_padded_sequences_match_truncated_sequences(peepholes):
    H = 4
    layer = make_lstm(3, H, peepholes, False, mask_value=0.0, scale=1.3)
    x = padded_batch(LENGTHS, 7, 3, seed=6)
    g = np.random.default_rng(2).standard_normal((4, H))
    y, gx, grads = run_layer(layer, x, g)
    total = {k: np.zeros_like(v) for k, v in grads.items()}
    for n, L in enumerate(LENGTHS):
        yn, gxn, gn = run_layer(layer, np.ascontiguousarray(x[n:n + 1, :L]), g[n:n + 1])
        np.testing.assert_allclose(y[n:n + 1], yn, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(gx[n:n + 1, :L], gxn, rtol=1e-12, atol=1e-15)
        assert not gx[n, L:].any()
        for k in total:
            total[k] += gn[k]
        single = np.zeros((1, 7, 3))
        single[0, :L] = x[n, :L]
        ys, gxs, gs = run_layer(layer, single, g[n:n + 1])
        np.testing.assert_allclose(ys, yn, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(gxs[:, :L], gxn, rtol=1e-12, atol=1e-15)
        assert not gxs[:, L:].any()
        for k in gs:
            np.testing.assert_allclose(gs[k], gn[k], rtol=1e-12, atol=1e-15, err_msg=k)
    for k in grads:
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_fully_padded_sequence_passes_its_initial_state_through(peepholes):
    layer = make_lstm(3, 4, peepholes, False, mask_value=0.0)
    x = padded_batch([5, 0], 5, 3)
    rng = np.random.default_rng(0)
    h0, c0, g = rng.standard_normal((2, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    y = layer.forward(x, training=True, initial_state=(h0, c0))
    np.testing.assert_array_equal(y[1], h0[1])
    gx = layer.backward(g)
    assert not gx[1].any()
    dh0, dc0 = layer.grad_initial_state
    np.testing.assert_array_equal(dh0[1], g[1])
    assert not dc0[1].any()
    grads = {k: v.copy() for k, v in layer.grads.items()}
    _, _, alone = run_layer(layer, x[:1], g[:1], (h0[:1], c0[:1]))
    for k in grads:
        np.testing.assert_allclose(grads[k], alone[k], rtol=1e-13, atol=1e-15)


def test_padded_steps_carry_the_state_in_sequence_output():
    layer = make_lstm(3, 4, True, mask_value=0.0, stateful=True)
    x = padded_batch(LENGTHS, 7, 3)
    y = layer.forward(x)
    h_last, c_last = layer.initial_state  # the carried (h, c) after the padded steps
    for n, L in enumerate(LENGTHS):
        for t in range(L, 7):
            np.testing.assert_array_equal(y[n, t], y[n, L - 1])
        np.testing.assert_array_equal(h_last[n], y[n, L - 1])
    # the carried cell state is the one after the last real step
    for n, L in enumerate(LENGTHS):
        alone = make_lstm(3, 4, True, stateful=True)
        alone.forward(np.ascontiguousarray(x[n:n + 1, :L]))
        np.testing.assert_allclose(c_last[n], alone.initial_state[1][0], rtol=1e-13, atol=1e-15)


# -- PyTorch parity ---------------------------------------------------------------------------------


def torch_peephole_lstm(torch, x, W, U, b, peep, h, c):
    """003 §7 unrolled by hand: the I, F and O gates see c_{t−1}."""
    H = U.shape[1]
    outs = []
    for t in range(x.shape[1]):
        a = x[:, t] @ W.T + h @ U.T + b
        i = torch.sigmoid(a[:, :H] + peep[0] * c)
        f = torch.sigmoid(a[:, H:2 * H] + peep[1] * c)
        g = torch.tanh(a[:, 2 * H:3 * H])
        o = torch.sigmoid(a[:, 3 * H:] + peep[2] * c)
        c = f * c + i * g
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=1), c


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_parity(dtype, peepholes, return_sequences, with_state):
    torch = pytest.importorskip("torch")
    n, T, F, H = 3, 7, 4, 5
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    layer = make_lstm(F, H, peepholes, return_sequences, dtype=dtype, scale=1.3, stateful=True)  # to read c_T
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, T, F)).astype(dtype)
    g = rng.standard_normal((n, T, H) if return_sequences else (n, H)).astype(dtype)
    if with_state:
        h0, c0 = rng.standard_normal((n, H)).astype(dtype), rng.standard_normal((n, H)).astype(dtype)
    else:
        h0, c0 = np.zeros((n, H), dtype), np.zeros((n, H), dtype)
    p = layer.params

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    if not peepholes:
        ref = torch.nn.LSTM(F, H, batch_first=True).to(tdtype)
        with torch.no_grad():
            ref.weight_ih_l0.copy_(torch.tensor(p["W_ih"]))
            ref.weight_hh_l0.copy_(torch.tensor(p["W_hh"]))
            ref.bias_ih_l0.copy_(torch.tensor(p["b"]))
            ref.bias_hh_l0.zero_()
        out, (h_n, c_n) = ref(xt, (h0t[None], c0t[None]))
        tgrads = lambda: {"W_ih": ref.weight_ih_l0.grad, "W_hh": ref.weight_hh_l0.grad,  # noqa: E731
                          "b": ref.bias_ih_l0.grad, "b_hh": ref.bias_hh_l0.grad}
    else:
        Wt, Ut, bt, pt = (torch.tensor(p[k], requires_grad=True) for k in ("W_ih", "W_hh", "b", "w_peep"))
        out, c_n = torch_peephole_lstm(torch, xt, Wt, Ut, bt, pt, h0t, c0t)
        tgrads = lambda: {"W_ih": Wt.grad, "W_hh": Ut.grad, "b": bt.grad, "w_peep": pt.grad}  # noqa: E731
    yt = out if return_sequences else out[:, -1]
    yt.backward(torch.tensor(g))

    y = layer.forward(x, training=True, initial_state=(h0, c0) if with_state else None)
    gx = layer.backward(g)
    what = repr(layer)
    assert_close_to_torch(y, yt, dtype, f"{what} forward")
    assert_close_to_torch(layer.initial_state[1], c_n.reshape(n, H), dtype, f"{what} c_T")
    assert_close_to_torch(gx, xt.grad, dtype, f"{what} dC/dx")
    tg = tgrads()
    for k in layer.params:
        assert_close_to_torch(layer.grads[k], tg[k], dtype, f"{what} dC/d{k}")
    if "b_hh" in tg:
        assert_close_to_torch(layer.grads["b"], tg["b_hh"], dtype, f"{what} dC/db_hh")
    dh0, dc0 = layer.grad_initial_state
    assert_close_to_torch(dh0, h0t.grad, dtype, f"{what} dC/dh0")
    assert_close_to_torch(dc0, c0t.grad, dtype, f"{what} dC/dc0")


def test_torch_parity_default_init_gate_order():
    """The layer's own initialization (forget bias 1 in rows H:2H) means the same in torch."""
    torch = pytest.importorskip("torch")
    layer = layers.LSTM(3, 4, rng=0, dtype=np.float64)
    ref = torch.nn.LSTM(3, 4, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.tensor(layer.params["W_ih"]))
        ref.weight_hh_l0.copy_(torch.tensor(layer.params["W_hh"]))
        ref.bias_ih_l0.copy_(torch.tensor(layer.params["b"]))
        ref.bias_hh_l0.zero_()
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    np.testing.assert_allclose(layer.forward(x), ref(torch.tensor(x))[0].detach().numpy(), rtol=1e-12, atol=1e-14)


# -- stateful layers: truncated BPTT --------------------------------------------------------------

@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_stateful_chunks_equal_whole_sequence(peepholes):
    n, T, F, H = 2, 10, 3, 4
    x = np.random.default_rng(0).standard_normal((n, T, F))
    whole = make_lstm(F, H, peepholes, scale=1.2).forward(x)
    layer = make_lstm(F, H, peepholes, stateful=True, scale=1.2)
    assert layer.initial_state is None
    y1 = layer.forward(x[:, :6], training=True)
    h1, c1 = layer.initial_state
    np.testing.assert_array_equal(h1, y1[:, -1])
    assert np.abs(c1).max() > 1e-3
    y2 = layer.forward(x[:, 6:], training=True)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), whole, rtol=1e-14, atol=1e-15)
    layer.reset_state()
    assert layer.initial_state is None
    parts = [layer.forward(x[:, a:b]) for a, b in [(0, 1), (1, 7), (7, 10)]]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=1e-14, atol=1e-15)
    layer.reset_state()
    fresh = make_lstm(F, H, peepholes, scale=1.2)
    np.testing.assert_array_equal(layer.forward(x[:, 6:]), fresh.forward(x[:, 6:]))


@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_stateful_gradient_does_not_cross_the_chunk_boundary(peepholes):
    n, T, F, H = 2, 9, 3, 4
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, T, H))
    k = 5
    layer = make_lstm(F, H, peepholes, stateful=True, scale=1.3)
    plain = make_lstm(F, H, peepholes, scale=1.3)
    _, gx1, grads1 = run_layer(layer, x[:, :k], g[:, :k])
    state = tuple(s.copy() for s in layer.initial_state)
    _, gx2, grads2 = run_layer(layer, x[:, k:], g[:, k:])
    dh, dc = layer.grad_initial_state
    assert np.abs(dh).max() > 1e-3 and np.abs(dc).max() > 1e-3  # computed, not sent back
    _, gx1_ref, grads1_ref = run_layer(plain, x[:, :k], g[:, :k])
    _, gx2_ref, grads2_ref = run_layer(plain, x[:, k:], g[:, k:], initial_state=state)
    np.testing.assert_allclose(gx1, gx1_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gx2, gx2_ref, rtol=1e-13, atol=1e-15)
    for key in grads1:
        np.testing.assert_allclose(grads1[key], grads1_ref[key], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(grads2[key], grads2_ref[key], rtol=1e-13, atol=1e-15)
    # the truncated gradient differs from full BPTT over the whole sequence
    _, _, grads_full = run_layer(plain, x, g)
    for key in grads_full:
        assert not np.allclose(grads1[key] + grads2[key], grads_full[key], rtol=1e-6, atol=1e-8)


# -- delta norms: vanishing in an RNN, surviving in an LSTM ------------------------------------------

@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_delta_norms_are_the_mean_norms_of_the_deltas(peepholes, return_sequences):
    n, T, F, H = 3, 6, 2, 4
    layer = make_lstm(F, H, peepholes, return_sequences, record_delta_norms=True, scale=1.2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, T, H) if return_sequences else (n, H))
    assert layer.delta_norms is None
    layer.forward(x, training=True)
    layer.backward(g)
    norms = layer.delta_norms
    assert isinstance(norms, list) and len(norms) == T
    assert all(isinstance(v, float) and v >= 0 for v in norms)
    hs, cs, cache = ref_lstm_forward(x, layer.params)
    *_, deltas = ref_lstm_backward(x, layer.params, hs, cs, cache, output_grad_per_step(g, T, return_sequences))
    np.testing.assert_allclose(norms, np.linalg.norm(deltas, axis=2).mean(axis=0), rtol=1e-12)


def test_delta_norms_vanish_in_rnn_and_survive_in_lstm():
    n, T, F, H = 4, 50, 3, 8
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, H))  # the error enters at the last step only

    rnn = layers.RNN(F, H, return_sequences=False, record_delta_norms=True, rng=1, dtype=np.float64)
    rnn.params["W_hh"] = rnn.params["W_hh"] * 0.3  # small recurrent weights
    rnn.forward(x, training=True)
    rnn.backward(g)
    r = np.array(rnn.delta_norms)

    lstm = layers.LSTM(F, H, return_sequences=False, record_delta_norms=True, forget_bias=1.0, rng=1,
                       dtype=np.float64)
    lstm.params["W_hh"] = lstm.params["W_hh"] * 0.3
    lstm.forward(x, training=True)
    lstm.backward(g)
    s = np.array(lstm.delta_norms)

    assert len(r) == len(s) == T and (r >= 0).all() and (s >= 0).all()
    assert r[-1] > 0 and s[-1] > 0
    rnn_ratio, lstm_ratio = r[0] / r[-1], s[0] / s[-1]
    # RNN: each step back multiplies by act'·W_hh, small: the error all but disappears
    assert rnn_ratio < 1e-15
    assert (np.diff(r) > 0).mean() > 0.9  # (almost) monotonically growing toward the last step
    # LSTM: the cell state carries the error back through forget gates σ(≈1) ≈ 0.73 per step
    assert lstm_ratio > 1e-9
    assert lstm_ratio > 1e6 * rnn_ratio
    assert s[: T // 2].mean() / s[-1] > 1e4 * r[: T // 2].mean() / r[-1]


# -- params / grads contract ------------------------------------------------------------------------

@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
@pytest.mark.parametrize("n,T,F,H", SHAPES, ids=SHAPE_IDS)
def test_param_and_grad_shapes(n, T, F, H, peepholes):
    layer = layers.LSTM(F, H, peepholes=peepholes)
    assert layer.params["W_ih"].shape == (4 * H, F)
    assert layer.params["W_hh"].shape == (4 * H, H)
    assert layer.params["b"].shape == (4 * H,)
    keys = {"W_ih", "W_hh", "b"} | ({"w_peep"} if peepholes else set())
    assert set(layer.grads) == set(layer.params) == keys
    if peepholes:
        assert layer.params["w_peep"].shape == (3, H)
        assert not layer.params["w_peep"].any()
    for k in layer.params:
        assert layer.grads[k].shape == layer.params[k].shape
        assert not layer.grads[k].any()
    layer.forward(np.ones((n, T, F), np.float32), training=True)
    layer.backward(np.ones((n, T, H), np.float32))
    for k in layer.params:
        assert layer.grads[k].shape == layer.params[k].shape
    assert layer.num_params == 4 * H * (F + H + 1) + (3 * H if peepholes else 0)
    assert layer.output_shape((T, F)) == (T, H)
    assert layers.LSTM(F, H, return_sequences=False).output_shape((T, F)) == (H,)


@pytest.mark.parametrize("forget_bias", [1.0, 0.0, 2.5, -1.0])
def test_forget_bias_initialization(forget_bias):
    H = 3
    kwargs = {} if forget_bias == 1.0 else {"forget_bias": forget_bias}
    b = layers.LSTM(2, H, rng=0, **kwargs).params["b"]
    expected = np.zeros(4 * H, np.float32)
    expected[H:2 * H] = forget_bias
    np.testing.assert_array_equal(b, expected)


@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_preserved(dtype, return_sequences, peepholes):
    layer = layers.LSTM(3, 4, peepholes=peepholes, return_sequences=return_sequences, dtype=dtype, rng=0,
                        record_delta_norms=True)
    for k in layer.params:
        assert layer.params[k].dtype == dtype and layer.grads[k].dtype == dtype
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(dtype)
    state = (np.ones((2, 4), dtype), np.ones((2, 4), dtype))
    y = layer.forward(x, training=True, initial_state=state)
    assert y.dtype == dtype
    gx = layer.backward(np.ones(y.shape, dtype))
    assert gx.dtype == dtype
    assert all(s.dtype == dtype for s in layer.grad_initial_state)
    for k in layer.grads:
        assert layer.grads[k].dtype == dtype
    assert all(isinstance(v, float) for v in layer.delta_norms)


def test_default_dtype_is_float32():
    layer = layers.LSTM(2, 3, peepholes=True)
    assert all(p.dtype == np.float32 for p in layer.params.values())


def test_replacing_params_with_float64_copy_is_used():
    layer = layers.LSTM(3, 2, peepholes=True, rng=0)  # float32
    rng = np.random.default_rng(0)
    new = {"W_ih": rng.standard_normal((8, 3)), "W_hh": rng.standard_normal((8, 2)), "b": rng.standard_normal(8),
           "w_peep": rng.standard_normal((3, 2))}
    layer.params.update(new)
    x = rng.standard_normal((4, 3, 3))
    g = rng.standard_normal((4, 3, 2))
    y = layer.forward(x, training=True)
    assert y.dtype == np.float64
    hs, cs, cache = ref_lstm_forward(x, new)
    np.testing.assert_allclose(y, hs[:, 1:], rtol=1e-13)
    gx = layer.backward(g)
    assert gx.dtype == np.float64
    rgrads, rdx, _, _ = ref_lstm_backward(x, new, hs, cs, cache, g)
    np.testing.assert_allclose(gx, rdx, rtol=1e-12, atol=1e-14)
    for k in rgrads:
        assert layer.grads[k].dtype == np.float64
        np.testing.assert_allclose(layer.grads[k], rgrads[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_eval_forward_equals_training_forward():
    layer = make_lstm(3, 4, True)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x, training=True))


def test_same_seed_same_weights():
    a, b, c = layers.LSTM(5, 4, rng=3), layers.LSTM(5, 4, rng=3), layers.LSTM(5, 4, rng=4)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["W_ih"], c.params["W_ih"])


def test_repr_and_config():
    layer = layers.LSTM(28, 128, peepholes=True, return_sequences=False, stateful=True, mask_value=0.0,
                        forget_bias=2.0)
    assert repr(layer).startswith("LSTM(28→128")
    assert repr(layers.LSTM(28, 128)) == "LSTM(28→128)"
    cfg = layer.get_config()
    assert cfg["input_size"] == 28 and cfg["hidden_size"] == 128 and cfg["peepholes"] is True
    assert cfg["return_sequences"] is False and cfg["stateful"] is True
    assert cfg["mask_value"] == 0.0 and cfg["forget_bias"] == 2.0
    assert layers.LSTM(**cfg).get_config() == cfg


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 28), (28,), (2, 4, 28, 1)])
def test_wrong_rank_names_layer_and_shape(shape):
    layer = layers.LSTM(28, 128)
    with pytest.raises(ValueError, match=r"LSTM\(28→128\)") as info:
        layer.forward(np.zeros(shape, np.float32))
    assert str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
@pytest.mark.parametrize("width", [1, 27, 29])
def test_wrong_feature_width_names_layer_and_shapes(width, peepholes):
    layer = layers.LSTM(28, 128, peepholes=peepholes)
    with pytest.raises(ValueError, match=r"LSTM\(28→128") as info:
        layer.forward(np.zeros((4, 5, width), np.float32))
    msg = str(info.value).replace("LSTM(28→128", "")
    assert "28" in msg
    assert f"(4, 5, {width})" in msg


def test_zero_time_steps_is_value_error():
    with pytest.raises(ValueError, match=r"LSTM\(3→2\).*\(4, 0, 3\)"):
        layers.LSTM(3, 2).forward(np.zeros((4, 0, 3), np.float32))


@pytest.mark.parametrize("bad", [
    lambda: np.zeros((4, 2), np.float32),                                             # h only
    lambda: (np.zeros((4, 2), np.float32),),                                          # one of two
    lambda: (np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32)),
    lambda: (np.zeros((4, 2), np.float32), np.zeros((3, 2), np.float32)),            # c0 wrong batch
    lambda: (np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)),            # h0 wrong width
], ids=["bare-array", "one", "three", "c0-batch", "h0-width"])
def test_bad_initial_state_is_value_error(bad):
    layer = layers.LSTM(3, 2)
    with pytest.raises(ValueError, match=r"LSTM\(3→2\)"):
        layer.forward(np.zeros((4, 5, 3), np.float32), initial_state=bad())


@pytest.mark.parametrize("args", [(0, 5), (5, 0), (-1, 3), (2.0, 3), (True, 3)])
def test_bad_sizes_are_value_errors(args):
    with pytest.raises(ValueError, match=r"LSTM\("):
        layers.LSTM(*args)


def test_non_bool_peepholes_is_type_error():
    with pytest.raises(TypeError, match=r"LSTM\(3→2\).*peepholes"):
        layers.LSTM(3, 2, peepholes="yes")


def test_non_float_input_is_type_error():
    with pytest.raises(TypeError, match=r"LSTM\(2→3\)"):
        layers.LSTM(2, 3).forward(np.zeros((2, 3, 2), np.int64))


def test_backward_before_forward_is_runtime_error():
    layer = layers.LSTM(3, 2)
    with pytest.raises(RuntimeError, match=r"LSTM\(3→2\).*backward"):
        layer.backward(np.zeros((1, 4, 2), np.float32))
    layer.forward(np.zeros((1, 4, 3), np.float32))
    with pytest.raises(RuntimeError, match=r"LSTM\(3→2\)"):
        layer.backward(np.zeros((1, 4, 2), np.float32))


def test_backward_wrong_gradient_shape():
    layer = layers.LSTM(3, 4, return_sequences=False)
    layer.forward(np.zeros((2, 5, 3), np.float32), training=True)
    with pytest.raises(ValueError, match=r"LSTM\(3→4\)\.backward.*\(2, 4\).*\(2, 5, 4\)"):
        layer.backward(np.zeros((2, 5, 4), np.float32))


# -- the internal (gate-permuted) weights: built once per parameter change ------------------------

def fresh_copy(layer):
    """The same config and parameters, with nothing cached."""
    new = layers.LSTM.from_config(layer.get_config(), deferred=True)
    new.params = {k: p.copy() for k, p in layer.params.items()}
    new.zero_grads()
    return new


def assert_same_as_fresh(layer, x, g):
    """Forward and backward bit for bit those of a layer that builds its weights anew."""
    ref = fresh_copy(layer)
    np.testing.assert_array_equal(layer.forward(x, training=True), ref.forward(x, training=True))
    np.testing.assert_array_equal(layer.backward(g), ref.backward(g))
    for k in ref.grads:
        np.testing.assert_array_equal(layer.grads[k], ref.grads[k], err_msg=k)


def test_internal_weights_are_built_once_per_parameter_change():
    from handgrad import optim

    layer = make_lstm(3, 4, peepholes=True)
    x, g = np.random.default_rng(0).standard_normal((2, 5, 3)), np.random.default_rng(1).standard_normal((2, 5, 4))
    cache = layer._internal
    for _ in range(3):                       # evaluation: one build for all batches
        layer.forward(x)
    assert cache.builds == 1
    layer.forward(x, training=True)          # a training step's forward and backward share it
    layer.backward(g)
    assert cache.builds == 1
    opt = optim.SGD(layer, lr=0.1, momentum=0.9)
    for step in range(3):                    # the optimizer writes the params in place: rebuilt once per step
        opt.step()
        assert_same_as_fresh(layer, x, g)
        layer.forward(x)
        assert cache.builds == 2 + step


def test_internal_weights_follow_replaced_and_in_place_edited_params():
    layer = make_lstm(3, 4, peepholes=True, dtype=np.float32)
    x, g = np.random.default_rng(0).standard_normal((2, 5, 3)), np.random.default_rng(1).standard_normal((2, 5, 4))
    assert_same_as_fresh(layer, x.astype(np.float32), g.astype(np.float32))
    layer.params = {k: p.astype(np.float64) for k, p in layer.params.items()}   # replaced by float64 copies
    assert layer.forward(x).dtype == np.float64
    assert_same_as_fresh(layer, x, g)
    layer.params["W_hh"] = layer.params["W_hh"] * 1.5                            # one entry replaced
    assert_same_as_fresh(layer, x, g)
    builds = layer._internal.builds
    layer.params["w_peep"][1, 2] += 1e-3                                          # one element in place
    assert_same_as_fresh(layer, x, g)
    assert layer._internal.builds == builds + 1
    layer.params["b"][3] = 0.0
    layer.forward(x)
    layer.params["b"][3] = -0.0            # equal as numbers, not as bits: the build must see it
    layer.forward(x)
    assert layer._internal.builds == builds + 3
    assert np.signbit(layer._weights()["b"]).sum() == np.signbit(layer.params["b"]).sum()
