"""fit(workers=k): data-parallel steps on replicas sharing the parameters."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers as L
from handgrad import losses, optim, presets

pytest.importorskip("threadpoolctl")


def _data(n=96):
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    return hg.data.to_float(x[:n], np.float64), y[:n]


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_the_single_thread_gradient_in_float64(workers):
    x, y = _data()
    runs = {}
    for w in (1, workers):
        model = presets.mlp(hidden=(16,), seed=0, dtype="float64")
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1, momentum=0.9), x, y, epochs=2,
               batch_size=32, workers=w, seed=1)
        runs[w] = model.get_weights()
    for k in runs[1]:
        np.testing.assert_allclose(runs[workers][k], runs[1][k], rtol=1e-11, atol=1e-13)


def test_workers_are_deterministic_with_dropout_and_match_history_length():
    x, y = _data()
    hists, weights = [], []
    for _ in range(2):
        model = presets.mlp(hidden=(16,), dropout=0.3, seed=0, dtype="float64")
        h = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.Adam(model, 1e-2), x, y, epochs=2, batch_size=32,
                   workers=2, seed=4, validation_split=0.25)
        hists.append(h.history)
        weights.append(model.get_weights())
    assert hists[0] == hists[1]
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert len(hists[0]["val_accuracy"]) == 2


def test_workers_resume_exactly(tmp_path):
    x, y = _data()

    def run(**kw):
        model = presets.mlp(hidden=(16,), dropout=0.2, seed=0)
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.05, momentum=0.9), x, y, epochs=3,
               batch_size=16, workers=2, seed=2, checkpoint_dir=tmp_path / "ck", checkpoint_every=4, **kw)
        return model.get_weights()

    full = run()

    class Crash(hg.Callback):
        seen = 0

        def on_batch_end(self, batch, logs=None):
            Crash.seen += 1
            if Crash.seen == 10:  # epoch 2, batch 4: after the checkpoint at step 8
                raise RuntimeError("crash")

    import shutil
    shutil.rmtree(tmp_path / "ck")
    with pytest.raises(RuntimeError):
        run(callbacks=[Crash()])
    resumed = run(resume_from=tmp_path / "ck")
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_workers_refuse_stateful_layers():
    model = hg.Sequential([L.LSTM(3, 4, stateful=True), L.Dense(4, 2)])
    x = np.zeros((8, 5, 3), np.float32)
    y = np.zeros((8, 5), np.int64)
    with pytest.raises(ValueError, match="stateful"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, workers=2)


def test_workers_must_be_a_positive_int():
    model = presets.mlp(hidden=(8,))
    x, y = _data(16)
    with pytest.raises(ValueError, match="fit.*workers"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x.astype(np.float32), y, workers=0)
