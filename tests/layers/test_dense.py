"""Dense: finite-difference gradients, the params/grads contract, dtypes, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_gradcheck, assert_same_on_contiguous_copy

import handgrad as hg
from handgrad import layers

DTYPES = [np.float32, np.float64]
# (batch, in_features, out_features): batch 1, width 1 on either side, odd widths
SHAPES = [(1, 1, 1), (1, 4, 3), (5, 1, 3), (4, 3, 1), (3, 7, 5), (6, 5, 9)]


def make_dense(fan_in, fan_out, dtype=np.float64, seed=0):
    # bias drawn N(0, 1) so that b is not all zeros (a zero bias hides some mistakes)
    return layers.Dense(fan_in, fan_out, bias_init="normal", rng=seed, dtype=dtype)


# -- finite differences -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,fan_in,fan_out", SHAPES)
def test_gradcheck(dtype, n, fan_in, fan_out):
    layer = make_dense(fan_in, fan_out, dtype)
    x = np.random.default_rng(1).standard_normal((n, fan_in)).astype(dtype)
    result = assert_gradcheck(layer, x, max_entries=None)
    assert set(result.errors) == {"W", "b", "input"}


@pytest.mark.parametrize("make_x", [
    lambda r: r.standard_normal((5, 4)).T,            # transposed: (4, 5), Fortran order
    lambda r: r.standard_normal((6, 10))[:, ::2],     # strided columns: (6, 5)
    lambda r: r.standard_normal((9, 5))[1::2],        # strided rows: (4, 5)
], ids=["transposed", "sliced-cols", "sliced-rows"])
def test_non_contiguous_input(make_x):
    x = make_x(np.random.default_rng(3))
    assert not x.flags.c_contiguous
    layer = make_dense(5, 3)
    assert_gradcheck(layer, x, max_entries=None)

    g = np.random.default_rng(4).standard_normal((x.shape[0], 3))
    assert_same_on_contiguous_copy(layer, x, g, atol=1e-14)


def test_gradcheck_large_layer_with_max_entries():
    layer = make_dense(40, 30)
    x = np.random.default_rng(0).standard_normal((16, 40))
    result = assert_gradcheck(layer, x, max_entries=40)
    assert result.passed


def test_gradcheck_restores_float32_params():
    layer = make_dense(3, 2, np.float32)
    W, b = layer.params["W"], layer.params["b"]
    before = W.copy()
    hg.gradcheck(layer, np.ones((2, 3), np.float32))
    assert layer.params["W"] is W and layer.params["b"] is b
    assert layer.params["W"].dtype == np.float32
    np.testing.assert_array_equal(layer.params["W"], before)


# -- the math, written out -----------------------------------------------------------------

def test_forward_and_backward_formulas():
    layer = make_dense(4, 3)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4))
    g = rng.standard_normal((6, 3))
    W, b = layer.params["W"], layer.params["b"]
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, x @ W.T + b, rtol=1e-14)
    gx = layer.backward(g)
    np.testing.assert_allclose(gx, g @ W, rtol=1e-13)
    np.testing.assert_allclose(layer.grads["W"], g.T @ x, rtol=1e-13)
    np.testing.assert_allclose(layer.grads["b"], g.sum(axis=0), rtol=1e-13)


def test_eval_forward_equals_training_forward():
    layer = make_dense(4, 3)
    x = np.random.default_rng(0).standard_normal((2, 4))
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x, training=True))


# -- params / grads contract -----------------------------------------------------------------

@pytest.mark.parametrize("n,fan_in,fan_out", SHAPES)
def test_param_and_grad_shapes(n, fan_in, fan_out):
    layer = layers.Dense(fan_in, fan_out)
    assert layer.params["W"].shape == (fan_out, fan_in)
    assert layer.params["b"].shape == (fan_out,)
    assert set(layer.grads) == set(layer.params) == {"W", "b"}
    for k in layer.params:
        assert layer.grads[k].shape == layer.params[k].shape
        assert not layer.grads[k].any(), "grads should start at zero"
    x = np.ones((n, fan_in), np.float32)
    layer.forward(x, training=True)
    layer.backward(np.ones((n, fan_out), np.float32))
    for k in layer.params:
        assert layer.grads[k].shape == layer.params[k].shape
    assert layer.num_params == fan_in * fan_out + fan_out


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_preserved(dtype):
    layer = layers.Dense(4, 3, dtype=dtype, rng=0)
    for k in layer.params:
        assert layer.params[k].dtype == dtype
        assert layer.grads[k].dtype == dtype
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    gx = layer.backward(np.ones((2, 3), dtype))
    assert gx.dtype == dtype
    for k in layer.grads:
        assert layer.grads[k].dtype == dtype


def test_default_dtype_is_float32():
    layer = layers.Dense(2, 2)
    assert layer.params["W"].dtype == np.float32
    assert layer.params["b"].dtype == np.float32


def test_replacing_params_with_float64_copy_is_used():
    layer = layers.Dense(3, 2, rng=0)  # float32
    rng = np.random.default_rng(0)
    W64 = rng.standard_normal((2, 3))
    b64 = rng.standard_normal(2)
    layer.params["W"] = W64
    layer.params["b"] = b64
    x = rng.standard_normal((4, 3))
    y = layer.forward(x, training=True)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, x @ W64.T + b64, rtol=1e-14)
    g = rng.standard_normal((4, 2))
    gx = layer.backward(g)
    assert gx.dtype == np.float64
    np.testing.assert_allclose(gx, g @ W64, rtol=1e-14)
    np.testing.assert_allclose(layer.grads["W"], g.T @ x, rtol=1e-14)


def test_replacing_params_with_new_values_changes_output():
    layer = layers.Dense(2, 2, rng=0, dtype=np.float64)
    layer.params["W"] = np.eye(2)
    layer.params["b"] = np.array([10.0, -10.0])
    y = layer.forward(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(y, [[11.0, -8.0]])


# -- initialization --------------------------------------------------------------------------

def test_same_seed_same_weights_and_generator_accepted():
    a = layers.Dense(5, 4, rng=7)
    b = layers.Dense(5, 4, rng=7)
    c = layers.Dense(5, 4, rng=8)
    d = layers.Dense(5, 4, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    np.testing.assert_array_equal(a.params["W"], d.params["W"])
    assert not np.array_equal(a.params["W"], c.params["W"])
    np.testing.assert_array_equal(a.params["b"], np.zeros(4, np.float32))


def test_default_init_is_normal_with_variance_one_over_fan_in():
    layer = layers.Dense(400, 300, rng=0, dtype=np.float64)
    W = layer.params["W"]
    assert abs(W.mean()) < 5 * (1 / np.sqrt(400)) / np.sqrt(W.size)  # 5 standard errors
    np.testing.assert_allclose(W.std(), 1 / np.sqrt(400), rtol=0.02)


@pytest.mark.parametrize("name", ["normal_fan_in", "xavier_normal", "xavier_uniform",
                                  "he_normal", "he_uniform", "standard_normal"])
def test_named_weight_inits_construct(name):
    layer = layers.Dense(6, 4, weight_init=name, rng=0)
    assert layer.params["W"].shape == (4, 6)
    assert np.isfinite(layer.params["W"]).all() and layer.params["W"].any()


def test_repr_and_config():
    layer = layers.Dense(784, 256)
    assert repr(layer) == "Dense(784→256)"
    cfg = layer.get_config()
    assert cfg["in_features"] == 784 and cfg["out_features"] == 256
    clone = layers.Dense(**cfg)
    assert clone.params["W"].shape == (256, 784)


# -- bad input ---------------------------------------------------------------------------------

def test_wrong_width_names_layer_and_shapes():
    layer = layers.Dense(784, 256)
    with pytest.raises(ValueError, match=r"Dense\(784→256\)") as info:
        layer.forward(np.zeros((32, 100), np.float32))
    msg = str(info.value)
    assert "784" in msg.replace("Dense(784→256)", "")
    assert "(32, 100)" in msg


@pytest.mark.parametrize("shape", [(784,), (2, 784, 1), (1, 2, 3, 784)])
def test_wrong_rank_names_layer_and_shape(shape):
    layer = layers.Dense(784, 256)
    with pytest.raises(ValueError, match=r"Dense\(784→256\)") as info:
        layer.forward(np.zeros(shape, np.float32))
    assert str(tuple(shape)) in str(info.value)


def test_sequence_input_is_applied_at_every_step():
    """(N, T, F) → (N, T, O): the time-distributed output layer of 003 §6."""
    layer = layers.Dense(5, 3, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 4, 5))
    y = layer.forward(x, training=True)
    assert y.shape == (2, 4, 3)
    np.testing.assert_allclose(y[:, 2], layer.forward(x[:, 2]), rtol=1e-12)
    assert hg.gradcheck(layer, x).max_error < 1e-6


@pytest.mark.parametrize("bad", [
    np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int32), np.zeros((2, 3), bool),
    np.zeros((2, 3), np.float16), np.zeros((2, 3), np.complex128),
    [[0.0, 1.0, 2.0]], 3.0, "abc",
], ids=["int64", "int32", "bool", "float16", "complex", "list", "scalar", "str"])
def test_non_float_array_input_is_type_error(bad):
    with pytest.raises(TypeError, match=r"Dense\(3→2\)"):
        layers.Dense(3, 2).forward(bad)


@pytest.mark.parametrize("args", [(0, 5), (5, 0), (-1, 3), (2.0, 3), (True, 3), ("3", 2)])
def test_bad_sizes_are_value_errors(args):
    with pytest.raises(ValueError, match=r"Dense\("):
        layers.Dense(*args)


def test_unknown_init_is_value_error():
    with pytest.raises(ValueError, match=r"Dense\(3→2\).*weight_init.*'nope'"):
        layers.Dense(3, 2, weight_init="nope")
    with pytest.raises(ValueError, match=r"Dense\(3→2\).*bias_init"):
        layers.Dense(3, 2, bias_init="nope")


def test_bad_dtype_is_type_error():
    with pytest.raises(TypeError, match=r"Dense\(3→2\)"):
        layers.Dense(3, 2, dtype=np.int32)


def test_backward_before_forward_is_runtime_error():
    layer = layers.Dense(3, 2)
    with pytest.raises(RuntimeError, match=r"Dense\(3→2\).*backward"):
        layer.backward(np.zeros((1, 2), np.float32))
    layer.forward(np.zeros((1, 3), np.float32), training=False)  # inference does not arm backward
    with pytest.raises(RuntimeError, match=r"Dense\(3→2\)"):
        layer.backward(np.zeros((1, 2), np.float32))


@pytest.mark.parametrize("gshape", [(4, 3), (3, 2), (4,), (4, 2, 1), (1, 2)])
def test_backward_wrong_gradient_shape(gshape):
    layer = layers.Dense(3, 2)
    layer.forward(np.zeros((4, 3), np.float32), training=True)
    with pytest.raises(ValueError, match=r"Dense\(3→2\)\.backward.*\(4, 2\)"):
        layer.backward(np.zeros(gshape, np.float32))
