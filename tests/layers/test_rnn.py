"""RNN (Elman, BPTT): a per-sample reference written from the equations, finite differences,
PyTorch parity, masking, initial and carried state, param shapes and bad input (the contract
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
ACTS = ["tanh", "sigmoid"]
# (N, T, F, H): batch 1, one step, input width 1, hidden size 1, a longer sequence
SHAPES = [(1, 1, 1, 1), (3, 1, 2, 4), (1, 5, 3, 1), (2, 12, 3, 4), (4, 6, 1, 3), (2, 3, 5, 2)]
SHAPE_IDS = ["N1T1F1H1", "T1", "N1H1", "T12", "F1", "F5H2"]


def make_rnn(F, H, activation="tanh", return_sequences=True, dtype=np.float64, seed=0, scale=1.0, **kw):
    """An RNN with a random, nonzero bias (a zero bias hides some mistakes)."""
    layer = layers.RNN(F, H, activation=activation, return_sequences=return_sequences, rng=seed,
                       dtype=dtype, **kw)
    rng = np.random.default_rng(seed + 100)
    layer.params["W_ih"] = (layer.params["W_ih"] * scale).astype(dtype)
    layer.params["W_hh"] = (layer.params["W_hh"] * scale).astype(dtype)
    layer.params["b"] = (0.5 * rng.standard_normal(H)).astype(dtype)
    return layer


# -- the reference: h_t = act(W_ih x_t + W_hh h_{t-1} + b), per sample, per step -------------------

def ref_act(z, activation):
    return np.tanh(z) if activation == "tanh" else 1.0 / (1.0 + np.exp(-z))


def ref_act_deriv_from_h(h, activation):
    return 1.0 - h * h if activation == "tanh" else h * (1.0 - h)


def ref_rnn_forward(x, W_ih, W_hh, b, activation, h0=None, mask_value=None):
    """hs[n, t] = h_t of sample n (hs[n, 0] = h_0); a padded step (all features == mask_value)
    carries the state unchanged."""
    N, T, F = x.shape
    H = W_hh.shape[0]
    hs = np.zeros((N, T + 1, H))
    for n in range(N):
        h = np.zeros(H) if h0 is None else np.array(h0[n], dtype=np.float64)
        hs[n, 0] = h
        for t in range(T):
            if mask_value is not None and np.all(x[n, t] == mask_value):
                pass  # padding: h_t = h_{t-1}
            else:
                z = W_ih @ x[n, t] + W_hh @ h + b
                h = ref_act(z, activation)
            hs[n, t + 1] = h
    return hs


def ref_rnn_backward(x, W_ih, W_hh, b, activation, hs, e, mask_value=None):
    """BPTT from the chain rule. ``e[n, t]`` = ∂C/∂h_t arriving from above (the output gradient).
    Returns grads dict, dx, dh0 and the deltas δ[n, t] = ∂C/∂z_t."""
    N, T, F = x.shape
    H = W_hh.shape[0]
    gW_ih, gW_hh, gb = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros_like(b)
    dx = np.zeros((N, T, F))
    dh0 = np.zeros((N, H))
    deltas = np.zeros((N, T, H))
    for n in range(N):
        dh_future = np.zeros(H)  # ∂C/∂h_t through h_{t+1}
        for t in range(T - 1, -1, -1):
            eps = e[n, t] + dh_future  # total ∂C/∂h_t
            if mask_value is not None and np.all(x[n, t] == mask_value):
                dh_future = eps  # h_t = h_{t-1}: the gradient passes straight to h_{t-1}
                continue
            h, h_prev = hs[n, t + 1], hs[n, t]
            delta = ref_act_deriv_from_h(h, activation) * eps
            deltas[n, t] = delta
            gb += delta
            gW_ih += np.outer(delta, x[n, t])
            gW_hh += np.outer(delta, h_prev)
            dx[n, t] = W_ih.T @ delta
            dh_future = W_hh.T @ delta
        dh0[n] = dh_future
    return {"W_ih": gW_ih, "W_hh": gW_hh, "b": gb}, dx, dh0, deltas


def output_grad_per_step(g, T, return_sequences):
    """∂C/∂h_t for every t from the layer's output gradient."""
    if return_sequences:
        return g
    e = np.zeros((g.shape[0], T, g.shape[1]))
    e[:, -1] = g
    return e


def run_layer(layer, x, g, initial_state=None):
    y = layer.forward(x, training=True, initial_state=initial_state)
    gx = layer.backward(g)
    return y, gx, {k: v.copy() for k, v in layer.grads.items()}


