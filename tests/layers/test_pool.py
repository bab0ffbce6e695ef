"""MaxPool2D and AvgPool2D: loop-by-loop references (with the documented tie rule), finite
differences, PyTorch parity (ties included), the params/grads contract and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_gradcheck
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad import layers

DTYPES = [np.float32, np.float64]
POOLS = {"MaxPool2D": layers.MaxPool2D, "AvgPool2D": layers.AvgPool2D}


def as_pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# -- the references: explicit loops over n, c, p, q, i, j -------------------------------------------

def geometry(x_shape, kernel, stride):
    (kh, kw) = as_pair(kernel)
    (sh, sw) = as_pair(kernel if stride is None else stride)
    _, _, H, W = x_shape
    return kh, kw, sh, sw, (H - kh) // sh + 1, (W - kw) // sw + 1


def ref_max_pool(x, kernel, stride=None):
    """Returns y and, per output, the winner (row, col): the first maximum in row-major window
    order (a later equal value does not replace it)."""
    kh, kw, sh, sw, OH, OW = geometry(x.shape, kernel, stride)
    N, C = x.shape[:2]
    y = np.zeros((N, C, OH, OW), dtype=np.float64)
    arg = np.zeros((N, C, OH, OW, 2), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for p in range(OH):
                for q in range(OW):
                    best, where = None, None
                    for i in range(kh):
                        for j in range(kw):
                            v = float(x[n, c, p * sh + i, q * sw + j])
                            if best is None or v > best:
                                best, where = v, (p * sh + i, q * sw + j)
                    y[n, c, p, q] = best
                    arg[n, c, p, q] = where
    return y, arg


def ref_max_pool_backward(x, delta, kernel, stride=None):
    """The winner of each window receives that window's whole error; the others get none."""
    _, arg = ref_max_pool(x, kernel, stride)
    dx = np.zeros(x.shape, dtype=np.float64)
    N, C, OH, OW = delta.shape
    for n in range(N):
        for c in range(C):
            for p in range(OH):
                for q in range(OW):
                    u, v = arg[n, c, p, q]
                    dx[n, c, u, v] += delta[n, c, p, q]
    return dx


