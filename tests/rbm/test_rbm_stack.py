"""unroll: the exact encoder–decoder of a stack (copies, not views); greedy pretraining on the
hidden means; PCA; fine-tuning through the existing layers."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers, losses, optim, rbm
from handgrad.rbm.pca import PCA, squared_error_per_image
from handgrad.rbm.stack import encoder_length, random_autoencoder


def sig(x):
    return 1 / (1 + np.exp(-x))


def stack(dtype=np.float64):
    g = np.random.default_rng(0)
    rbms = [rbm.RBM(6, 5, rng=1, dtype=dtype), rbm.RBM(5, 4, rng=2, dtype=dtype),
            rbm.RBM(4, 2, hidden="gaussian", rng=3, dtype=dtype)]
    for r in rbms:
        for k, p in r.params.items():
            r.params[k] = g.normal(size=p.shape).astype(dtype)
    return rbms


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unroll_computes_the_mean_field_pass_up_and_down_exactly(dtype):
    rbms = stack(dtype)
    model = rbm.unroll(rbms)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Sigmoid", "Dense", "Sigmoid", "Dense",        # linear code: no Sigmoid
                     "Dense", "Sigmoid", "Dense", "Sigmoid", "Dense", "Sigmoid"]
    assert encoder_length(rbms) == 5
    x = np.random.default_rng(1).random((7, 6)).astype(dtype)
    h = x
    for r in rbms:
        h = r.hidden_mean(h)
    code = h
    for r in reversed(rbms):
        h = r.visible_mean(h)
    np.testing.assert_allclose(model.forward(x), h, rtol=1e-5 if dtype == np.float32 else 1e-12)
    enc = hg.Sequential(model.layers[:5])
    np.testing.assert_allclose(enc.forward(x), code, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(model.layers[0].params["W"], rbms[0].params["W"])
    np.testing.assert_array_equal(model.layers[-2].params["W"], rbms[0].params["W"].T)
    np.testing.assert_array_equal(model.layers[-2].params["b"], rbms[0].params["b_visible"])
    assert all(p.dtype == dtype for _, p in model.parameters())


def test_unroll_logits_drops_only_the_last_sigmoid_and_copies_the_weights():
    rbms = stack()
    model = rbm.unroll(rbms, logits=True)
    assert isinstance(model.layers[-1], layers.Dense) and len(model.layers) == 10
    x = np.random.default_rng(2).random((3, 6))
    np.testing.assert_allclose(sig(model.forward(x)), rbm.unroll(rbms).forward(x), rtol=1e-12)
    before = {k: p.copy() for k, p in rbms[0].params.items()}
    for layer in model.layers:
        for p in layer.params.values():
            p += 1.0                       # fine-tuning changes the copies only
    for k, p in rbms[0].params.items():
        np.testing.assert_array_equal(p, before[k])
    assert not np.shares_memory(model.layers[-1].params["W"], rbms[0].params["W"])
    g = rbm.RBM(3, 4, visible="gaussian", rng=0)
    assert isinstance(rbm.unroll([g], logits=True).layers[-1], layers.Dense)   # no Sigmoid to drop


def test_unroll_bad_input():
    with pytest.raises(ValueError, match="does not match"):
        rbm.unroll([rbm.RBM(6, 5), rbm.RBM(4, 2)])
    with pytest.raises(ValueError, match="at least one"):
        rbm.unroll([])
    with pytest.raises(TypeError, match="RBMs"):
        rbm.unroll([rbm.RBM(6, 5), layers.Dense(5, 2)])


def test_greedy_pretraining_trains_each_rbm_on_the_means_below_then_fine_tuning_helps():
    g = np.random.default_rng(0)
    protos = (g.random((4, 16)) < 0.5).astype(np.float32)
    x = np.clip(protos[g.integers(0, 4, 400)] + 0.1 * g.normal(size=(400, 16)), 0, 1).astype(np.float32)
    seen = []
    rbms, hists = rbm.pretrain([16, 12, 2], x, epochs=6, batch_size=20, seed=0,
                               callback=lambda i, r, h: seen.append((i, r.n_visible, r.n_hidden)))
    assert seen == [(0, 16, 12), (1, 12, 2)]
    assert rbms[0].hidden == "bernoulli" and rbms[1].hidden == "gaussian"
    assert hists[0].history["recon_error"][-1] < hists[0].history["recon_error"][0]
    model = rbm.unroll(rbms, logits=True)
    err_pre = squared_error_per_image(x, sig(model.predict(x)))
    hg.fit(model, losses.BinaryCrossEntropy(), optim.Adam(model, lr=3e-3), x, x, epochs=8, batch_size=20,
           metrics=(), progress_bar=False)
    err_ft = squared_error_per_image(x, sig(model.predict(x)))
    assert err_ft < err_pre
    base = random_autoencoder([16, 12, 2], logits=True, rng=0)
    assert [type(a).__name__ for a in base.layers] == [type(a).__name__ for a in model.layers]


def test_pca_is_the_best_linear_reconstruction():
    g = np.random.default_rng(0)
    x = (g.normal(size=(200, 3)) @ g.normal(size=(3, 8)) + 0.01 * g.normal(size=(200, 8))).astype(np.float64)
    p = PCA(3).fit(x)
    assert squared_error_per_image(x, p.reconstruct(x)) < 1e-3 * 8
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(p.components), np.abs(vt[:3]), atol=1e-8)
    with pytest.raises(ValueError, match="n_components"):
        PCA(9).fit(x)
