"""The RBM training loop: bars-and-stripes to near the optimum likelihood (3 seeds), CD-1 /
CD-k / PCD at their defaults, the monitors, exact resume from a checkpoint, and signals."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from handgrad import rbm
from handgrad.training.faults import TrainingInterrupted


def bars_and_stripes():
    """The 14 distinct 3×3 bars-and-stripes patterns (MacKay 2003): 8 of rows, 8 of columns,
    all-off and all-on shared."""
    pats = set()
    for bits in itertools.product([0.0, 1.0], repeat=3):
        m = np.repeat(np.array(bits)[:, None], 3, axis=1)
        pats.add(tuple(m.ravel()))
        pats.add(tuple(m.T.ravel()))
    return np.array(sorted(pats))


def test_bars_and_stripes_has_14_patterns_and_the_untrained_likelihood_is_low():
    x = bars_and_stripes()
    assert x.shape == (14, 9)
    r = rbm.RBM(9, 16, rng=0, dtype=np.float64)
    assert r.log_likelihood(x).mean() < -6.0          # ≈ −9 ln 2 = −6.24 for a near-zero model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cd10_with_16_hidden_units_learns_bars_and_stripes(seed):
    x = bars_and_stripes()
    r = rbm.RBM(9, 16, rng=seed, dtype=np.float64, weight_std=0.1)
    # 10 copies of the 14 patterns per batch: one low-variance step per epoch
    hist = rbm.train_rbm(r, np.tile(x, (10, 1)), epochs=500, batch_size=140, lr=0.1, k=10,
                         weight_decay=0.0, seed=seed, exact_max_units=0)
    ll = r.log_likelihood(x).mean()
    assert ll >= -3.0, f"seed {seed}: mean exact log-likelihood {ll:.3f} < −3.0 (optimum −ln 14 = −2.64)"
    assert len(hist.history["recon_error"]) == 500


@pytest.mark.parametrize("kw,epochs", [({"k": 1}, 8), ({"k": 5}, 8), ({"k": 1, "persistent": True}, 150),
                                       ({"k": 1, "mean_visible": True}, 8)])
def test_cd1_cdk_and_pcd_train_at_their_defaults_without_diverging(kw, epochs):
    x = np.tile(bars_and_stripes(), (20, 1)).astype(np.float32)
    r = rbm.RBM(9, 12, rng=0)
    before = float(r.log_likelihood(x[:14]).mean())
    hist = rbm.train_rbm(r, x, epochs=epochs, batch_size=10, validation_data=x[:28], seed=0, **kw)
    h = hist.history
    assert all(np.isfinite(v).all() for v in h.values())
    # uphill (a wrong sign goes down), and no collapse: PCD's few chains make its likelihood on
    # bars-and-stripes rise then oscillate (the multimodality Tieleman & Hinton 2009 address)
    assert max(h["log_likelihood"]) > before + 0.1
    assert h["log_likelihood"][-1] > before - 1.0
    assert h["momentum"] == [0.5] * 5 + [0.9] * (epochs - 5)
    assert h["lr"][0] == (0.01 if kw.get("persistent") else 0.1)
    for key in ("recon_error", "val_recon_error", "free_energy_gap", "pll", "val_pll", "val_log_likelihood", "lr"):
        assert len(h[key]) == epochs, key


def test_gaussian_layers_train_at_their_default_rate():
    g = np.random.default_rng(0)
    x = (g.random((300, 6)) < 0.3).astype(np.float32)
    top = rbm.RBM(6, 3, hidden="gaussian", rng=0)
    h = rbm.train_rbm(top, x, epochs=4, seed=0).history
    assert h["lr"][0] == 0.001 and np.isfinite(h["recon_error"]).all()
    low = rbm.RBM(4, 5, visible="gaussian", rng=0)
    h2 = rbm.train_rbm(low, g.normal(size=(300, 4)).astype(np.float32), epochs=4, seed=0).history
    assert np.isfinite(h2["recon_error"]).all() and "pll" not in h2


def test_resume_from_a_checkpoint_continues_bit_for_bit(tmp_path):
    x = np.tile(bars_and_stripes(), (10, 1)).astype(np.float32)
    # the first part stops after 2 of 4 epochs: a constant rate keeps the two runs' arguments alike
    kw = {"epochs": 4, "batch_size": 20, "k": 2, "persistent": True, "seed": 3, "exact_max_units": 0,
          "lr_decay": False}
    straight = rbm.RBM(9, 6, rng=1)
    h_straight = rbm.train_rbm(straight, x, **kw)
    first = rbm.RBM(9, 6, rng=1)
    rbm.train_rbm(first, x, **{**kw, "epochs": 2}, checkpoint_dir=str(tmp_path))
    resumed = rbm.RBM(9, 6, rng=1)
    h_resumed = rbm.train_rbm(resumed, x, **kw, resume_from=str(tmp_path))
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key], err_msg=key)
    assert h_resumed.history["recon_error"] == h_straight.history["recon_error"]
    with pytest.raises(ValueError, match="another RBM"):
        rbm.train_rbm(rbm.RBM(9, 7, rng=1), x, **kw, resume_from=str(tmp_path))


def test_a_signal_stops_after_the_step_with_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch):
    import os
    import signal

    x = np.tile(bars_and_stripes(), (10, 1)).astype(np.float32)
    kw = {"epochs": 2, "batch_size": 14, "seed": 0, "exact_max_units": 0, "persistent": True, "k": 2}
    straight = rbm.RBM(9, 6, rng=1)
    rbm.train_rbm(straight, x, **kw)
    from handgrad.rbm import trainer
    calls = {"n": 0}
    real = trainer.contrastive_divergence

    def cd_then_signal(*a, **k):
        calls["n"] += 1
        if calls["n"] == 13:     # in the middle of the second epoch
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(trainer, "contrastive_divergence", cd_then_signal)
    stopped = rbm.RBM(9, 6, rng=1)
    with pytest.raises(TrainingInterrupted) as info:
        rbm.train_rbm(stopped, x, **kw, checkpoint_dir=str(tmp_path))
    assert info.value.checkpoint is not None
    monkeypatch.setattr(trainer, "contrastive_divergence", real)
    resumed = rbm.RBM(9, 6, rng=1)
    rbm.train_rbm(resumed, x, **kw, resume_from=str(tmp_path))
    np.testing.assert_array_equal(resumed.params["W"], straight.params["W"])


def test_trainer_bad_input():
    r = rbm.RBM(9, 4)
    with pytest.raises(ValueError, match=r"\(N, 9\)"):
        rbm.train_rbm(r, np.zeros((5, 8), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        rbm.train_rbm(r, np.full((5, 9), np.nan, np.float32))
    with pytest.raises(TypeError, match="RBM"):
        rbm.train_rbm("rbm", np.zeros((5, 9), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        rbm.train_rbm(r, np.zeros((5, 9), np.float32), momentum=0.9)