def ref_avg_pool(x, kernel, stride=None):
    kh, kw, sh, sw, OH, OW = geometry(x.shape, kernel, stride)
    N, C = x.shape[:2]
    y = np.zeros((N, C, OH, OW), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for p in range(OH):
                for q in range(OW):
                    s = 0.0
                    for i in range(kh):
                        for j in range(kw):
                            s += float(x[n, c, p * sh + i, q * sw + j])
                    y[n, c, p, q] = s / (kh * kw)
    return y


def ref_avg_pool_backward(x, delta, kernel, stride=None):
    """Every unit of a window receives δ/(kH·kW), summed over the windows that contain it."""
    kh, kw, sh, sw, OH, OW = geometry(x.shape, kernel, stride)
    dx = np.zeros(x.shape, dtype=np.float64)
    N, C = x.shape[:2]
    for n in range(N):
        for c in range(C):
            for p in range(OH):
                for q in range(OW):
                    for i in range(kh):
                        for j in range(kw):
                            dx[n, c, p * sh + i, q * sw + j] += delta[n, c, p, q] / (kh * kw)
    return dx


REFERENCE = {
    "MaxPool2D": (lambda x, k, s: ref_max_pool(x, k, s)[0], ref_max_pool_backward),
    "AvgPool2D": (ref_avg_pool, ref_avg_pool_backward),
}


# -- configurations ------------------------------------------------------------------------------
# (N, C, H, W, kernel_size, stride)
CONFIGS = {
    "2x2": (2, 3, 6, 8, 2, None),
    "batch1-chan1": (1, 1, 4, 4, 2, None),
    "non-square-image": (2, 2, 4, 10, 2, None),
    "non-square-kernel": (2, 2, 6, 9, (2, 3), None),
    "kernel3-stride2-overlap": (2, 2, 7, 7, 3, 2),
    "kernel3-stride1-overlap": (1, 2, 5, 6, 3, 1),
    "stride(2,1)": (2, 2, 6, 5, (2, 2), (2, 1)),
    "kernel(3,1)-stride(1,2)": (1, 3, 5, 7, (3, 1), (1, 2)),
    "dropped-border": (2, 2, 7, 9, 2, None),      # last row and column are in no window
    "dropped-border-strided": (1, 2, 8, 8, 3, 2),  # last row and column dropped
    "1x1-stride2": (2, 2, 5, 6, 1, 2),             # stride > kernel: skipped pixels
    "stride>kernel": (1, 2, 9, 8, 2, 3),
    "kernel=input": (3, 2, 4, 5, (4, 5), None),
    "stride-only-pair": (2, 1, 6, 6, 2, (1, 3)),
}
CONFIG_IDS = list(CONFIGS)


def make_input(cfg, dtype=np.float64, seed=1):
    n, c, h, w = cfg[:4]
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(dtype)


def expected_out_shape(cfg):
    n, c, h, w, k, s = cfg
    *_, oh, ow = geometry((n, c, h, w), k, s)
    return (n, c, oh, ow)


def make_pool(kind, cfg):
    k, s = cfg[4], cfg[5]
    return POOLS[kind](k) if s is None else POOLS[kind](k, stride=s)


def min_window_gap(x, kernel, stride):
    """Smallest gap between the largest and second-largest value over all windows."""
    kh, kw, sh, sw, OH, OW = geometry(x.shape, kernel, stride)
    gap = np.inf
    for p in range(OH):
        for q in range(OW):
            win = x[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw].reshape(x.shape[0], x.shape[1], -1)
            if win.shape[-1] > 1:
                top = np.sort(win, axis=-1)[..., -2:]
                gap = min(gap, float((top[..., 1] - top[..., 0]).min()))
    return gap


# -- against the loop references ------------------------------------------------------------------

def check_against_reference(kind, layer, x, g):
    fwd, bwd = REFERENCE[kind]
    k, s = layer.kernel_size, layer.stride
    y = layer.forward(x, training=True)
    y_ref = fwd(x, k, s)
    assert y.shape == y_ref.shape
    if kind == "MaxPool2D":
        np.testing.assert_array_equal(y, y_ref, err_msg="forward")  # a selection: exact
    else:
        np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-14, err_msg="forward")
    gx = layer.backward(g)
    assert gx.shape == x.shape
    np.testing.assert_allclose(gx, bwd(x, g, k, s), rtol=1e-12, atol=1e-14, err_msg="dC/dx")


@pytest.mark.parametrize("name", CONFIG_IDS)
@pytest.mark.parametrize("kind", list(POOLS))
def test_matches_loop_reference(kind, name):
    cfg = CONFIGS[name]
    layer = make_pool(kind, cfg)
    x = make_input(cfg)
    g = np.random.default_rng(2).standard_normal(expected_out_shape(cfg))
    check_against_reference(kind, layer, x, g)


@pytest.mark.parametrize("name", CONFIG_IDS)
def test_max_pool_ties_follow_first_maximum_rule(name):
    # small integers: most windows hold several equal maxima
    cfg = CONFIGS[name]
    x = np.random.default_rng(5).integers(0, 3, size=cfg[:4]).astype(np.float64)
    g = np.random.default_rng(6).standard_normal(expected_out_shape(cfg))
    check_against_reference("MaxPool2D", make_pool("MaxPool2D", cfg), x, g)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(data=st.data())
def test_matches_loop_reference_random_geometry(data):
    ints = st.integers
    kind = data.draw(st.sampled_from(list(POOLS)))
    kh, kw = data.draw(ints(1, 4)), data.draw(ints(1, 4))
    stride = data.draw(st.one_of(st.none(), st.tuples(ints(1, 4), ints(1, 4))))
    n, c = data.draw(ints(1, 2)), data.draw(ints(1, 3))
    h, w = kh + data.draw(ints(0, 5)), kw + data.draw(ints(0, 5))
    ties = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(ints(0, 2**16)))
    x = rng.integers(0, 3, (n, c, h, w)).astype(np.float64) if ties else rng.standard_normal((n, c, h, w))
    layer = POOLS[kind]((kh, kw), stride=stride)
    *_, oh, ow = geometry(x.shape, (kh, kw), stride)
    check_against_reference(kind, layer, x, rng.standard_normal((n, c, oh, ow)))


