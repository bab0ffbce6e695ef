"""Training recurrent models end to end with ``hg.fit``: many-to-many (LSTM → time-distributed
Dense → SoftmaxCrossEntropy), many-to-one regression (the adding problem), padded
variable-length batches with ignored labels, and gradient clipping."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers, losses, optim

K = 4  # vocabulary size of the symbol tasks


def echo_data(n, T=8, lag=2, seed=0):
    """One-hot symbols; the label at step t is the symbol of step t − lag (−1: no label yet)."""
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, K, (n, T))
    x = np.eye(K, dtype=np.float32)[sym]
    y = np.full((n, T), -1, np.int64)
    y[:, lag:] = sym[:, :-lag]
    return x, y


def padded_echo_data(n, T=10, seed=0):
    """Echo one step back on sequences of length 3..T; padded steps are all-zero inputs with
    label −1."""
    rng = np.random.default_rng(seed)
    x, y = echo_data(n, T, lag=1, seed=seed)
    lengths = rng.integers(3, T + 1, n)
    for i, L in enumerate(lengths):
        x[i, L:] = 0.0
        y[i, L:] = -1
    return x, y, lengths


def adding_data(n, T=10, seed=0):
    """The adding problem: channel 0 holds U(0, 1) values, channel 1 marks two steps; the target
    is the sum of the two marked values."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n, T))
    marks = np.zeros((n, T))
    for i in range(n):
        marks[i, rng.choice(T, 2, replace=False)] = 1.0
    x = np.stack([values, marks], axis=-1).astype(np.float32)
    y = (values * marks).sum(axis=1, keepdims=True).astype(np.float32)
    return x, y


def seq_classifier(hidden=16, mask_value=None, peepholes=False):
    return hg.Sequential([
        layers.LSTM(K, hidden, peepholes=peepholes, mask_value=mask_value, rng=0),
        layers.Dense(hidden, K, rng=1),  # applied at every step of (N, T, H)
    ])


# -- many-to-many ----------------------------------------------------------------------------------

@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peep"])
def test_lstm_learns_to_echo_two_steps_back(peepholes):
    x, y = echo_data(600)
    xv, yv = echo_data(200, seed=1)
    model = seq_classifier(peepholes=peepholes)
    loss = losses.SoftmaxCrossEntropy()
    assert model.forward(x[:2]).shape == (2, 8, K)
    before = hg.evaluate(model, loss, xv, yv)
    hist = hg.fit(model, loss, optim.Adam(model, lr=0.03), x, y, epochs=15, batch_size=32,
                  validation_data=(xv, yv), progress_bar=False).history
    assert before["accuracy"] < 0.5  # chance is 1/4
    assert hist["val_accuracy"][-1] >= 0.98, hist["val_accuracy"]
    assert hist["val_loss"][-1] < 0.1 * before["loss"]
    # the first two steps have no label and are not counted
    pred = model.predict(xv).argmax(axis=-1)
    assert (pred[:, 2:] == yv[:, 2:]).mean() == pytest.approx(hist["val_accuracy"][-1])


# -- many-to-one -----------------------------------------------------------------------------------

def test_lstm_learns_the_adding_problem():
    x, y = adding_data(1000)
    xv, yv = adding_data(300, seed=1)
    model = hg.Sequential([layers.LSTM(2, 16, return_sequences=False, rng=0), layers.Dense(16, 1, rng=1)])
    loss = losses.MeanSquaredError()
    # predicting the mean of the targets: cost ½·Var(sum) ≈ ½·(2/12)
    baseline = 0.5 * float(((yv - y.mean()) ** 2).mean())
    assert 0.06 < baseline < 0.11
    hist = hg.fit(model, loss, optim.Adam(model, lr=0.01), x, y, epochs=25, batch_size=32,
                  validation_data=(xv, yv), progress_bar=False).history
    assert "accuracy" not in hist  # regression targets: no accuracy metric
    assert hist["val_loss"][-1] < 0.01, hist["val_loss"]
    assert hist["val_loss"][-1] < baseline / 20
    pred = model.predict(xv)
    assert pred.shape == (300, 1)
    assert float(np.abs(pred - yv).mean()) < 0.1
    # it reads the marks: moving a mark to another value changes the prediction accordingly
    probe = xv[:50].copy()
    probe[:, :, 0] = 0.5
    np.testing.assert_allclose(model.predict(probe)[:, 0], 1.0, atol=0.15)


