"""``Sequential.forward`` runs a ``Conv2D`` followed by a ``ReLU`` as one pass
(``Conv2D.forward_relu``), and ``Sequential.backward`` a ``Conv2D``, ``ReLU`` and 2×2 ``MaxPool2D``
(``Conv2D.backward_through``): the same bits as the two layers called one after the other, the same
caches (each layer's ``backward`` is valid afterwards), and the plain calls wherever the pair
cannot be fused (the NumPy path, stride 2, untied biases, a subclass, a replaced method)."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import accel, layers as L, model as model_mod

DTYPES = [np.float32, np.float64]


def one_by_one(model, x, training=True):
    for layer in model.layers:
        x = layer.forward(x, training)
    return x


def backward_by_layers(model, g):
    for layer in reversed(model.layers):
        g = layer.backward(g)
    return g


def grads(model):
    return [{k: v.copy() for k, v in layer.grads.items()} for layer in model.layers]


def same_grads(a, b):
    return all(a[i].keys() == b[i].keys() and all(np.array_equal(a[i][k], b[i][k]) for k in a[i]) for i in range(len(a)))


def net(c, d, k, padding, dtype, stride=1, relu=L.ReLU, **kw):
    return hg.Sequential([L.Conv2D(c, d, k, stride=stride, padding=padding, rng=1, dtype=dtype, **kw), relu(),
                          L.MaxPool2D(2), L.Flatten()])


GEOMETRIES = [  # (N, C, D, k, padding, H): few output channels (compiled rows) and many (products)
    (1, 1, 6, 5, 2, 28), (3, 1, 6, 5, 2, 12), (2, 6, 16, 5, 0, 14), (5, 3, 4, 3, 1, 9), (4, 2, 12, 3, 0, 8),
    (130, 1, 6, 5, 2, 28),  # more than one block, on several threads
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, c, d, k, padding, h", GEOMETRIES)
def test_fused_forward_gives_the_bits_and_caches_of_the_two_layers(n, c, d, k, padding, h, dtype):
    x = np.random.default_rng(n + d).standard_normal((n, c, h, h)).astype(dtype)
    fused, plain = net(c, d, k, padding, dtype), net(c, d, k, padding, dtype)
    assert fused.layers[0].fuses_relu(x) == accel.jit_enabled()
    y = fused.forward(x, training=True)
    y_plain = one_by_one(plain, x)
    np.testing.assert_array_equal(y, y_plain)
    assert y.flags.c_contiguous
    g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    # Sequential's backward, and each layer's own backward after Sequential's forward
    dx = fused.backward(g)
    np.testing.assert_array_equal(dx, backward_by_layers(plain, g))
    assert same_grads(grads(fused), grads(plain))
    fused.forward(x, training=True)
    np.testing.assert_array_equal(backward_by_layers(fused, g), dx)
    assert same_grads(grads(fused), grads(plain))
    # inference: the same bits too
    np.testing.assert_array_equal(fused.forward(x), one_by_one(plain, x, training=False))


@pytest.mark.skipif(not accel.jit_available(), reason="the fused pass is compiled")
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_relu_keeps_nan_and_maps_signed_zero_as_relu(dtype):
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(dtype)
    x[0, 0, 3, 3], x[1, 0, 0, 0], x[1, 0, 5, 2] = np.nan, np.inf, -np.inf
    fused, plain = net(1, 3, 3, 1, dtype), net(1, 3, 3, 1, dtype)
    with np.errstate(invalid="ignore"):
        y, want = fused.forward(x, training=True), one_by_one(plain, x)
    np.testing.assert_array_equal(y, want)  # NaN where NaN
    conv = L.Conv2D(1, 2, 1, rng=0, dtype=dtype)
    conv.params["W"][...] = 0
    z = hg.Sequential([conv, L.ReLU()]).forward(-np.ones((1, 1, 3, 3), dtype))  # 0·x + 0: ±0 → +0
    assert not np.signbit(z).any()


@pytest.mark.parametrize("case", ["numpy path", "stride 2", "untied bias", "subclass", "patched forward"])
def test_where_the_pair_is_not_fused_the_layers_run_as_before(monkeypatch, case):
    dtype, calls = np.float32, []
    x = np.random.default_rng(3).standard_normal((2, 2, 8, 8)).astype(dtype)
    make = lambda **kw: net(2, 3, 3, 1, dtype, **kw)  # noqa: E731
    if case == "stride 2":
        make = lambda: net(2, 3, 3, 1, dtype, stride=2)  # noqa: E731
    elif case == "untied bias":
        make = lambda: net(2, 3, 3, 1, dtype, untied_bias=(8, 8))  # noqa: E731

    class MyReLU(L.ReLU):
        def _forward(self, x, training):
            calls.append("mine")
            return super()._forward(x, training)

    if case == "subclass":
        make = lambda: net(2, 3, 3, 1, dtype, relu=MyReLU)  # noqa: E731
    fused, plain = make(), make()
    if case == "patched forward":
        original = fused.layers[1].forward
        fused.layers[1].forward = lambda *a, **k: (calls.append("patched"), original(*a, **k))[1]
    spy = []
    monkeypatch.setattr(L.Conv2D, "forward_relu", lambda self, *a, **k: spy.append(1) or pytest.fail("fused"))
    with accel.use_jit(case != "numpy path"):
        y = fused.forward(x, training=True)
        np.testing.assert_array_equal(y, one_by_one(plain, x))
    assert not spy
    if case in ("subclass", "patched forward"):
        assert calls
    g = np.ones(y.shape, dtype)
    np.testing.assert_array_equal(fused.backward(g), backward_by_layers(plain, g))


@pytest.mark.skipif(not accel.jit_available(), reason="the fused pass is compiled")
def test_the_pair_as_the_last_layers_and_a_relu_alone(monkeypatch):
    seen = []
    original = L.Conv2D.forward_relu
    monkeypatch.setattr(L.Conv2D, "forward_relu", lambda self, *a, **k: seen.append(1) or original(self, *a, **k))
    x = np.random.default_rng(4).standard_normal((3, 2, 6, 6)).astype(np.float32)
    pair = hg.Sequential([L.ReLU(), L.Conv2D(2, 3, 3, rng=0), L.ReLU()])
    plain = hg.Sequential([L.ReLU(), L.Conv2D(2, 3, 3, rng=0), L.ReLU()])
    np.testing.assert_array_equal(pair.forward(x, training=True), one_by_one(plain, x))
    assert seen == [1]
    g = np.ones((3, 3, 4, 4), np.float32)
    np.testing.assert_array_equal(pair.backward(g), backward_by_layers(plain, g))


def test_lenet5_trains_the_same_with_and_without_the_fused_passes(monkeypatch):
    from handgrad import presets

    x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 10, 64)
    weights = []
    for fuse in (True, False):
        if not fuse:  # neither the forward pair nor the backward trio
            monkeypatch.setattr(model_mod, "_conv_relu", lambda layers, i: False)
            monkeypatch.setattr(model_mod, "_conv_relu_pool", lambda layers, i: False)
        m = presets.lenet5()
        opt = hg.optim.SGD(m, lr=0.05, momentum=0.9)
        hg.fit(m, hg.losses.SoftmaxCrossEntropy(), opt, x, y, epochs=1, batch_size=32, workers=1, progress_bar=False)
        weights.append([p.copy() for layer in m.layers for p in layer.params.values()])
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


# -- backward: Conv2D, ReLU, MaxPool2D(2) in one pass (Conv2D.backward_through) -------------------
def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


TRIOS = [  # (N, C, D, k, padding, H): compiled rows (D ≤ 8) and products, odd sizes the pool floors
    (1, 1, 6, 5, 2, 28), (3, 2, 4, 3, 1, 9), (2, 6, 16, 5, 0, 14), (4, 3, 12, 3, 0, 11), (130, 1, 6, 5, 2, 12),
]


def trio(c, d, k, padding, dtype, pool=lambda: L.MaxPool2D(2), trainable=True):
    conv = L.Conv2D(c, d, k, padding=padding, rng=2, dtype=dtype)
    conv.trainable = trainable
    return hg.Sequential([L.Normalize(0.5, 2.0), conv, L.ReLU(), pool(), L.Flatten()])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, c, d, k, padding, h", TRIOS)
@pytest.mark.parametrize("input_grad, trainable", [(True, True), (False, True), (True, False)])
def test_backward_through_relu_and_pool_gives_the_bits_of_the_three_calls(n, c, d, k, padding, h, dtype,
                                                                          input_grad, trainable, monkeypatch):
    rng = np.random.default_rng(n + d + h)
    x = rng.standard_normal((n, c, h, h)).astype(dtype)
    x[0, 0, :3, :3] = 0.5  # a flat patch: ties inside windows, zeros after the ReLU
    fused, plain = trio(c, d, k, padding, dtype, trainable=trainable), trio(c, d, k, padding, dtype, trainable=trainable)
    calls = []
    original = L.Conv2D.backward_through
    monkeypatch.setattr(L.Conv2D, "backward_through", lambda self, *a, **kw: calls.append(1) or original(self, *a, **kw))
    y = fused.forward(x, training=True)
    np.testing.assert_array_equal(y, plain.forward(x, training=True))
    g = rng.standard_normal(y.shape).astype(dtype)
    g[0, :5] = -0.0
    dx = fused.backward(g, input_grad=input_grad)
    monkeypatch.setattr(model_mod, "_conv_relu_pool", lambda layers, i: False)
    want = plain.backward(g, input_grad=input_grad)
    assert calls == ([1] if accel.jit_enabled() else [])
    if input_grad:
        np.testing.assert_array_equal(bits(dx), bits(want))
    else:
        assert dx is None and want is None
    assert all(a.keys() == b.keys() and all(np.array_equal(bits(a[k]), bits(b[k])) for k in a)
               for a, b in zip(grads(fused), grads(plain)))


@pytest.mark.skipif(not accel.jit_available(), reason="the fused pass is compiled")
def test_backward_through_a_nan_window_passes_nothing():
    x = np.random.default_rng(5).standard_normal((2, 1, 8, 8)).astype(np.float32)
    x[1, 0, 2, 3] = np.nan
    fused, plain = trio(1, 3, 3, 1, np.float32), trio(1, 3, 3, 1, np.float32)
    with np.errstate(invalid="ignore"):
        y = fused.forward(x, training=True)
        plain.forward(x, training=True)
    g = np.ones(y.shape, np.float32)
    with np.errstate(invalid="ignore"):
        dx = fused.backward(g)
        want = backward_by_layers(plain, g)
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("case", ["avg pool", "pool 3", "pool stride 1", "delta norms", "patched relu",
                                  "numpy path", "subclass pool"])
def test_where_the_three_cannot_run_as_one_their_backwards_run_as_before(monkeypatch, case):
    dtype = np.float32

    class MyPool(L.MaxPool2D):
        pass
    pools = {"avg pool": lambda: L.AvgPool2D(2), "pool 3": lambda: L.MaxPool2D(3),
             "pool stride 1": lambda: L.MaxPool2D(2, stride=1), "subclass pool": lambda: MyPool(2)}
    make = lambda: trio(2, 3, 3, 1, dtype, pool=pools.get(case, lambda: L.MaxPool2D(2)))  # noqa: E731
    fused, plain = make(), make()
    x = np.random.default_rng(6).standard_normal((3, 2, 9, 9)).astype(dtype)
    if case == "delta norms":
        fused.record_delta_norms = True
    if case == "patched relu":
        original = fused.layers[2]._backward_owned
        fused.layers[2]._backward_owned = lambda *a, **k: original(*a, **k)
    monkeypatch.setattr(L.Conv2D, "backward_through", lambda *a, **k: pytest.fail("fused"))
    with accel.use_jit(case != "numpy path"):
        y = fused.forward(x, training=True)
        plain.forward(x, training=True)
        g = np.random.default_rng(7).standard_normal(y.shape).astype(dtype)
        np.testing.assert_array_equal(fused.backward(g), backward_by_layers(plain, g))
    if case == "delta norms":
        assert set(fused.delta_norms) == {1}


@pytest.mark.parametrize("cls, name", [(L.ReLU, "forward"), (L.ReLU, "_forward"), (L.Conv2D, "_forward"),
                                       (L.MaxPool2D, "_backward"), (L.ReLU, "_backward_owned")])
def test_a_method_replaced_on_the_class_runs_again(monkeypatch, cls, name):
    calls = []
    original = getattr(cls, name)
    monkeypatch.setattr(cls, name, lambda self, *a, **k: (calls.append(name), original(self, *a, **k))[1])
    m = trio(1, 3, 3, 1, np.float32)
    x = np.random.default_rng(8).standard_normal((2, 1, 6, 6)).astype(np.float32)
    y = m.forward(x, training=True)
    m.backward(np.ones(y.shape, np.float32))
    assert calls  # the spy saw its layer's call: no fused pass stood in for it


# -- forward: the max-pool on each block of the ReLU's output (Conv2D.forward_relu_pool) -------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, c, d, k, padding, h", TRIOS)
@pytest.mark.parametrize("pool", [(2, None), (3, None), (2, 1), (3, 2)])
def test_forward_with_the_pool_gives_the_bits_and_caches_of_the_three_layers(n, c, d, k, padding, h, dtype, pool,
                                                                             monkeypatch):
    size, stride = pool
    make = lambda: trio(c, d, k, padding, dtype, pool=lambda: L.MaxPool2D(size, stride))  # noqa: E731
    fused, plain = make(), make()
    rng = np.random.default_rng(n + d + size)
    x = rng.standard_normal((n, c, h, h)).astype(dtype)
    x[0, 0, :4, :4] = 0.25  # ties in the windows
    calls = []
    original = L.Conv2D.forward_relu_pool
    monkeypatch.setattr(L.Conv2D, "forward_relu_pool", lambda self, *a, **kw: calls.append(1) or original(self, *a, **kw))
    y = fused.forward(x, training=True)
    np.testing.assert_array_equal(bits(y), bits(one_by_one(plain, x)))
    assert calls == ([1] if accel.jit_enabled() else [])
    pool_f, pool_p = fused.layers[3], plain.layers[3]
    np.testing.assert_array_equal(pool_f._winners, pool_p._winners)
    assert pool_f._in_shape == pool_p._in_shape and pool_f._out_shape == pool_p._out_shape
    g = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(bits(backward_by_layers(fused, g)), bits(backward_by_layers(plain, g)))
    np.testing.assert_array_equal(fused.forward(x), one_by_one(plain, x, training=False))


def test_a_pool_window_larger_than_the_convolution_output_is_the_pools_error():
    m = trio(1, 2, 3, 0, np.float32, pool=lambda: L.MaxPool2D(4))
    with pytest.raises(ValueError, match="MaxPool2D"):
        m.forward(np.zeros((1, 1, 5, 5), np.float32), training=True)  # 3×3 output, 4×4 window
