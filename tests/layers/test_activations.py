"""Element-wise activations and Softmax: gradients, formulas, dtypes, stability, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import assert_gradcheck

from handgrad import layers

DTYPES = [np.float32, np.float64]
# batch 1, width 1, odd widths, higher rank
SHAPES = [(1, 1), (1, 5), (4, 1), (3, 7), (2, 3, 5)]


def away_from(x, point, gap=0.1):
    """Move every entry at least ``gap`` away from ``point`` (keeps its side)."""
    d = x - point
    return point + np.where(d >= 0, 1.0, -1.0) * (np.abs(d) + gap)


def inputs(shape, dtype, seed=0, scale=1.5):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


SMOOTH = {
    "Sigmoid": layers.Sigmoid,
    "Tanh": layers.Tanh,
    "Identity": layers.Identity,
    "Softmax": layers.Softmax,
    "StochasticBinary": lambda: layers.StochasticBinary(rng=0),
}


# -- finite differences -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_gradcheck_smooth(name, shape, dtype):
    layer = SMOOTH[name]()
    result = assert_gradcheck(layer, inputs(shape, dtype), max_entries=None)
    assert set(result.errors) == {"input"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gradcheck_relu(shape, dtype):
    x = away_from(inputs(shape, np.float64), 0.0).astype(dtype)
    assert_gradcheck(layers.ReLU(), x, max_entries=None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("theta", [0.0, 0.7])
def test_gradcheck_binary_threshold(shape, dtype, theta):
    x = away_from(inputs(shape, np.float64), theta).astype(dtype)
    assert_gradcheck(layers.BinaryThreshold(theta), x, max_entries=None)


@pytest.mark.parametrize("make", [
    layers.Sigmoid, layers.Tanh, layers.ReLU, layers.Identity, layers.Softmax,
    lambda: layers.StochasticBinary(rng=0), lambda: layers.BinaryThreshold(0.0),
], ids=["Sigmoid", "Tanh", "ReLU", "Identity", "Softmax", "StochasticBinary", "BinaryThreshold"])
@pytest.mark.parametrize("view", ["transposed", "sliced"])
def test_non_contiguous_input(make, view):
    base = away_from(inputs((6, 10), np.float64, seed=3), 0.0)
    x = base.T if view == "transposed" else base[1::2, ::3]
    assert not x.flags.c_contiguous
    if view == "sliced":
        assert_gradcheck(make(), x, max_entries=None)

    g = np.random.default_rng(4).standard_normal(x.shape)
    layer = make()
    y_nc = layer.forward(x, training=False)
    layer.forward(x, training=True)
    gx_nc = layer.backward(g)
    layer = make()
    xc = np.ascontiguousarray(x)
    y_c = layer.forward(xc, training=False)
    layer.forward(xc, training=True)
    gx_c = layer.backward(g)
    np.testing.assert_allclose(y_nc, y_c, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(gx_nc, gx_c, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradcheck_transposed_input(dtype):
    """A Fortran-ordered (transposed) input must be perturbed like any other."""
    x = inputs((5, 3), dtype, seed=2).T
    assert not x.flags.c_contiguous
    assert_gradcheck(layers.Tanh(), x, max_entries=None)


def test_gradcheck_large_input_with_max_entries():
    x = inputs((64, 33), np.float64)
    assert_gradcheck(layers.Softmax(), x, max_entries=50)


# -- forward / backward formulas ------------------------------------------------------------------

def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


FORMULAS = {
    "Sigmoid": (layers.Sigmoid, np_sigmoid, lambda x, g: g * np_sigmoid(x) * (1 - np_sigmoid(x))),
    "Tanh": (layers.Tanh, np.tanh, lambda x, g: g * (1 - np.tanh(x) ** 2)),
    "ReLU": (layers.ReLU, lambda x: np.maximum(x, 0), lambda x, g: g * (x > 0)),
    "Identity": (layers.Identity, lambda x: x, lambda x, g: g),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_elementwise_formulas(name):
    make, f, df = FORMULAS[name]
    rng = np.random.default_rng(0)
    x = away_from(rng.standard_normal((4, 6)) * 3, 0.0)
    g = rng.standard_normal((4, 6))
    layer = make()
    np.testing.assert_allclose(layer.forward(x), f(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(layer.forward(x, training=True), f(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(layer.backward(g), df(x, g), rtol=1e-12, atol=1e-300)


def test_relu_at_zero_has_zero_derivative():
    layer = layers.ReLU()
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.forward(x, training=True), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4), (1, 1)], ids=str)
def test_softmax_is_over_last_axis_and_backward_is_jacobian(shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    layer = layers.Softmax()
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, np_softmax(x), rtol=1e-13)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-14)
    gx = layer.backward(g)
    # explicit Jacobian per row: J[h, j] = a_h (δ_hj − a_j); dC/dz = Jᵀ g
    a2, g2 = y.reshape(-1, shape[-1]), g.reshape(-1, shape[-1])
    expected = np.stack([(np.diag(a) - np.outer(a, a)).T @ gr for a, gr in zip(a2, g2)])
    np.testing.assert_allclose(gx, expected.reshape(shape), rtol=1e-12, atol=1e-15)


# -- params / grads / dtype contract -----------------------------------------------------------------

ALL = {
    "Sigmoid": layers.Sigmoid, "Tanh": layers.Tanh, "ReLU": layers.ReLU,
    "Identity": layers.Identity, "Softmax": layers.Softmax,
    "BinaryThreshold": layers.BinaryThreshold,
    "StochasticBinary": lambda: layers.StochasticBinary(rng=0),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ALL))
def test_dtype_preserved_and_no_params(name, dtype):
    layer = ALL[name]()
    assert layer.params == {} and layer.grads == {}
    x = away_from(inputs((3, 4), np.float64), 0.0).astype(dtype)
    assert layer.forward(x).dtype == dtype
    y = layer.forward(x, training=True)
    assert y.dtype == dtype and y.shape == x.shape
    gx = layer.backward(np.ones_like(x))
    assert gx.dtype == dtype and gx.shape == x.shape
    assert layer.params == {} and layer.grads == {}


@pytest.mark.parametrize("name", sorted(ALL))
def test_backward_twice_gives_same_result(name):
    layer = ALL[name]()
    x = away_from(inputs((3, 4), np.float64), 0.0)
    g = np.random.default_rng(9).standard_normal((3, 4))
    layer.forward(x, training=True)
    first = layer.backward(g).copy()
    np.testing.assert_array_equal(layer.backward(g), first)


@pytest.mark.parametrize("name", sorted(ALL))
def test_forward_does_not_modify_input(name):
    x = away_from(inputs((3, 4), np.float64), 0.0)
    before = x.copy()
    layer = ALL[name]()
    layer.forward(x, training=True)
    layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(x, before)


# -- numerical stability --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_extreme_inputs_no_warnings(dtype):
    x = np.array([[-1e4, -1e3, -100.0, 0.0, 100.0, 1e3, 1e4]], dtype)
    layer = layers.Sigmoid()
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = layer.forward(x, training=True)
        gx = layer.backward(np.ones_like(x))
    assert y.dtype == dtype
    assert np.isfinite(y).all() and np.isfinite(gx).all()
    assert y[0, 0] == 0.0 and y[0, -1] == 1.0 and y[0, 3] == 0.5
    assert ((y >= 0) & (y <= 1)).all()
    assert gx[0, 0] == 0.0 and gx[0, -1] == 0.0 and gx[0, 3] == 0.25


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["Tanh", "Softmax", "StochasticBinary", "ReLU"])
def test_other_layers_extreme_inputs_no_warnings(name, dtype):
    x = np.array([[-1e4, -50.0, 0.5, 1e4], [1e4, 1e4, -1e4, 3.0]], dtype)
    layer = ALL[name]()
    # underflow of e^(−2e4) to 0 is the intended result, anything else is an error
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        y_eval = layer.forward(x)
        y = layer.forward(x, training=True)
        gx = layer.backward(np.ones_like(x))
    assert np.isfinite(y_eval).all() and np.isfinite(y).all() and np.isfinite(gx).all()
    if name == "Softmax":
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(y[0], [0.0, 0.0, 0.0, 1.0])
        np.testing.assert_allclose(y[1], [0.5, 0.5, 0.0, 0.0])


def test_sigmoid_keeps_relative_accuracy_in_far_negative_tail():
    """σ(z) for z ≪ 0 is tiny but representable (σ(−40) ≈ 4.2e-18); a sigmoid computed as
    ½(1 + tanh(z/2)) cancels to 0 there and loses all relative accuracy from about z < −20."""
    z = np.array([-40.0, -30.0, -25.0, -20.0])
    expected = np.exp(z) / (1.0 + np.exp(z))  # exact enough: no cancellation for z < 0
    y = layers.Sigmoid().forward(z)
    np.testing.assert_allclose(y, expected, rtol=1e-12,
                               err_msg=f"Sigmoid: got {y}, expected {expected}")


# -- BinaryThreshold -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("theta", [0.0, 0.5, -1.0])
def test_binary_threshold_forward_and_zero_backward(theta, dtype):
    x = np.array([[theta - 1.0, theta - 1e-3, theta, theta + 1e-3, theta + 2.0]], dtype)
    layer = layers.BinaryThreshold(theta)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, (x >= np.asarray(theta, dtype)).astype(dtype))
    np.testing.assert_array_equal(y[0, [0, 2, 4]], [0.0, 1.0, 1.0])  # 1 exactly at theta
    g = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    gx = layer.backward(g)
    assert gx.dtype == dtype and gx.shape == x.shape
    np.testing.assert_array_equal(gx, np.zeros_like(x))
    assert layer.get_config() == {"theta": theta}


def test_binary_threshold_default_theta_is_zero():
    np.testing.assert_array_equal(
        layers.BinaryThreshold().forward(np.array([[-1e-9, 0.0, 1e-9]])), [[0.0, 1.0, 1.0]])


def test_binary_threshold_bad_theta():
    with pytest.raises(TypeError, match="BinaryThreshold"):
        layers.BinaryThreshold("high")


# -- StochasticBinary ----------------------------------------------------------------------------

def test_stochastic_binary_training_samples_bernoulli_of_sigmoid():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0, 4.0])
    n = 20000
    layer = layers.StochasticBinary(rng=123)
    batch = np.broadcast_to(x, (n, x.size)).copy()
    y = layer.forward(batch, training=True)
    assert set(np.unique(y)) <= {0.0, 1.0}
    p = np_sigmoid(x)
    se = np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_less(np.abs(y.mean(axis=0) - p), 5 * se + 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stochastic_binary_eval_returns_sigmoid(dtype):
    x = inputs((5, 3), dtype)
    y = layers.StochasticBinary(rng=0).forward(x, training=False)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, np_sigmoid(x.astype(np.float64)),
                               rtol=1e-12 if dtype == np.float64 else 1e-6)


def test_stochastic_binary_backward_is_grad_times_sigmoid_derivative():
    """Documented behaviour: the sample has no derivative; backward returns the derivative of
    the expected output, grad * σ(x)(1 − σ(x)), whatever was sampled."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5)) * 2
    g = rng.standard_normal((4, 5))
    layer = layers.StochasticBinary(rng=0)
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) <= {0.0, 1.0}
    s = np_sigmoid(x)
    np.testing.assert_allclose(layer.backward(g), g * s * (1 - s), rtol=1e-12)
    assert "backward" in (layers.StochasticBinary.__doc__ or "")
    assert "backward" in (layers.BinaryThreshold.__doc__ or "").lower()