def check_against_reference(layer, x, g, h0=None, tol=1e-12):
    p = layer.params
    y, gx, grads = run_layer(layer, x, g, h0)
    hs = ref_rnn_forward(x, p["W_ih"], p["W_hh"], p["b"], layer.activation, h0, layer.mask_value)
    y_ref = hs[:, 1:] if layer.return_sequences else hs[:, -1]
    e = output_grad_per_step(g, x.shape[1], layer.return_sequences)
    rgrads, rdx, rdh0, _ = ref_rnn_backward(x, p["W_ih"], p["W_hh"], p["b"], layer.activation, hs, e,
                                            layer.mask_value)
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, rdx, rtol=tol, atol=tol)
    for k in ("W_ih", "W_hh", "b"):
        np.testing.assert_allclose(grads[k], rgrads[k], rtol=tol, atol=tol, err_msg=k)
    np.testing.assert_allclose(layer.grad_initial_state, rdh0, rtol=tol, atol=tol)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("n,T,F,H", SHAPES, ids=SHAPE_IDS)
def test_matches_reference(n, T, F, H, activation, return_sequences):
    layer = make_rnn(F, H, activation, return_sequences, scale=1.5)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, T, H) if return_sequences else (n, H))
    check_against_reference(layer, x, g)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), T=st.integers(1, 9), F=st.integers(1, 5), H=st.integers(1, 5),
       activation=st.sampled_from(ACTS), return_sequences=st.booleans(), with_h0=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matches_reference_random_shapes(n, T, F, H, activation, return_sequences, with_h0, seed):
    layer = make_rnn(F, H, activation, return_sequences, seed=seed % 50, scale=1.3)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, T, H) if return_sequences else (n, H))
    h0 = rng.standard_normal((n, H)) if with_h0 else None
    check_against_reference(layer, x, g, h0)


def test_matches_reference_with_mask_and_initial_state():
    layer = make_rnn(3, 4, "tanh", True, mask_value=0.0, scale=1.2)
    x = padded_batch([6, 2, 1, 4], 6, 3, seed=3)
    rng = np.random.default_rng(4)
    g = rng.standard_normal((4, 6, 4))
    h0 = rng.standard_normal((4, 4))
    check_against_reference(layer, x, g, h0)


def gappy_batch(seed=0):
    """Padding anywhere: at the start (pre-padding), in the middle and at the end."""
    x = np.random.default_rng(seed).standard_normal((4, 7, 3))
    x[0, :3] = 0.0          # pre-padded
    x[1, 2:4] = 0.0         # a gap
    x[2, 1] = 0.0
    x[2, 5:] = 0.0          # a gap and end padding
    return x


@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("activation", ACTS)
def test_padding_anywhere_matches_reference_and_finite_differences(activation, return_sequences):
    layer = make_rnn(3, 3, activation, return_sequences, mask_value=0.0, scale=1.3)
    x = gappy_batch()
    rng = np.random.default_rng(8)
    g = rng.standard_normal((4, 7, 3) if return_sequences else (4, 3))
    check_against_reference(layer, x, g)
    check_against_reference(layer, x, g, rng.standard_normal((4, 3)))
    assert_gradcheck(layer, x, max_entries=None, check_input=False)
    # a sequence with gaps is the same sequence with the padded steps removed
    y = layer.forward(x)
    if not return_sequences:
        for n in range(4):
            real = ~np.all(x[n] == 0.0, axis=1)
            np.testing.assert_allclose(y[n], layer.forward(np.ascontiguousarray(x[n:n + 1, real]))[0],
                                       rtol=1e-13, atol=1e-15)