# -- padded variable-length batches ---------------------------------------------------------------

def test_padded_variable_length_batches_train_and_accuracy_ignores_padding():
    x, y, _ = padded_echo_data(600)
    xv, yv, lv = padded_echo_data(200, seed=1)
    model = seq_classifier(mask_value=0.0)
    loss = losses.SoftmaxCrossEntropy()
    hist = hg.fit(model, loss, optim.Adam(model, lr=0.03), x, y, epochs=12, batch_size=32,
                  validation_data=(xv, yv), progress_bar=False).history
    assert hist["val_accuracy"][-1] >= 0.97, hist["val_accuracy"]

    out = model.predict(xv)
    pred = out.argmax(axis=-1)
    labelled = yv >= 0
    n_labelled = int(labelled.sum())
    assert n_labelled < 0.75 * yv.size  # plenty of padded / unlabelled steps
    acc = float((pred[labelled] == yv[labelled]).mean())
    # the reported accuracy is over labelled steps only ...
    assert hist["val_accuracy"][-1] == pytest.approx(acc, abs=1e-12)
    # ... not over every step (where padded steps would always count as wrong)
    assert hist["val_accuracy"][-1] > (pred == yv).mean() + 0.2
    # and the loss is the mean over labelled steps only
    logp = out - out.max(axis=-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=-1, keepdims=True))
    ce = -np.take_along_axis(logp, np.where(labelled, yv, 0)[..., None], axis=-1)[..., 0]
    assert hist["val_loss"][-1] == pytest.approx(float(ce[labelled].mean()), rel=1e-4)
    # the padding changes nothing: each sequence alone, truncated, gives the same predictions
    for i in range(5):
        L = lv[i]
        np.testing.assert_allclose(model.predict(xv[i:i + 1, :L])[0], out[i, :L], rtol=1e-4, atol=1e-5)


def test_padded_steps_get_no_gradient_from_the_loss():
    x, y, lengths = padded_echo_data(8, seed=3)
    model = seq_classifier(mask_value=0.0)
    for layer in model.layers:
        for k in layer.params:
            layer.params[k] = layer.params[k].astype(np.float64)
    loss = losses.SoftmaxCrossEntropy()
    out = model.forward(x.astype(np.float64), training=True)
    loss.forward(out, y)
    grad = loss.backward()
    assert not grad[y < 0].any()
    gx = model.backward(grad)
    for i, L in enumerate(lengths):
        assert not gx[i, L:].any()
    # the same model checked against finite differences on this loss
    result = hg.gradcheck(model, x.astype(np.float64), y, loss=loss, check_input=False)
    assert result.max_error < 1e-6, result.table()


# -- gradient clipping -------------------------------------------------------------------------------

def exploding_rnn():
    """An RNN whose large recurrent weights make BPTT gradients blow up."""
    model = hg.Sequential([
        layers.RNN(3, 8, return_sequences=False, rng=0, dtype=np.float64),
        layers.Dense(8, 2, rng=1, dtype=np.float64),
    ])
    model.layers[0].params["W_hh"] = model.layers[0].params["W_hh"] * 3.0
    return model


def _grads_and_params(model):
    grads = {(i, k): layer.grads[k].copy() for i, layer in enumerate(model.layers) for k in layer.params}
    params = {(i, k): layer.params[k].copy() for i, layer in enumerate(model.layers) for k in layer.params}
    return grads, params


def _backward_on_batch(model, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 30, 3)) * 2
    y = rng.standard_normal((16, 2)) * 10
    loss = losses.MeanSquaredError()
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())