def test_stochastic_binary_same_seed_same_samples():
    x = np.zeros((50, 8))
    a = layers.StochasticBinary(rng=5).forward(x, training=True)
    b = layers.StochasticBinary(rng=5).forward(x, training=True)
    c = layers.StochasticBinary(rng=6).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    layer = layers.StochasticBinary(rng=0)
    layer.set_rng(5)
    np.testing.assert_array_equal(layer.forward(x, training=True), a)


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("bad", [np.zeros((2, 3), np.int64), np.zeros((2, 3), bool), [[1.0, 2.0]], 1.5],
                         ids=["int", "bool", "list", "scalar"])
def test_non_float_input_is_type_error(name, bad):
    with pytest.raises(TypeError, match=name):
        ALL[name]().forward(bad)


@pytest.mark.parametrize("name", sorted(ALL))
def test_backward_before_forward_is_runtime_error(name):
    layer = ALL[name]()
    with pytest.raises(RuntimeError, match=name):
        layer.backward(np.zeros((2, 3)))


@pytest.mark.parametrize("name", sorted(ALL))
def test_backward_with_wrong_gradient_shape(name):
    layer = ALL[name]()
    layer.forward(np.ones((2, 3)), training=True)
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 3\).*\(3, 2\)"):
        layer.backward(np.zeros((3, 2)))
