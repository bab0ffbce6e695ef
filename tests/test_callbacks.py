"""Callbacks: EarlyStopping, ModelCheckpoint, LambdaCallback, stop_training."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers as L
from handgrad import losses, optim


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 5)) * 3
    y = rng.integers(0, 3, n)
    x = (centers[y] + rng.standard_normal((n, 5))).astype(np.float32)
    return x, y


def model_and_opt(seed=0):
    m = hg.Sequential([L.Dense(5, 8, rng=seed), L.Tanh(), L.Dense(8, 3, rng=seed + 1)])
    return m, optim.SGD(m, 0.05, momentum=0.9)


def scripted(values, key="score"):
    """A callback that puts ``values[epoch]`` into the epoch's logs under ``key``.

    It must come before the callback that monitors ``key`` (callbacks run in order)."""
    def on_epoch_end(epoch, logs):
        logs[key] = values[min(epoch, len(values) - 1)]  # repeats the last value after the script
    return hg.LambdaCallback(on_epoch_end=on_epoch_end)


class Snapshots(hg.Callback):
    """Weights at the end of every epoch (before any later callback acts)."""

    def __init__(self):
        self.weights = []

    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def assert_weights_equal(model, weights):
    got = model.get_weights()
    assert got.keys() == weights.keys()
    for k in got:
        np.testing.assert_array_equal(got[k], weights[k], err_msg=k)


def weights_differ(a, b):
    return any(not np.array_equal(a[k], b[k]) for k in a)


def run(callbacks, epochs=10, model=None, validation=True):
    x, y = data()
    if model is None:
        model, opt = model_and_opt()
    else:
        opt = optim.SGD(model, 0.05, momentum=0.9)
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=epochs, batch_size=16,
                  validation_data=(x[:20], y[:20]) if validation else None, callbacks=callbacks)
    return model, hist


# ----------------------------------------------------------------------------------------
# EarlyStopping
# ----------------------------------------------------------------------------------------
def test_early_stopping_patience_stops_at_the_right_epoch():
    # best at epoch 1; epochs 2, 3 do not improve; patience 2 -> stops after epoch 3
    es = hg.EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=False)
    _, hist = run([scripted([5.0, 3.0, 4.0, 3.5, 1.0, 0.5]), es])
    assert hist.epoch == [0, 1, 2, 3]
    assert len(hist.history["loss"]) == 4
    assert es.best_epoch == 1 and es.best == 3.0
    assert es.stopped_epoch == 3


def test_early_stopping_patience_zero_stops_at_first_non_improvement():
    es = hg.EarlyStopping(monitor="score", mode="min", patience=0, restore_best_weights=False)
    _, hist = run([scripted([5.0, 4.0, 4.5, 1.0]), es])
    assert hist.epoch == [0, 1, 2]


def test_early_stopping_min_delta():
    # improvements of 0.05 are not "by more than min_delta=0.1"
    values = [1.0, 0.95, 0.92, 0.91, 0.5, 0.4]
    es = hg.EarlyStopping(monitor="score", mode="min", patience=3, min_delta=0.1,
                          restore_best_weights=False)
    _, hist = run([scripted(values), es])
    assert hist.epoch == [0, 1, 2, 3]
    assert es.best_epoch == 0 and es.best == 1.0
    # without min_delta every epoch improves and all six run
    es0 = hg.EarlyStopping(monitor="score", mode="min", patience=3, restore_best_weights=False)
    _, hist0 = run([scripted(values), es0], epochs=6)
    assert hist0.epoch == list(range(6))
    assert es0.best_epoch == 5


def test_early_stopping_mode_auto_maximizes_accuracy_names():
    values = [0.5, 0.7, 0.6, 0.65, 0.9]
    es = hg.EarlyStopping(monitor="my_acc", patience=2, restore_best_weights=False)
    _, hist = run([scripted(values, key="my_acc"), es], epochs=5)
    assert hist.epoch == [0, 1, 2, 3]
    assert es.best_epoch == 1 and es.best == 0.7


def test_early_stopping_mode_max_explicit():
    es = hg.EarlyStopping(monitor="score", mode="max", patience=1, restore_best_weights=False)
    _, hist = run([scripted([1.0, 2.0, 1.5, 3.0]), es])
    assert hist.epoch == [0, 1, 2]


def test_early_stopping_on_real_val_loss_is_consistent_with_history():
    es = hg.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=False)
    _, hist = run([es], epochs=15)
    v = hist.history["val_loss"]
    assert es.best == min(v)
    assert es.best_epoch == int(np.argmin(v))
    if len(v) < 15:  # stopped early: the last `patience` epochs did not improve
        assert len(v) - 1 - es.best_epoch == 2


def test_restore_best_weights_when_patience_triggers():
    snaps = Snapshots()
    es = hg.EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True)
    model, hist = run([snaps, scripted([5.0, 1.0, 4.0, 3.0, 0.1]), es], epochs=5)
    assert hist.epoch == [0, 1, 2, 3]
    assert es.best_epoch == 1
    assert weights_differ(snaps.weights[1], snaps.weights[3])
    assert_weights_equal(model, snaps.weights[1])


def test_restore_best_weights_when_epoch_budget_runs_out_first():
    # the Keras bug: patience never triggers, yet the best epoch's weights must come back
    snaps = Snapshots()
    es = hg.EarlyStopping(monitor="score", mode="min", patience=10, restore_best_weights=True)
    model, hist = run([snaps, scripted([5.0, 1.0, 4.0, 3.0, 2.0]), es], epochs=5)
    assert hist.epoch == [0, 1, 2, 3, 4]
    assert es.stopped_epoch is None
    assert es.best_epoch == 1
    assert weights_differ(snaps.weights[1], snaps.weights[4])
    assert_weights_equal(model, snaps.weights[1])


def test_restore_best_weights_when_another_callback_stops_training():
    snaps = Snapshots()

    def stop_at_3(epoch, logs):
        if epoch == 3:
            stopper.model.stop_training = True

    stopper = hg.LambdaCallback(on_epoch_end=stop_at_3)
    es = hg.EarlyStopping(monitor="score", mode="min", patience=10)
    model, hist = run([snaps, scripted([3.0, 2.0, 0.5, 4.0, 0.1]), stopper, es], epochs=5)
    assert hist.epoch == [0, 1, 2, 3]
    assert_weights_equal(model, snaps.weights[2])


def test_restore_best_weights_when_last_epoch_is_best_keeps_final_weights():
    snaps = Snapshots()
    es = hg.EarlyStopping(monitor="score", mode="min", patience=2)
    model, _ = run([snaps, scripted([3.0, 2.0, 1.0]), es], epochs=3)
    assert_weights_equal(model, snaps.weights[2])


def test_no_restore_keeps_last_weights():
    snaps = Snapshots()
    es = hg.EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=False)
    model, _ = run([snaps, scripted([5.0, 1.0, 4.0, 3.0]), es], epochs=4)
    assert_weights_equal(model, snaps.weights[3])


def test_history_records_every_epoch_even_when_best_weights_are_restored():
    es = hg.EarlyStopping(monitor="score", mode="min", patience=1)
    _, hist = run([scripted([2.0, 1.0, 3.0, 4.0]), es], epochs=4)
    assert len(hist.history["loss"]) == 3
    assert len(hist.history["val_loss"]) == 3


def test_missing_monitor_warns_listing_available_metrics():
    es = hg.EarlyStopping(monitor="val_los", patience=1)
    with pytest.warns(UserWarning) as rec:
        _, hist = run([es], epochs=3)
    msgs = [str(w.message) for w in rec if "val_los" in str(w.message)]
    assert len(msgs) == 1, "warn once, not every epoch"
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert f"'{name}'" in msgs[0]
    assert hist.epoch == [0, 1, 2]  # it did not stop training


def test_missing_monitor_without_validation_data_warns():
    es = hg.EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="available"):
        _, hist = run([es], epochs=2, validation=False)
    assert hist.epoch == [0, 1]


def test_early_stopping_reuse_across_two_fits_resets_state():
    es = hg.EarlyStopping(monitor="score", mode="min", patience=1, restore_best_weights=True)
    snaps = Snapshots()
    # first run: best 0.1 at epoch 0, stops after epoch 1
    _, h1 = run([scripted([0.1, 0.2, 0.3, 0.4]), es], epochs=4)
    assert h1.epoch == [0, 1]
    assert es.best == 0.1 and es.stopped_epoch == 1
    # second run with the same instance: every epoch improves on *this* run's best; a stale
    # best of 0.1 (or a stale wait counter) would stop it after one or two epochs
    model2, _ = model_and_opt(seed=5)
    model2, h2 = run([snaps, scripted([1.0, 0.9, 0.8, 0.7]), es], epochs=4, model=model2)
    assert h2.epoch == [0, 1, 2, 3]
    assert es.best == 0.7 and es.best_epoch == 3 and es.stopped_epoch is None
    assert_weights_equal(model2, snaps.weights[3])
    # the first run's best weights (another model) must not leak into the second
    assert es.model is model2


def test_early_stopping_reuse_does_not_restore_stale_weights():
    es = hg.EarlyStopping(monitor="score", mode="min", patience=5)
    run([scripted([0.1, 0.2]), es], epochs=2)
    # second run: the monitor is never available, so no best weights this time;
    # the final weights must stay those of the second run
    snaps = Snapshots()
    model2, _ = model_and_opt(seed=3)
    with pytest.warns(UserWarning):
        model2, _ = run([snaps, es], epochs=2, model=model2, validation=False)
    assert_weights_equal(model2, snaps.weights[-1])


@pytest.mark.parametrize("kw", [{"patience": -1}, {"patience": 1.5}, {"min_delta": -0.1},
                                {"mode": "up"}])
def test_early_stopping_bad_arguments(kw):
    with pytest.raises(ValueError):
        hg.EarlyStopping(**kw)


# ----------------------------------------------------------------------------------------
# ModelCheckpoint
# ----------------------------------------------------------------------------------------
def test_model_checkpoint_writes_one_file_per_epoch(tmp_path):
    snaps = Snapshots()
    ck = hg.ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}.safetensors", save_best_only=False)
    run([snaps, ck], epochs=3)
    names = sorted(os.listdir(tmp_path))
    assert names == ["ckpt-01.safetensors", "ckpt-02.safetensors", "ckpt-03.safetensors"]
    assert ck.saved == [str(tmp_path / n) for n in names]
    for e, n in enumerate(names):
        loaded = hg.load(tmp_path / n)
        assert_weights_equal(loaded, snaps.weights[e])


def test_model_checkpoint_formats_metric_names(tmp_path):
    ck = hg.ModelCheckpoint(str(tmp_path / "m-{epoch}-{val_loss:.4f}.safetensors"))
    _, hist = run([ck], epochs=2)
    expected = [f"m-{e + 1}-{v:.4f}.safetensors" for e, v in enumerate(hist.history["val_loss"])]
    assert sorted(os.listdir(tmp_path)) == sorted(expected)


def test_model_checkpoint_save_best_only(tmp_path):
    snaps = Snapshots()
    path = tmp_path / "best.safetensors"
    ck = hg.ModelCheckpoint(path, monitor="score", mode="min", save_best_only=True)
    run([snaps, scripted([3.0, 1.0, 2.0, 0.5, 0.7]), ck], epochs=5)
    assert os.listdir(tmp_path) == ["best.safetensors"]
    assert len(ck.saved) == 3  # epochs 0, 1 and 3 improved
    assert_weights_equal(hg.load(path), snaps.weights[3])


def test_model_checkpoint_save_best_only_with_epoch_names(tmp_path):
    ck = hg.ModelCheckpoint(tmp_path / "e{epoch}.safetensors", monitor="score", mode="max",
                            save_best_only=True)
    run([scripted([0.1, 0.3, 0.2, 0.4]), ck], epochs=4)
    assert sorted(os.listdir(tmp_path)) == ["e1.safetensors", "e2.safetensors", "e4.safetensors"]


def test_model_checkpoint_missing_monitor_warns_and_writes_nothing(tmp_path):
    ck = hg.ModelCheckpoint(tmp_path / "x.safetensors", monitor="nope", save_best_only=True)
    with pytest.warns(UserWarning, match="available"):
        run([ck], epochs=1)
    assert os.listdir(tmp_path) == []


def test_model_checkpoint_reuse_resets_best(tmp_path):
    ck = hg.ModelCheckpoint(tmp_path / "r{epoch}.safetensors", monitor="score", mode="min",
                            save_best_only=True)
    run([scripted([0.1, 0.2]), ck], epochs=2)
    for f in os.listdir(tmp_path):
        os.unlink(tmp_path / f)
    run([scripted([5.0, 4.0]), ck], epochs=2)
    assert sorted(os.listdir(tmp_path)) == ["r1.safetensors", "r2.safetensors"]


# ----------------------------------------------------------------------------------------
# LambdaCallback and the hook order
# ----------------------------------------------------------------------------------------
def test_lambda_callback_hooks_are_called():
    events = []
    cb = hg.LambdaCallback(
        on_train_begin=lambda logs: events.append(("train_begin",)),
        on_epoch_begin=lambda e, logs: events.append(("epoch_begin", e)),
        on_batch_begin=lambda b, logs: events.append(("batch_begin", b)),
        on_batch_end=lambda b, logs: events.append(("batch_end", b, float(logs["loss"]))),
        on_epoch_end=lambda e, logs: events.append(("epoch_end", e, dict(logs))),
        on_train_end=lambda logs: events.append(("train_end",)),
    )
    x, y = data(n=40)
    model, opt = model_and_opt()
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=2, batch_size=16, callbacks=[cb])
    kinds = [e[0] for e in events]
    assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
    assert kinds.count("epoch_begin") == 2 and kinds.count("epoch_end") == 2
    assert kinds.count("batch_begin") == 6 and kinds.count("batch_end") == 6  # ceil(40/16) = 3 per epoch
    epoch_logs = [e[2] for e in events if e[0] == "epoch_end"]
    assert [lg["loss"] for lg in epoch_logs] == hist.history["loss"]
    assert [e[1] for e in events if e[0] == "batch_begin"] == [0, 1, 2, 0, 1, 2]
    assert all(np.isfinite(e[2]) for e in events if e[0] == "batch_end")
    # order within an epoch
    first_epoch = kinds[1:kinds.index("epoch_end") + 1]
    assert first_epoch == ["epoch_begin", "batch_begin", "batch_end", "batch_begin", "batch_end",
                           "batch_begin", "batch_end", "epoch_end"]


def test_lambda_callback_unknown_hook_raises():
    with pytest.raises(ValueError, match="LambdaCallback"):
        hg.LambdaCallback(on_epoch_finish=lambda e, logs: None)


def test_callback_sets_stop_training():
    def stop(epoch, logs):
        if epoch == 1:
            cb.model.stop_training = True

    cb = hg.LambdaCallback(on_epoch_end=stop)
    model, hist = run([cb], epochs=10)
    assert hist.epoch == [0, 1]
    # a fresh fit resets the flag and trains again
    cb2 = hg.LambdaCallback()
    x, y = data()
    h2 = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.01), x, y, epochs=3, callbacks=[cb2])
    assert h2.epoch == [0, 1, 2]


def test_stop_training_in_batch_hook_stops_after_the_epoch():
    def stop(batch, logs):
        cb.model.stop_training = True

    cb = hg.LambdaCallback(on_batch_end=stop)
    _, hist = run([cb], epochs=5)
    assert hist.epoch == [0]


def test_callback_receives_model():
    seen = []

    class C(hg.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.model)

    model, hist = run([C()], epochs=1)
    assert seen == [model]


def test_non_callback_raises_type_error():
    x, y = data()
    model, opt = model_and_opt()
    with pytest.raises(TypeError, match="Callback"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, callbacks=[lambda *a: None])


def test_on_train_end_runs_even_when_a_callback_raises():
    ended = []

    def boom(epoch, logs):
        raise RuntimeError("boom")

    cbs = [hg.LambdaCallback(on_epoch_end=boom), hg.LambdaCallback(on_train_end=lambda logs: ended.append(1))]
    with pytest.raises(RuntimeError, match="boom"):
        run(cbs, epochs=2)
    assert ended == [1]


def test_history_repr_and_reuse():
    h = hg.History()
    _, hist = run([h], epochs=2)
    assert h.history == hist.history  # the extra History saw the same logs
    assert "epochs=2" in repr(hist)
    # no warnings-as-errors surprises
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run([h], epochs=1)
    assert h.epoch == [0]
