"""Optimizers, gradient clipping and learning-rate schedules (``handgrad.optim``).

Every update rule is checked against a hand computation and, where PyTorch implements the
same method, against ``torch.optim`` on identical parameters and gradients.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers as L
from handgrad import optim


# ----------------------------------------------------------------------------------------
# helpers (kept in this file on purpose: no shared conftest)
# ----------------------------------------------------------------------------------------
def make_model(dtype="float64", seed=0):
    """Dense(4→3) → Tanh → Dense(3→2) with non-zero biases."""
    m = hg.Sequential([L.Dense(4, 3, rng=seed, dtype=dtype, bias_init="normal"), L.Tanh(),
                       L.Dense(3, 2, rng=seed + 1, dtype=dtype, bias_init="normal")])
    return m


def param_layers(model):
    return [layer for layer in model.layers if layer.params]


def snapshot(model):
    return {name: p.copy() for name, p in model.parameters()}


def grad_sequence(model, steps, seed=123):
    """A reproducible list (one per step) of dicts {(layer_idx, name): grad array}."""
    rng = np.random.default_rng(seed)
    seq = []
    for _ in range(steps):
        g = {}
        for i, layer in enumerate(model.layers):
            for k, p in layer.params.items():
                g[(i, k)] = rng.standard_normal(p.shape).astype(p.dtype)
        seq.append(g)
    return seq


def set_grads(model, grads):
    for (i, k), g in grads.items():
        model.layers[i].grads[k] = g.copy()


def torch_params(model, torch):
    """Torch leaf tensors (float64) holding copies of the model's parameters, same keys."""
    return {(i, k): torch.tensor(np.array(p, dtype=np.float64), requires_grad=True)
            for i, layer in enumerate(model.layers) for k, p in layer.params.items()}


def torch_groups(tparams, weight_decay):
    """Param groups that apply weight decay to everything except params named 'b'."""
    decay = [t for (i, k), t in tparams.items() if k != "b"]
    no_decay = [t for (i, k), t in tparams.items() if k == "b"]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def run_parity(model, opt, tparams, topt, torch, steps=6):
    seq = grad_sequence(model, steps)
    for grads in seq:
        set_grads(model, grads)
        for key, t in tparams.items():
            t.grad = torch.tensor(np.array(grads[key], dtype=np.float64))
        opt.step()
        topt.step()
        for (i, k), t in tparams.items():
            np.testing.assert_allclose(model.layers[i].params[k], t.detach().numpy(),
                                       rtol=1e-10, atol=1e-12, err_msg=f"param {(i, k)}")


def single_weight_layer(w, b):
    layer = L.Dense(len(w), 1, dtype="float64")
    layer.params["W"] = np.array([w], dtype=np.float64)
    layer.params["b"] = np.array([b], dtype=np.float64)
    layer.zero_grads()
    return layer


# ----------------------------------------------------------------------------------------
# plain SGD and momentum (003 convention)
# ----------------------------------------------------------------------------------------
def test_plain_sgd_is_w_minus_lr_grad():
    model = make_model()
    before = snapshot(model)
    grads = grad_sequence(model, 1)[0]
    set_grads(model, grads)
    optim.SGD(model, lr=0.1).step()
    for (i, k), g in grads.items():
        np.testing.assert_allclose(model.layers[i].params[k], before[f"{i}.{k}"] - 0.1 * g,
                                   rtol=0, atol=1e-15)


def test_sgd_momentum_matches_hand_computation_over_three_steps():
    # One weight vector, 003 §4: v <- mu v - eta grad, w <- w + v, v0 = 0.
    layer = single_weight_layer([1.0, -2.0], 0.5)
    opt = optim.SGD(layer, lr=0.1, momentum=0.9)
    gs = [np.array([[1.0, 2.0]]), np.array([[-0.5, 1.0]]), np.array([[2.0, 0.0]])]
    gb = [np.array([1.0]), np.array([-1.0]), np.array([0.5])]
    # hand computation
    w = np.array([[1.0, -2.0]]); b = np.array([0.5])
    vw = np.zeros_like(w); vb = np.zeros_like(b)
    expected = []
    for g, h in zip(gs, gb):
        vw = 0.9 * vw - 0.1 * g
        vb = 0.9 * vb - 0.1 * h
        w = w + vw
        b = b + vb
        expected.append((w.copy(), b.copy()))
    # written-out numbers for the first weight, so the test does not just mirror the code
    # step 1: v = -0.1,                 w = 0.9
    # step 2: v = -0.09 + 0.05 = -0.04, w = 0.86
    # step 3: v = -0.036 - 0.2 = -0.236, w = 0.624
    np.testing.assert_allclose([e[0][0, 0] for e in expected], [0.9, 0.86, 0.624], atol=1e-12)
    for (g, h), (ew, eb) in zip(zip(gs, gb), expected):
        layer.grads["W"], layer.grads["b"] = g.copy(), h.copy()
        opt.step()
        np.testing.assert_allclose(layer.params["W"], ew, atol=1e-12)
        np.testing.assert_allclose(layer.params["b"], eb, atol=1e-12)


