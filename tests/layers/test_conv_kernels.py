"""The compiled kernels of ReLU, MaxPool2D and Conv2D (``layers/_conv_kernels.py``) against the
NumPy paths beside them: same outputs, caches and gradients to float rounding (max-pool winners
identical), for float32 and float64 and odd geometries; bit-identical from run to run."""
from __future__ import annotations

import numpy as np
import pytest

from handgrad import accel, layers

pytestmark = pytest.mark.skipif(not accel.jit_available(), reason="numba is not installed")

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-6, np.float64: 1e-12}


def both_paths(make, x, g, need_input_grad=True):
    """Forward (training) and backward of a fresh layer from ``make`` on each path:
    {jit: (y, dx, grads)}."""
    out = {}
    for jit in (False, True):
        with accel.use_jit(jit):
            layer = make()
            y = layer.forward(x, training=True)
            dx = layer._backward_checked(g, need_input_grad=need_input_grad)
            out[jit] = (y, dx, {k: v.copy() for k, v in layer.grads.items()})
    return out


def close(a, b, dtype, scale=None):
    """a ≈ b to float rounding, relative to the size of the terms (``scale``, default |b|)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    s = np.max(np.abs(b)) if scale is None else scale
    np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * max(s, 1e-30))


# -- ReLU -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 3, 5), (1, 6, 28, 28), (5, 2, 3, 4)], ids=str)
def test_relu_paths_agree_exactly(shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::3] = 0.0                          # the kink: derivative 0 on both paths
    g = rng.standard_normal(shape).astype(dtype)
    r = both_paths(layers.ReLU, x, g)
    for a, b in zip(r[True][:2], r[False][:2]):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)   # max and a masked copy: no rounding at all


@pytest.mark.parametrize("view", ["transposed", "sliced"])
def test_relu_non_contiguous_input_and_gradient(view):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((6, 10, 4))
    gbase = rng.standard_normal((6, 10, 4))
    pick = (lambda a: a.transpose(2, 0, 1)) if view == "transposed" else (lambda a: a[1::2, ::3])
    r = both_paths(layers.ReLU, pick(base), pick(gbase))
    for a, b in zip(r[True][:2], r[False][:2]):
        np.testing.assert_array_equal(a, b)


def test_relu_nan_and_signed_zero_like_numpy():
    x = np.array([[np.nan, -0.0, 0.0, -1.0, 2.0, np.inf, -np.inf]])
    g = np.array([[1.0, np.inf, np.nan, 3.0, 4.0, 5.0, 6.0]])
    r = both_paths(layers.ReLU, x, g)
    for a, b in zip(r[True][:2], r[False][:2]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


# -- MaxPool2D --------------------------------------------------------------------------------------

POOLS = [  # (x shape, kernel, stride)
    ((128, 6, 28, 28), 2, None),     # LeNet's first pool
    ((1, 1, 5, 5), 2, None),         # batch 1, partial windows dropped at the border
    ((2, 3, 7, 9), 2, None),         # odd sizes: the last row and column are in no window
    ((2, 2, 6, 6), 2, (2, 1)),       # 2×2 windows, not the stride-2 kernels
    ((2, 3, 7, 9), 3, 2),            # overlapping windows
    ((3, 2, 6, 5), (2, 3), (1, 2)),  # rectangular, overlapping along rows
    ((2, 1, 4, 4), 4, None),         # one window per map
    ((2, 2, 5, 6), 1, 1),            # the identity
]


def tied_input(shape, dtype, seed=0):
    """Few distinct values: most windows hold ties, which must go to the first maximum."""
    return np.random.default_rng(seed).integers(-2, 3, shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,stride", POOLS, ids=str)
def test_maxpool_paths_agree_winners_included(shape, kernel, stride, dtype):
    x = tied_input(shape, dtype)
    with accel.use_jit(False):
        ref = layers.MaxPool2D(kernel, stride)
        out_shape = ref.forward(x, training=True).shape
    g = np.random.default_rng(3).standard_normal(out_shape).astype(dtype)
    r = both_paths(lambda: layers.MaxPool2D(kernel, stride), x, g)
    np.testing.assert_array_equal(r[True][0], r[False][0])
    overlapping = layers.MaxPool2D(kernel, stride)
    k, s = overlapping.kernel_size, overlapping.stride
    if s[0] >= k[0] and s[1] >= k[1]:
        np.testing.assert_array_equal(r[True][1], r[False][1])   # one term per unit: exact
    else:
        close(r[True][1], r[False][1], dtype, scale=np.max(np.abs(g)) * k[0] * k[1])
    # the same winners: where a unit receives error on one path it does on the other
    np.testing.assert_array_equal(r[True][1] != 0, r[False][1] != 0)


def test_maxpool_winner_is_first_maximum_in_row_major_order():
    x = np.zeros((1, 1, 2, 2))
    x[0, 0] = [[1.0, 3.0], [3.0, 3.0]]
    with accel.use_jit(True):
        layer = layers.MaxPool2D(2)
        layer.forward(x, training=True)
        dx = layer.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_maxpool_nan_window_like_numpy():
    x = np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4)
    x[0, 0, 1, 0] = np.nan
    x[0, 1, 0, 0] = np.nan   # the first element of a window
    g = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
    r = both_paths(lambda: layers.MaxPool2D(2), x, g)
    np.testing.assert_array_equal(r[True][0], r[False][0])
    np.testing.assert_array_equal(r[True][1], r[False][1])


def test_maxpool_infinities_like_numpy():
    """Both infinities in one window (their sum is NaN, which sends the stride-2 kernel to the
    careful one) and alone: the same maxima and winners as NumPy's."""
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 1, 1] = np.inf, -np.inf
    x[0, 1, 2, 3] = -np.inf
    x[0, 1, 0, :2] = np.inf
    g = np.arange(1.0, 9.0, dtype=np.float32).reshape(1, 2, 2, 2)
    r = both_paths(lambda: layers.MaxPool2D(2), x, g)
    np.testing.assert_array_equal(r[True][0], r[False][0])
    np.testing.assert_array_equal(r[True][1], r[False][1])


