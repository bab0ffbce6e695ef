"""Stride-1 convolution in blocks of samples (``layers/conv.py``, ``_blocks``): the blocks'
columns are built, multiplied and dropped one after the other, optionally on several threads,
and backward rebuilds them from the kept padded input. Whatever the blocking, the layer
computes the same function and gradients as one block; the gradients pass finite differences
with several blocks; the same thread count gives the same bits."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import accel
from handgrad.layers import conv

# (C_in, C_out, kernel, padding, N, H, W): LeNet's two layers, a 1×1 kernel (no extra row),
# an odd non-square case, batch 1
CASES = [(1, 6, 5, 2, 7, 12, 12), (6, 16, 5, 0, 5, 9, 9), (3, 4, 1, 0, 6, 5, 7),
         (2, 3, (3, 2), (1, 0), 9, 6, 5), (2, 3, 3, 1, 1, 6, 6)]
IDS = ["lenet1", "lenet2", "1x1", "odd", "batch1"]


def run(cfg, dtype, seed=0):
    c, d, k, p, n, h, w = cfg
    layer = hg.layers.Conv2D(c, d, k, padding=p, rng=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    layer.params["b"][...] = rng.standard_normal(d)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    y = layer.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(g)
    return [np.array(y), dx, layer.grads["W"].copy(), layer.grads["b"].copy()]


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of about one sample, three threads whose BLAS idle threads do not spin."""
    monkeypatch.setattr(conv, "block_bytes", 1)
    monkeypatch.setattr(accel, "_spin", False)
    accel.set_num_threads(3)
    yield
    accel.set_num_threads(None)


def one_block(cfg, dtype):
    old = conv.block_bytes
    conv.block_bytes = 1 << 40
    try:
        with accel.limit_threads(1):
            return run(cfg, dtype)
    finally:
        conv.block_bytes = old


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_on_threads_equal_one_block(tiny_blocks, cfg, dtype):
    ref = one_block(cfg, dtype)
    got = run(cfg, dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_same_bits_run_to_run(tiny_blocks, cfg):
    first, again = run(cfg, np.float32), run(cfg, np.float32)
    for a, b in zip(first, again):
        assert np.array_equal(a, b)


def test_blocks_split_the_batch(monkeypatch):
    monkeypatch.setattr(accel, "_spin", False)
    accel.set_num_threads(2)
    try:  # LeNet's first layer at batch 128: 11.5 MB of columns, 2.5 MB blocks, the same count per thread
        assert conv._blocks(np, 128, 25 * 28 * 32 * 4) == accel.split(128, 6)
        # batch 32: 2.9 MB of columns, under two blocks' worth: two blocks, one thread (a thread's
        # wake-up and join cost more than the split saves); batch 64: two threads
        assert conv._blocks(np, 32, 25 * 28 * 32 * 4) == accel.split(32, 2)
        assert conv._threads(np, 32, 25 * 28 * 32 * 4) == 1 and conv._threads(np, 64, 25 * 28 * 32 * 4) == 2
        assert conv._blocks(np, 7, 0) == [(0, 7)]                   # no work: one block
        monkeypatch.setattr(conv, "block_bytes", 1)
        assert conv._blocks(np, 7, 1000) == accel.split(7, 7)       # at most one block per sample
        with accel.limit_threads(1):
            assert conv._blocks(np, 5, 0) == [(0, 5)]
    finally:
        accel.set_num_threads(None)


def test_one_block_without_own_threads(monkeypatch):
    """Idle BLAS threads that spin (and BLAS on two threads): one thread, BLAS does the products."""
    monkeypatch.setattr(accel, "_spin", True)
    accel.set_num_threads(2)
    try:
        assert accel.own_threads() == 1
        assert conv._blocks(np, 64, 100) == [(0, 64)]
        with accel.blas_limit(1):
            assert accel.own_threads() == 2
    finally:
        accel.set_num_threads(None)


@pytest.mark.parametrize("cfg", CASES, ids=IDS)
def test_gradcheck_with_several_blocks(tiny_blocks, cfg):
    c, d, k, p, n, h, w = cfg
    layer = hg.layers.Conv2D(c, d, k, padding=p, rng=3, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((n, c, h, w))
    result = hg.gradcheck(layer, x, max_entries=None)
    assert result.passed, result.errors


def test_kept_buffers_do_not_leak_into_outputs(tiny_blocks):
    """Work buffers are reused between calls; outputs and gradients handed out are not."""
    layer = hg.layers.Conv2D(2, 3, 3, padding=1, rng=0)
    rng = np.random.default_rng(0)
    x1, x2 = (rng.standard_normal((4, 2, 6, 6)).astype(np.float32) for _ in range(2))
    y1 = layer.forward(x1, training=True)
    dx1 = layer.backward(np.ones_like(y1))
    keep = [y1.copy(), dx1.copy(), layer.grads["W"]]
    keep_W = keep[2].copy()
    y2 = layer.forward(x2, training=True)
    layer.backward(np.full_like(y2, 2.0))
    assert np.array_equal(y1, keep[0]) and np.array_equal(dx1, keep[1]) and np.array_equal(keep[2], keep_W)


@pytest.mark.skipif(not accel.jit_available(), reason="numba is not installed")
@pytest.mark.parametrize("channels", [6, 16])
@pytest.mark.parametrize("cfg", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [0, 1 << 30], ids=["product-dW", "compiled-dW"])
def test_compiled_passes_equal_numpy(cfg, dtype, channels, weights, monkeypatch):
    """The compiled passes (forward and input gradient for few output channels, col2im for
    more, the weight gradient for few weights) against im2col products and col2im(W_matᵀ δ)
    in NumPy."""
    monkeypatch.setattr(conv, "direct_input_grad_channels", channels)
    monkeypatch.setattr(conv, "direct_weight_grad_size", weights)
    with accel.use_jit(False):
        ref = run(cfg, dtype)
    with accel.use_jit(True):
        got = run(cfg, dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, **tol)