def test_reference_itself_on_a_hand_computed_case():
    x = np.array([[[[1.0, 3.0, 2.0, 0.0],
                    [3.0, 0.0, 5.0, 5.0],
                    [4.0, 4.0, 1.0, 1.0],
                    [4.0, 4.0, 1.0, 2.0]]]])
    y, arg = ref_max_pool(x, 2)
    np.testing.assert_array_equal(y, [[[[3.0, 5.0], [4.0, 2.0]]]])
    # ties: (0,1) before (1,0); (1,2) before (1,3); (2,0) first of four
    np.testing.assert_array_equal(arg[0, 0].reshape(-1, 2), [[0, 1], [1, 2], [2, 0], [3, 3]])
    dx = ref_max_pool_backward(x, np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), 2)
    np.testing.assert_array_equal(dx[0, 0], [[0, 1, 0, 0], [0, 0, 2, 0], [3, 0, 0, 0], [0, 0, 0, 4]])
    np.testing.assert_array_equal(ref_avg_pool(x, 2), [[[[1.75, 3.0], [4.0, 1.25]]]])
    np.testing.assert_array_equal(ref_avg_pool_backward(x, np.ones((1, 1, 2, 2)), 2), np.full((1, 1, 4, 4), 0.25))


# -- max pooling: explicit routing rules ------------------------------------------------------------

def test_max_pool_window_of_equal_values_gives_whole_error_to_first():
    layer = layers.MaxPool2D(2)
    x = np.full((1, 1, 2, 2), 0.5)
    assert layer.forward(x, training=True)[0, 0, 0, 0] == 0.5
    gx = layer.backward(np.array([[[[3.0]]]]))
    np.testing.assert_array_equal(gx[0, 0], [[3.0, 0.0], [0.0, 0.0]])


def test_max_pool_tie_later_in_row_major_order_loses():
    layer = layers.MaxPool2D((2, 3))
    x = np.array([[[[0.0, 1.0, -1.0],
                    [1.0, 0.0, 1.0]]]])
    layer.forward(x, training=True)
    gx = layer.backward(np.array([[[[2.0]]]]))
    np.testing.assert_array_equal(gx[0, 0], [[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])


def test_max_pool_unit_winning_several_overlapping_windows_gets_their_sum():
    layer = layers.MaxPool2D(3, stride=1)
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = 9.0  # inside all four 3×3 windows
    x[0, 0, 3, 0] = 1.0
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y[0, 0], [[9.0, 9.0], [9.0, 9.0]])
    gx = layer.backward(np.array([[[[1.0, 2.0], [4.0, 8.0]]]]))
    expected = np.zeros((4, 4))
    expected[1, 2] = 15.0
    np.testing.assert_array_equal(gx[0, 0], expected)


