"""Parity with PyTorch autograd: forward values and every gradient (parameters and input).

Our parameters are copied into torch (``nn.Linear`` stores its weight as (out, in), like our
``W``); float64 everywhere with rtol 1e-10, plus float32 cases with rtol ~1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers, losses

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = {np.float64: torch.float64, np.float32: torch.float32}
RTOL = {np.float64: 1e-10, np.float32: 1e-5}
ATOL = {np.float64: 1e-12, np.float32: 1e-6}


def close(ours, theirs, dtype=np.float64, what="", rtol=None, atol=None):
    theirs = theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = np.asarray(ours)
    rtol = RTOL[dtype] if rtol is None else rtol
    atol = ATOL[dtype] if atol is None else atol
    assert ours.shape == theirs.shape, f"{what}: shape ours {ours.shape} vs torch {theirs.shape}"
    np.testing.assert_allclose(
        ours, theirs, rtol=rtol, atol=atol,
        err_msg=f"{what}\nours:\n{ours}\ntorch:\n{theirs}")


def t(a, requires_grad=False):
    return torch.tensor(np.ascontiguousarray(a), requires_grad=requires_grad)


def rnd(shape, dtype=np.float64, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


# -- Dense -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,fan_in,fan_out", [(1, 1, 1), (4, 7, 3), (9, 5, 11), (2, 1, 6)])
def test_dense(n, fan_in, fan_out, dtype):
    ours = layers.Dense(fan_in, fan_out, bias_init="normal", rng=1, dtype=dtype)
    lin = torch.nn.Linear(fan_in, fan_out, dtype=DTYPES[dtype])
    with torch.no_grad():
        lin.weight.copy_(t(ours.params["W"]))
        lin.bias.copy_(t(ours.params["b"]))
    x = rnd((n, fan_in), dtype, seed=2)
    g = rnd((n, fan_out), dtype, seed=3)
    xt = t(x, requires_grad=True)
    yt = lin(xt)
    yt.backward(t(g))
    y = ours.forward(x, training=True)
    gx = ours.backward(g)
    assert y.dtype == dtype and gx.dtype == dtype
    close(y, yt, dtype, "Dense forward")
    close(gx, xt.grad, dtype, "Dense dC/dx")
    close(ours.grads["W"], lin.weight.grad, dtype, "Dense dC/dW")
    close(ours.grads["b"], lin.bias.grad, dtype, "Dense dC/db")


# -- activations --------------------------------------------------------------------------------

ACTIVATIONS = {
    "Sigmoid": (layers.Sigmoid, torch.sigmoid),
    "Tanh": (layers.Tanh, torch.tanh),
    "ReLU": (layers.ReLU, torch.relu),
    "Identity": (layers.Identity, lambda z: z * 1),
    "Softmax": (layers.Softmax, lambda z: torch.softmax(z, dim=-1)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation(name, shape, dtype):
    make, fn = ACTIVATIONS[name]
    x = rnd(shape, np.float64, seed=4, scale=3.0)
    x = np.where(np.abs(x) < 0.05, 0.1, x).astype(dtype)  # away from the ReLU kink
    g = rnd(shape, dtype, seed=5)
    xt = t(x, requires_grad=True)
    yt = fn(xt)
    yt.backward(t(g))
    layer = make()
    y = layer.forward(x, training=True)
    gx = layer.backward(g)
    close(y, yt, dtype, f"{name} forward")
    close(gx, xt.grad, dtype, f"{name} dC/dx")


def test_sigmoid_wide_range_float64():
    """Full float64 range where σ is representable: |z| up to 40 (σ(−40) ≈ 4.2e-18)."""
    x = np.linspace(-40, 40, 81).reshape(1, -1)
    g = np.ones_like(x)
    xt = t(x, requires_grad=True)
    yt = torch.sigmoid(xt)
    yt.backward(t(g))
    layer = layers.Sigmoid()
    y = layer.forward(x, training=True)
    gx = layer.backward(g)
    close(y, yt, np.float64, "Sigmoid forward on [-40, 40]", atol=0)
    close(gx, xt.grad, np.float64, "Sigmoid dC/dx on [-40, 40]", atol=0)


# -- losses ----------------------------------------------------------------------------------------

def loss_pair(ours, z, target, torch_loss, dtype=np.float64, what=""):
    zt = t(z, requires_grad=True)
    vt = torch_loss(zt)
    vt.backward()
    v = ours.forward(z, target)
    g = ours.backward()
    close(np.array(v), vt, dtype, f"{what} value")
    close(g, zt.grad, dtype, f"{what} gradient")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (2, 4, 3), (6,)], ids=str)
def test_mse(shape, dtype):
    z, y = rnd(shape, dtype, 1), rnd(shape, dtype, 2)
    n = shape[0] * (shape[1] if len(shape) == 3 else 1)
    loss_pair(losses.MeanSquaredError(), z, y,
              lambda zt: 0.5 * ((zt - t(y)) ** 2).sum() / n, dtype, "MSE")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (2, 4, 3), (6,)], ids=str)
def test_bce_with_logits(shape, dtype):
    z = rnd(shape, dtype, 1, scale=3.0)
    y = np.random.default_rng(2).random(shape).astype(dtype)
    n = shape[0] * (shape[1] if len(shape) == 3 else 1)
    loss_pair(losses.BinaryCrossEntropy(from_logits=True), z, y,
              lambda zt: F.binary_cross_entropy_with_logits(zt, t(y), reduction="sum") / n,
              dtype, "BCE(from_logits=True)")


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (2, 4, 3)], ids=str)
def test_bce_on_probabilities(shape):
    a = np.random.default_rng(1).uniform(0.02, 0.98, size=shape)
    y = np.random.default_rng(2).random(shape)
    n = shape[0] * (shape[1] if len(shape) == 3 else 1)
    loss_pair(losses.BinaryCrossEntropy(from_logits=False), a, y,
              lambda at: F.binary_cross_entropy(at, t(y), reduction="sum") / n,
              np.float64, "BCE(from_logits=False)")


def _to_torch_ce(zt):
    # F.cross_entropy wants the class axis second: (N, T, C) -> (N, C, T)
    return zt if zt.dim() == 2 else zt.permute(0, 2, 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 2), (6, 5), (3, 4, 7)], ids=str)
def test_softmax_cross_entropy_labels(shape, dtype):
    z = rnd(shape, dtype, 1, scale=3.0)
    lab = np.random.default_rng(2).integers(0, shape[-1], size=shape[:-1])
    lab_t = torch.tensor(lab)
    loss_pair(losses.SoftmaxCrossEntropy(), z, lab,
              lambda zt: F.cross_entropy(_to_torch_ce(zt), lab_t), dtype, "SoftmaxCE(labels)")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 2), (6, 5), (3, 4, 7)], ids=str)
def test_softmax_cross_entropy_probability_targets(shape, dtype):
    z = rnd(shape, dtype, 1, scale=3.0)
    e = np.exp(rnd(shape, np.float64, 2))
    y = (e / e.sum(axis=-1, keepdims=True)).astype(dtype)
    yt = _to_torch_ce(t(y))
    loss_pair(losses.SoftmaxCrossEntropy(), z, y,
              lambda zt: F.cross_entropy(_to_torch_ce(zt), yt), dtype, "SoftmaxCE(probabilities)")


@pytest.mark.parametrize("shape", [(1, 2), (6, 5), (3, 4, 7)], ids=str)
def test_nll_on_probabilities(shape):
    e = np.exp(rnd(shape, np.float64, 1))
    a = e / e.sum(axis=-1, keepdims=True)
    lab = np.random.default_rng(2).integers(0, shape[-1], size=shape[:-1])
    y = np.eye(shape[-1])[lab]
    n = shape[0] * (shape[1] if len(shape) == 3 else 1)
    for target in (lab, y):
        loss_pair(losses.NegativeLogLikelihood(), a, target,
                  lambda at: -(t(y) * torch.log(at)).sum() / n, np.float64, "NLL")


# -- Dropout with the same mask on both sides ----------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_fixed_mask(p, dtype):
    shape = (6, 9)
    x = rnd(shape, dtype, 1)
    g = rnd(shape, dtype, 2)
    layer = layers.Dropout(p, rng=11)
    y = layer.forward(x, training=True)
    gx = layer.backward(g)
    # the documented mask: keep where u < 1 − p, u ~ U[0, 1) from the layer's generator
    u = np.random.default_rng(11).random(shape, dtype=dtype)
    keep = t((u < 1 - p).astype(dtype))
    xt = t(x, requires_grad=True)
    yt = xt * keep / (1 - p)
    yt.backward(t(g))
    close(y, yt, dtype, "Dropout forward")
    close(gx, xt.grad, dtype, "Dropout dC/dx")


# -- an MLP end to end -------------------------------------------------------------------------

def _mlp_pair(dtype, sizes=(7, 9, 6, 4), seed=0):
    ours = hg.Sequential([
        layers.Dense(sizes[0], sizes[1], bias_init="normal", rng=seed, dtype=dtype), layers.ReLU(),
        layers.Dense(sizes[1], sizes[2], bias_init="normal", rng=seed + 1, dtype=dtype), layers.Tanh(),
        layers.Dense(sizes[2], sizes[3], bias_init="normal", rng=seed + 2, dtype=dtype),
    ])
    theirs = torch.nn.Sequential(
        torch.nn.Linear(sizes[0], sizes[1]), torch.nn.ReLU(),
        torch.nn.Linear(sizes[1], sizes[2]), torch.nn.Tanh(),
        torch.nn.Linear(sizes[2], sizes[3]),
    ).to(DTYPES[dtype])
    with torch.no_grad():
        for i in (0, 2, 4):
            theirs[i].weight.copy_(t(ours[i].params["W"]))
            theirs[i].bias.copy_(t(ours[i].params["b"]))
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 8])
def test_mlp_with_softmax_cross_entropy(n, dtype):
    ours, theirs = _mlp_pair(dtype)
    x = rnd((n, 7), dtype, 5)
    lab = np.random.default_rng(6).integers(0, 4, size=n)
    xt = t(x, requires_grad=True)
    zt = theirs(xt)
    vt = F.cross_entropy(zt, torch.tensor(lab))
    vt.backward()

    loss = losses.SoftmaxCrossEntropy()
    z = ours.forward(x, training=True)
    v = loss.forward(z, lab)
    gx = ours.backward(loss.backward())
    close(z, zt, dtype, "MLP output")
    close(np.array(v), vt, dtype, "MLP loss")
    close(gx, xt.grad, dtype, "MLP dC/dx")
    for i in (0, 2, 4):
        close(ours[i].grads["W"], theirs[i].weight.grad, dtype, f"MLP layer {i} dC/dW")
        close(ours[i].grads["b"], theirs[i].bias.grad, dtype, f"MLP layer {i} dC/db")


def test_mlp_input_grad_false_gives_same_parameter_gradients():
    ours, theirs = _mlp_pair(np.float64)
    x = rnd((5, 7), np.float64, 5)
    lab = np.array([0, 3, 1, 1, 2])
    vt = F.cross_entropy(theirs(t(x)), torch.tensor(lab))
    vt.backward()
    loss = losses.SoftmaxCrossEntropy()
    loss.forward(ours.forward(x, training=True), lab)
    assert ours.backward(loss.backward(), input_grad=False) is None
    for i in (0, 2, 4):
        close(ours[i].grads["W"], theirs[i].weight.grad, np.float64, f"layer {i} dC/dW")
        close(ours[i].grads["b"], theirs[i].bias.grad, np.float64, f"layer {i} dC/db")


def test_mlp_sgd_steps_track_torch():
    """Three plain gradient steps (w ← w − η∇C) keep both models equal."""
    ours, theirs = _mlp_pair(np.float64)
    x = rnd((6, 7), np.float64, 7)
    lab = np.array([0, 1, 2, 3, 0, 1])
    lr = 0.3
    loss = losses.SoftmaxCrossEntropy()
    for _ in range(3):
        theirs.zero_grad()
        F.cross_entropy(theirs(t(x)), torch.tensor(lab)).backward()
        with torch.no_grad():
            for prm in theirs.parameters():
                prm -= lr * prm.grad
        loss.forward(ours.forward(x, training=True), lab)
        ours.backward(loss.backward(), input_grad=False)
        for layer in ours.layers:
            for k in layer.params:
                layer.params[k] -= lr * layer.grads[k]
    for i in (0, 2, 4):
        close(ours[i].params["W"], theirs[i].weight, np.float64, f"layer {i} W after 3 steps")
        close(ours[i].params["b"], theirs[i].bias, np.float64, f"layer {i} b after 3 steps")