def test_reference_itself_on_a_hand_computed_case():
    """One unit, weights chosen so the two steps can be computed by hand."""
    W_ih, W_hh, b = np.array([[2.0]]), np.array([[0.5]]), np.array([0.1])
    x = np.array([[[0.3], [-0.4]]])
    h1 = np.tanh(2 * 0.3 + 0.1)
    h2 = np.tanh(2 * -0.4 + 0.5 * h1 + 0.1)
    hs = ref_rnn_forward(x, W_ih, W_hh, b, "tanh")
    np.testing.assert_allclose(hs[0, :, 0], [0.0, h1, h2], rtol=1e-15)
    # C = h2: δ2 = 1 − h2², δ1 = δ2 · 0.5 · (1 − h1²)
    e = np.array([[[0.0], [1.0]]])
    grads, dx, dh0, deltas = ref_rnn_backward(x, W_ih, W_hh, b, "tanh", hs, e)
    d2 = 1 - h2 ** 2
    d1 = d2 * 0.5 * (1 - h1 ** 2)
    np.testing.assert_allclose(deltas[0, :, 0], [d1, d2], rtol=1e-15)
    np.testing.assert_allclose(grads["b"], [d1 + d2], rtol=1e-15)
    np.testing.assert_allclose(grads["W_ih"], [[d1 * 0.3 + d2 * -0.4]], rtol=1e-15)
    np.testing.assert_allclose(grads["W_hh"], [[d2 * h1]], rtol=1e-15)
    np.testing.assert_allclose(dx[0, :, 0], [2 * d1, 2 * d2], rtol=1e-15)
    np.testing.assert_allclose(dh0, [[0.5 * d1]], rtol=1e-15)


def test_h0_defaults_to_zero_and_last_step_is_last_state():
    layer_seq = make_rnn(3, 4)
    layer_last = make_rnn(3, 4, return_sequences=False)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    y_seq = layer_seq.forward(x)
    assert y_seq.shape == (2, 5, 4)
    np.testing.assert_array_equal(layer_last.forward(x), y_seq[:, -1])
    np.testing.assert_array_equal(layer_seq.forward(x, initial_state=np.zeros((2, 4))), y_seq)
    # the first step sees no recurrent term
    p = layer_seq.params
    np.testing.assert_allclose(y_seq[:, 0], np.tanh(x[:, 0] @ p["W_ih"].T + p["b"]), rtol=1e-14)


# -- finite differences ---------------------------------------------------------------------------

@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("n,T,F,H", SHAPES, ids=SHAPE_IDS)
def test_gradcheck(n, T, F, H, activation, return_sequences):
    layer = make_rnn(F, H, activation, return_sequences, scale=1.5)
    x = np.random.default_rng(1).standard_normal((n, T, F))
    result = assert_gradcheck(layer, x, max_entries=None)
    assert set(result.errors) == {"W_ih", "W_hh", "b", "input"}


def test_gradcheck_float32_layer_checked_in_float64_and_restored():
    layer = layers.RNN(3, 2, rng=0)
    assert layer.params["W_ih"].dtype == np.float32
    before = {k: v.copy() for k, v in layer.params.items()}
    objs = dict(layer.params)
    assert_gradcheck(layer, np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32))
    for k in before:
        assert layer.params[k] is objs[k]
        assert layer.params[k].dtype == np.float32
        np.testing.assert_array_equal(layer.params[k], before[k])


@pytest.mark.parametrize("make_x", [
    lambda r: r.standard_normal((5, 3, 4)).transpose(1, 0, 2),      # time-major storage: (3, 5, 4)
    lambda r: r.standard_normal((3, 10, 4))[:, ::2],                 # strided steps: (3, 5, 4)
    lambda r: r.standard_normal((3, 5, 8))[..., 1::2],               # strided features: (3, 5, 4)
    lambda r: np.asfortranarray(r.standard_normal((3, 5, 4))),      # Fortran order
], ids=["time-major", "sliced-steps", "sliced-features", "fortran"])
@pytest.mark.parametrize("activation", ACTS)
def test_non_contiguous_input(make_x, activation):
    x = make_x(np.random.default_rng(3))
    assert x.shape == (3, 5, 4) and not x.flags.c_contiguous
    layer = make_rnn(4, 3, activation)
    assert_gradcheck(layer, x, max_entries=None)
    g = np.random.default_rng(4).standard_normal((3, 5, 3))
    y_nc, gx_nc, grads_nc = run_layer(layer, x, g)
    y_c, gx_c, grads_c = run_layer(layer, np.ascontiguousarray(x), g)
    np.testing.assert_allclose(y_nc, y_c, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gx_nc, gx_c, rtol=1e-13, atol=1e-14)
    for k in grads_c:
        np.testing.assert_allclose(grads_nc[k], grads_c[k], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("activation", ACTS)
def test_gradcheck_with_initial_state(activation, return_sequences):
    n, T, F, H = 3, 4, 2, 3
    layer = make_rnn(F, H, activation, return_sequences, scale=1.4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, T, F))
    h0 = rng.standard_normal((n, H))
    # the initial_state attribute is the default initial state of forward
    layer.initial_state = h0
    assert_gradcheck(layer, x, max_entries=None)
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x, initial_state=h0))
    assert not np.array_equal(layer.forward(x), layer.forward(x, initial_state=np.zeros((n, H))))
    layer.initial_state = None

    # dC/dh0 by finite differences, C = Σ y ⊙ R
    R = rng.standard_normal((n, T, H) if return_sequences else (n, H))
    layer.forward(x, training=True, initial_state=h0)
    layer.backward(R)
    analytic = np.array(layer.grad_initial_state)
    assert analytic.shape == (n, H) and np.abs(analytic).max() > 1e-3
    h0_work = h0.copy()
    numeric = numeric_grad(lambda: float((layer.forward(x, initial_state=h0_work) * R).sum()), h0_work)
    assert rel_error(analytic, numeric) < 1e-6