def test_max_pool_all_equal_overlapping_windows():
    # every window is all ones: each window's first element wins
    layer = layers.MaxPool2D(3, stride=1)
    layer.forward(np.ones((1, 1, 4, 4)), training=True)
    gx = layer.backward(np.array([[[[1.0, 2.0], [4.0, 8.0]]]]))
    np.testing.assert_array_equal(gx[0, 0], [[1, 2, 0, 0], [4, 8, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_max_pool_negative_values_and_channels_are_separate():
    layer = layers.MaxPool2D(2)
    x = -np.arange(1.0, 17.0).reshape(1, 4, 2, 2)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y.reshape(-1), [-1.0, -5.0, -9.0, -13.0])
    gx = layer.backward(np.ones((1, 4, 1, 1)))
    np.testing.assert_array_equal(gx.reshape(4, 4)[:, 0], np.ones(4))
    assert gx.sum() == 4.0


def test_avg_pool_overlapping_windows_share_errors():
    layer = layers.AvgPool2D(2, stride=1)
    layer.forward(np.zeros((1, 1, 3, 3)), training=True)
    gx = layer.backward(np.full((1, 1, 2, 2), 4.0))
    np.testing.assert_array_equal(gx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_dropped_border_gets_zero_gradient():
    for kind in POOLS:
        layer = POOLS[kind](2)
        x = np.random.default_rng(0).standard_normal((1, 1, 5, 5))
        layer.forward(x, training=True)
        gx = layer.backward(np.ones((1, 1, 2, 2)))
        assert not gx[0, 0, 4, :].any() and not gx[0, 0, :, 4].any(), kind
        assert gx.sum() == pytest.approx(4.0)


# -- finite differences ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIG_IDS)
@pytest.mark.parametrize("kind", list(POOLS))
def test_gradcheck(kind, name):
    cfg = CONFIGS[name]
    layer = make_pool(kind, cfg)
    x = make_input(cfg)  # random normal: no ties
    eps = 1e-4
    if kind == "MaxPool2D":
        # the 4th-order stencil moves an entry by up to 2·eps: keep every window's winner unique
        # and further ahead than that (max pooling is piecewise linear, so a small eps is exact)
        eps = 1e-5
        assert min_window_gap(x, layer.kernel_size, layer.stride) > 10 * eps
    result = assert_gradcheck(layer, x, max_entries=None, eps=eps)
    assert set(result.errors) == {"input"}


NON_CONTIGUOUS = {
    "transposed": lambda r: r.standard_normal((7, 6, 2, 2)).transpose(3, 2, 1, 0),   # (2, 2, 6, 7)
    "sliced": lambda r: r.standard_normal((2, 5, 12, 7))[:, 1:4:2, ::2],           # (2, 2, 6, 7)
    "reversed": lambda r: r.standard_normal((2, 2, 6, 7))[:, :, ::-1, ::-1],
    "channels-last": lambda r: np.moveaxis(r.standard_normal((2, 6, 7, 2)), 3, 1),
}


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), ((2, 3), (1, 2))], ids=str)
@pytest.mark.parametrize("layout", list(NON_CONTIGUOUS))
@pytest.mark.parametrize("kind", list(POOLS))
def test_non_contiguous_input(kind, layout, kernel, stride):
    x = NON_CONTIGUOUS[layout](np.random.default_rng(3))
    assert not x.flags.c_contiguous
    layer = POOLS[kind](kernel, stride=stride)
    y_nc = layer.forward(x, training=True)
    g = np.random.default_rng(4).standard_normal(y_nc.shape)
    gx_nc = layer.backward(g)
    y_c = layer.forward(np.ascontiguousarray(x), training=True)
    gx_c = layer.backward(g)
    np.testing.assert_array_equal(y_nc, y_c)
    np.testing.assert_array_equal(gx_nc, gx_c)
    check_against_reference(kind, layer, x, g)
    # keep the finite-difference stencil (±2·eps) inside every max-pool window's winning margin
    gap = min_window_gap(x, layer.kernel_size, layer.stride)
    assert gap > 1e-7
    assert_gradcheck(layer, x, max_entries=None, eps=min(1e-5, gap / 10))


# -- parity with PyTorch ------------------------------------------------------------------------------

TORCH_RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def torch_pool(kind, x, layer, g):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fn = F.max_pool2d if kind == "MaxPool2D" else F.avg_pool2d
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    yt = fn(xt, layer.kernel_size, layer.stride)
    yt.backward(torch.tensor(g))
    return yt.detach().numpy(), xt.grad.numpy()


def assert_close(ours, theirs, dtype, what):
    assert ours.shape == theirs.shape, f"{what}: shape ours {ours.shape} vs torch {theirs.shape}"
    assert ours.dtype == theirs.dtype == dtype, f"{what}: dtype ours {ours.dtype} vs torch {theirs.dtype}"
    rtol = TORCH_RTOL[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * max(1.0, float(np.abs(theirs).max())),
                               err_msg=what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CONFIG_IDS)
