"""Exact checks of tiny RBMs against brute-force sums and quadrature written independently of
handgrad.rbm: energy, conditionals, free energy, log Z, log-likelihood, the exact gradient
(against finite differences of the exact log-likelihood) and the pseudo-log-likelihood."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from handgrad import rbm


def binary_states(k):
    return np.array(list(itertools.product([0.0, 1.0], repeat=k)))


def random_rbm(V, H, visible="bernoulli", hidden="bernoulli", seed=0, scale=1.0):
    r = rbm.RBM(V, H, visible=visible, hidden=hidden, rng=seed, dtype=np.float64)
    g = np.random.default_rng(seed + 100)
    r.params["W"] = g.normal(size=(H, V)) * scale
    r.params["b_hidden"] = g.normal(size=H) * scale
    r.params["b_visible"] = g.normal(size=V) * scale
    return r


def energy_ref(r, v, h):
    """E(v, h) for every pair: v (A, V), h (B, H) -> (A, B), written out from DESIGN.md."""
    W, bh, bv = r.params["W"], r.params["b_hidden"], r.params["b_visible"]
    inter = v @ W.T @ h.T
    ev = -(v @ bv)[:, None] if r.visible == "bernoulli" else 0.5 * ((v - bv) ** 2).sum(1)[:, None]
    eh = -(h @ bh)[None, :] if r.hidden == "bernoulli" else 0.5 * ((h - bh) ** 2).sum(1)[None, :]
    return ev + eh - inter


def logsumexp(a, axis=None):
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.exp(a - m).sum(axis=axis))


def grid(k, lo=-9.0, hi=9.0, n=601):
    """Quadrature points and log-weights (trapezoid) for a k-dim box (k <= 2)."""
    t = np.linspace(lo, hi, n)
    w = np.full(n, t[1] - t[0])
    w[[0, -1]] *= 0.5
    pts = np.array(list(itertools.product(t, repeat=k)))
    logw = np.log(np.array(list(itertools.product(w, repeat=k)))).sum(1)
    return pts, logw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_dtypes_and_defaults(dtype):
    r = rbm.RBM(7, 5, rng=3, dtype=dtype)
    assert r.params["W"].shape == (5, 7) and r.params["b_hidden"].shape == (5,)
    assert r.params["b_visible"].shape == (7,)
    assert set(r.grads) == set(r.params)
    assert all(r.grads[k].shape == p.shape and p.dtype == dtype for k, p in r.params.items())
    v = (np.random.default_rng(0).random((4, 7)) < 0.5).astype(dtype)
    assert r.hidden_mean(v).shape == (4, 5) and r.hidden_mean(v).dtype == dtype
    assert r.visible_mean(r.sample_hidden(v)).shape == (4, 7)
    assert r.free_energy(v).shape == (4,) and r.energy(v, r.sample_hidden(v)).shape == (4,)
    same = rbm.RBM(7, 5, rng=3, dtype=dtype)
    np.testing.assert_array_equal(same.params["W"], r.params["W"])


@pytest.mark.parametrize("visible,hidden", [("bernoulli", "bernoulli"), ("gaussian", "bernoulli"),
                                            ("bernoulli", "gaussian")])
def test_energy_matches_the_written_formula(visible, hidden):
    r = random_rbm(4, 3, visible, hidden)
    g = np.random.default_rng(1)
    v = g.normal(size=(6, 4)) if visible == "gaussian" else binary_states(4)[:6]
    h = g.normal(size=(6, 3)) if hidden == "gaussian" else binary_states(3)[:6]
    np.testing.assert_allclose(r.energy(v, h), np.diag(energy_ref(r, v, h)), rtol=1e-12)


def test_bernoulli_free_energy_conditionals_log_z_by_brute_force():
    r = random_rbm(5, 4)
    vs, hs = binary_states(5), binary_states(4)
    negE = -energy_ref(r, vs, hs)                          # (32, 16)
    np.testing.assert_allclose(r.free_energy(vs), -logsumexp(negE, axis=1), rtol=1e-12)
    log_z = logsumexp(negE)
    assert r.log_partition() == pytest.approx(log_z, rel=1e-12)
    p_h_given_v = np.exp(negE - logsumexp(negE, axis=1)[:, None])
    np.testing.assert_allclose(r.hidden_mean(vs), p_h_given_v @ hs, rtol=1e-10)
    p_v_given_h = np.exp(negE - logsumexp(negE, axis=0)[None, :])
    np.testing.assert_allclose(r.visible_mean(hs), p_v_given_h.T @ vs, rtol=1e-10)
    ll = r.log_likelihood(vs)
    np.testing.assert_allclose(ll, logsumexp(negE, axis=1) - log_z, rtol=1e-12)
    assert np.exp(ll).sum() == pytest.approx(1.0, rel=1e-12)


def test_log_z_enumerates_the_smaller_layer_either_way():
    wide = random_rbm(12, 3, scale=0.5)     # enumerates the 2^3 hidden states
    tall = random_rbm(3, 12, scale=0.5)     # enumerates the 2^3 visible states
    for r in (wide, tall):
        vs, hs = binary_states(r.n_visible), binary_states(r.n_hidden)
        assert r.log_partition() == pytest.approx(logsumexp(-energy_ref(r, vs, hs)), rel=1e-12)


def test_gaussian_hidden_free_energy_and_mean_by_quadrature():
    r = random_rbm(3, 2, hidden="gaussian", scale=0.5)
    vs = binary_states(3)
    pts, logw = grid(2)
    negE = -energy_ref(r, vs, pts) + logw[None, :]         # ∫ over h on a grid
    np.testing.assert_allclose(r.free_energy(vs), -logsumexp(negE, axis=1), rtol=1e-8)
    post = np.exp(negE - logsumexp(negE, axis=1)[:, None])
    np.testing.assert_allclose(r.hidden_mean(vs), post @ pts, atol=1e-8)
    assert r.log_partition() == pytest.approx(logsumexp(negE), rel=1e-8)
    assert np.exp(r.log_likelihood(vs)).sum() == pytest.approx(1.0, rel=1e-10)


def test_gaussian_visible_log_z_and_density_integrate_to_one():
    r = random_rbm(2, 3, visible="gaussian", scale=0.5)
    pts, logw = grid(2)
    hs = binary_states(3)
    log_z = logsumexp(-energy_ref(r, pts, hs) + logw[:, None])
    assert r.log_partition() == pytest.approx(log_z, rel=1e-8)
    np.testing.assert_allclose(r.free_energy(pts[:50]), -logsumexp(-energy_ref(r, pts[:50], hs), axis=1), rtol=1e-12)
    assert np.exp(logsumexp(r.log_likelihood(pts) + logw)) == pytest.approx(1.0, rel=1e-8)
    np.testing.assert_allclose(r.visible_mean(hs), hs @ r.params["W"] + r.params["b_visible"], rtol=1e-12)


def nll(r, v):
    return -float(r.log_likelihood(v).mean())


@pytest.mark.parametrize("visible,hidden", [("bernoulli", "bernoulli"), ("gaussian", "bernoulli"),
                                            ("bernoulli", "gaussian")])
def test_exact_grads_match_finite_differences_of_the_exact_nll(visible, hidden):
    r = random_rbm(4, 3, visible, hidden, scale=0.5)
    g = np.random.default_rng(5)
    v = g.normal(size=(7, 4)) if visible == "gaussian" else (g.random((7, 4)) < 0.5).astype(float)
    grads = rbm.exact_grads(r, v)
    eps = 1e-5
    for key, p in r.params.items():
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = nll(r, v)
            p[i] = old - eps
            down = nll(r, v)
            p[i] = old
            num[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[key], num, rtol=1e-6, atol=1e-8, err_msg=key)


def test_pseudo_log_likelihood_matches_the_conditionals_by_brute_force():
    for hidden in ("bernoulli", "gaussian"):
        r = random_rbm(5, 3, hidden=hidden, scale=0.7)
        vs = binary_states(5)[::3]
        ll = r.log_likelihood(vs)
        ref = np.zeros(len(vs))
        for i in range(5):
            flip = vs.copy()
            flip[:, i] = 1 - flip[:, i]
            ref += ll - np.logaddexp(ll, r.log_likelihood(flip))
        np.testing.assert_allclose(rbm.pseudo_log_likelihood(r, vs), ref, rtol=1e-10)


def test_exact_functions_are_stable_for_large_parameters():
    r = random_rbm(6, 4, scale=60.0)
    vs = binary_states(6)
    ll = r.log_likelihood(vs)
    assert np.isfinite(ll).all() and np.isfinite(r.log_partition())
    assert np.exp(logsumexp(ll)) == pytest.approx(1.0, rel=1e-9)
    assert np.isfinite(r.free_energy(vs)).all()


def test_limits_of_enumeration_raise_value_error():
    with pytest.raises(ValueError, match="at most 20"):
        rbm.RBM(21, 22).log_partition()
    with pytest.raises(ValueError, match="at most 20"):
        rbm.exact_grads(rbm.RBM(21, 30, hidden="gaussian"), np.zeros((1, 21), np.float32))
    rbm.RBM(784, 12).log_partition()  # the small layer is enumerated: fine


def test_float32_rbm_exact_values_agree_with_float64():
    r = random_rbm(6, 4, scale=0.5)
    r32 = r.astype(np.float32)
    vs = binary_states(6)
    np.testing.assert_allclose(r32.log_likelihood(vs.astype(np.float32)), r.log_likelihood(vs), rtol=1e-5)
    assert rbm.exact_grads(r32, vs.astype(np.float32))["W"].dtype == np.float32


def test_block_gibbs_samples_the_exact_distribution():
    r = random_rbm(3, 2, scale=0.8)
    vs = binary_states(3)
    p = np.exp(r.log_likelihood(vs))
    chains = r.gibbs(np.zeros((20000, 3)), steps=20, rng=0)
    idx = (chains @ (2 ** np.arange(3)[::-1])).astype(int)        # row index in binary_states order
    np.testing.assert_allclose(np.bincount(idx, minlength=8) / len(idx), p, atol=0.012)
    means = r.gibbs(np.zeros((4, 3)), steps=2, rng=0, mean_visible=True)
    assert ((means > 0) & (means < 1)).all()                      # the last step's means, not samples
