"""Conv2D: a loop-by-loop reference, finite differences, PyTorch parity, param shapes, bad
input and frozen layers (the contract every layer keeps — overwriting grads, save/load — is
checked in ``test_contract.py``)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    assert_close_to_torch,
    assert_gradcheck,
    assert_same_on_contiguous_copy,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import handgrad as hg
from handgrad import layers, optim

DTYPES = [np.float32, np.float64]


def as_pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# -- the reference: the definitions, written out with explicit loops ------------------------------

def ref_pad(x, padding):
    ph, pw = as_pair(padding)
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=np.float64)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def ref_out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def ref_conv_forward(x, W, b, stride=1, padding=0):
    """y[n, d, p, q] = b[d] + Σ_c Σ_i Σ_j W[d, c, i, j] · x̃[n, c, p·sH + i, q·sW + j]."""
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    N, C, H, Wd = x.shape
    D, C2, kh, kw = W.shape
    assert C == C2
    xt = ref_pad(x, padding)
    OH, OW = ref_out_size(H, kh, sh, ph), ref_out_size(Wd, kw, sw, pw)
    y = np.zeros((N, D, OH, OW))
    for n in range(N):
        for d in range(D):
            for p in range(OH):
                for q in range(OW):
                    s = float(b[d])
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                s += float(W[d, c, i, j]) * xt[n, c, p * sh + i, q * sw + j]
                    y[n, d, p, q] = s
    return y


def ref_conv_backward(x, W, delta, stride=1, padding=0):
    """Chain rule on the forward sum: every term W[d,c,i,j]·x̃[n,c,p·sH+i,q·sW+j] of y[n,d,p,q]
    sends δ[n,d,p,q]·x̃ to dW[d,c,i,j], δ[n,d,p,q]·W to dx̃[n,c,p·sH+i,q·sW+j], and δ to db[d].
    The padding is then cropped off dx̃. Returns (dx, dW, db)."""
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    N, C, H, Wd = x.shape
    D, _, kh, kw = W.shape
    xt = ref_pad(x, padding)
    _, _, OH, OW = delta.shape
    dxt = np.zeros_like(xt)
    dW = np.zeros(W.shape)
    db = np.zeros(D)
    for n in range(N):
        for d in range(D):
            for p in range(OH):
                for q in range(OW):
                    g = float(delta[n, d, p, q])
                    db[d] += g
                    for c in range(C):
                        for i in range(kh):
                            for j in range(kw):
                                dW[d, c, i, j] += g * xt[n, c, p * sh + i, q * sw + j]
                                dxt[n, c, p * sh + i, q * sw + j] += g * float(W[d, c, i, j])
    dx = dxt[:, :, ph:ph + H, pw:pw + Wd]
    return dx, dW, db


# -- configurations ---------------------------------------------------------------------------
# (N, C_in, C_out, H, W, kernel_size, stride, padding)
CONFIGS = {
    "basic": (2, 3, 4, 5, 7, (2, 3), 1, 0),
    "batch1-chan1": (1, 1, 1, 6, 6, 3, 1, 0),
    "non-square-image": (2, 2, 3, 5, 9, 3, 1, 0),
    "non-square-kernel-1x4": (2, 2, 3, 6, 6, (1, 4), 1, 0),
    "non-square-kernel-4x2": (1, 2, 2, 7, 5, (4, 2), 1, 0),
    "stride2": (2, 2, 3, 7, 7, 3, 2, 0),
    "stride(2,1)": (2, 2, 2, 7, 6, (3, 2), (2, 1), 0),
    "stride(1,2)-pad1": (1, 2, 2, 6, 7, 3, (1, 2), 1),
    "pad1": (2, 2, 3, 5, 5, 3, 1, 1),
    "pad2": (1, 3, 2, 4, 6, 3, 1, 2),
    "pad(0,1)": (2, 2, 2, 5, 4, (3, 2), 1, (0, 1)),
    "pad(2,1)-stride(3,2)": (2, 1, 2, 6, 5, (2, 3), (3, 2), (2, 1)),
    "dropped-border": (2, 2, 2, 8, 10, 3, (2, 3), 0),  # row 7 and column 9 are in no window
    "1x1": (2, 3, 4, 5, 6, 1, 1, 0),
    "1x1-stride2-pad1": (2, 2, 3, 5, 6, 1, 2, 1),       # stride > kernel: skipped pixels
    "stride>kernel": (1, 2, 2, 9, 9, 2, 3, 0),
    "kernel=input": (3, 2, 2, 5, 5, 5, 1, 0),
    "kernel=padded-input": (2, 2, 3, 4, 5, (6, 7), 1, 1),
    "lenet-conv1-small": (2, 1, 3, 8, 8, 5, 1, 2),
}
CONFIG_IDS = list(CONFIGS)


def make_conv(cfg, dtype=np.float64, seed=0):
    _, cin, cout, _, _, k, s, p = cfg
    # bias drawn N(0, 1) so that b is not all zeros (a zero bias hides some mistakes)
    return layers.Conv2D(cin, cout, k, stride=s, padding=p, bias_init="normal", rng=seed, dtype=dtype)


def make_input(cfg, dtype=np.float64, seed=1):
    n, cin, _, h, w = cfg[:5]
    return np.random.default_rng(seed).standard_normal((n, cin, h, w)).astype(dtype)


def expected_out_shape(cfg):
    n, _, cout, h, w, k, s, p = cfg
    (kh, kw), (sh, sw), (ph, pw) = as_pair(k), as_pair(s), as_pair(p)
    return (n, cout, ref_out_size(h, kh, sh, ph), ref_out_size(w, kw, sw, pw))


# -- against the loop reference (float64, exact up to rounding) ---------------------------------

def check_against_reference(layer, x, g, rtol=1e-12, atol=1e-12):
    W, b = layer.params["W"], layer.params["b"]
    s, p = layer.stride, layer.padding
    y = layer.forward(x, training=True)
    y_ref = ref_conv_forward(x, W, b, s, p)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=atol, err_msg="forward")
    gx = layer.backward(g)
    dx, dW, db = ref_conv_backward(x, W, g, s, p)
    assert gx.shape == x.shape
    np.testing.assert_allclose(gx, dx, rtol=rtol, atol=atol, err_msg="dC/dx")
    np.testing.assert_allclose(layer.grads["W"], dW, rtol=rtol, atol=atol, err_msg="dC/dW")
    np.testing.assert_allclose(layer.grads["b"], db, rtol=rtol, atol=atol, err_msg="dC/db")


@pytest.mark.parametrize("name", CONFIG_IDS)
def test_matches_loop_reference(name):
    cfg = CONFIGS[name]
    layer = make_conv(cfg)
    x = make_input(cfg)
    g = np.random.default_rng(2).standard_normal(expected_out_shape(cfg))
    check_against_reference(layer, x, g)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(data=st.data())
def test_matches_loop_reference_random_geometry(data):
    ints = st.integers
    n, cin, cout = data.draw(ints(1, 2)), data.draw(ints(1, 3)), data.draw(ints(1, 3))
    kh, kw = data.draw(ints(1, 4)), data.draw(ints(1, 4))
    sh, sw = data.draw(ints(1, 3)), data.draw(ints(1, 3))
    ph, pw = data.draw(ints(0, 2)), data.draw(ints(0, 2))
    h = max(1, kh - 2 * ph + data.draw(ints(0, 4)))
    w = max(1, kw - 2 * pw + data.draw(ints(0, 4)))
    seed = data.draw(ints(0, 2**16))
    layer = layers.Conv2D(cin, cout, (kh, kw), stride=(sh, sw), padding=(ph, pw), bias_init="normal",
                          rng=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, h, w))
    g = rng.standard_normal((n, cout, ref_out_size(h, kh, sh, ph), ref_out_size(w, kw, sw, pw)))
    check_against_reference(layer, x, g)


def test_reference_itself_on_a_hand_computed_case():
    # guard the guard: a 1-channel 3×3 image, 2×2 kernel, stride 1, no padding
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    W = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    b = np.array([0.5])
    y = ref_conv_forward(x, W, b)
    # top-left window [[0,1],[3,4]]: 0 + 2 + 9 + 16 = 27
    np.testing.assert_array_equal(y, [[[[27.5, 37.5], [57.5, 67.5]]]])
    dx, dW, db = ref_conv_backward(x, W, np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(db, [4.0])
    np.testing.assert_array_equal(dW[0, 0], [[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]])
    np.testing.assert_array_equal(dx[0, 0], [[1, 3, 2], [4, 10, 6], [3, 7, 4]])


def test_is_cross_correlation_not_convolution():
    # a kernel with a single 1 at its top-left corner picks x[p, q], not x[p + 1, q + 1]
    layer = layers.Conv2D(1, 1, 2, dtype=np.float64)
    layer.params["W"] = np.array([[[[1.0, 0.0], [0.0, 0.0]]]])
    layer.params["b"] = np.zeros(1)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(layer.forward(x), x[:, :, :3, :3])


# -- finite differences -------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIG_IDS)
def test_gradcheck(name):
    cfg = CONFIGS[name]
    layer = make_conv(cfg)
    result = assert_gradcheck(layer, make_input(cfg), max_entries=None)
    assert set(result.errors) == {"W", "b", "input"}


def test_gradcheck_float32_layer_checked_in_float64_and_restored():
    cfg = CONFIGS["stride(2,1)"]
    layer = make_conv(cfg, np.float32)
    W, b = layer.params["W"], layer.params["b"]
    before = W.copy()
    assert_gradcheck(layer, make_input(cfg, np.float32), max_entries=None)
    assert layer.params["W"] is W and layer.params["b"] is b
    assert W.dtype == np.float32
    np.testing.assert_array_equal(W, before)


NON_CONTIGUOUS = {
    "transposed": lambda r: r.standard_normal((7, 6, 2, 2)).transpose(3, 2, 1, 0),   # (2, 2, 6, 7)
    "sliced-cols": lambda r: r.standard_normal((2, 2, 6, 14))[:, :, :, ::2],         # (2, 2, 6, 7)
    "sliced-rows-chans": lambda r: r.standard_normal((2, 5, 13, 7))[:, 1:4:2, ::2],  # (2, 2, 7, 7)
    "reversed": lambda r: r.standard_normal((2, 2, 6, 7))[:, :, ::-1, ::-1],
    "channels-last": lambda r: np.moveaxis(r.standard_normal((2, 6, 7, 2)), 3, 1),
}


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, (0, 1)), ((2, 1), 2)], ids=str)
@pytest.mark.parametrize("layout", list(NON_CONTIGUOUS))
def test_non_contiguous_input(layout, stride, padding):
    x = NON_CONTIGUOUS[layout](np.random.default_rng(3))
    assert not x.flags.c_contiguous
    layer = layers.Conv2D(2, 3, (3, 2), stride=stride, padding=padding, bias_init="normal", rng=0,
                          dtype=np.float64)
    g = np.random.default_rng(4).standard_normal(layer.forward(x).shape)
    assert_same_on_contiguous_copy(layer, x, g)
    # and both equal the definition
    check_against_reference(layer, x, g)
    assert_gradcheck(layer, x, max_entries=None)


# -- the params / grads contract ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["basic", "pad(0,1)", "1x1", "kernel=padded-input", "stride(2,1)"])
def test_param_and_grad_shapes(name):
    cfg = CONFIGS[name]
    _, cin, cout, _, _, k, s, p = cfg
    kh, kw = as_pair(k)
    layer = layers.Conv2D(cin, cout, k, stride=s, padding=p)
    assert layer.params["W"].shape == (cout, cin, kh, kw)
    assert layer.params["b"].shape == (cout,)
    assert set(layer.grads) == set(layer.params) == {"W", "b"}
    for key in layer.params:
        assert layer.grads[key].shape == layer.params[key].shape
        assert layer.grads[key].dtype == layer.params[key].dtype
        assert not layer.grads[key].any(), "grads should start at zero"
    x = make_input(cfg, np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == expected_out_shape(cfg)
    layer.backward(np.ones(y.shape, np.float32))
    assert set(layer.grads) == {"W", "b"}
    for key in layer.params:
        assert layer.grads[key].shape == layer.params[key].shape
    assert layer.num_params == cout * cin * kh * kw + cout


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), (0, 1))], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_preserved(dtype, stride, padding):
    layer = layers.Conv2D(2, 3, 3, stride=stride, padding=padding, dtype=dtype, rng=0)
    for k in layer.params:
        assert layer.params[k].dtype == dtype
        assert layer.grads[k].dtype == dtype
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 5)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    gx = layer.backward(np.ones(y.shape, dtype))
    assert gx.dtype == dtype
    for k in layer.grads:
        assert layer.grads[k].dtype == dtype, k


def test_default_dtype_is_float32():
    layer = layers.Conv2D(1, 2, 3)
    assert layer.params["W"].dtype == np.float32
    assert layer.params["b"].dtype == np.float32


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, (1, 0))], ids=str)
def test_replacing_params_with_float64_copy_is_used(stride, padding):
    layer = layers.Conv2D(2, 3, (2, 3), stride=stride, padding=padding, rng=0)  # float32
    rng = np.random.default_rng(0)
    W64 = rng.standard_normal((3, 2, 2, 3))
    b64 = rng.standard_normal(3)
    layer.params["W"] = W64
    layer.params["b"] = b64
    x = rng.standard_normal((2, 2, 5, 6))
    y = layer.forward(x, training=True)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, ref_conv_forward(x, W64, b64, stride, padding), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    assert gx.dtype == np.float64
    dx, dW, db = ref_conv_backward(x, W64, g, stride, padding)
    np.testing.assert_allclose(gx, dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], db, rtol=1e-12, atol=1e-12)
    assert layer.grads["W"].dtype == np.float64


def test_replacing_params_with_new_values_changes_output():
    layer = layers.Conv2D(1, 1, 1, rng=0, dtype=np.float64)
    layer.params["W"] = np.full((1, 1, 1, 1), 2.0)
    layer.params["b"] = np.array([-1.0])
    x = np.arange(6.0).reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(layer.forward(x), 2 * x - 1)


def test_eval_forward_equals_training_forward():
    cfg = CONFIGS["pad(2,1)-stride(3,2)"]
    layer = make_conv(cfg)
    x = make_input(cfg)
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x, training=True))


def test_same_seed_same_weights_and_fan_in_scale():
    a = layers.Conv2D(3, 8, 5, rng=7)
    b = layers.Conv2D(3, 8, 5, rng=np.random.default_rng(7))
    c = layers.Conv2D(3, 8, 5, rng=8)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], c.params["W"])
    np.testing.assert_array_equal(a.params["b"], np.zeros(8, np.float32))
    big = layers.Conv2D(16, 64, (3, 5), rng=0, dtype=np.float64)  # fan_in = 16·3·5 = 240
    np.testing.assert_allclose(big.params["W"].std(), 1 / np.sqrt(240), rtol=0.03)


# -- output_shape, repr, config ---------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIG_IDS)
def test_output_shape_agrees_with_forward(name):
    cfg = CONFIGS[name]
    layer = make_conv(cfg)
    x = make_input(cfg)
    y = layer.forward(x)
    assert y.shape == expected_out_shape(cfg)
    assert tuple(layer.output_shape(x.shape[1:])) == y.shape[1:]


@pytest.mark.parametrize("args,kwargs,text", [
    ((3, 4, 3), {}, "Conv2D(3→4, 3×3)"),
    ((1, 6, 5), {"padding": 2}, "Conv2D(1→6, 5×5"),
    ((2, 3, (2, 5)), {"stride": (2, 1)}, "Conv2D(2→3, 2×5"),
])
def test_repr_names_channels_and_kernel(args, kwargs, text):
    assert repr(layers.Conv2D(*args, **kwargs)).startswith(text)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 0), ((2, 5), (2, 1), (0, 1)), (1, 3, 2)])
def test_config_round_trip(kernel, stride, padding):
    layer = layers.Conv2D(2, 5, kernel, stride=stride, padding=padding, weight_init="he_normal")
    cfg = layer.get_config()
    clone = layers.Conv2D(**cfg)
    assert clone.get_config() == cfg
    assert clone.kernel_size == as_pair(kernel)
    assert clone.stride == as_pair(stride)
    assert clone.padding == as_pair(padding)
    assert clone.params["W"].shape == layer.params["W"].shape
    assert cfg["in_channels"] == 2 and cfg["out_channels"] == 5


def test_int_and_pair_arguments_are_equivalent():
    a = layers.Conv2D(2, 3, 3, stride=2, padding=1, rng=0, dtype=np.float64)
    b = layers.Conv2D(2, 3, (3, 3), stride=[2, 2], padding=(1, 1), rng=0, dtype=np.float64)
    assert a.kernel_size == b.kernel_size == (3, 3)
    assert a.stride == b.stride == (2, 2)
    assert a.padding == b.padding == (1, 1)
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


# -- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 3, 8, 8, 1), (2, 3), (8,)])
def test_wrong_rank_names_layer_and_shape(shape):
    layer = layers.Conv2D(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2D\(3→4, 3×3\)") as info:
        layer.forward(np.zeros(shape, np.float32))
    assert str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_wrong_channel_count_names_layer_and_shapes(channels):
    layer = layers.Conv2D(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2D\(3→4, 3×3\)") as info:
        layer.forward(np.zeros((2, channels, 8, 8), np.float32))
    msg = str(info.value)
    assert f"(2, {channels}, 8, 8)" in msg
    assert "3" in msg.replace("Conv2D(3→4, 3×3)", "")  # the expected channel count


@pytest.mark.parametrize("kernel,padding,hw", [
    (3, 0, (2, 5)), (3, 0, (5, 2)), ((2, 4), 0, (4, 3)), (5, 1, (2, 2)), ((3, 6), (0, 1), (4, 3)),
], ids=str)
def test_input_smaller_than_kernel(kernel, padding, hw):
    layer = layers.Conv2D(1, 2, kernel, padding=padding)
    with pytest.raises(ValueError, match=r"Conv2D\(1→2") as info:
        layer.forward(np.zeros((1, 1) + hw, np.float32))
    assert str((1, 1) + hw) in str(info.value)


def test_input_as_large_as_padded_kernel_is_fine():
    layer = layers.Conv2D(1, 2, 5, padding=2)
    assert layer.forward(np.zeros((1, 1, 1, 1), np.float32)).shape == (1, 2, 1, 1)


@pytest.mark.parametrize("bad", [0, -1, (3, 0), (0, 3), (-2, 2), (3, 3, 3), (3,), (), True, (3, True),
                                 2.0, (2.0, 2), "3", None], ids=repr)
def test_bad_kernel_size(bad):
    with pytest.raises(ValueError, match=r"Conv2D.*kernel_size"):
        layers.Conv2D(3, 4, bad)


@pytest.mark.parametrize("bad", [0, -1, (1, 0), (2, 2, 2), False, 1.5], ids=repr)
def test_bad_stride(bad):
    with pytest.raises(ValueError, match=r"Conv2D.*stride"):
        layers.Conv2D(3, 4, 3, stride=bad)


@pytest.mark.parametrize("bad", [-1, (0, -1), (-2, 0), (1, 1, 1), True, 0.5], ids=repr)
def test_bad_padding(bad):
    with pytest.raises(ValueError, match=r"Conv2D.*padding"):
        layers.Conv2D(3, 4, 3, padding=bad)


@pytest.mark.parametrize("args", [(0, 4, 3), (3, 0, 3), (-1, 4, 3), (True, 4, 3), (3.0, 4, 3)])
def test_bad_channel_counts(args):
    with pytest.raises(ValueError, match=r"Conv2D\("):
        layers.Conv2D(*args)


@pytest.mark.parametrize("bad", [np.zeros((1, 3, 5, 5), np.int64), np.zeros((1, 3, 5, 5), np.float16),
                                 np.zeros((1, 3, 5, 5), bool), [[[[0.0]]]]], ids=["int64", "float16", "bool", "list"])
def test_non_float_input_is_type_error(bad):
    with pytest.raises(TypeError, match=r"Conv2D\(3→4, 3×3\)"):
        layers.Conv2D(3, 4, 3).forward(bad)


def test_backward_before_forward_is_runtime_error():
    layer = layers.Conv2D(3, 4, 3)
    with pytest.raises(RuntimeError, match=r"Conv2D\(3→4, 3×3\).*backward"):
        layer.backward(np.zeros((1, 4, 3, 3), np.float32))
    layer.forward(np.zeros((1, 3, 5, 5), np.float32), training=False)  # inference does not arm backward
    with pytest.raises(RuntimeError, match=r"Conv2D\(3→4, 3×3\)"):
        layer.backward(np.zeros((1, 4, 3, 3), np.float32))


@pytest.mark.parametrize("gshape", [(2, 4, 3, 4), (2, 4, 4, 3), (2, 3, 3, 3), (1, 4, 3, 3), (2, 4, 9), (2, 36)])
def test_backward_wrong_gradient_shape(gshape):
    layer = layers.Conv2D(3, 4, 3)
    layer.forward(np.zeros((2, 3, 5, 5), np.float32), training=True)
    with pytest.raises(ValueError, match=r"Conv2D\(3→4, 3×3\)\.backward.*\(2, 4, 3, 3\)") as info:
        layer.backward(np.zeros(gshape, np.float32))
    assert str(gshape) in str(info.value)


# -- frozen layers ---------------------------------------------------------------------------------

def _frozen_pair(seed=0):
    def build():
        return hg.Sequential([
            layers.Conv2D(2, 3, (3, 2), stride=(1, 2), padding=1, bias_init="normal", rng=seed, dtype=np.float64),
            layers.Tanh(),
            layers.Conv2D(3, 2, 2, bias_init="normal", rng=seed + 1, dtype=np.float64),
            layers.Flatten(),
        ])
    return build(), build()


def test_frozen_conv_in_model_gets_no_param_gradient_but_passes_input_gradient():
    frozen, reference = _frozen_pair()
    frozen.layers[0].trainable = False
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 6, 5))
    sentinel = {k: np.full_like(v, 7.0) for k, v in frozen.layers[0].grads.items()}
    frozen.layers[0].grads.update({k: v.copy() for k, v in sentinel.items()})
    held = dict(frozen.layers[0].grads)

    y = frozen.forward(x, training=True)
    np.testing.assert_array_equal(y, reference.forward(x, training=True))
    g = rng.standard_normal(y.shape)
    gx_frozen = frozen.backward(g)
    gx_ref = reference.backward(g)

    # the frozen layer's grads are untouched (same objects, same values) ...
    for k in sentinel:
        assert frozen.layers[0].grads[k] is held[k]
        np.testing.assert_array_equal(frozen.layers[0].grads[k], sentinel[k])
    # ... while the error still flows through it to the input, and layers above train normally
    assert gx_frozen is not None
    np.testing.assert_allclose(gx_frozen, gx_ref, rtol=1e-13, atol=1e-14)
    for k in ("W", "b"):
        np.testing.assert_array_equal(frozen.layers[2].grads[k], reference.layers[2].grads[k])
    assert reference.layers[0].grads["W"].any()  # the unfrozen twin did compute one


def test_frozen_conv_above_trainable_layer_still_passes_error_down():
    frozen, reference = _frozen_pair(seed=3)
    frozen.layers[2].trainable = False  # the upper conv frozen, the lower one trainable
    x = np.random.default_rng(1).standard_normal((3, 2, 5, 6))
    g = np.random.default_rng(2).standard_normal(frozen.forward(x).shape)
    frozen.forward(x, training=True)
    reference.forward(x, training=True)
    frozen.backward(g, input_grad=False)
    reference.backward(g, input_grad=False)
    assert not frozen.layers[2].grads["W"].any() and not frozen.layers[2].grads["b"].any()
    for k in ("W", "b"):
        np.testing.assert_allclose(frozen.layers[0].grads[k], reference.layers[0].grads[k], rtol=1e-13, atol=1e-14)


def test_frozen_conv_standalone_and_optimizer_leaves_it_alone():
    layer = layers.Conv2D(2, 3, 3, padding=1, bias_init="normal", rng=0, dtype=np.float64)
    twin = layers.Conv2D(2, 3, 3, padding=1, bias_init="normal", rng=0, dtype=np.float64)
    layer.trainable = False
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4))
    g = np.random.default_rng(1).standard_normal((2, 3, 4, 4))
    layer.forward(x, training=True)
    twin.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(g), twin.backward(g))
    assert not layer.grads["W"].any() and not layer.grads["b"].any()
    model = hg.Sequential([layer])
    W0 = layer.params["W"].copy()
    optim.SGD(model, lr=0.1, momentum=0.9).step()
    np.testing.assert_array_equal(layer.params["W"], W0)


# -- parity with PyTorch autograd ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CONFIG_IDS)
def test_torch_parity(name, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    cfg = CONFIGS[name]
    layer = make_conv(cfg, dtype)
    x = make_input(cfg, dtype)
    g = np.random.default_rng(2).standard_normal(expected_out_shape(cfg)).astype(dtype)

    xt = torch.tensor(x, requires_grad=True)
    Wt = torch.tensor(layer.params["W"], requires_grad=True)
    bt = torch.tensor(layer.params["b"], requires_grad=True)
    yt = F.conv2d(xt, Wt, bt, stride=layer.stride, padding=layer.padding)
    yt.backward(torch.tensor(g))

    y = layer.forward(x, training=True)
    gx = layer.backward(g)
    assert_close_to_torch(y, yt, dtype, f"{layer!r} forward")
    assert_close_to_torch(gx, xt.grad, dtype, f"{layer!r} dC/dx")
    assert_close_to_torch(layer.grads["W"], Wt.grad, dtype, f"{layer!r} dC/dW")
    assert_close_to_torch(layer.grads["b"], bt.grad, dtype, f"{layer!r} dC/db")