@pytest.mark.parametrize("kind", list(POOLS))
def test_torch_parity(kind, name, dtype):
    cfg = CONFIGS[name]
    layer = make_pool(kind, cfg)
    x = make_input(cfg, dtype)
    g = np.random.default_rng(2).standard_normal(expected_out_shape(cfg)).astype(dtype)
    yt, gxt = torch_pool(kind, x, layer, g)
    y = layer.forward(x, training=True)
    gx = layer.backward(g)
    assert_close(y, yt, dtype, f"{layer!r} forward")
    assert_close(gx, gxt, dtype, f"{layer!r} dC/dx")
    if kind == "MaxPool2D":
        np.testing.assert_array_equal(y, yt)  # the same selected values, bit for bit


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CONFIG_IDS)
def test_torch_parity_max_pool_ties(name, dtype):
    cfg = CONFIGS[name]
    x = np.random.default_rng(7).integers(0, 2, size=cfg[:4]).astype(dtype)  # ties everywhere
    g = np.random.default_rng(8).standard_normal(expected_out_shape(cfg)).astype(dtype)
    layer = make_pool("MaxPool2D", cfg)
    yt, gxt = torch_pool("MaxPool2D", x, layer, g)
    y = layer.forward(x, training=True)
    gx = layer.backward(g)
    np.testing.assert_array_equal(y, yt)
    # the same winners: the error lands on exactly the same units
    np.testing.assert_array_equal(gx != 0, gxt != 0)
    assert_close(gx, gxt, dtype, f"{layer!r} dC/dx with ties")


def test_torch_parity_window_of_equal_values():
    torch = pytest.importorskip("torch")
    x = np.array([[[[2.0, 2.0, 1.0, 7.0],
                    [2.0, 2.0, 7.0, 7.0]]]])
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).backward(torch.tensor([[[[5.0, 6.0]]]], dtype=torch.float64))
    layer = layers.MaxPool2D(2)
    layer.forward(x, training=True)
    gx = layer.backward(np.array([[[[5.0, 6.0]]]]))
    np.testing.assert_array_equal(gx, xt.grad.numpy())
    np.testing.assert_array_equal(gx[0, 0], [[5.0, 0.0, 0.0, 6.0], [0.0, 0.0, 0.0, 0.0]])


# -- the layer contract ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(POOLS))
def test_no_params_and_no_grads(kind):
    layer = POOLS[kind](2)
    assert layer.params == {} and layer.grads == {}
    assert layer.num_params == 0
    layer.forward(np.ones((1, 1, 4, 4)), training=True)
    layer.backward(np.ones((1, 1, 2, 2)))
    assert layer.params == {} and layer.grads == {}


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 1), ((2, 3), (2, 1)), (1, 2)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(POOLS))
def test_dtype_is_preserved(kind, dtype, kernel, stride):
    layer = POOLS[kind](kernel, stride=stride)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 7)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    gx = layer.backward(np.ones(y.shape, dtype))
    assert gx.dtype == dtype


@pytest.mark.parametrize("kind", list(POOLS))
def test_eval_forward_equals_training_forward(kind):
    layer = POOLS[kind](3, stride=2)
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 8))
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x, training=True))


@pytest.mark.parametrize("name", CONFIG_IDS)
@pytest.mark.parametrize("kind", list(POOLS))
def test_output_shape_agrees_with_forward(kind, name):
    cfg = CONFIGS[name]
    layer = make_pool(kind, cfg)
    x = make_input(cfg)
    y = layer.forward(x)
    assert y.shape == expected_out_shape(cfg)
    assert tuple(layer.output_shape(x.shape[1:])) == y.shape[1:]


@pytest.mark.parametrize("kind", list(POOLS))
def test_stride_defaults_to_kernel_size(kind):
    assert POOLS[kind](3).stride == (3, 3)
    assert POOLS[kind]((2, 3)).stride == (2, 3)
    assert POOLS[kind]((2, 3), stride=1).stride == (1, 1)
    assert POOLS[kind](2, stride=(1, 2)).kernel_size == (2, 2)