def test_grad_initial_state_without_given_state_is_gradient_at_zero():
    layer = make_rnn(2, 3, scale=1.4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 2))
    R = rng.standard_normal((2, 4, 3))
    layer.forward(x, training=True)
    layer.backward(R)
    h0 = np.zeros((2, 3))
    numeric = numeric_grad(lambda: float((layer.forward(x, initial_state=h0) * R).sum()), h0)
    assert rel_error(layer.grad_initial_state, numeric) < 1e-6


# -- masked variable-length sequences --------------------------------------------------------------

LENGTHS = [7, 4, 1, 5]


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("activation", ACTS)
def test_gradcheck_masked(activation, return_sequences):
    layer = make_rnn(3, 4, activation, return_sequences, mask_value=0.0, scale=1.3)
    x = padded_batch(LENGTHS, 7, 3)
    # perturbing a padded zero would change the mask: the input is checked below, on real steps
    result = assert_gradcheck(layer, x, max_entries=None, check_input=False)
    assert "input" not in result.errors


@pytest.mark.parametrize("return_sequences", [True, False])
def test_masked_input_gradient(return_sequences):
    H = 4
    layer = make_rnn(3, H, "tanh", return_sequences, mask_value=0.0, scale=1.3)
    x = padded_batch(LENGTHS, 7, 3, seed=2)
    R = np.random.default_rng(1).standard_normal((4, 7, H) if return_sequences else (4, H))
    layer.forward(x, training=True)
    gx = layer.backward(R)
    real = np.zeros(x.shape[:2], bool)
    for n, L in enumerate(LENGTHS):
        real[n, :L] = True
    # padded steps get exactly zero input gradient
    assert not gx[~real].any()
    # real steps: finite differences, entry by entry (a real step never becomes all zeros)
    xw = x.copy()
    f = lambda: float((layer.forward(xw) * R).sum())  # noqa: E731
    for n, t in zip(*np.nonzero(real)):
        num = numeric_grad(f, xw[n, t])
        assert rel_error(gx[n, t], num) < 1e-6, (n, t)


