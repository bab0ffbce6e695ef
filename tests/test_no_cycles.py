"""A training step leaves no reference cycles behind: the buffers of one pass go as soon as
the next pass replaces them, not whenever the garbage collector runs (numpy arrays are small
Python objects, so a cycle holding 20 MB of them can wait a long time: an Elman RNN epoch once
peaked 330 MB higher than it needs)."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import handgrad as hg
from handgrad import accel, losses, optim, presets

MODELS = {
    "mlp": (lambda: presets.mlp(hidden=(16,), dropout=0.2), (8, 784)),
    "lenet5": (lambda: presets.get("lenet5").build(), (8, 1, 28, 28)),
    "rnn": (lambda: hg.Sequential([hg.layers.RNN(28, 8, return_sequences=False), hg.layers.Dense(8, 10)]), (8, 28, 28)),
    "lstm": (lambda: hg.Sequential([hg.layers.LSTM(28, 8, return_sequences=False), hg.layers.Dense(8, 10)]), (8, 28, 28)),
}


def steps(model, shape, n=3):
    rng = np.random.default_rng(0)
    loss, opt = losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.01, momentum=0.9)
    for _ in range(n):
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, 10, shape[0])
        out = model.forward(x, training=True)
        loss.forward(out, y)
        model.backward(loss.backward())
        opt.step()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_steps_leave_no_garbage_cycles(name, threads, monkeypatch):
    build, shape = MODELS[name]
    model = build()
    monkeypatch.setattr(accel, "_spin", False)          # in-layer threads where they apply
    monkeypatch.setattr(hg.layers.LSTM, "part_rows", 2)
    monkeypatch.setattr(hg.layers.RNN, "part_rows", 2)
    accel.set_num_threads(threads)
    try:
        steps(model, shape, 1)                           # first-call caches, compiled kernels
        gc.collect()
        gc.disable()
        try:
            steps(model, shape)
            found = gc.collect()
        finally:
            gc.enable()
    finally:
        accel.set_num_threads(None)
    assert found == 0, f"{name}: {found} objects were only reachable through reference cycles"


@pytest.mark.parametrize("workers", [1, 2])
def test_fit_epochs_leave_no_garbage_cycles(workers):
    """Whatever a call of ``fit`` keeps, the steps inside it make no cycles (two epochs of the
    same call collect no more than one)."""
    pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)

    def garbage(epochs):
        model = presets.get("lenet5").build()
        gc.collect()
        gc.disable()
        try:
            hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.01), x, y, epochs=epochs,
                   batch_size=16, progress_bar=False, workers=workers, validation_data=(x[:16], y[:16]))
            return gc.collect()
        finally:
            gc.enable()

    garbage(1)
    assert garbage(3) == garbage(1)
