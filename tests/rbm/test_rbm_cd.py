"""Contrastive divergence: the estimator's exact expectation by enumeration, CD-k approaching
the exact gradient, the persistent chain persisting, the sign seen by optimizers, weight decay
on W only and the momentum attribute."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from handgrad import optim, rbm


def binary_states(k):
    return np.array(list(itertools.product([0.0, 1.0], repeat=k)))


def sig(x):
    return 1 / (1 + np.exp(-x))


def tiny(seed=0, scale=1.0, V=3, H=2):
    r = rbm.RBM(V, H, rng=seed, dtype=np.float64)
    g = np.random.default_rng(seed + 7)
    r.params["W"] = g.normal(size=(H, V)) * scale
    r.params["b_hidden"] = g.normal(size=H) * scale
    r.params["b_visible"] = g.normal(size=V) * scale
    return r


DATA = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])


def cd1_expectation(r, v, mean_visible=False):
    """E[CD-1 grads] by enumerating h0 ~ p(h | v) and v1 ~ p(v | h0) (written from scratch)."""
    W, bh, bv = r.params["W"], r.params["b_hidden"], r.params["b_visible"]
    hs, vs = binary_states(r.n_hidden), binary_states(r.n_visible)
    negW, negh, negv = np.zeros_like(W), np.zeros_like(bh), np.zeros_like(bv)
    for x in v:
        ph = sig(bh + W @ x)
        p_h0 = np.prod(np.where(hs == 1, ph, 1 - ph), axis=1)
        for h0, wh in zip(hs, p_h0):
            pv = sig(bv + h0 @ W)
            if mean_visible:
                cands, weights = pv[None, :], np.array([1.0])
            else:
                cands, weights = vs, np.prod(np.where(vs == 1, pv, 1 - pv), axis=1)
            for v1, wv in zip(cands, weights):
                m = sig(bh + W @ v1)
                negW += wh * wv * np.outer(m, v1)
                negh += wh * wv * m
                negv += wh * wv * v1
    n = len(v)
    hd = sig(v @ W.T + bh)
    return {"W": negW / n - hd.T @ v / n, "b_hidden": negh / n - hd.mean(0), "b_visible": negv / n - v.mean(0)}


@pytest.mark.parametrize("mean_visible", [False, True])
def test_cd1_estimator_mean_equals_its_expectation_by_enumeration(mean_visible):
    r = tiny()
    expected = cd1_expectation(r, DATA, mean_visible)
    batch = np.tile(DATA, (40000, 1))   # each row its own chain: the batch mean is an average of 80,000 estimates
    r.contrastive_divergence(batch, k=1, rng=0, mean_visible=mean_visible)
    for key in expected:
        np.testing.assert_allclose(r.grads[key], expected[key], atol=0.01, err_msg=key)
    # and CD-1 is biased: its expectation is not the exact gradient
    exact = rbm.exact_grads(r, DATA)
    assert max(np.abs(expected[k] - exact[k]).max() for k in exact) > 0.03


def test_cd_k_with_many_chains_approaches_the_exact_gradient():
    r = tiny(seed=3, scale=0.8, V=4, H=3)
    data = binary_states(4)[[1, 6, 11]]
    exact = rbm.exact_grads(r, data)
    r.contrastive_divergence(np.tile(data, (20000, 1)), k=30, rng=1)
    for key in exact:
        np.testing.assert_allclose(r.grads[key], exact[key], atol=0.015, err_msg=key)


def test_cd_return_value_and_chain_follow_the_documented_draws():
    r = tiny(seed=1)
    chain = rbm.PersistentChain(r, 4, rng=5)
    start = chain.state.copy()
    assert set(np.unique(start)) <= {0.0, 1.0} and start.shape == (4, 3) and start.dtype == np.float64
    err = r.contrastive_divergence(DATA, k=2, rng=np.random.default_rng(9), persistent=chain)
    # replay the draws in the documented order with the same generator
    g = np.random.default_rng(9)
    W, bh, bv = r.params["W"], r.params["b_hidden"], r.params["b_visible"]
    h0 = (g.random((2, 2)) < sig(DATA @ W.T + bh)).astype(float)
    recon = sig(h0 @ W + bv)
    assert err == pytest.approx(((DATA - recon) ** 2).sum(1).mean(), rel=1e-12)
    h = (g.random((4, 2)) < sig(start @ W.T + bh)).astype(float)     # chain continues from its state
    v = (g.random((4, 3)) < sig(h @ W + bv)).astype(float)
    h = (g.random((4, 2)) < sig(v @ W.T + bh)).astype(float)
    v = (g.random((4, 3)) < sig(h @ W + bv)).astype(float)
    np.testing.assert_array_equal(chain.state, v)                      # replaced by the last sampled v
    hneg = sig(v @ W.T + bh)
    hpos = sig(DATA @ W.T + bh)
    np.testing.assert_allclose(r.grads["W"], hneg.T @ v / 4 - hpos.T @ DATA / 2, rtol=1e-12)


def test_persistent_chains_reach_the_model_distribution():
    # with lr = 0 the persistent chains keep running: after many calls their states are
    # samples of the model, and the PCD-1 negative statistics match the exact model term
    r = tiny(seed=2, scale=1.5, V=4, H=3)
    chain = rbm.PersistentChain(r, 20000, rng=0)
    gen = np.random.default_rng(1)
    data = binary_states(4)[[3, 12]]
    for _ in range(30):
        r.contrastive_divergence(data, k=1, rng=gen, persistent=chain)
    p = np.exp(r.log_likelihood(binary_states(4)))
    np.testing.assert_allclose(chain.state.mean(0), p @ binary_states(4), atol=0.015)
    exact = rbm.exact_grads(r, data)
    for key in exact:
        np.testing.assert_allclose(r.grads[key], exact[key], atol=0.02, err_msg=key)


def test_the_gradient_sign_lets_sgd_raise_the_likelihood():
    r = tiny(seed=4, scale=0.3, V=4, H=3)
    data = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    before = r.log_likelihood(data).mean()
    opt = optim.SGD(r, lr=0.5)
    for _ in range(30):
        r.contrastive_divergence(np.tile(data, (200, 1)), k=5, rng=0)
        opt.step()
    assert r.log_likelihood(data).mean() > before + 0.3


def test_sgd_steps_an_rbm_with_weight_decay_on_W_only_and_a_mutable_momentum():
    r = tiny(seed=5)
    W0, bh0, bv0 = (r.params[k].copy() for k in ("W", "b_hidden", "b_visible"))
    ids = {k: id(p) for k, p in r.params.items()}
    r.zero_grads()
    opt = optim.SGD(r, lr=1.0, momentum=0.5, weight_decay=0.1)
    opt.step()
    np.testing.assert_allclose(r.params["W"], 0.9 * W0, rtol=1e-12)
    np.testing.assert_array_equal(r.params["b_hidden"], bh0)
    np.testing.assert_array_equal(r.params["b_visible"], bv0)
    assert {k: id(p) for k, p in r.params.items()} == ids
    opt.momentum = 0.9        # the schedule's switch: the velocity (−0.1 W0) is kept
    opt.step()
    np.testing.assert_allclose(r.params["W"], 0.9 * W0 + 0.9 * (-0.1 * W0) - 0.1 * 0.9 * W0, rtol=1e-12)


def test_bad_input_raises_value_and_type_errors():
    r = rbm.RBM(3, 2)
    with pytest.raises(ValueError, match="both be gaussian"):
        rbm.RBM(3, 2, visible="gaussian", hidden="gaussian")
    with pytest.raises(ValueError, match="'bernoulli' or 'gaussian'"):
        rbm.RBM(3, 2, hidden="relu")
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        r.hidden_mean(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        r.visible_mean(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        r.free_energy(np.full((1, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        r.contrastive_divergence(np.full((1, 3), 2.0, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        r.free_energy(np.zeros((1, 3), np.complex64))
    with pytest.raises(TypeError, match="array"):
        r.free_energy([[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(r.free_energy(np.array([[0, 1, 1]])), r.free_energy(np.array([[0.0, 1, 1]], np.float32)))
    with pytest.raises(ValueError, match="expected k"):
        r.contrastive_divergence(np.zeros((1, 3), np.float32), k=0)
    with pytest.raises(TypeError, match="PersistentChain"):
        r.contrastive_divergence(np.zeros((1, 3), np.float32), persistent=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="mean_visible"):
        r.contrastive_divergence(np.zeros((1, 3), np.float32), persistent=rbm.PersistentChain(r, 2, 0),
                                 mean_visible=True)
    with pytest.raises(ValueError, match="persistent chain"):
        r.contrastive_divergence(np.zeros((1, 3), np.float32), persistent=rbm.PersistentChain(rbm.RBM(4, 2), 2, 0))
    with pytest.raises(ValueError, match="bernoulli visible"):
        rbm.pseudo_log_likelihood(rbm.RBM(3, 2, visible="gaussian"), np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="binary"):
        rbm.pseudo_log_likelihood(r, np.full((1, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match="same number of rows"):
        r.energy(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        rbm.RBM(3, 2, dtype=np.int32)


def test_gaussian_units_sample_with_unit_variance():
    r = rbm.RBM(3, 2, hidden="gaussian", rng=0, dtype=np.float64)
    r.params["W"][...] = [[1.0, -1.0, 0.5], [0.0, 2.0, 0.0]]
    v = np.tile([[1.0, 0.0, 1.0]], (40000, 1))
    h = r.sample_hidden(v, rng=1)
    np.testing.assert_allclose(h.mean(0), r.hidden_mean(v[:1])[0], atol=0.03)
    np.testing.assert_allclose(h.var(0), 1.0, atol=0.03)
    g = rbm.RBM(2, 3, visible="gaussian", rng=0, dtype=np.float64)
    assert abs(rbm.PersistentChain(g, 5000, rng=0).state.std() - 1) < 0.05