def test_padded_sequences_match_truncated_sequences():
    """return_sequences=False returns the state after each sequence's last real step: each padded
    row gives the output and gradients of that sequence alone, truncated to its real length."""
    H = 4
    layer = make_rnn(3, H, "tanh", False, mask_value=0.0, scale=1.3)
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
        # a single padded sequence gives the same as its truncated version
        single = np.zeros((1, 7, 3))
        single[0, :L] = x[n, :L]
        ys, gxs, gs = run_layer(layer, single, g[n:n + 1])
        np.testing.assert_allclose(ys, yn, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(gxs[:, :L], gxn, rtol=1e-12, atol=1e-15)
        for k in gs:
            np.testing.assert_allclose(gs[k], gn[k], rtol=1e-12, atol=1e-15, err_msg=k)
    for k in grads:
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_fully_padded_sequence_passes_its_initial_state_through():
    layer = make_rnn(3, 4, "sigmoid", False, mask_value=0.0)
    x = padded_batch([5, 0], 5, 3)
    rng = np.random.default_rng(0)
    h0, g = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    y = layer.forward(x, training=True, initial_state=h0)
    np.testing.assert_array_equal(y[1], h0[1])
    gx = layer.backward(g)
    assert not gx[1].any()
    np.testing.assert_array_equal(layer.grad_initial_state[1], g[1])
    grads = {k: v.copy() for k, v in layer.grads.items()}
    _, _, alone = run_layer(layer, x[:1], g[:1], h0[:1])
    for k in grads:  # the empty row adds nothing to the parameter gradients
        np.testing.assert_allclose(grads[k], alone[k], rtol=1e-13, atol=1e-15)


def test_padded_steps_carry_the_state_in_sequence_output():
    layer = make_rnn(3, 4, mask_value=0.0)
    x = padded_batch(LENGTHS, 7, 3)
    y = layer.forward(x)
    last = make_rnn(3, 4, return_sequences=False, mask_value=0.0).forward(x)
    for n, L in enumerate(LENGTHS):
        for t in range(L, 7):
            np.testing.assert_array_equal(y[n, t], y[n, L - 1])
        np.testing.assert_array_equal(last[n], y[n, L - 1])
    # without a mask value the zero steps are ordinary inputs
    y_plain = make_rnn(3, 4).forward(x)
    assert not np.allclose(y_plain[1, 4:], y_plain[1, 3])


def test_nonzero_mask_value():
    layer = make_rnn(2, 3, return_sequences=False, mask_value=-9.0)
    x = np.random.default_rng(0).standard_normal((2, 5, 2))
    x[0, 3:] = -9.0
    x[1, 2, 0] = -9.0  # only one feature equal to mask_value: a real step
    y = layer.forward(x)
    np.testing.assert_allclose(y[0], layer.forward(x[:1, :3])[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(y[1], make_rnn(2, 3, return_sequences=False).forward(x[1:])[0])


# -- PyTorch parity ---------------------------------------------------------------------------------


def torch_rnn_sigmoid(torch, x, W_ih, W_hh, b, h0):
    """The sigmoid RNN unrolled by hand in torch (nn.RNN has only tanh and relu)."""
    h = h0
    outs = []
    for t in range(x.shape[1]):
        h = torch.sigmoid(x[:, t] @ W_ih.T + h @ W_hh.T + b)
        outs.append(h)
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("with_h0", [False, True], ids=["zero-h0", "given-h0"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_parity(dtype, activation, return_sequences, with_h0):
    torch = pytest.importorskip("torch")
    n, T, F, H = 3, 7, 4, 5
    layer = make_rnn(F, H, activation, return_sequences, dtype=dtype, scale=1.3)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, T, F)).astype(dtype)
    g = rng.standard_normal((n, T, H) if return_sequences else (n, H)).astype(dtype)
    h0 = rng.standard_normal((n, H)).astype(dtype) if with_h0 else np.zeros((n, H), dtype)
    p = layer.params

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    if activation == "tanh":
        ref = torch.nn.RNN(F, H, nonlinearity="tanh", batch_first=True).to(torch.float64 if dtype == np.float64
                                                                           else torch.float32)
        with torch.no_grad():
            ref.weight_ih_l0.copy_(torch.tensor(p["W_ih"]))
            ref.weight_hh_l0.copy_(torch.tensor(p["W_hh"]))
            ref.bias_ih_l0.copy_(torch.tensor(p["b"]))
            ref.bias_hh_l0.zero_()
        out, _ = ref(xt, h0t[None])
        tgrads = lambda: {"W_ih": ref.weight_ih_l0.grad, "W_hh": ref.weight_hh_l0.grad,  # noqa: E731
                          "b": ref.bias_ih_l0.grad, "b_hh": ref.bias_hh_l0.grad}
    else:
        Wi, Wh, bt = (torch.tensor(p[k], requires_grad=True) for k in ("W_ih", "W_hh", "b"))
        out = torch_rnn_sigmoid(torch, xt, Wi, Wh, bt, h0t)
        tgrads = lambda: {"W_ih": Wi.grad, "W_hh": Wh.grad, "b": bt.grad}  # noqa: E731
    yt = out if return_sequences else out[:, -1]
    yt.backward(torch.tensor(g))

    y = layer.forward(x, training=True, initial_state=h0 if with_h0 else None)
    gx = layer.backward(g)
    what = f"{layer!r} {activation}"
    assert_close_to_torch(y, yt, dtype, f"{what} forward")
    assert_close_to_torch(gx, xt.grad, dtype, f"{what} dC/dx")
    tg = tgrads()
    for k in ("W_ih", "W_hh", "b"):
        assert_close_to_torch(layer.grads[k], tg[k], dtype, f"{what} dC/d{k}")
    if "b_hh" in tg:  # our single bias is torch's b_ih + b_hh: both have the same gradient
        assert_close_to_torch(layer.grads["b"], tg["b_hh"], dtype, f"{what} dC/db_hh")
    assert_close_to_torch(layer.grad_initial_state, h0t.grad, dtype, f"{what} dC/dh0")


# -- stateful layers: truncated BPTT --------------------------------------------------------------

def test_stateful_chunks_equal_whole_sequence():
    n, T, F, H = 2, 10, 3, 4
    x = np.random.default_rng(0).standard_normal((n, T, F))
    whole = make_rnn(F, H, scale=1.2).forward(x)
    layer = make_rnn(F, H, stateful=True, scale=1.2)
    assert layer.initial_state is None
    y1 = layer.forward(x[:, :6], training=True)
    np.testing.assert_array_equal(layer.initial_state, y1[:, -1])
    y2 = layer.forward(x[:, 6:], training=True)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), whole, rtol=1e-14, atol=1e-15)
    # three chunks of different lengths, after a reset
    layer.reset_state()
    assert layer.initial_state is None
    parts = [layer.forward(x[:, a:b]) for a, b in [(0, 1), (1, 7), (7, 10)]]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=1e-14, atol=1e-15)
    # reset_state restarts from zeros
    layer.reset_state()
    np.testing.assert_array_equal(layer.forward(x[:, 6:]), make_rnn(F, H, scale=1.2).forward(x[:, 6:]))


