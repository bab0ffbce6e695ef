"""Checks added by the input-validation sweep (docs/validation.md)."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers as L
from handgrad import losses, optim


@pytest.mark.parametrize("kw", [{"eps": 0}, {"eps": -1e-4}, {"eps": float("nan")}, {"max_entries": 0},
                                {"max_entries": 1.5}])
def test_gradcheck_rejects_degenerate_settings(kw):
    with pytest.raises(ValueError, match="gradcheck"):
        hg.gradcheck(L.Tanh(), np.ones((2, 3)), **kw)


def test_standardizer_refuses_other_feature_shapes():
    s = hg.data.Standardizer(per_feature=True).fit(np.random.default_rng(0).standard_normal((10, 4)))
    with pytest.raises(ValueError, match=r"Standardizer.transform.*\(4,\).*\(5, 1\)"):
        s.transform(np.zeros((5, 1)))


@pytest.mark.parametrize("row", [0, 5, 9])
def test_predict_rejects_nan_in_any_batch(row):
    """Checked batch by batch: a NaN in the last batch still raises, and nothing is returned."""
    model = hg.presets.mlp(hidden=(4,))
    x = np.random.default_rng(0).random((10, 784), dtype=np.float32)
    x[row, 3] = np.inf
    with pytest.raises(ValueError, match="Sequential.predict.*NaN"):
        model.predict(x, batch_size=4)
    with pytest.raises(ValueError, match="Sequential.predict.*sample"):
        model.predict(np.float32(1.0))


def test_predict_rejects_nan():
    model = hg.Sequential([L.Dense(3, 2)])
    with pytest.raises(ValueError, match="Sequential.predict.*NaN"):
        model.predict(np.array([[0.0, np.nan, 1.0]]))


def test_optimizer_rejects_a_bad_learning_rate_set_between_steps():
    model = hg.Sequential([L.Dense(3, 2)])
    opt = optim.SGD(model, 0.1)
    opt.lr = float("nan")
    with pytest.raises(ValueError, match="SGD.step.*lr"):
        opt.step()


@pytest.mark.parametrize("make", [lambda: L.Normalize(float("nan"), 1.0), lambda: L.Normalize(0.0, float("inf")),
                                  lambda: L.BinaryThreshold(float("nan")), lambda: L.LSTM(2, 3, forget_bias=float("nan")),
                                  lambda: L.RNN(2, 3, mask_value=float("nan"))])
def test_layers_reject_nan_options(make):
    with pytest.raises(ValueError):
        make()


def test_recurrent_stateful_must_be_a_bool():
    with pytest.raises(TypeError, match="stateful"):
        L.LSTM(2, 3, stateful="no")


@pytest.mark.parametrize("kw,err", [({"shuffle": "yes"}, TypeError), ({"seed": -1}, ValueError),
                                    ({"seed": 1.5}, ValueError)])
def test_fit_checks_shuffle_and_seed(kw, err):
    model = hg.Sequential([L.Dense(3, 2)])
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    with pytest.raises(err, match="fit"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, **kw)


def test_gzip_idx_is_inflated_only_as_far_as_its_header_declares(tmp_path):
    import gzip
    import tracemalloc

    header = bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big")
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(header + bytes(10) + bytes(50_000_000), compresslevel=9))
    tracemalloc.start()
    with pytest.raises(ValueError, match="read_idx"):
        hg.data.read_idx(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000


def test_fit_checks_all_labels_against_the_output_width_before_any_update():
    model = hg.Sequential([L.Dense(3, 4, rng=0)])
    before = model.get_weights()
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    y = np.zeros(64, np.int64)
    y[-1] = 7  # in the last batch
    with pytest.raises(ValueError, match=r"fit: class labels must be in \[0, 3\].*\[0, 7\]"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, batch_size=8, shuffle=False)
    after = model.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_fit_refuses_both_validation_data_and_split():
    model = hg.Sequential([L.Dense(3, 2)])
    x, y = np.zeros((8, 3), np.float32), np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="fit: give validation_data or validation_split, not both"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, validation_data=(x, y),
               validation_split=0.25)


@pytest.mark.parametrize("call,match", [
    (lambda: hg.data.to_float(np.array(["a", "b"])), "to_float"),
    (lambda: hg.data.to_float(np.zeros((2, 3), np.uint8), dtype=np.int32), "to_float"),
    (lambda: hg.data.one_hot(np.array([0, 1]), 0), "one_hot"),
    (lambda: hg.data.train_val_split(np.zeros((4, 2)), np.zeros(4, np.int64), "0.5"), "train_val_split"),
    (lambda: hg.Sequential(None), "Sequential"),
    (lambda: hg.EarlyStopping(monitor=5), "EarlyStopping"),
])
def test_errors_name_the_function(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
