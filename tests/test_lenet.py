"""The LeNet-5 preset end to end: its architecture, gradient parity with an equivalent PyTorch
model built from our weights (max/ReLU and avg/sigmoid variants), a short training run on the
shipped subset, and ``handgrad gradcheck lenet5``."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import cli, layers, losses, optim, presets


@pytest.fixture(scope="module")
def subset():
    (x, y), (xt, yt) = hg.data.load_fashion_mnist_subset()
    to_images = lambda a: hg.data.to_float(a, flatten=False).reshape(-1, 1, 28, 28)  # noqa: E731
    return (to_images(x), y), (to_images(xt), yt)


def images(subset, n, dtype=np.float64, jitter=1e-3, seed=0):
    """The first ``n`` training images, jittered a little. The jitter breaks exact max-pool ties
    (a uniform background gives bit-identical conv outputs, and torch's and our convolution may
    round them differently, choosing different winners); it changes nothing about the check."""
    (x, y), _ = subset
    x = x[:n].astype(np.float64)
    x = x + jitter * np.random.default_rng(seed).standard_normal(x.shape)
    return x.astype(dtype), y[:n]


# -- architecture ------------------------------------------------------------------------------

@pytest.mark.parametrize("activation,pool", [("relu", "max"), ("sigmoid", "avg")])
def test_lenet5_architecture(activation, pool):
    model = presets.lenet5(activation=activation, pool=pool, dtype="float64")
    act = {"relu": layers.ReLU, "sigmoid": layers.Sigmoid}[activation]
    P = {"max": layers.MaxPool2D, "avg": layers.AvgPool2D}[pool]
    expected = [layers.Normalize, layers.Conv2D, act, P, layers.Conv2D, act, P, layers.Flatten,
                layers.Dense, act, layers.Dense, act, layers.Dense]
    assert [type(layer) for layer in model.layers] == expected
    c1, c2 = model.layers[1], model.layers[4]
    assert (c1.in_channels, c1.out_channels, c1.kernel_size, c1.stride, c1.padding) == (1, 6, (5, 5), (1, 1), (2, 2))
    assert (c2.in_channels, c2.out_channels, c2.kernel_size, c2.stride, c2.padding) == (6, 16, (5, 5), (1, 1), (0, 0))
    assert model.layers[3].kernel_size == model.layers[3].stride == (2, 2)
    assert [(d.in_features, d.out_features) for d in model.layers[8::2]] == [(400, 120), (120, 84), (84, 10)]
    shape = (1, 28, 28)
    for layer in model.layers:
        shape = layer.output_shape(shape)
    assert tuple(shape) == (10,)
    assert model.num_params == 6 * 25 + 6 + 16 * 6 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    for _, p in model.parameters():
        assert p.dtype == np.float64


def test_lenet5_default_dtype_and_seed():
    a, b, c = presets.lenet5(seed=0), presets.lenet5(seed=0), presets.lenet5(seed=1)
    assert a.dtype == np.float32
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert not np.array_equal(wa["1.W"], wc["1.W"])


# -- gradient parity with PyTorch ----------------------------------------------------------------

def torch_lenet(torch, model, activation, pool):
    """nn.Sequential equivalent to ``presets.lenet5`` with our weights copied in."""
    nn = torch.nn

    class Normalize(nn.Module):
        def forward(self, x):
            return (x - presets.FASHION_MEAN) / presets.FASHION_STD

    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]
    P = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
    dt = torch.float64
    net = nn.Sequential(
        Normalize(),
        nn.Conv2d(1, 6, 5, padding=2, dtype=dt), act(), P(2),
        nn.Conv2d(6, 16, 5, dtype=dt), act(), P(2),
        nn.Flatten(),
        nn.Linear(400, 120, dtype=dt), act(),
        nn.Linear(120, 84, dtype=dt), act(),
        nn.Linear(84, 10, dtype=dt),
    )
    pairs = [(1, 1), (4, 4), (8, 8), (10, 10), (12, 12)]  # (our layer, torch module) with params
    with torch.no_grad():
        for ours, theirs in pairs:
            net[theirs].weight.copy_(torch.tensor(model.layers[ours].params["W"]))
            net[theirs].bias.copy_(torch.tensor(model.layers[ours].params["b"]))
    return net, pairs


@pytest.mark.parametrize("activation,pool", [("relu", "max"), ("sigmoid", "avg")])
def test_lenet5_gradient_parity_with_torch(subset, activation, pool):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model = presets.lenet5(activation=activation, pool=pool, dtype="float64", seed=3)
    # non-zero biases everywhere, so the bias paths are exercised too
    rng = np.random.default_rng(11)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][...] = 0.1 * rng.standard_normal(layer.params["b"].shape)
    net, pairs = torch_lenet(torch, model, activation, pool)
    x, y = images(subset, 16)

    loss = losses.SoftmaxCrossEntropy()
    out = model.forward(x, training=True)
    value = loss.forward(out, y)
    gx = model.backward(loss.backward())

    xt = torch.tensor(x, requires_grad=True)
    out_t = net(xt)
    value_t = F.cross_entropy(out_t, torch.tensor(y, dtype=torch.int64), reduction="mean")
    value_t.backward()

    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg="logits")
    assert isinstance(value, float)
    assert value == pytest.approx(value_t.item(), rel=1e-12)
    assert gx.shape == x.shape
    scale = float(np.abs(xt.grad.numpy()).max())
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-9, atol=1e-10 * scale, err_msg="dC/dx")
    checked = 0
    for ours, theirs in pairs:
        for k, tp in (("W", net[theirs].weight), ("b", net[theirs].bias)):
            g_ours, g_t = model.layers[ours].grads[k], tp.grad.numpy()
            assert g_ours.shape == g_t.shape
            assert np.abs(g_t).max() > 0, f"layer {ours}.{k}: torch gradient is all zero"
            np.testing.assert_allclose(g_ours, g_t, rtol=1e-9, atol=1e-10 * float(np.abs(g_t).max()),
                                       err_msg=f"{model.layers[ours]!r} dC/d{k}")
            checked += 1
    assert checked == 10


def test_lenet5_sigmoid_avg_model_gradcheck_through_the_loss(subset):
    # the sigmoid / mean-pooling variant is smooth end to end, so the whole model can be
    # checked by finite differences at once (the max/ReLU one is checked layer by layer below)
    model = presets.lenet5(activation="sigmoid", pool="avg", dtype="float64", seed=1)
    x, y = images(subset, 3)
    result = hg.gradcheck(model, x, y, loss=losses.SoftmaxCrossEntropy(), max_entries=12)
    assert result.max_error < 1e-6, result.table()
    assert {"1.W", "1.b", "4.W", "4.b", "12.W", "input"} <= set(result.errors)


# -- training ------------------------------------------------------------------------------------

def test_lenet5_learns_on_the_subset(subset):
    (x, y), (xt, yt) = subset
    model = presets.lenet5(seed=0)
    loss = losses.SoftmaxCrossEntropy()
    before = hg.evaluate(model, loss, xt, yt)
    opt = optim.SGD(model, lr=0.05, momentum=0.9)
    history = hg.fit(model, loss, opt, x[:2000], y[:2000], epochs=2, batch_size=64, seed=0)
    after = hg.evaluate(model, loss, xt, yt)
    # measured: about 0.76 test accuracy (0.62 to 0.76 over other seeds); chance is 0.10
    assert after["accuracy"] > 0.65, (before, after, history.history)
    assert after["loss"] < 1.0 < before["loss"]
    assert history.history["loss"][1] < history.history["loss"][0]
    assert model.dtype == np.float32
    for _, p in model.parameters():
        assert np.isfinite(p).all()


# -- the gradcheck command -----------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--activation", "sigmoid", "--pool", "avg"]], ids=["relu-max", "sigmoid-avg"])
def test_cli_gradcheck_lenet5_passes(capsys, extra):
    code = cli.main(["gradcheck", "lenet5", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Conv2D(1→6, 5×5" in out and "Conv2D(6→16, 5×5" in out
    assert ("MaxPool2D" in out) == (not extra) and ("AvgPool2D" in out) == bool(extra)
    assert "FAIL" not in out
    assert "-> pass" in out