def test_stateful_gradient_does_not_cross_the_chunk_boundary():
    n, T, F, H = 2, 9, 3, 4
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, T, H))
    k = 5
    layer = make_rnn(F, H, stateful=True, scale=1.3)
    plain = make_rnn(F, H, scale=1.3)

    _, gx1, grads1 = run_layer(layer, x[:, :k], g[:, :k])
    h_boundary = layer.initial_state.copy()
    _, gx2, grads2 = run_layer(layer, x[:, k:], g[:, k:])
    dh_boundary = layer.grad_initial_state.copy()
    assert np.abs(dh_boundary).max() > 1e-3  # computed, but not sent back into chunk 1

    # chunk 1's gradients are its own loss only (a fresh non-stateful run of chunk 1) ...
    _, gx1_ref, grads1_ref = run_layer(plain, x[:, :k], g[:, :k])
    for key in grads1:
        np.testing.assert_allclose(grads1[key], grads1_ref[key], rtol=1e-13, atol=1e-15)
    # ... and chunk 2's are those of chunk 2 started from the carried state
    _, gx2_ref, grads2_ref = run_layer(plain, x[:, k:], g[:, k:], initial_state=h_boundary)
    for key in grads2:
        np.testing.assert_allclose(grads2[key], grads2_ref[key], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gx2, gx2_ref, rtol=1e-13, atol=1e-15)

    # full BPTT = truncated chunks + the one missing term: chunk 2's dC/dh0 fed into chunk 1's
    # last output. This also checks grad_initial_state.
    _, gx_full, grads_full = run_layer(plain, x, g)
    g1 = g[:, :k].copy()
    g1[:, -1] += dh_boundary
    _, gx1_fixed, grads1_fixed = run_layer(plain, x[:, :k], g1)
    for key in grads_full:
        np.testing.assert_allclose(grads1_fixed[key] + grads2[key], grads_full[key], rtol=1e-12, atol=1e-14)
        assert not np.allclose(grads1[key] + grads2[key], grads_full[key], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.concatenate([gx1_fixed, gx2], axis=1), gx_full, rtol=1e-12, atol=1e-14)


def test_stateful_batch_size_change_is_value_error():
    layer = make_rnn(2, 3, stateful=True)
    layer.forward(np.ones((4, 3, 2)))
    with pytest.raises(ValueError, match=r"RNN\(2→3\).*\(3, 3\).*\(4, 3\)"):
        layer.forward(np.ones((3, 3, 2)))
    layer.reset_state()
    assert layer.forward(np.ones((3, 3, 2))).shape == (3, 3, 3)


# -- delta norms ----------------------------------------------------------------------------------

@pytest.mark.parametrize("return_sequences", [True, False])
def test_delta_norms_are_the_mean_norms_of_the_deltas(return_sequences):
    n, T, F, H = 3, 6, 2, 4
    layer = make_rnn(F, H, "tanh", return_sequences, record_delta_norms=True, scale=1.2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, T, F))
    g = rng.standard_normal((n, T, H) if return_sequences else (n, H))
    assert layer.delta_norms is None
    layer.forward(x, training=True)
    layer.backward(g)
    norms = layer.delta_norms
    assert isinstance(norms, list) and len(norms) == T
    assert all(isinstance(v, float) and v >= 0 for v in norms)
    p = layer.params
    hs = ref_rnn_forward(x, p["W_ih"], p["W_hh"], p["b"], "tanh")
    _, _, _, deltas = ref_rnn_backward(x, p["W_ih"], p["W_hh"], p["b"], "tanh", hs,
                                       output_grad_per_step(g, T, return_sequences))
    np.testing.assert_allclose(norms, np.linalg.norm(deltas, axis=2).mean(axis=0), rtol=1e-12)
    # off by default
    plain = make_rnn(F, H, return_sequences=return_sequences)
    plain.forward(x, training=True)
    plain.backward(g)
    assert plain.delta_norms is None


