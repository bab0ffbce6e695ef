"""Dropout, Flatten and Normalize: gradients, behaviour, dtypes and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_gradcheck

from handgrad import accel, layers
from handgrad.layers import Dropout

DTYPES = [np.float32, np.float64]
SHAPES = [(1, 1), (1, 6), (5, 1), (4, 7), (2, 3, 5), (2, 1, 3, 3)]


def inputs(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def dropout_mask(seed, shape, dtype, p):
    """The mask Dropout(p, rng=seed) draws on its first training forward (documented:
    keep where u < 1 − p with u ~ U[0, 1) from the layer's generator, scale 1/(1 − p))."""
    u = np.random.default_rng(seed).random(shape, dtype=dtype)
    return (u < 1 - p).astype(dtype) / dtype(1 - p)


# == Dropout ===================================================================================

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9])
def test_dropout_gradcheck_training(p, shape, dtype):
    layer = layers.Dropout(p, rng=1)
    result = assert_gradcheck(layer, inputs(shape, dtype), max_entries=None)
    assert set(result.errors) == {"input"}


def test_dropout_gradcheck_sliced_input():
    x = inputs((6, 12))[::2, 1::3]
    assert not x.flags.c_contiguous
    assert_gradcheck(layers.Dropout(0.4, rng=2), x, max_entries=None)


def test_dropout_gradcheck_transposed_input():
    x = inputs((5, 4)).T
    assert not x.flags.c_contiguous
    assert_gradcheck(layers.Dropout(0.4, rng=2), x, max_entries=None)


def test_dropout_non_contiguous_forward_backward_match_contiguous():
    x = inputs((5, 4)).T
    g = inputs(x.shape, seed=9)
    a, b = layers.Dropout(0.5, rng=3), layers.Dropout(0.5, rng=3)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(np.ascontiguousarray(x), training=True))
    np.testing.assert_array_equal(a.backward(g), b.backward(g))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.5, 0.9])
def test_dropout_eval_is_identity(p, dtype):
    x = inputs((4, 5), dtype)
    y = layers.Dropout(p, rng=0).forward(x, training=False)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(layers.Dropout(p).forward(x), x)  # training defaults to False


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_fraction_and_scales_inverted(p):
    n = 200_000
    x = np.full((n // 100, 100), 2.0)
    y = layers.Dropout(p, rng=42).forward(x, training=True)
    kept = y != 0
    frac = kept.mean()
    se = np.sqrt(p * (1 - p) / n)
    assert abs(frac - (1 - p)) < 5 * se, f"kept {frac}, expected {1 - p}"
    np.testing.assert_allclose(y[kept], 2.0 / (1 - p), rtol=1e-12)
    # inverted dropout: the expectation of each unit is preserved
    assert abs(y.mean() - 2.0) < 5 * 2.0 * np.sqrt(p / (1 - p) / n)


def test_dropout_mask_is_reproducible_from_the_seed():
    x = inputs((8, 16), seed=1) + 5.0  # no zero entries, so the mask is y / x
    a = layers.Dropout(0.5, rng=7).forward(x, training=True)
    b = layers.Dropout(0.5, rng=7).forward(x, training=True)
    c = layers.Dropout(0.5, rng=8).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = layers.Dropout(0.5, rng=np.random.default_rng(7)).forward(x, training=True)
    np.testing.assert_array_equal(a, d)
    layer = layers.Dropout(0.5, rng=0)
    layer.set_rng(7)
    np.testing.assert_array_equal(layer.forward(x, training=True), a)
    np.testing.assert_allclose(a / x, dropout_mask(7, x.shape, np.float64, 0.5), rtol=1e-15)


def test_dropout_draws_a_new_mask_each_forward():
    layer = layers.Dropout(0.5, rng=0)
    x = np.ones((10, 10))
    assert not np.array_equal(layer.forward(x, training=True), layer.forward(x, training=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_backward_uses_the_forward_mask(dtype):
    x = inputs((6, 9), dtype) + 5
    g = inputs((6, 9), dtype, seed=3)
    layer = layers.Dropout(0.3, rng=4)
    y = layer.forward(x, training=True)
    mask = y / x
    gx = layer.backward(g)
    assert gx.dtype == dtype and y.dtype == dtype
    np.testing.assert_allclose(gx, g * mask, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(gx == 0, y == 0)
    assert layer.params == {} and layer.grads == {}


def test_dropout_p0_training_is_identity():
    x = inputs((3, 4))
    layer = layers.Dropout(0.0, rng=0)
    np.testing.assert_array_equal(layer.forward(x, training=True), x)
    g = inputs((3, 4), seed=1)
    np.testing.assert_array_equal(layer.backward(g), g)


def test_dropout_does_not_modify_input():
    x = inputs((4, 4))
    before = x.copy()
    layers.Dropout(0.5, rng=0).forward(x, training=True)
    np.testing.assert_array_equal(x, before)


def test_dropout_default_p_and_config():
    layer = layers.Dropout()
    assert layer.p == 0.5
    assert layers.Dropout(0.25).get_config() == {"p": 0.25}


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_dropout_bad_p_is_value_error(p):
    with pytest.raises(ValueError, match=r"Dropout.*p"):
        layers.Dropout(p)


def test_dropout_non_number_p_is_type_error():
    with pytest.raises(TypeError, match="Dropout"):
        layers.Dropout("half")


def test_dropout_bad_input_and_order_errors():
    layer = layers.Dropout(0.5)
    with pytest.raises(TypeError, match="Dropout"):
        layer.forward(np.ones((2, 2), np.int64))
    with pytest.raises(RuntimeError, match="Dropout"):
        layer.backward(np.ones((2, 2)))
    layer.forward(np.ones((2, 2)), training=True)
    with pytest.raises(ValueError, match=r"Dropout.*\(2, 2\).*\(2, 3\)"):
        layer.backward(np.ones((2, 3)))


# == Flatten ===================================================================================

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (1, 2, 3), (2, 3, 1, 5), (2, 1, 3, 3)], ids=str)
def test_flatten_gradcheck(shape, dtype):
    assert_gradcheck(layers.Flatten(), inputs(shape, dtype), max_entries=None)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 3, 4), (2, 3, 4, 5)], ids=str)