def test_maxpool_non_contiguous_input():
    x = np.random.default_rng(4).standard_normal((6, 5, 3, 8)).transpose(0, 2, 3, 1)  # (6, 3, 8, 5)
    g = np.random.default_rng(5).standard_normal((6, 3, 4, 2))
    r = both_paths(lambda: layers.MaxPool2D(2), x, g)
    np.testing.assert_array_equal(r[True][0], r[False][0])
    np.testing.assert_array_equal(r[True][1], r[False][1])


@pytest.mark.parametrize("view", ["wide_rows", "sliced_channels", "transposed", "contiguous"])
@pytest.mark.parametrize("jit", [False, True], ids=["numpy", "jit"])
def test_relu_reads_strided_inputs_in_place(view, jit):
    """A convolution's output is a view of full-width rows; ReLU's result (and NaN, −0) is the
    same as ``np.maximum`` on every layout (C-ordered from the kernels)."""
    base = np.random.default_rng(0).standard_normal((3, 4, 5, 9)).astype(np.float32)
    base[0, 0, 0, :3] = [np.nan, -0.0, 0.0]
    x = {"wide_rows": base[..., :7], "sliced_channels": base[:, 1:3], "transposed": base.transpose(1, 0, 2, 3),
         "contiguous": base}[view]
    layer = layers.ReLU()
    with accel.use_jit(jit):
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(y))
    ref = np.maximum(x, 0)
    assert y.flags.c_contiguous or not jit  # NumPy keeps the input's layout
    np.testing.assert_array_equal(y, ref)
    assert not np.signbit(y[np.isfinite(y)]).any()
    np.testing.assert_array_equal(dx, (ref > 0).astype(np.float32))


# -- the convolution kernels' five-tap passes ----------------------------------------------------------