# -- params / grads contract ------------------------------------------------------------------------

@pytest.mark.parametrize("n,T,F,H", SHAPES, ids=SHAPE_IDS)
def test_param_and_grad_shapes(n, T, F, H):
    layer = layers.RNN(F, H)
    assert layer.params["W_ih"].shape == (H, F)
    assert layer.params["W_hh"].shape == (H, H)
    assert layer.params["b"].shape == (H,)
    assert set(layer.grads) == set(layer.params) == {"W_ih", "W_hh", "b"}
    for k in layer.params:
        assert layer.grads[k].shape == layer.params[k].shape
        assert not layer.grads[k].any()
    assert not layer.params["b"].any()
    layer.forward(np.ones((n, T, F), np.float32), training=True)
    layer.backward(np.ones((n, T, H), np.float32))
    for k in layer.params:
        assert layer.grads[k].shape == layer.params[k].shape
    assert layer.num_params == H * F + H * H + H
    assert layer.output_shape((T, F)) == (T, H)
    assert layers.RNN(F, H, return_sequences=False).output_shape((T, F)) == (H,)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_preserved(dtype, return_sequences):
    layer = layers.RNN(3, 4, return_sequences=return_sequences, dtype=dtype, rng=0, record_delta_norms=True)
    for k in layer.params:
        assert layer.params[k].dtype == dtype and layer.grads[k].dtype == dtype
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(dtype)
    y = layer.forward(x, training=True, initial_state=np.ones((2, 4), dtype))
    assert y.dtype == dtype
    gx = layer.backward(np.ones(y.shape, dtype))
    assert gx.dtype == dtype
    assert layer.grad_initial_state.dtype == dtype
    for k in layer.grads:
        assert layer.grads[k].dtype == dtype
    assert all(isinstance(v, float) for v in layer.delta_norms)


def test_default_dtype_is_float32():
    layer = layers.RNN(2, 3)
    assert all(p.dtype == np.float32 for p in layer.params.values())


def test_replacing_params_with_float64_copy_is_used():
    layer = layers.RNN(3, 2, rng=0)  # float32
    rng = np.random.default_rng(0)
    new = {"W_ih": rng.standard_normal((2, 3)), "W_hh": rng.standard_normal((2, 2)), "b": rng.standard_normal(2)}
    layer.params.update(new)
    x = rng.standard_normal((4, 3, 3))
    g = rng.standard_normal((4, 3, 2))
    y = layer.forward(x, training=True)
    assert y.dtype == np.float64
    hs = ref_rnn_forward(x, new["W_ih"], new["W_hh"], new["b"], "tanh")
    np.testing.assert_allclose(y, hs[:, 1:], rtol=1e-13)
    gx = layer.backward(g)
    assert gx.dtype == np.float64
    rgrads, rdx, _, _ = ref_rnn_backward(x, new["W_ih"], new["W_hh"], new["b"], "tanh", hs, g)
    np.testing.assert_allclose(gx, rdx, rtol=1e-12, atol=1e-14)
    for k in rgrads:
        assert layer.grads[k].dtype == np.float64
        np.testing.assert_allclose(layer.grads[k], rgrads[k], rtol=1e-12, atol=1e-14)


def test_replacing_params_with_new_values_changes_output():
    layer = layers.RNN(1, 1, rng=0, dtype=np.float64, return_sequences=False)
    layer.params["W_ih"] = np.array([[1.0]])
    layer.params["W_hh"] = np.array([[0.0]])
    layer.params["b"] = np.array([0.0])
    x = np.array([[[0.25], [0.5]]])
    np.testing.assert_allclose(layer.forward(x), [[np.tanh(0.5)]], rtol=1e-15)


def test_eval_forward_equals_training_forward():
    layer = make_rnn(3, 4)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x, training=True))


