"""``fit(..., distributed=...)`` in this process (no MPI): the K-process path on a job of one
(``LocalCommunicator``) equals the plain path, resume through rank 0, the settings and their
errors, the root-only writers, and ``evaluate``'s batch runs per rank."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import handgrad as hg
from handgrad import distributed as dist
from handgrad import layers as L
from handgrad import losses, optim
from handgrad.training.evaluation import _batch_run


def make():
    return hg.Sequential([L.Dense(5, 7, rng=1, dtype="float64"), L.Tanh(), L.Dropout(0.3),
                          L.Dense(7, 3, rng=2, dtype="float64")])


def data(n=23):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


def train(distributed, **kw):
    model = make()
    x, y = data()
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.Adam(model, lr=0.01), x, y, epochs=2, batch_size=4,
                  validation_split=0.2, seed=4, progress_bar=False, distributed=distributed,
                  augment=lambda xb, rng: xb + 0.1 * rng.standard_normal(xb.shape), **kw)
    return np.concatenate([p.ravel() for _, p in model.parameters()]), hist.history


def test_the_distributed_path_on_one_rank_equals_the_plain_path():
    want, hist = train(False)
    got, got_hist = train(dist.LocalCommunicator())
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert got_hist.keys() == hist.keys()
    for k in hist:
        np.testing.assert_allclose(got_hist[k], hist[k], rtol=1e-12)


def test_resume_through_rank_zero_equals_the_uninterrupted_run(tmp_path):
    want, _ = train(False)
    train(False, checkpoint_dir=str(tmp_path), checkpoint_every=3, keep_checkpoints=10)  # one at step 3
    ckpts = sorted(p.name for p in tmp_path.iterdir())
    assert "ckpt-0000000003.safetensors" in ckpts, ckpts
    for p in tmp_path.iterdir():  # keep only the mid-epoch one
        if p.name != "ckpt-0000000003.safetensors":
            p.unlink()
    got, _ = train(dist.Distributed(comm=dist.LocalCommunicator()), resume_from=str(tmp_path))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(dist.LocalCommunicator(), resume_from=str(tmp_path / "missing"))


def test_distributed_settings_and_their_errors(monkeypatch):
    with pytest.raises(ValueError, match="reducer= or distributed=, not both"):
        train(True, reducer=hg.training.reducer.LocalReducer())
    with pytest.raises(TypeError, match="fit: expected distributed"):
        train(object())
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "0")
    with pytest.raises(ImportError, match=r"PMI_SIZE=2.*mpi4py.*handgrad\[dist\]"):
        train("auto")
    want, _ = train(False)  # each rank alone: no MPI needed
    monkeypatch.delenv("PMI_SIZE")
    np.testing.assert_array_equal(train("auto")[0], want)  # not launched: the plain path


def test_augment_mode_picks_rows_for_handgrad_augmenters():
    assert dist.augment_mode("auto", hg.data.RandomAffine(image_shape=(4, 4))) == "rows"
    assert dist.augment_mode("auto", lambda x, rng: x) == "global"
    assert dist.augment_mode("global", hg.data.RandomAffine(image_shape=(4, 4))) == "global"


def test_model_checkpoint_writes_only_on_the_root(tmp_path):
    cb = hg.training.ModelCheckpoint(str(tmp_path / "m-{epoch}.safetensors"))
    cb.set_model(make())
    cb.is_root = False
    cb.on_epoch_end(0, {"val_loss": 1.0})
    assert list(tmp_path.iterdir()) == [] and cb.saved == [str(tmp_path / "m-1.safetensors")]
    cb.is_root = True
    cb.on_epoch_end(1, {"val_loss": 1.0})
    assert [p.name for p in tmp_path.iterdir()] == ["m-2.safetensors"]


@pytest.mark.parametrize("n_batches,size", [(7, 3), (2, 3), (5, 1), (0, 2)])
def test_evaluation_batch_runs_cover_every_batch_once(n_batches, size):
    runs = [_batch_run(n_batches, r, size) for r in range(size)]
    assert [b - a for a, b in runs] == [b - a for a, b in dist.shard_bounds(n_batches, size)]
    assert runs[0][0] == 0 and runs[-1][1] == n_batches and all(runs[i][1] == runs[i + 1][0] for i in range(size - 1))


def test_evaluate_on_rank_one_of_two_sees_only_its_batches():
    model = make()
    x, y = data(10)  # batches of 3: 0-3, 3-6 on rank 0; 6-9, 9-10 on rank 1
    loss = losses.SoftmaxCrossEntropy()
    got = hg.evaluate(model, loss, x, y, batch_size=3, reducer=dist.MPIReducer(dist.LocalCommunicator(1, 2)),
                      metrics=("accuracy", "per_class_accuracy"))
    want = hg.evaluate(model, loss, x[6:], y[6:], batch_size=3, metrics=("accuracy", "per_class_accuracy"))
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-14)
    assert got["accuracy"] == want["accuracy"]
    np.testing.assert_array_equal(got["per_class_accuracy"], want["per_class_accuracy"])