def _taps_reference(kind, a, w, wp, P):
    """The tap-by-tap loop of each kernel written with NumPy's element-wise float operations
    (each product and sum rounded once, in the kernels' order): the bits the five-tap pass must
    give."""
    if kind == "forward":      # a: flat (N, C, L), w: (D, C, kH, kW) -> (N, D, P)
        n, c = a.shape[:2]
        D, _, kh, kw = w.shape
        out = np.zeros((n, D, P), a.dtype)
        for d in range(D):
            for ci in range(c):
                for i in range(kh):
                    for j in range(kw):
                        out[:, d] += w[d, ci, i, j] * a[:, ci, i * wp + j:i * wp + j + P]
        return out
    if kind == "input_grad":   # a: delta (D, m, P), w: (D, C, kH, kW) -> acc (m, C, L)
        D, m, _ = a.shape
        C, kh, kw = w.shape[1:]
        acc = np.zeros((m, C, (P // wp + kh + 1) * wp), a.dtype)
        for nn in range(m):
            for d in range(D):
                for ci in range(C):
                    for i in range(kh):
                        for j in range(kw):
                            acc[nn, ci, i * wp + j:i * wp + j + P] += w[d, ci, i, j] * a[d, nn]
        return acc
    C, kh, kw, m, _ = a.shape  # col2im: a: dcols (C, kH, kW, m, P) -> acc (m, C, L)
    acc = np.zeros((m, C, (P // wp + kh + 1) * wp), a.dtype)
    for nn in range(m):
        for ci in range(C):
            for i in range(kh):
                for j in range(kw):
                    acc[nn, ci, i * wp + j:i * wp + j + P] += a[ci, i, j, nn]
    return acc


@pytest.mark.skipif(not accel.jit_available(), reason="needs numba (in the test extra)")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [5, 3, 2])
@pytest.mark.parametrize("oh,wp", [(6, 9), (1, 5), (1, 4)])  # P = 54, 5 and 4 (no five-tap pass)
def test_conv_kernels_five_tap_passes_give_the_tap_by_tap_bits(kw, oh, wp, dtype):
    from handgrad.layers import _conv_kernels as ck

    rng = np.random.default_rng(kw + oh)
    P, kh, C, D, m = oh * wp, 3, 2, 3, 2
    W = rng.standard_normal((D, C, kh, kw)).astype(dtype)
    L = (oh + kh + 1) * wp
    flat = rng.standard_normal((m, C, L)).astype(dtype)
    y = np.empty((m, D, P), dtype)
    ck.conv_forward_rows(flat, W, np.empty(0, dtype), y, 0, m, wp, np.empty((0, 0, 0, 0), dtype))
    np.testing.assert_array_equal(y, _taps_reference("forward", flat, W, wp, P))
    delta = rng.standard_normal((D, m, P)).astype(dtype)
    acc = np.zeros((m, C, L), dtype)
    ck.conv_input_grad(delta, W, acc, wp)
    np.testing.assert_array_equal(acc, _taps_reference("input_grad", delta, W, wp, P))
    dcols = rng.standard_normal((C, kh, kw, m, P)).astype(dtype)
    acc = np.zeros((m, C, L), dtype)
    ck.col2im_rows(dcols, acc, wp)
    np.testing.assert_array_equal(acc, _taps_reference("col2im", dcols, None, wp, P))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [5, 3, 1])
@pytest.mark.parametrize("oh,wp", [(6, 9), (1, 5), (2, 4)])
def test_conv_weight_grad_gives_its_documented_bits(kw, oh, wp, dtype):
    """``conv_weight_grad``: kW accumulators per (d, c, i), each sample's products added
    element-wise, then each accumulator summed in index order (written here with NumPy's
    element-wise operations, and four float64 running sums over r mod 4, the tail joining the
    first, as sequential cumulative sums), for a block that starts at a > 0."""
    from handgrad.layers import _conv_kernels as ck

    rng = np.random.default_rng(kw * 7 + oh)
    P, kh, C, D, m, a = oh * wp, 2, 3, 2, 3, 1
    L = (oh + kh + 1) * wp
    flat = rng.standard_normal((a + m + 1, C, L)).astype(dtype)
    delta = rng.standard_normal((D, m, P)).astype(dtype)
    out = np.full((D, C * kh * kw), np.nan, dtype)
    ck.conv_weight_grad(delta, flat, a, wp, kh, kw, out)
    want = np.empty_like(out)
    for d in range(D):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    acc = np.zeros(P, dtype)
                    for n in range(m):
                        acc = acc + delta[d, n] * flat[a + n, c, i * wp + j:i * wp + j + P]
                    acc64 = acc.astype(np.float64)
                    s = [np.cumsum(acc64[k::4])[-1] if acc64[k::4].size else 0.0 for k in range(4)]
                    if P % 4:  # the tail joins the first running sum
                        s[0] = np.cumsum(np.concatenate([acc64[:P - P % 4][0::4], acc64[P - P % 4:]]))[-1]
                        s[1:] = [np.cumsum(acc64[:P - P % 4][k::4])[-1] if P >= 4 else 0.0 for k in (1, 2, 3)]
                    want[d, (c * kh + i) * kw + j] = (s[0] + s[1]) + (s[2] + s[3])
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, d, oh, ow, wp", [(1, 1, 1, 1, 1), (3, 6, 28, 28, 32), (2, 16, 10, 10, 14), (5, 2, 3, 4, 8)])
@pytest.mark.parametrize("contiguous", [True, False])
def test_wide_delta_is_the_transposed_copy_with_zero_columns(m, d, oh, ow, wp, dtype, contiguous):
    from handgrad.layers import _conv_kernels as ck

    rng = np.random.default_rng(m + d + ow)
    g = rng.standard_normal((m, d, oh, ow)).astype(dtype)
    if not contiguous:  # every other row of a taller error
        g = np.repeat(g, 2, axis=2)[:, :, ::2]
    out = np.full((d, m, oh, wp), np.nan, dtype)  # whatever the buffer held before
    ck.wide_delta(g, out)
    want = np.zeros((d, m, oh, wp), dtype)
    want[..., :ow] = g.transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(out, want)
