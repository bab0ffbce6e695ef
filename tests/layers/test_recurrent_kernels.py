"""The compiled step kernels of LSTM and RNN (``layers/_recurrent_kernels.py``) against the
NumPy steps beside them, and the batch split over threads (``layers/bptt.py``) against one
block: forward outputs, every gradient, the initial-state gradient, the input gradient and the
delta norms, for float32 and float64, odd shapes and every optional feature (peepholes,
masking, initial state, sequence output, sigmoid RNN). Also: the same inputs give the same
bits run to run, and an output handed to the caller survives the next forward."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from handgrad import accel, layers
from handgrad.layers import _recurrent_kernels as K

needs_numba = pytest.mark.skipif(not accel.jit_available(), reason="the compiled kernels need numba")
DTYPES = [np.float32, np.float64]
# (N, T, F, H): batch 1, one step, a longer sequence, odd widths
SHAPES = [(1, 1, 1, 1), (1, 5, 3, 2), (3, 1, 2, 4), (5, 7, 3, 5), (8, 4, 6, 3)]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def make(cell, F, H, dtype, seed=0, **kw):
    rng = np.random.default_rng(seed + 7)
    if cell == "lstm":
        layer = layers.LSTM(F, H, rng=seed, dtype=dtype, **kw)
        layer.params["b"] = (0.5 * rng.standard_normal(4 * H)).astype(dtype)
        if layer.peepholes:
            layer.params["w_peep"] = (0.7 * rng.standard_normal((3, H))).astype(dtype)
    else:
        layer = layers.RNN(F, H, rng=seed, dtype=dtype, **kw)
        layer.params["b"] = (0.5 * rng.standard_normal(H)).astype(dtype)
    return layer


def inputs(N, T, F, dtype, seed=1, mask_value=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, F)).astype(dtype)
    if mask_value is not None:  # padding at the end, at the start and in the middle of sequences
        x[0, T // 2:] = mask_value
        if N > 1:
            x[1, :1] = mask_value
        if N > 2 and T > 2:
            x[2, 1] = mask_value
    return x


def one_pass(layer, x, grad_seed=2, initial_state=None):
    """Everything a forward and a backward give: output, grads, dC/dx, dC/d(initial state), delta norms."""
    y = layer.forward(x, training=True, initial_state=initial_state)
    g = np.random.default_rng(grad_seed).standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(g)
    init = layer.grad_initial_state
    return {"y": np.array(y), "dx": np.array(dx), **{k: v.copy() for k, v in layer.grads.items()},
            **{f"init{i}": np.array(s) for i, s in enumerate(init if isinstance(init, tuple) else (init,))},
            "norms": np.array(layer.delta_norms if layer.delta_norms is not None else [])}


def assert_same(a, b, dtype):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], err_msg=k, **TOL[dtype])


CASES = [  # (cell, layer options, with mask, with initial state)
    ("lstm", {}, False, False),
    ("lstm", {"return_sequences": False}, False, False),
    ("lstm", {"peepholes": True}, False, True),
    ("lstm", {"peepholes": True, "return_sequences": False, "mask_value": 0.0}, True, True),
    ("lstm", {"mask_value": 0.0}, True, False),
    ("rnn", {}, False, False),
    ("rnn", {"return_sequences": False, "activation": "sigmoid"}, False, True),
    ("rnn", {"mask_value": 0.0, "activation": "sigmoid"}, True, False),
    ("rnn", {"mask_value": 0.0, "return_sequences": False}, True, True),
]
CASE_IDS = ["lstm", "lstm-last", "lstm-peep-state", "lstm-peep-mask-state-last", "lstm-mask",
            "rnn", "rnn-sigmoid-state-last", "rnn-sigmoid-mask", "rnn-mask-state-last"]


def run_case(cell, opts, masked, with_state, shape, dtype):
    N, T, F, H = shape
    layer = make(cell, F, H, dtype, record_delta_norms=True, **opts)
    x = inputs(N, T, F, dtype, mask_value=0.0 if masked else None)
    state = None
    if with_state:
        rng = np.random.default_rng(3)
        parts = [rng.standard_normal((N, H)).astype(dtype) for _ in range(layer.n_states)]
        state = tuple(parts) if layer.n_states > 1 else parts[0]
    return one_pass(layer, x, initial_state=state)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=["N1T1F1H1", "N1", "T1", "N5T7", "N8"])
@pytest.mark.parametrize("cell, opts, masked, with_state", CASES, ids=CASE_IDS)
def test_compiled_steps_equal_numpy_steps(cell, opts, masked, with_state, shape, dtype):
    with accel.use_jit(False):
        ref = run_case(cell, opts, masked, with_state, shape, dtype)
    with accel.use_jit(True):
        got = run_case(cell, opts, masked, with_state, shape, dtype)
    assert_same(got, ref, dtype)


@pytest.fixture
def split_in_three(monkeypatch):
    """Three threads and blocks of at least two rows: a batch of 8 runs as blocks 2, 3, 3."""
    monkeypatch.setattr(layers.LSTM, "part_rows", 2)
    monkeypatch.setattr(layers.RNN, "part_rows", 2)
    monkeypatch.setattr(accel, "_spin", False)  # idle BLAS threads do not spin (accel.own_threads)
    accel.set_num_threads(3)
    yield 3 if importlib.util.find_spec("threadpoolctl") is not None else 1
    accel.set_num_threads(None)


@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=needs_numba)], ids=["numpy", "jit"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, opts, masked, with_state", CASES, ids=CASE_IDS)
def test_batch_split_over_threads_equals_one_block(split_in_three, cell, opts, masked, with_state, dtype, jit):
    shape = (8, 5, 3, 4)
    with accel.use_jit(jit):
        with accel.limit_threads(1):
            one = run_case(cell, opts, masked, with_state, shape, dtype)
        many = run_case(cell, opts, masked, with_state, shape, dtype)
        again = run_case(cell, opts, masked, with_state, shape, dtype)
    assert_same(many, one, dtype)
    for k in many:  # the same bits run to run
        assert np.array_equal(many[k], again[k]), k


def test_split_blocks_cover_the_batch(split_in_three):
    layer = make("lstm", 3, 4, np.float64)
    layer.forward(inputs(8, 5, 3, np.float64), training=True)
    parts = layer._run.parts
    assert len(parts) == split_in_three
    if split_in_three > 1:
        assert [p.rows for p in parts] == [(0, 2), (2, 5), (5, 8)]
        assert all(p.A.shape == (5, b - a, 16) for p, (a, b) in zip(parts, [p.rows for p in parts]))


@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=needs_numba)], ids=["numpy", "jit"])
@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_same_bits_run_to_run_and_outputs_survive_the_next_forward(cell, jit):
    layer = make(cell, 28, 16, np.float32, return_sequences=True)
    x1, x2 = inputs(64, 6, 28, np.float32, seed=1), inputs(64, 6, 28, np.float32, seed=5)
    with accel.use_jit(jit):
        a = one_pass(layer, x1)
        y1 = layer.forward(x1)
        kept = y1.copy()
        layer.forward(x2, training=True)                 # reuses nothing that y1 lives in
        assert np.array_equal(y1, kept)
        b = one_pass(layer, x1)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


# -- the kernels themselves, compiled and as plain Python, against the notes' equations ----------
def lstm_step_back_reference(gates, c_prev, tc, eps_a, dc, peep):
    """``003`` §7 statements (2)–(6) written out in NumPy (gate blocks I, F, O, g)."""
    i, f, o, g = np.split(gates, 4, axis=1)
    eps_s = eps_a * o * (1 - tc * tc) + dc
    d = np.concatenate([eps_s * g * i * (1 - i), eps_s * c_prev * f * (1 - f),
                        eps_a * tc * o * (1 - o), eps_s * i * (1 - g * g)], axis=1)
    dc_out = eps_s * f
    if peep.shape[0] == 3:
        dc_out = dc_out + sum(peep[q] * d[:, q * i.shape[1]:(q + 1) * i.shape[1]] for q in range(3))
    return d, dc_out


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)], ids=["python", "numba"])
@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_step_back_kernel_matches_the_equations(compiled, peepholes, dtype):
    rng = np.random.default_rng(0)
    N, H = 3, 5
    gates = rng.uniform(-1, 1, (N, 4 * H)).astype(dtype)
    gates[:, :3 * H] = (gates[:, :3 * H] + 1) / 2          # sigmoid gates in (0, 1)
    c_prev, tc, eps_a, dc = (rng.standard_normal((N, H)).astype(dtype) for _ in range(4))
    peep = rng.standard_normal((3, H)).astype(dtype) if peepholes else np.empty((0, H), dtype)
    want_d, want_dc = lstm_step_back_reference(gates, c_prev, tc, eps_a, dc, peep)
    d = np.full((N, 4 * H), np.nan, dtype)
    fn = K.lstm_step_back if compiled else K.lstm_step_back.py
    fn(gates, c_prev, tc, eps_a, dc, peep, d)              # dc is overwritten in place
    np.testing.assert_allclose(d, want_d, **TOL[dtype])
    np.testing.assert_allclose(dc, want_dc, **TOL[dtype])


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)], ids=["python", "numba"])
@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_forward_kernels_match_the_equations(compiled, peepholes, dtype):
    rng = np.random.default_rng(1)
    N, H = 4, 3
    a0, r = (rng.standard_normal((N, 4 * H)).astype(dtype) for _ in range(2))
    b = rng.standard_normal(4 * H).astype(dtype)
    c_prev = rng.standard_normal((N, H)).astype(dtype)
    peep = rng.standard_normal((3, H)).astype(dtype) if peepholes else np.empty((0, H), dtype)
    want = a0 + r + b
    if peepholes:
        want[:, :3 * H] += (peep[:, None, :] * c_prev[None]).transpose(1, 0, 2).reshape(N, 3 * H)
    pre, cell = (K.lstm_preactivation, K.lstm_cell) if compiled else (K.lstm_preactivation.py, K.lstm_cell.py)
    a = a0.copy()
    pre(a, r, b, peep, c_prev)
    np.testing.assert_allclose(a, want, **TOL[dtype])
    t = np.tanh(a)
    c = np.empty((N, H), dtype)
    cell(t, c_prev, c)
    sig = np.tanh(want[:, :3 * H]) / 2 + 0.5                # σ(A) = ½ tanh(A/2) + ½ with A/2 given
    np.testing.assert_allclose(t[:, :3 * H], sig, **TOL[dtype])
    np.testing.assert_allclose(c, sig[:, H:2 * H] * c_prev + sig[:, :H] * np.tanh(want[:, 3 * H:]), **TOL[dtype])


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)], ids=["python", "numba"])
@pytest.mark.parametrize("tanh", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_step_back_kernel_matches_the_equations(compiled, tanh, dtype):
    rng = np.random.default_rng(2)
    eps = rng.standard_normal((3, 4)).astype(dtype)
    h = rng.uniform(-1 if tanh else 0, 1, (3, 4)).astype(dtype)
    delta = np.empty_like(eps)
    (K.rnn_step_back if compiled else K.rnn_step_back.py)(eps, h, delta, tanh)
    np.testing.assert_allclose(delta, eps * ((1 - h * h) if tanh else h * (1 - h)), **TOL[dtype])


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)], ids=["python", "numba"])
@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_float32_step_kernel_matches_the_equations(compiled, peepholes):
    """The one-pass float32 step against ``000`` eqs. (30)–(35) computed in float64."""
    rng = np.random.default_rng(4)
    N, H = 5, 7
    a0, r = (rng.standard_normal((N, 4 * H)).astype(np.float32) for _ in range(2))
    b = rng.standard_normal(4 * H).astype(np.float32)
    c_prev = rng.standard_normal((N, H)).astype(np.float32)
    peep = rng.standard_normal((3, H)).astype(np.float32) if peepholes else np.empty((0, H), np.float32)
    A = a0.astype(np.float64) + r + b                       # halved on I, F, O, as the layer's weights are
    if peepholes:
        A[:, :3 * H] += (peep[:, None, :].astype(np.float64) * c_prev[None]).transpose(1, 0, 2).reshape(N, 3 * H)
    i, f, o = (1 / (1 + np.exp(-2 * A[:, q * H:(q + 1) * H])) for q in range(3))
    g = np.tanh(A[:, 3 * H:])
    c_want = f * c_prev + i * g
    a, c, tc, h = a0.copy(), *(np.full((N, H), np.nan, np.float32) for _ in range(3))
    (K.lstm_step_float32 if compiled else K.lstm_step_float32.py)(a, r, b, peep, c_prev, c, tc, h)
    tol = dict(rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(a, np.concatenate([i, f, o, g], axis=1), **tol)
    np.testing.assert_allclose(c, c_want, **tol)
    np.testing.assert_allclose(tc, np.tanh(c), **tol)        # tanh of the stored c_t, as backward assumes
    np.testing.assert_allclose(h, o * np.tanh(c_want), **tol)


@needs_numba
def test_lstm_float32_step_tanh_is_within_its_bound_everywhere():
    """The inline rational tanh, read off the g block (A_g = x, i = σ(0) = ½): within 4e-7 of
    tanh over a dense grid and at the extremes (7 ulp of 1); odd; NaN stays NaN, ±inf gives ±1."""
    grid = np.linspace(-12, 12, 480_001, dtype=np.float32)
    special = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-45, 3e-4, 7.9, 7.91, 8.5, 1e30, -1e30, 3.4e38,
                        np.inf, -np.inf, np.nan], np.float32)
    x = np.concatenate([grid, special])
    H = x.size
    a = np.zeros((1, 4 * H), np.float32)
    a[0, 3 * H:] = x
    zeros = np.zeros((1, H), np.float32)
    c, tc, h = (np.empty((1, H), np.float32) for _ in range(3))
    K.lstm_step_float32(a, np.zeros_like(a), np.zeros(4 * H, np.float32), np.empty((0, H), np.float32),
                        zeros, c, tc, h)
    got = a[0, 3 * H:]
    finite = ~np.isnan(x)
    want = np.tanh(x[finite].astype(np.float64))
    assert np.abs(got[finite] - want).max() <= 4e-7
    assert np.all(np.abs(got[finite]) <= 1)
    assert np.array_equal(got[:grid.size], -got[:grid.size][::-1])  # odd: the grid is symmetric
    assert np.isnan(got[-1]) and got[-3] == 1 and got[-2] == -1
    assert got[grid.size] == 0                               # tanh(x) ≈ x for tiny x, not flushed to zero:
    np.testing.assert_allclose(got[grid.size + 2:grid.size + 4], [1e-30, -1e-30], rtol=2e-7, atol=0)
    np.testing.assert_allclose(a[0, :3 * H], 0.5)            # σ(0)