def test_flatten_is_c_order_and_backward_restores_shape(shape):
    x = inputs(shape)
    layer = layers.Flatten()
    y = layer.forward(x, training=True)
    assert y.shape == (shape[0], int(np.prod(shape[1:])))
    np.testing.assert_array_equal(y, x.reshape(shape[0], -1, order="C"))
    # sample n, position (c, h, w) lands at index c*H*W + h*W + w, as torch.flatten(x, 1)
    if len(shape) == 4:
        n, c, h, w = 1, 2, 1, 3
        assert y[n, c * shape[2] * shape[3] + h * shape[3] + w] == x[n, c, h, w]
    g = inputs(y.shape, seed=5)
    gx = layer.backward(g)
    assert gx.shape == shape
    np.testing.assert_array_equal(gx, g.reshape(shape))
    np.testing.assert_array_equal(layer.backward(g), gx)  # twice: the same
    assert layer.params == {} and layer.grads == {}
    assert layer.output_shape(shape[1:]) == (int(np.prod(shape[1:])),)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flatten_non_contiguous_input(dtype):
    x = inputs((4, 3, 2), dtype).transpose(0, 2, 1)  # (4, 2, 3), not C-contiguous
    assert not x.flags.c_contiguous
    layer = layers.Flatten()
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.ascontiguousarray(x).reshape(4, 6))
    g = inputs((4, 6), dtype, seed=1)
    np.testing.assert_array_equal(layer.backward(g), g.reshape(4, 2, 3))
    assert_gradcheck(layers.Flatten(), x[:, ::2], max_entries=None)


def test_flatten_rank_one_is_value_error():
    with pytest.raises(ValueError, match=r"Flatten.*\(5,\)"):
        layers.Flatten().forward(np.ones(5))
    with pytest.raises(TypeError, match="Flatten"):
        layers.Flatten().forward(np.ones((2, 3), np.int32))


def test_flatten_backward_wrong_shape_is_value_error():
    layer = layers.Flatten()
    layer.forward(np.ones((2, 3, 4)), training=True)
    with pytest.raises(ValueError, match=r"Flatten.*\(2, 12\)"):
        layer.backward(np.ones((2, 3, 4)))


