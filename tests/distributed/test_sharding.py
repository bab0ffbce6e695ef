"""Sharding, weighting, flattening and the row-sharded generators, with the local (fake)
communicator: K ranks simulated one after another in this process, their buffers summed
here, compared with the single-process global batch in float64."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import handgrad as hg
from handgrad import distributed as dist
from handgrad import layers as L
from handgrad import losses


def mlp():
    return hg.Sequential([L.Dense(5, 7, rng=1, dtype="float64"), L.Tanh(), L.Dropout(0.4, rng=3),
                          L.Dense(7, 3, rng=2, dtype="float64")])


def lstm():
    return hg.Sequential([L.LSTM(3, 4, rng=1, dtype="float64"), L.Dense(4, 3, rng=2, dtype="float64")])


def flat_grads(model):
    return np.concatenate([layer.grads[k].ravel() for layer in model.layers if layer.trainable for k in layer.params])


@pytest.mark.parametrize("n,size", [(10, 3), (7, 7), (2, 3), (0, 2), (1, 1), (5, 2)])
def test_shard_bounds_cover_every_row_once_rank_zero_first(n, size):
    bounds = dist.shard_bounds(n, size)
    assert len(bounds) == size and bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(b0 == a1 for (_, b0), (a1, _) in itertools.pairwise(bounds))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("bad", [(-1, 2), (3, 0), (2.5, 2), (True, 2)])
def test_shard_bounds_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="shard_bounds"):
        dist.shard_bounds(*bad)


def test_counted_items_is_the_loss_mean_count():
    rng = np.random.default_rng(0)
    sce, mse = losses.SoftmaxCrossEntropy(), losses.MeanSquaredError()
    labels = rng.integers(0, 3, (4, 5))
    labels[1, 2:] = -1
    cases = [(sce, rng.standard_normal((4, 3)), rng.integers(0, 3, 4)),
             (sce, rng.standard_normal((4, 5, 3)), labels),
             (mse, rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5, 3))),
             (mse, rng.standard_normal((4, 2)), rng.standard_normal((4, 2)))]
    for loss, out, target in cases:
        loss.forward(out, target)
        assert dist.counted_items(loss, target) == loss.last_count
    assert dist.counted_items(sce, -np.ones((2, 3), dtype=np.int64)) == 0  # Loss says max(1, 0)
    with pytest.raises(TypeError, match="counted_items"):
        dist.counted_items(sce, [1, 2])


@pytest.mark.parametrize("make,size", [(mlp, 3), (lstm, 2), (lstm, 4)])
def test_weighted_shard_gradients_sum_to_the_global_batch_gradient(make, size):
    rng = np.random.default_rng(1)
    loss = losses.SoftmaxCrossEntropy()
    if make is mlp:
        x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    else:  # per-step labels with padding: ranks count different numbers of items
        x, y = rng.standard_normal((7, 6, 3)), rng.integers(0, 3, (7, 6))
        y[rng.random((7, 6)) < 0.4] = -1
        y[:2] = -1
    ref = make()
    for layer in ref.layers:
        if layer.stochastic:
            layer.set_rng(np.random.default_rng(5))
    loss.forward(ref.forward(x, training=True), y)
    ref.backward(loss.backward(), input_grad=False)
    total = np.zeros_like(flat_grads(ref))
    count = 0
    for rank, (a, b) in enumerate(dist.shard_bounds(len(x), size)):
        model = make()
        views = dist.install_row_sharding([model])
        for v in views:
            v.bit_generator.state = np.random.default_rng(5).bit_generator.state
            v.set_view(len(x), a, b)
        loss.forward(model.forward(x[a:b], training=True), y[a:b])
        model.backward(loss.backward(), input_grad=False)
        c = dist.counted_items(loss, y[a:b])
        buf = dist.GradientBuffer(model)
        flat = buf.pack(float(c), count=float(c))
        total += flat[:-2]
        count += flat[-2]
        assert flat[-1] == 0.0
    np.testing.assert_allclose(total / count, flat_grads(ref), rtol=1e-12, atol=1e-14)


def test_gradient_buffer_roundtrip_failure_flag_and_buckets():
    model = mlp()
    x = np.random.default_rng(2).standard_normal((4, 5))
    model.backward(model.forward(x, training=True), input_grad=False)
    want = flat_grads(model).copy()
    buf = dist.GradientBuffer(model, bucket_bytes=40)
    buf.pack(2.0, count=3.0)
    assert buf.count == 3.0 and not buf.failed and buf.flat.size == want.size + 2

    class Recording(dist.LocalCommunicator):
        def _allreduce_sum(self, piece):
            self.pieces.append(piece.size)
            assert piece.flags.c_contiguous

    comm = Recording(0, 2)
    comm.pieces = []
    buf.allreduce(comm)
    assert sum(comm.pieces) == buf.flat.size and max(comm.pieces) == 5  # 40 bytes of float64
    grads_before = [layer.grads[k] for layer in model.layers if layer.trainable for k in layer.params]
    buf.unpack(0.25)
    np.testing.assert_allclose(flat_grads(model), want * 0.5, rtol=1e-15)
    assert all(a is b for a, b in zip(grads_before, [layer.grads[k] for layer in model.layers
                                                     if layer.trainable for k in layer.params]))
    buf.pack(1.0, failed=True)
    assert buf.failed and not buf.flat[:-2].any()


def test_row_sharded_draws_are_the_global_draws():
    full = np.random.default_rng(7)
    want = [full.random((9, 3), dtype=np.float32), full.standard_normal(9), full.integers(0, 5, (9, 2)),
            full.uniform(-1, 1, 9), full.normal(0, 2, (9,)), full.random(4)]
    parts = [[] for _ in want]
    for a, b in dist.shard_bounds(9, 4):
        g = dist.row_sharded(np.random.default_rng(7))
        g.set_view(9, a, b)
        got = [g.random((b - a, 3), dtype=np.float32), g.standard_normal(b - a), g.integers(0, 5, (b - a, 2)),
               g.uniform(-1, 1, b - a), g.normal(0, 2, (b - a,)), g.random(4)]  # the last: not per row
        for p, arr in zip(parts, got):
            p.append(arr)
    for w, p in zip(want[:-1], parts[:-1]):
        np.testing.assert_array_equal(np.concatenate(p), w)
    assert all(np.array_equal(p, want[-1]) for p in parts[-1])
    with pytest.raises(ValueError, match="set_view"):
        g.set_view(3, 2, 5)
    with pytest.raises(TypeError, match="row_sharded"):
        dist.row_sharded(3)


@pytest.mark.parametrize("shape", [(9, 3), (9,), (9, 2, 3)], ids=str)
def test_row_sharded_uint32_draws_are_the_global_draws(shape):
    """``random_uint32`` (dropout's draws): the raw 64-bit outputs split low half first, and a
    row view keeps the global draw's rows; a plain Generator draws the same integers."""
    from handgrad.training.rowshard import random_uint32

    n = int(np.prod(shape))
    raw = np.random.default_rng(5).bit_generator.random_raw((n + 1) // 2)
    want = np.stack([raw & 0xFFFFFFFF, raw >> 32], axis=-1).reshape(-1)[:n].astype(np.uint32).reshape(shape)
    full = random_uint32(np.random.default_rng(5), shape)
    assert full.dtype == np.uint32
    np.testing.assert_array_equal(full, want)
    parts = []
    for a, b in dist.shard_bounds(9, 4):
        g = dist.row_sharded(np.random.default_rng(5))
        g.set_view(9, a, b)
        parts.append(random_uint32(g, (b - a, *shape[1:])))
    np.testing.assert_array_equal(np.concatenate(parts), want)
    with pytest.raises(TypeError, match="random_uint32"):
        random_uint32(np.random.RandomState(0), 3)


def test_row_sharded_augmentation_equals_the_global_batch_augmentation():
    aug = hg.data.RandomAffine(flip=True, image_shape=(6, 6))
    x = np.random.default_rng(0).random((7, 36))
    want = aug(x, np.random.default_rng(11))
    got = []
    for a, b in dist.shard_bounds(7, 3):
        g = dist.row_sharded(np.random.default_rng(11))
        g.set_view(7, a, b)
        got.append(aug(x[a:b], g))
    np.testing.assert_array_equal(np.concatenate(got), want)


def test_row_sharded_generator_shares_its_stream_and_state():
    base = np.random.default_rng(3)
    g = dist.row_sharded(base)
    assert g.bit_generator is base.bit_generator and dist.row_sharded(g) is g
    before = base.bit_generator.state
    g.random(5)
    base.bit_generator.state = before  # what resume does, through either object
    np.testing.assert_array_equal(g.random(5), np.random.default_rng(3).random(5))
