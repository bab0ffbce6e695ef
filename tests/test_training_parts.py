"""The pieces ``fit`` is built from, used on their own: the shared metric accumulator, the run
state's ``state_dict`` round trip, the reducer hook (gradients, losses and sums handed to it, only
its root writing checkpoints) and the configuration checks."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers as L
from handgrad import losses, optim
from handgrad.training import checkpoint as ck
from handgrad.training.accumulator import MetricAccumulator
from handgrad.training.reducer import LocalReducer, check_reducer
from handgrad.training.state import RandomStreams, RunState


def blobs(n=90, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = (rng.standard_normal((n, features)) + 2.0 * y[:, None]).astype(np.float32)
    return x, y


def mlp(seed=0, dropout=0.0, dtype="float32"):
    layers = [L.Dense(6, 12, rng=seed, dtype=dtype), L.ReLU()]
    if dropout:
        layers.append(L.Dropout(dropout))
    return hg.Sequential(layers + [L.Dense(12, 3, rng=seed + 1, dtype=dtype)])


def test_accumulator_means_are_sums_over_batches_with_padding_and_parts():
    acc = MetricAccumulator(["accuracy", "top2_accuracy"], classes=True)
    out = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    labels = np.array([0, 1, -1, 2])  # -1: padding, never counted
    acc.add(0.5, [out[:2], out[2:]], [(0, 2), (2, 4)], labels)  # a batch computed in two parts
    acc.add(1.0, [out[:1]], [(0, 1)], np.array([2]))
    res = acc.result("val_")
    assert res["val_loss"] == pytest.approx((0.5 * 4 + 1.0 * 1) / 5)
    assert res["val_accuracy"] == pytest.approx(2 / 4)  # rows 0 and 3 right, row 1 wrong, last wrong
    assert res["val_top2_accuracy"] == pytest.approx(3 / 4)
    state = acc.state_dict()
    assert state == {"loss": 3.0, "seen": 5, "items": 4, "correct": {"accuracy": 2, "top2_accuracy": 3}}
    other = MetricAccumulator(["accuracy", "top2_accuracy"], classes=True)
    other.load_state_dict(state)
    assert other.result("val_") == res


def test_evaluate_equals_the_accumulator_over_its_batches():
    x, y = blobs()
    model = mlp()
    loss = losses.SoftmaxCrossEntropy()
    res = hg.evaluate(model, loss, x, y, batch_size=32, metrics=("accuracy", "per_class_accuracy"))
    acc = MetricAccumulator(["accuracy", "per_class_accuracy"], classes=True)
    for s in range(0, len(x), 32):
        out = model.forward(x[s:s + 32])
        acc.add(loss.forward(out, y[s:s + 32]), [out], [(0, len(out))], y[s:s + 32])
    assert acc.result() == res
    assert len(res["per_class_accuracy"]) == 3


class RecordingReducer(LocalReducer):
    """A reducer of one process that is not the root: records what it is handed."""

    is_root = False

    def __init__(self):
        self.calls = {"gradients": 0, "loss": 0, "sums": 0, "any": 0}

    def gradients(self, model, count):
        self.calls["gradients"] += 1

    def loss(self, value, count):
        self.calls["loss"] += 1
        return value

    def sums(self, totals):
        self.calls["sums"] += 1
        return dict(totals)

    def any(self, flag):
        self.calls["any"] += 1
        return flag


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reducer_plugs_into_fit_and_only_the_root_writes(tmp_path, workers):
    x, y = blobs()
    kw = dict(epochs=2, batch_size=16, seed=3, validation_split=0.2, progress_bar=False, workers=workers)
    ref = mlp(dropout=0.2)
    h_ref = hg.fit(ref, losses.SoftmaxCrossEntropy(), optim.SGD(ref, 0.1), x, y, **kw)
    model = mlp(dropout=0.2)
    rec = RecordingReducer()
    h = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, reducer=rec,
               checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=2, **kw)
    steps = 2 * -(-72 // 16)
    assert rec.calls["gradients"] == rec.calls["loss"] == steps
    assert rec.calls["any"] == steps + 2  # after every step and every epoch
    assert rec.calls["sums"] > 0  # training sums, validation sums, checkpoint state
    assert not (tmp_path / "ck").exists()  # not the root: writes nothing
    assert h.history == h_ref.history
    for (_, a), (_, b) in zip(ref.parameters(), model.parameters()):
        assert np.array_equal(a, b)


def test_bad_reducer_is_a_type_error():
    assert check_reducer(None).is_root
    with pytest.raises(TypeError, match="reducer"):
        check_reducer(object())
    x, y = blobs()
    model = mlp()
    with pytest.raises(TypeError, match="reducer"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, reducer="mpi")


def test_run_state_round_trips_through_state_dict():
    model = mlp(dropout=0.5)
    run = RunState({"epochs": 2, "batch_size": 4, "seed": 1, "n": 10}, RandomStreams(1), [model],
                   MetricAccumulator(["accuracy"], classes=True), hg.History())
    run.streams.shuffle.permutation(10)
    model.layers[2].rng.random(3)
    run.advance(2)
    run.skipped = 1
    run.metrics.add(0.25, [np.eye(3)], [(0, 3)], np.array([0, 1, 1]))
    state = run.state_dict()
    again = RunState(dict(run.identity), RandomStreams(1), [mlp(dropout=0.5)],
                     MetricAccumulator(["accuracy"], classes=True), hg.History())
    again.load_state_dict(state)
    assert again.state_dict() == state
    assert again.streams.augment.random() == run.streams.augment.random()
    assert again.stochastic[0].rng.random() == run.stochastic[0].rng.random()
    with pytest.raises(ValueError, match="written by a run"):
        RunState({**run.identity, "seed": 2}, RandomStreams(2), [mlp(dropout=0.5)],
                 MetricAccumulator(["accuracy"], classes=True), hg.History()).load_state_dict(state)


def test_checkpointer_resume_restores_model_optimizer_and_run(tmp_path):
    x, y = blobs()
    kw = dict(epochs=2, batch_size=16, seed=0, progress_bar=False, checkpoint_dir=str(tmp_path))
    model = mlp()
    hg.fit(model, losses.SoftmaxCrossEntropy(), optim.Adam(model, 1e-2), x, y, **kw)
    path = ck.latest(str(tmp_path))
    _, _, state = ck.load_checkpoint(path)
    assert state["pos"] == {**state["pos"], "epoch": 2, "batch": 0, "step": 12}


@pytest.mark.parametrize("bad, match", [
    (dict(seed=-1), "seed"), (dict(seed=1.5), "seed"), (dict(shuffle=1), "shuffle"),
    (dict(on_nonfinite="ignore"), "on_nonfinite"), (dict(workers=0), "workers"),
    (dict(checkpoint_every=-2, checkpoint_dir="x"), "checkpoint_every"),
    (dict(validation_split=1.5), "validation_split"),
])
def test_fit_config_errors_name_the_argument(bad, match):
    x, y = blobs()
    model = mlp()
    with pytest.raises((ValueError, TypeError), match=match):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, **bad)


def _own_loop(x, epochs, ckdir, resume=None, stop_after=None):
    """A training loop other than fit (the shape an RBM trainer takes) built from fit's pieces:
    run state with an extra generator, Checkpointer with an extra tensor, the interrupt guard and
    the epoch bar. It learns a linear autoencoder with noisy inputs and a carried running mean."""
    from handgrad.training import progress
    from handgrad.training.guards import InterruptGuard
    from handgrad.training.inputs import TrainingData

    model = hg.Sequential([L.Dense(6, 6, rng=0)])
    opt = optim.SGD(model, 0.05, momentum=0.5)
    loss = losses.MeanSquaredError()
    noise = np.random.default_rng(7)
    carried = {"mean": np.zeros(6, np.float32)}
    run = RunState({"epochs": epochs, "batch_size": 8, "seed": 5, "n": len(x)}, RandomStreams(5), [model],
                   MetricAccumulator([], classes=False), hg.History(), generators={"noise": noise})
    saver = ck.Checkpointer(ckdir, 1, 50, model, opt, run, extra_tensors=lambda: dict(carried),
                            load_extra=lambda t: carried.update(mean=t["mean"].copy()))
    if resume:
        saver.resume(ckdir)
    data = TrainingData(x, x, model, 8, True)
    with InterruptGuard(False, saver) as signals:
        for epoch in range(run.epoch, epochs):
            order = run.begin_epoch(model, data)
            with progress.epoch_bar(data.steps, "own", False, run.batch):
                for b in range(run.batch, data.steps):
                    xb, yb = data.batch(data.indices(order, b))
                    xb = xb + 0.1 * noise.standard_normal(xb.shape).astype(np.float32) + carried["mean"]
                    value = loss.forward(model.forward(xb, training=True), yb)
                    model.backward(loss.backward(), input_grad=False)
                    opt.step()
                    carried["mean"] = 0.9 * carried["mean"] + 0.1 * xb.mean(axis=0) * 0.01
                    run.advance(b)
                    run.metrics.add(value, [None], [(0, len(xb))])
                    saver.after_step(data.steps)
                    signals.check(f"at batch {b + 1}")
                    if stop_after is not None and run.step == stop_after:
                        return model, carried
            run.history.on_epoch_end(epoch, run.metrics.result())
            run.end_epoch()
            saver.write()
    return model, carried


def test_another_training_loop_reuses_run_state_checkpoints_and_guards(tmp_path):
    x = np.random.default_rng(1).standard_normal((60, 6)).astype(np.float32)
    full, carried_full = _own_loop(x, 2, str(tmp_path / "full"))
    _own_loop(x, 2, str(tmp_path / "part"), stop_after=11)  # 8 steps an epoch: dies in epoch 2
    resumed, carried = _own_loop(x, 2, str(tmp_path / "part"), resume=True)
    for (_, a), (_, b) in zip(full.parameters(), resumed.parameters()):
        assert np.array_equal(a, b)
    assert np.array_equal(carried["mean"], carried_full["mean"])
    model = hg.load(ck.latest(str(tmp_path / "full")))  # a checkpoint opens as a model
    assert np.array_equal(model.layers[0].params["W"], full.layers[0].params["W"])