def test_sgd_lr_change_affects_only_the_next_gradient_in_003_convention():
    layer = single_weight_layer([0.0], 0.0)
    opt = optim.SGD(layer, lr=1.0, momentum=0.5)
    layer.grads["W"][...] = 1.0
    layer.grads["b"][...] = 0.0
    opt.step()  # v = -1, w = -1
    assert layer.params["W"][0, 0] == pytest.approx(-1.0)
    opt.lr = 0.1
    layer.grads["W"][...] = 1.0
    opt.step()  # v = 0.5*(-1) - 0.1*1 = -0.6, w = -1.6
    assert layer.params["W"][0, 0] == pytest.approx(-1.6)
    opt.lr = 0.0
    opt.step()  # v = -0.3, w = -1.9 (momentum keeps going with lr = 0)
    assert layer.params["W"][0, 0] == pytest.approx(-1.9)


def test_plain_sgd_lr_attribute_changeable_between_steps():
    layer = single_weight_layer([1.0, 1.0], 0.0)
    opt = optim.SGD(layer, lr=0.5)
    layer.grads["W"][...] = 1.0
    opt.step()
    np.testing.assert_allclose(layer.params["W"], [[0.5, 0.5]])
    opt.lr = 0.25
    opt.step()
    np.testing.assert_allclose(layer.params["W"], [[0.25, 0.25]])
    opt.lr = 0.0
    opt.step()
    np.testing.assert_allclose(layer.params["W"], [[0.25, 0.25]])


def test_nesterov_matches_hand_computation():
    layer = single_weight_layer([1.0], 0.0)
    opt = optim.SGD(layer, lr=0.1, momentum=0.9, nesterov=True)
    w, v = 1.0, 0.0
    for g in (1.0, -2.0, 0.5):
        layer.grads["W"][...] = g
        layer.grads["b"][...] = 0.0
        opt.step()
        v = 0.9 * v - 0.1 * g
        w = w + 0.9 * v - 0.1 * g
        assert layer.params["W"][0, 0] == pytest.approx(w, abs=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd_momentum_parity_with_torch(nesterov, weight_decay):
    torch = pytest.importorskip("torch")
    model = make_model()
    tparams = torch_params(model, torch)
    opt = optim.SGD(model, lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=weight_decay)
    topt = torch.optim.SGD(torch_groups(tparams, weight_decay), lr=0.05, momentum=0.9,
                           nesterov=nesterov)
    run_parity(model, opt, tparams, topt, torch, steps=5)


def test_nesterov_without_momentum_raises():
    with pytest.raises(ValueError, match="SGD"):
        optim.SGD(make_model(), lr=0.1, nesterov=True)


# ----------------------------------------------------------------------------------------
# weight decay
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make_opt", [
    lambda m: optim.SGD(m, lr=0.1, weight_decay=0.5),
    lambda m: optim.SGD(m, lr=0.1, momentum=0.9, weight_decay=0.5),
    lambda m: optim.RMSprop(m, lr=0.1, weight_decay=0.5),
    lambda m: optim.Adam(m, lr=0.1, weight_decay=0.5),
], ids=["sgd", "sgd-momentum", "rmsprop", "adam"])
def test_weight_decay_spares_biases(make_opt):
    model = make_model()
    before = snapshot(model)
    for layer in model.layers:
        layer.zero_grads()
    opt = make_opt(model)
    opt.step()
    for name, p in model.parameters():
        if name.endswith(".b"):
            np.testing.assert_array_equal(p, before[name])
        else:
            assert not np.array_equal(p, before[name]), name
            # with a zero loss gradient, decay moves every weight towards zero
            moved = p - before[name]
            assert np.all(np.sign(moved) == -np.sign(before[name])), name