def test_same_seed_same_weights_and_fan_in_scale():
    a, b, c = layers.RNN(50, 40, rng=3), layers.RNN(50, 40, rng=3), layers.RNN(50, 40, rng=4)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["W_ih"], c.params["W_ih"])
    big = layers.RNN(300, 200, rng=0, dtype=np.float64)
    np.testing.assert_allclose(big.params["W_ih"].std(), 1 / np.sqrt(300), rtol=0.03)
    np.testing.assert_allclose(big.params["W_hh"].std(), 1 / np.sqrt(200), rtol=0.03)


def test_repr_and_config():
    layer = layers.RNN(28, 128, activation="sigmoid", return_sequences=False, stateful=True, mask_value=0.0)
    assert repr(layer) == "RNN(28→128)"
    cfg = layer.get_config()
    assert cfg["input_size"] == 28 and cfg["hidden_size"] == 128
    assert cfg["activation"] == "sigmoid" and cfg["return_sequences"] is False
    assert cfg["stateful"] is True and cfg["mask_value"] == 0.0
    clone = layers.RNN(**cfg)
    assert clone.get_config() == cfg


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "Tanh", "", None, "identity"])
def test_unknown_activation_is_value_error_at_construction(activation):
    with pytest.raises(ValueError, match=r"RNN\(3→2\).*activation"):
        layers.RNN(3, 2, activation=activation)


@pytest.mark.parametrize("shape", [(4, 28), (28,), (2, 4, 28, 1)])
def test_wrong_rank_names_layer_and_shape(shape):
    layer = layers.RNN(28, 128)
    with pytest.raises(ValueError, match=r"RNN\(28→128\)") as info:
        layer.forward(np.zeros(shape, np.float32))
    assert str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize("width", [1, 27, 29])
def test_wrong_feature_width_names_layer_and_shapes(width):
    layer = layers.RNN(28, 128)
    with pytest.raises(ValueError, match=r"RNN\(28→128\)") as info:
        layer.forward(np.zeros((4, 5, width), np.float32))
    msg = str(info.value).replace("RNN(28→128)", "")
    assert "28" in msg
    assert f"(4, 5, {width})" in msg


def test_zero_time_steps_is_value_error():
    with pytest.raises(ValueError, match=r"RNN\(3→2\).*\(4, 0, 3\)"):
        layers.RNN(3, 2).forward(np.zeros((4, 0, 3), np.float32))


@pytest.mark.parametrize("bad", [(3, 2), (4, 3), (4,), (1, 4, 2)])
def test_bad_initial_state_shape_is_value_error(bad):
    layer = layers.RNN(3, 2)
    with pytest.raises(ValueError, match=r"RNN\(3→2\).*\(4, 2\)"):
        layer.forward(np.zeros((4, 5, 3), np.float32), initial_state=np.zeros(bad, np.float32))


@pytest.mark.parametrize("args", [(0, 5), (5, 0), (-1, 3), (2.0, 3), (True, 3)])
def test_bad_sizes_are_value_errors(args):
    with pytest.raises(ValueError, match=r"RNN\("):
        layers.RNN(*args)


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 2), np.int64), np.zeros((2, 3, 2), np.float16), [[[0.0, 1.0]]]],
                         ids=["int64", "float16", "list"])
def test_non_float_input_is_type_error(bad):
    with pytest.raises(TypeError, match=r"RNN\(2→3\)"):
        layers.RNN(2, 3).forward(bad)


def test_backward_before_forward_is_runtime_error():
    layer = layers.RNN(3, 2)
    with pytest.raises(RuntimeError, match=r"RNN\(3→2\).*backward"):
        layer.backward(np.zeros((1, 4, 2), np.float32))
    layer.forward(np.zeros((1, 4, 3), np.float32))  # inference does not arm backward
    with pytest.raises(RuntimeError, match=r"RNN\(3→2\)"):
        layer.backward(np.zeros((1, 4, 2), np.float32))


@pytest.mark.parametrize("return_sequences,gshape,want", [
    (True, (2, 4), "(2, 5, 4)"), (True, (2, 6, 4), "(2, 5, 4)"), (True, (2, 5, 3), "(2, 5, 4)"),
    (False, (2, 5, 4), "(2, 4)"), (False, (2, 3), "(2, 4)"),
])
def test_backward_wrong_gradient_shape(return_sequences, gshape, want):
    layer = layers.RNN(3, 4, return_sequences=return_sequences)
    layer.forward(np.zeros((2, 5, 3), np.float32), training=True)
    with pytest.raises(ValueError, match=r"RNN\(3→4\)\.backward") as info:
        layer.backward(np.zeros(gshape, np.float32))
    assert want in str(info.value) and str(gshape) in str(info.value)