@pytest.mark.parametrize("kernel,stride", [(2, None), ((2, 3), (1, 2)), (3, 1)], ids=str)
@pytest.mark.parametrize("kind", list(POOLS))
def test_config_round_trip(kind, kernel, stride):
    layer = POOLS[kind](kernel, stride=stride)
    cfg = layer.get_config()
    clone = POOLS[kind](**cfg)
    assert clone.get_config() == cfg
    assert clone.kernel_size == layer.kernel_size == as_pair(kernel)
    assert clone.stride == layer.stride
    assert repr(clone) == repr(layer)


@pytest.mark.parametrize("kind", list(POOLS))
def test_repr_names_the_layer(kind):
    assert repr(POOLS[kind](2)) == f"{kind}(2)"
    assert repr(POOLS[kind](3, stride=2)).startswith(f"{kind}(3")


# -- bad input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 3, 8, 8, 1), (8, 8), (8,)])
@pytest.mark.parametrize("kind", list(POOLS))
def test_wrong_rank_names_layer_and_shape(kind, shape):
    layer = POOLS[kind](2)
    with pytest.raises(ValueError, match=kind) as info:
        layer.forward(np.zeros(shape, np.float32))
    assert str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize("kernel,stride,hw", [(2, None, (1, 4)), (2, None, (4, 1)), ((3, 2), 1, (2, 5)),
                                              (5, 2, (4, 4))], ids=str)
@pytest.mark.parametrize("kind", list(POOLS))
def test_input_smaller_than_window(kind, kernel, stride, hw):
    layer = POOLS[kind](kernel, stride=stride)
    with pytest.raises(ValueError, match=kind) as info:
        layer.forward(np.zeros((1, 2) + hw, np.float32))
    assert str((1, 2) + hw) in str(info.value)


@pytest.mark.parametrize("bad", [0, -1, (2, 0), (0, 2), (-1, 2), (2, 2, 2), (2,), (), True, (2, False),
                                 2.0, "2", None], ids=repr)
@pytest.mark.parametrize("kind", list(POOLS))
def test_bad_kernel_size(kind, bad):
    with pytest.raises(ValueError, match=rf"{kind}.*kernel_size"):
        POOLS[kind](bad)


@pytest.mark.parametrize("bad", [0, -2, (1, 0), (2, 2, 2), True, 1.5], ids=repr)
@pytest.mark.parametrize("kind", list(POOLS))
def test_bad_stride(kind, bad):
    with pytest.raises(ValueError, match=rf"{kind}.*stride"):
        POOLS[kind](2, stride=bad)


@pytest.mark.parametrize("bad", [np.zeros((1, 1, 4, 4), np.int64), np.zeros((1, 1, 4, 4), np.float16),
                                 [[[[0.0, 1.0], [2.0, 3.0]]]]], ids=["int64", "float16", "list"])
@pytest.mark.parametrize("kind", list(POOLS))
def test_non_float_input_is_type_error(kind, bad):
    with pytest.raises(TypeError, match=kind):
        POOLS[kind](2).forward(bad)


@pytest.mark.parametrize("kind", list(POOLS))
def test_backward_before_forward_is_runtime_error(kind):
    layer = POOLS[kind](2)
    with pytest.raises(RuntimeError, match=rf"{kind}.*backward"):
        layer.backward(np.zeros((1, 1, 2, 2)))
    layer.forward(np.zeros((1, 1, 4, 4)), training=False)  # inference does not arm backward
    with pytest.raises(RuntimeError, match=kind):
        layer.backward(np.zeros((1, 1, 2, 2)))


@pytest.mark.parametrize("gshape", [(2, 3, 2, 3), (2, 3, 3, 2), (1, 3, 3, 3), (2, 2, 3, 3), (2, 27), (2, 3, 3, 3, 1)])
@pytest.mark.parametrize("kind", list(POOLS))
def test_backward_wrong_gradient_shape(kind, gshape):
    layer = POOLS[kind](2)
    layer.forward(np.zeros((2, 3, 7, 6)), training=True)
    with pytest.raises(ValueError, match=rf"{kind}.*backward.*\(2, 3, 3, 3\)") as info:
        layer.backward(np.zeros(gshape))
    assert str(gshape) in str(info.value)