def test_sgd_weight_decay_is_lambda_w_added_to_gradient():
    model = make_model()
    before = snapshot(model)
    grads = grad_sequence(model, 1)[0]
    set_grads(model, grads)
    optim.SGD(model, lr=0.1, weight_decay=0.01).step()
    for (i, k), g in grads.items():
        w0 = before[f"{i}.{k}"]
        expect = w0 - 0.1 * (g + 0.01 * w0) if k != "b" else w0 - 0.1 * g
        np.testing.assert_allclose(model.layers[i].params[k], expect, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------
# RMSprop and Adam parity with torch
# ----------------------------------------------------------------------------------------
def test_rmsprop_defaults_parity_with_torch():
    torch = pytest.importorskip("torch")
    model = make_model()
    tparams = torch_params(model, torch)
    opt = optim.RMSprop(model)  # lr=0.01, alpha=0.99, eps=1e-8
    assert (opt.lr, opt.alpha, opt.eps) == (0.01, 0.99, 1e-8)
    topt = torch.optim.RMSprop(list(tparams.values()))
    run_parity(model, opt, tparams, topt, torch, steps=6)


@pytest.mark.parametrize("momentum", [0.0, 0.8])
def test_rmsprop_weight_decay_and_momentum_parity_with_torch(momentum):
    torch = pytest.importorskip("torch")
    model = make_model()
    tparams = torch_params(model, torch)
    opt = optim.RMSprop(model, lr=0.003, alpha=0.9, momentum=momentum, weight_decay=0.05)
    topt = torch.optim.RMSprop(torch_groups(tparams, 0.05), lr=0.003, alpha=0.9, momentum=momentum)
    run_parity(model, opt, tparams, topt, torch, steps=6)


def test_adam_defaults_parity_with_torch():
    torch = pytest.importorskip("torch")
    model = make_model()
    tparams = torch_params(model, torch)
    opt = optim.Adam(model, lr=1e-3)
    assert opt.betas == (0.9, 0.999) and opt.eps == 1e-8 and opt.weight_decay == 0.0
    topt = torch.optim.Adam(list(tparams.values()), lr=1e-3)
    run_parity(model, opt, tparams, topt, torch, steps=8)


def test_adam_weight_decay_parity_with_torch():
    torch = pytest.importorskip("torch")
    model = make_model()
    tparams = torch_params(model, torch)
    opt = optim.Adam(model, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    topt = torch.optim.Adam(torch_groups(tparams, 0.1), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    run_parity(model, opt, tparams, topt, torch, steps=8)


def test_adam_first_step_is_lr_times_sign_of_gradient():
    # with bias correction, the first Adam step is lr * g / (|g| + eps') ~= lr * sign(g)
    model = make_model()
    before = snapshot(model)
    grads = grad_sequence(model, 1)[0]
    set_grads(model, grads)
    optim.Adam(model, lr=0.01).step()
    for (i, k), g in grads.items():
        np.testing.assert_allclose(model.layers[i].params[k], before[f"{i}.{k}"] - 0.01 * np.sign(g),
                                   rtol=0, atol=1e-8)


# ----------------------------------------------------------------------------------------
# in-place updates, lr attribute, frozen layers
# ----------------------------------------------------------------------------------------
ALL_OPTIMIZERS = [
    ("sgd", lambda m: optim.SGD(m, lr=0.1)),
    ("sgd-momentum", lambda m: optim.SGD(m, lr=0.1, momentum=0.9)),
    ("sgd-nesterov", lambda m: optim.SGD(m, lr=0.1, momentum=0.9, nesterov=True)),
    ("rmsprop", lambda m: optim.RMSprop(m, lr=0.01, momentum=0.5)),
    ("adam", lambda m: optim.Adam(m, lr=0.01, weight_decay=0.01)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,make_opt", ALL_OPTIMIZERS, ids=[n for n, _ in ALL_OPTIMIZERS])
def test_updates_happen_in_place(name, make_opt, dtype):
    model = make_model(dtype=dtype)
    ids = {(i, k): id(p) for i, layer in enumerate(model.layers) for k, p in layer.params.items()}
    objs = {(i, k): p for i, layer in enumerate(model.layers) for k, p in layer.params.items()}
    before = snapshot(model)
    opt = make_opt(model)
    for grads in grad_sequence(model, 3):
        set_grads(model, grads)
        opt.step()
    for i, layer in enumerate(model.layers):
        for k, p in layer.params.items():
            assert id(p) == ids[(i, k)], f"{name}: params[{k!r}] of layer {i} was replaced"
            assert p is objs[(i, k)]
            assert p.dtype == np.dtype(dtype)
            assert not np.array_equal(p, before[f"{i}.{k}"]), f"{name}: {(i, k)} did not change"


@pytest.mark.parametrize("name,make_opt", ALL_OPTIMIZERS, ids=[n for n, _ in ALL_OPTIMIZERS])
def test_lr_zero_then_positive(name, make_opt):
    """``lr`` is a plain attribute: with lr = 0 plain SGD/RMSprop/Adam leave params alone
    (Adam/RMSprop still update their moment estimates); restoring it moves them."""
    model = make_model()
    opt = make_opt(model)
    assert isinstance(opt.lr, float)
    opt.lr = 0.0
    before = snapshot(model)
    set_grads(model, grad_sequence(model, 1)[0])
    opt.step()
    after0 = snapshot(model)
    for k in before:
        np.testing.assert_array_equal(after0[k], before[k])
    opt.lr = 0.05
    set_grads(model, grad_sequence(model, 1, seed=7)[0])
    opt.step()
    assert any(not np.array_equal(after0[k], v) for k, v in snapshot(model).items())


def test_adam_lr_change_scales_the_step():
    m1, m2 = make_model(), make_model()
    o1, o2 = optim.Adam(m1, lr=0.01), optim.Adam(m2, lr=0.01)
    seq = grad_sequence(m1, 3)
    b1, b2 = snapshot(m1), snapshot(m2)
    for t, grads in enumerate(seq):
        b1, b2 = snapshot(m1), snapshot(m2)
        if t == 2:
            o2.lr = 0.02
        set_grads(m1, grads); set_grads(m2, grads)
        o1.step(); o2.step()
    for (k, p1), (_, p2) in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p2 - b2[k], 2 * (p1 - b1[k]), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("name,make_opt", ALL_OPTIMIZERS, ids=[n for n, _ in ALL_OPTIMIZERS])
def test_frozen_layers_are_untouched(name, make_opt):
    model = make_model()
    model.layers[0].trainable = False
    before = snapshot(model)
    opt = make_opt(model)
    for grads in grad_sequence(model, 3):
        set_grads(model, grads)
        opt.step()
    np.testing.assert_array_equal(model.layers[0].params["W"], before["0.W"])
    np.testing.assert_array_equal(model.layers[0].params["b"], before["0.b"])
    assert not np.array_equal(model.layers[2].params["W"], before["2.W"])


def test_layer_frozen_after_creating_optimizer_is_untouched():
    model = make_model()
    opt = optim.SGD(model, lr=0.1, momentum=0.9)
    set_grads(model, grad_sequence(model, 1)[0])
    opt.step()
    model.layers[2].trainable = False
    before = snapshot(model)
    set_grads(model, grad_sequence(model, 1, seed=9)[0])
    opt.step()
    np.testing.assert_array_equal(model.layers[2].params["W"], before["2.W"])
    assert not np.array_equal(model.layers[0].params["W"], before["0.W"])


def test_optimizer_accepts_a_single_layer():
    layer = L.Dense(3, 2, dtype="float64")
    W0 = layer.params["W"].copy()
    layer.grads["W"][...] = 1.0
    optim.SGD(layer, lr=0.5).step()
    np.testing.assert_allclose(layer.params["W"], W0 - 0.5)


def test_optimizer_rejects_non_model():
    with pytest.raises(TypeError, match="optimizer"):
        optim.SGD(object(), lr=0.1)


# ----------------------------------------------------------------------------------------
# gradient clipping
# ----------------------------------------------------------------------------------------
def all_grads(model, trainable_only=True):
    return np.concatenate([g.ravel() for layer in model.layers
                           if layer.trainable or not trainable_only for g in layer.grads.values()])


def test_global_grad_norm_is_norm_of_all_gradients():
    model = make_model()
    set_grads(model, grad_sequence(model, 1)[0])
    assert optim.global_grad_norm(model) == pytest.approx(np.linalg.norm(all_grads(model)), rel=1e-12)


def test_clip_grad_norm_scales_globally():
    model = make_model()
    set_grads(model, grad_sequence(model, 1)[0])
    g0 = all_grads(model)
    norm0 = np.linalg.norm(g0)
    assert norm0 > 1.0
    returned = optim.clip_grad_norm(model, 1.0)
    assert returned == pytest.approx(norm0, rel=1e-12)
    g1 = all_grads(model)
    assert np.linalg.norm(g1) == pytest.approx(1.0, rel=1e-9)
    # one common factor for every parameter (global, not per-tensor)
    np.testing.assert_allclose(g1, g0 / norm0, rtol=1e-9)


def test_clip_grad_norm_leaves_small_gradients_alone():
    model = make_model()
    set_grads(model, grad_sequence(model, 1)[0])
    g0 = all_grads(model)
    optim.clip_grad_norm(model, 10 * np.linalg.norm(g0))
    np.testing.assert_array_equal(all_grads(model), g0)


def test_clip_grad_norm_parity_with_torch():
    torch = pytest.importorskip("torch")
    model = make_model()
    grads = grad_sequence(model, 1)[0]
    set_grads(model, grads)
    tparams = torch_params(model, torch)
    for key, t in tparams.items():
        t.grad = torch.tensor(grads[key])
    n_hg = optim.clip_grad_norm(model, 0.7)
    n_t = torch.nn.utils.clip_grad_norm_(list(tparams.values()), 0.7)
    assert n_hg == pytest.approx(float(n_t), rel=1e-12)
    for (i, k), t in tparams.items():
        np.testing.assert_allclose(model.layers[i].grads[k], t.grad.numpy(), rtol=1e-6)


def test_clip_grad_value_clamps_elements():
    model = make_model()
    grads = grad_sequence(model, 1)[0]
    set_grads(model, grads)
    optim.clip_grad_value(model, 0.5)
    for (i, k), g in grads.items():
        np.testing.assert_array_equal(model.layers[i].grads[k], np.clip(g, -0.5, 0.5))


def test_clipping_skips_frozen_layers():
    model = make_model()
    model.layers[0].trainable = False
    grads = grad_sequence(model, 1)[0]
    set_grads(model, grads)
    expected_norm = np.linalg.norm(np.concatenate([grads[(2, "W")].ravel(), grads[(2, "b")].ravel()]))
    assert optim.global_grad_norm(model) == pytest.approx(expected_norm)
    optim.clip_grad_norm(model, 0.1)
    optim.clip_grad_value(model, 0.01)
    np.testing.assert_array_equal(model.layers[0].grads["W"], grads[(0, "W")])


def test_optimizer_clip_norm_option_clips_before_the_update():
    m1, m2 = make_model(), make_model()
    grads = grad_sequence(m1, 1)[0]
    set_grads(m1, grads); set_grads(m2, grads)
    optim.SGD(m1, lr=0.1, clip_norm=0.5).step()
    optim.clip_grad_norm(m2, 0.5)
    optim.SGD(m2, lr=0.1).step()
    for (k, p1), (_, p2) in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p1, p2)


def test_optimizer_clip_value_option_clips_before_the_update():
    m = make_model()
    before = snapshot(m)
    grads = grad_sequence(m, 1)[0]
    set_grads(m, grads)
    optim.SGD(m, lr=1.0, clip_value=0.1).step()
    for (i, k), g in grads.items():
        np.testing.assert_allclose(m.layers[i].params[k], before[f"{i}.{k}"] - np.clip(g, -0.1, 0.1),
                                   atol=1e-15)


@pytest.mark.parametrize("fn", [optim.clip_grad_norm, optim.clip_grad_value])
def test_clipping_rejects_negative_threshold(fn):
    with pytest.raises(ValueError, match="clip_grad"):
        fn(make_model(), -1.0)


# ----------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------
def test_step_lr_values():
    opt = optim.SGD(make_model(), lr=0.1)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    expected = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]
    for e, want in enumerate(expected):
        assert sched.lr_at(e) == pytest.approx(want, rel=1e-12)
        assert sched.step(e) == pytest.approx(want, rel=1e-12)
        assert opt.lr == pytest.approx(want, rel=1e-12)


def test_step_lr_does_not_compound_when_called_twice():
    opt = optim.SGD(make_model(), lr=1.0)
    sched = optim.StepLR(opt, step_size=1, gamma=0.1)
    sched.step(3)
    sched.step(3)
    assert opt.lr == pytest.approx(1e-3)


def test_cosine_lr_values():
    opt = optim.SGD(make_model(), lr=0.2)
    T, eta_min = 10, 0.02
    sched = optim.CosineLR(opt, total_epochs=T, eta_min=eta_min)
    assert sched.lr_at(0) == pytest.approx(0.2)
    assert sched.lr_at(T // 2) == pytest.approx((0.2 + 0.02) / 2)
    assert sched.lr_at(T) == pytest.approx(eta_min)
    for e in range(T):
        want = eta_min + 0.5 * (0.2 - eta_min) * (1 + math.cos(math.pi * e / T))
        assert sched.step(e) == pytest.approx(want, rel=1e-12)
        assert opt.lr == pytest.approx(want, rel=1e-12)
    values = [sched.lr_at(e) for e in range(T + 1)]
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decreasing


def test_cosine_lr_matches_torch_closed_form():
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([p], lr=0.3)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=7, eta_min=0.01)
    sched = optim.CosineLR(optim.SGD(make_model(), lr=0.3), total_epochs=7, eta_min=0.01)
    for e in range(7):
        assert sched.lr_at(e) == pytest.approx(topt.param_groups[0]["lr"], rel=1e-9)
        p.grad = torch.zeros(1)
        topt.step()
        tsched.step()


def test_schedules_drive_lr_during_fit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    model = hg.Sequential([L.Dense(4, 2, rng=0)])
    opt = optim.SGD(model, lr=0.1)
    hist = hg.fit(model, hg.losses.SoftmaxCrossEntropy(), opt, x, y, epochs=5, batch_size=10,
                  callbacks=[optim.StepLR(opt, step_size=2, gamma=0.1)])
    np.testing.assert_allclose(hist.history["lr"], [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-12)


# ----------------------------------------------------------------------------------------
# bad hyperparameters
# ----------------------------------------------------------------------------------------
BAD = [
    ("SGD", lambda m: optim.SGD(m, lr=-0.1)),
    ("SGD", lambda m: optim.SGD(m, lr=float("nan"))),
    ("SGD", lambda m: optim.SGD(m, lr=float("inf"))),
    ("SGD", lambda m: optim.SGD(m, lr=0.1, momentum=1.5)),
    ("SGD", lambda m: optim.SGD(m, lr=0.1, momentum=-0.1)),
    ("SGD", lambda m: optim.SGD(m, lr=0.1, weight_decay=-1e-3)),
    ("RMSprop", lambda m: optim.RMSprop(m, lr=-1.0)),
    ("RMSprop", lambda m: optim.RMSprop(m, lr=0.01, alpha=1.5)),
    ("RMSprop", lambda m: optim.RMSprop(m, lr=0.01, eps=-1.0)),
    ("RMSprop", lambda m: optim.RMSprop(m, lr=0.01, momentum=2.0)),
    ("Adam", lambda m: optim.Adam(m, lr=-1e-3)),
    ("Adam", lambda m: optim.Adam(m, betas=(1.0, 0.999))),
    ("Adam", lambda m: optim.Adam(m, betas=(0.9, 1.5))),
    ("Adam", lambda m: optim.Adam(m, betas=(-0.1, 0.999))),
    ("Adam", lambda m: optim.Adam(m, betas=(0.9,))),
    ("Adam", lambda m: optim.Adam(m, betas=0.9)),
    ("Adam", lambda m: optim.Adam(m, eps=-1e-8)),
    ("Adam", lambda m: optim.Adam(m, weight_decay=-0.1)),
    ("StepLR", lambda m: optim.StepLR(optim.SGD(m, lr=0.1), step_size=0)),
    ("StepLR", lambda m: optim.StepLR(optim.SGD(m, lr=0.1), step_size=2, gamma=-0.5)),
    ("CosineLR", lambda m: optim.CosineLR(optim.SGD(m, lr=0.1), total_epochs=0)),
    ("CosineLR", lambda m: optim.CosineLR(optim.SGD(m, lr=0.1), total_epochs=5, eta_min=-1.0)),
]


@pytest.mark.parametrize("cls_name,build", BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_bad_hyperparameters_raise_value_error_naming_the_class(cls_name, build):
    with pytest.raises(ValueError) as info:
        build(make_model())
    assert cls_name in str(info.value)


def test_momentum_one_is_allowed_for_sgd():
    # 003's μ lies in [0, 1]; μ = 1 is the (frictionless) boundary, not an error
    opt = optim.SGD(make_model(), lr=0.1, momentum=1.0)
    assert opt.momentum == 1.0