# == Normalize =================================================================================

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (4, 7), (2, 3, 5)], ids=str)
@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (0.5, 0.25), (-3.0, 7.0)])
def test_normalize_gradcheck(mean, std, shape, dtype):
    assert_gradcheck(layers.Normalize(mean, std), inputs(shape, dtype), max_entries=None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_forward_backward(dtype):
    x = inputs((3, 4), dtype)
    layer = layers.Normalize(mean=0.2860, std=0.3530)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, (x.astype(np.float64) - 0.2860) / 0.3530, rtol=tol, atol=tol)
    g = inputs((3, 4), dtype, seed=1)
    gx = layer.backward(g)
    assert gx.dtype == dtype
    np.testing.assert_allclose(gx, g / 0.3530, rtol=tol)
    np.testing.assert_array_equal(layer.backward(g), gx)  # twice: the same
    assert layer.params == {} and layer.grads == {}
    assert layer.get_config() == {"mean": 0.2860, "std": 0.3530}


def test_normalize_sliced_input():
    x = inputs((6, 8))[::2, ::2]
    assert_gradcheck(layers.Normalize(1.0, 2.0), x, max_entries=None)
    np.testing.assert_allclose(layers.Normalize(1.0, 2.0).forward(x), (x - 1.0) / 2.0, rtol=1e-15)


@pytest.mark.parametrize("std", [0.0, -1.0, float("nan")])
def test_normalize_bad_std_is_value_error(std):
    with pytest.raises(ValueError, match="Normalize.*std"):
        layers.Normalize(0.0, std)


def test_normalize_non_number_is_type_error():
    with pytest.raises(TypeError, match="Normalize"):
        layers.Normalize("a", 1.0)
    with pytest.raises(TypeError, match="Normalize"):
        layers.Normalize().forward(np.ones((2, 2), np.int64))


@pytest.mark.skipif(not accel.jit_available(), reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.37])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_compiled_mask_gives_numpys_bits(dtype, p, layout):
    """The one-pass compiled mask and output equal the NumPy lines bit for bit (same draws)."""
    x = np.random.default_rng(1).standard_normal((33, 17)).astype(dtype)
    x = x.T if layout == "transposed" else x
    got = {}
    for jit in (False, True):
        layer = Dropout(p, rng=5)
        with accel.use_jit(jit):
            y = layer.forward(x, training=True)
            g = layer.backward(np.full_like(y, 3.0))
        got[jit] = (y, g)
    for a, b in zip(got[False], got[True]):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("shape", [(3, 5), (8, 16)], ids=str)
def test_float32_dropout_uniforms_come_from_the_raw_32_bit_halves(jit, shape):
    """float32: u = (r >> 8)·2⁻²⁴ from the 32-bit halves r of the generator's raw outputs (low
    half first), the values ``Generator.random(dtype=float32)`` gives on a fresh stream; an odd
    count of units leaves no half buffered: the next mask starts on a new raw output."""
    if jit and not accel.jit_available():
        pytest.skip("numba is not installed")
    n, c = int(np.prod(shape)), (int(np.prod(shape)) + 1) // 2   # c raw outputs per mask
    raw = np.random.default_rng(7).bit_generator.random_raw(2 * c)
    halves = np.stack([raw & 0xFFFFFFFF, raw >> 32], axis=-1).reshape(-1)
    first, second = halves[:n], halves[2 * c:2 * c + n]
    x = np.ones(shape, np.float32)
    layer = Dropout(0.3, rng=7)
    with accel.use_jit(jit):
        a = layer.forward(x, training=True)
        b = layer.forward(x, training=True)
    for y, r in ((a, first), (b, second)):
        u = (r >> 8).astype(np.float32) * np.float32(2.0 ** -24)
        np.testing.assert_array_equal(y, ((u < np.float32(0.7)) / np.float32(0.7)).astype(np.float32).reshape(shape))
    np.testing.assert_array_equal(a, dropout_mask(7, shape, np.float32, 0.3))


@pytest.mark.skipif(not accel.jit_available(), reason="numba is not installed")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "3-D"])
def test_compiled_normalize_gives_numpys_bits(dtype, layout):
    x = np.random.default_rng(2).random((13, 7)).astype(dtype)
    x = x.T if layout == "transposed" else x.reshape(13, 7, 1) if layout == "3-D" else x
    layer = layers.Normalize(0.2860, 0.3530)
    with accel.use_jit(False):
        want = layer.forward(x)
    got = layer.forward(x)
    assert got.dtype == want.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)