def test_clip_norm_rescales_the_update_of_a_recurrent_model():
    model = exploding_rnn()
    _backward_on_batch(model)
    grads, before = _grads_and_params(model)
    norm = np.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    assert norm > 10
    assert optim.global_grad_norm(model) == pytest.approx(norm, rel=1e-12)
    opt = optim.SGD(model, lr=0.1, clip_norm=1.0)
    opt.step()
    deltas = {key: before[key] - model.layers[key[0]].params[key[1]] for key in before}
    step = np.sqrt(sum(float((d ** 2).sum()) for d in deltas.values()))
    assert step == pytest.approx(0.1, rel=1e-6)
    for key, d in deltas.items():  # same direction as the unclipped gradient
        np.testing.assert_allclose(d, 0.1 * grads[key] / norm, rtol=1e-6, atol=1e-15)
    assert optim.global_grad_norm(model) == pytest.approx(1.0, rel=1e-6)


def test_clip_value_clamps_each_element_of_a_recurrent_model():
    model = exploding_rnn()
    _backward_on_batch(model, seed=1)
    grads, before = _grads_and_params(model)
    c = 0.05
    assert max(float(np.abs(g).max()) for g in grads.values()) > 10 * c
    assert any((np.abs(g) < c).any() for g in grads.values())
    optim.SGD(model, lr=0.1, clip_value=c).step()
    for key in before:
        after = model.layers[key[0]].params[key[1]]
        np.testing.assert_allclose(before[key] - after, 0.1 * np.clip(grads[key], -c, c), rtol=1e-12, atol=1e-16)


class _StepRecorder(hg.Callback):
    """Global norm and largest element of each batch's parameter update."""

    def __init__(self):
        self.norms, self.maxes, self.grad_norms = [], [], []

    def _params(self):
        return [p.copy() for layer in self.model.layers for p in layer.params.values()]

    def on_batch_begin(self, batch, logs=None):
        self._before = self._params()

    def on_batch_end(self, batch, logs=None):
        d = [b - a for b, a in zip(self._before, self._params())]
        self.norms.append(float(np.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for v in d))))
        self.maxes.append(max(float(np.abs(v).max()) for v in d))
        self.grad_norms.append(optim.global_grad_norm(self.model))


@pytest.mark.parametrize("clip,lr", [({"clip_norm": 0.25}, 0.3), ({"clip_value": 0.1}, 0.2)],
                         ids=["clip_norm", "clip_value"])
def test_clipped_sgd_trains_an_lstm(clip, lr):
    x, y = adding_data(512)
    model = hg.Sequential([layers.LSTM(2, 12, return_sequences=False, rng=0), layers.Dense(12, 1, rng=1)])
    loss = losses.MeanSquaredError()
    before = hg.evaluate(model, loss, x, y)["loss"]
    rec = _StepRecorder()
    hist = hg.fit(model, loss, optim.SGD(model, lr=lr, momentum=0.0, **clip), x, y, epochs=6, batch_size=16,
                  callbacks=[rec], progress_bar=False).history
    after = hg.evaluate(model, loss, x, y)["loss"]
    assert np.isfinite(hist["loss"]).all()
    assert after < 0.5 * before, (before, hist["loss"])
    if "clip_norm" in clip:
        bound = clip["clip_norm"]
        assert max(rec.norms) <= lr * bound * (1 + 1e-5)
        assert max(rec.grad_norms) <= bound * (1 + 1e-5)
        # clipping was active: some batches' gradients were rescaled to exactly the bound
        assert sum(g == pytest.approx(bound, rel=1e-5) for g in rec.grad_norms) >= 10
    else:
        bound = clip["clip_value"]
        assert max(rec.maxes) <= lr * bound * (1 + 1e-5)
        # clipping was active: some gradient elements sat exactly at the bound
        assert sum(m == pytest.approx(lr * bound, rel=1e-5) for m in rec.maxes) >= 10
