"""Reuse of trained layers (``003`` §5): freeze/unfreeze, replace_head, clone, and a fine-tuning
run on the shipped subset (lenet5 trained on classes 0–4, new head trained on classes 5–9)."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers, losses, optim, presets, transfer


def small_cnn(dtype=np.float32, classes=10, seed=0):
    return hg.Sequential([
        layers.Normalize(0.3, 0.35),
        layers.Conv2D(1, 4, 3, rng=seed, dtype=dtype), layers.ReLU(), layers.MaxPool2D(2),
        layers.Flatten(),
        layers.Dense(4 * 5 * 5, 16, rng=seed + 1, dtype=dtype), layers.ReLU(),
        layers.Dense(16, classes, rng=seed + 2, dtype=dtype),
    ])


def data(n=64, seed=0, classes=10, size=12):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, size, size), dtype=np.float32), rng.integers(0, classes, n)


# -- freeze / unfreeze selection -------------------------------------------------------------------

def frozen(model):
    return [i for i, layer in enumerate(model.layers) if not layer.trainable]


def test_freeze_selects_by_index_slice_list_and_but_last():
    m = small_cnn()
    n = len(m.layers)
    assert transfer.freeze(m) is m and frozen(m) == list(range(n))
    assert transfer.unfreeze(m) is m and frozen(m) == []
    assert frozen(transfer.freeze(small_cnn(), 1)) == [1]
    assert frozen(transfer.freeze(small_cnn(), -1)) == [n - 1]
    assert frozen(transfer.freeze(small_cnn(), slice(0, 5))) == [0, 1, 2, 3, 4]
    assert frozen(transfer.freeze(small_cnn(), [5, 1, -1, 1])) == [1, 5, n - 1]
    # but_last counts layers with parameters from the top: Conv2D (1), Dense (5), Dense (7)
    assert frozen(transfer.freeze(small_cnn(), but_last=1)) == list(range(7))
    assert frozen(transfer.freeze(small_cnn(), but_last=2)) == list(range(5))
    assert frozen(transfer.freeze(small_cnn(), but_last=3)) == [0]  # only Normalize lies below
    assert frozen(transfer.freeze(small_cnn(), but_last=0)) == list(range(n))
    m = transfer.freeze(small_cnn())
    assert frozen(transfer.unfreeze(m, but_last=1)) == [7]  # the same selection as freeze's
    assert transfer.trainable_layers(m) == [1, 5]


@pytest.mark.parametrize("kwargs, exc", [
    ({"layers": 99}, ValueError), ({"layers": -99}, ValueError), ({"layers": "all"}, TypeError),
    ({"layers": [0.5]}, TypeError), ({"but_last": 4}, ValueError), ({"but_last": -1}, ValueError),
    ({"layers": 1, "but_last": 1}, ValueError),
])
def test_freeze_rejects_bad_selections(kwargs, exc):
    with pytest.raises(exc, match="freeze"):
        transfer.freeze(small_cnn(), **kwargs)


def test_freeze_rejects_non_models():
    with pytest.raises(TypeError, match="freeze: expected a Sequential"):
        transfer.freeze(layers.Dense(2, 2))


def test_freeze_resets_stale_gradients():
    m = small_cnn()
    x, y = data()
    loss = losses.SoftmaxCrossEntropy()
    loss.forward(m.forward(x, training=True), y)
    m.backward(loss.backward())
    assert np.abs(m.layers[1].grads["W"]).sum() > 0
    transfer.freeze(m, but_last=1)
    for layer in m.layers[:7]:
        for g in layer.grads.values():
            assert not g.any()


# -- frozen layers during training -----------------------------------------------------------------

@pytest.mark.parametrize("make_opt", [
    lambda m: optim.SGD(m, 0.1, momentum=0.9, weight_decay=1e-2),
    lambda m: optim.Adam(m, 1e-2, weight_decay=1e-2),
], ids=["sgd-momentum-l2", "adam-l2"])
def test_frozen_params_bit_for_bit_unchanged_and_grads_never_computed(make_opt):
    m = small_cnn()
    transfer.freeze(m, but_last=1)
    before = {name: p.copy() for name, p in m.parameters()}
    for layer in m.layers[:7]:  # a sentinel: any write (or any use by the optimizer) would show
        for g in layer.grads.values():
            g[...] = np.nan
    x, y = data(96)
    hg.fit(m, losses.SoftmaxCrossEntropy(), make_opt(m), x, y, epochs=3, batch_size=16)
    after = dict(m.parameters())
    for name in before:
        if name.startswith("7."):
            assert not np.array_equal(before[name], after[name]), f"head {name} did not train"
        else:
            assert before[name].tobytes() == after[name].tobytes(), f"frozen {name} changed"
    for layer in m.layers[:7]:
        for g in layer.grads.values():
            assert np.isnan(g).all()


def test_backward_does_not_visit_frozen_layers_below_the_head(monkeypatch):
    m = small_cnn()
    transfer.freeze(m, but_last=1)
    calls = []
    for i, layer in enumerate(m.layers):
        orig = layer._backward
        monkeypatch.setattr(layer, "_backward", lambda g, need, i=i, orig=orig: (calls.append(i), orig(g, need))[1])
    x, y = data(8)
    hg.fit(m, losses.SoftmaxCrossEntropy(), optim.SGD(m, 0.1), x, y, epochs=1, batch_size=8)
    assert calls == [7]
    # a frozen layer *between* trainable ones passes the error on without computing its own gradient
    m2 = transfer.freeze(small_cnn(), [5])
    x, y = data(8)
    loss = losses.SoftmaxCrossEntropy()
    loss.forward(m2.forward(x, training=True), y)
    m2.layers[5].grads["W"][...] = np.nan
    m2.backward(loss.backward(), input_grad=False)
    assert np.isnan(m2.layers[5].grads["W"]).all()
    assert np.abs(m2.layers[1].grads["W"]).sum() > 0


def test_unfrozen_layers_train_again():
    m = transfer.freeze(small_cnn())
    transfer.unfreeze(m, [1])
    w = m.layers[1].params["W"].copy()
    x, y = data()
    hg.fit(m, losses.SoftmaxCrossEntropy(), optim.SGD(m, 0.1), x, y, epochs=1, batch_size=16)
    assert not np.array_equal(w, m.layers[1].params["W"])


def test_trainable_flags_survive_save_and_load(tmp_path):
    m = transfer.freeze(small_cnn(), but_last=1)
    hg.save(m, tmp_path / "m.safetensors")
    assert frozen(hg.load(tmp_path / "m.safetensors")) == frozen(m)


# -- replace_head / clone ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_replace_head_gives_a_fresh_output_layer_and_leaves_the_model_alone(dtype):
    m = small_cnn(dtype)
    before = m.get_weights()
    n = transfer.replace_head(m, 3, rng=7)
    assert len(n.layers) == len(m.layers)
    head = n.layers[-1]
    assert isinstance(head, layers.Dense) and (head.in_features, head.out_features) == (16, 3)
    assert head.params["W"].dtype == dtype and head.trainable
    assert not head.params["b"].any()
    # the layers below are copies with the same values
    for a, b in zip(m.layers[:-1], n.layers[:-1]):
        assert a is not b and type(a) is type(b)
        for k in a.params:
            assert np.array_equal(a.params[k], b.params[k]) and a.params[k] is not b.params[k]
    x, _ = data(4)
    assert n.forward(x).shape == (4, 3)
    np.testing.assert_array_equal(n.layers[-1].params["W"], transfer.replace_head(m, 3, rng=7).layers[-1].params["W"])
    x, y = data(32, classes=3)
    hg.fit(n, losses.SoftmaxCrossEntropy(), optim.SGD(n, 0.1), x, y, epochs=1, batch_size=8)
    for k, v in m.get_weights().items():
        assert np.array_equal(v, before[k]), f"the original model's {k} changed"


def test_replace_head_from_an_earlier_dense_and_shared_layers():
    m = small_cnn()
    n = transfer.replace_head(m, 4, from_layer=5, rng=0)
    assert len(n.layers) == 6 and (n.layers[-1].in_features, n.layers[-1].out_features) == (100, 4)
    shared = transfer.replace_head(m, 4, copy=False)
    assert all(a is b for a, b in zip(shared.layers[:-1], m.layers[:-1]))
    frozen_model = transfer.freeze(small_cnn(), but_last=1)
    assert frozen(transfer.replace_head(frozen_model, 2)) == list(range(7))


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 0}, "num_classes"), ({"num_classes": 3, "from_layer": 6}, "Dense"),
    ({"num_classes": 3, "from_layer": 42}, "from_layer"), ({"num_classes": 2.5}, "num_classes"),
])
def test_replace_head_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        transfer.replace_head(small_cnn(), **kwargs)


def test_clone_is_independent():
    m = small_cnn()
    c = transfer.clone(m)
    x, _ = data(3)
    np.testing.assert_array_equal(c.forward(x), m.forward(x))
    m.layers[1].params["W"] += 1.0
    assert not np.allclose(c.forward(x), m.forward(x))


# -- the fine-tuning example ------------------------------------------------------------------------

def test_finetune_head_on_new_classes_reaches_a_sensible_accuracy():
    """lenet5 learns classes 0–4 (tops, trousers, pullovers, dresses, coats); its layers are
    then reused for classes 5–9 (sandals, shirts, sneakers, bags, boots), training only a new
    5-way head. Measured on the subset test images of classes 5–9: 0.77–0.84 over seeds 0–3
    after one epoch on classes 0–4 (0.76–0.81 there) and two head-only epochs (chance: 0.20);
    the bars leave margin."""
    (x, y), (xt, yt) = hg.data.load_fashion_mnist_subset()
    x = hg.data.to_float(x).reshape(-1, 1, 28, 28)
    xt = hg.data.to_float(xt).reshape(-1, 1, 28, 28)
    a, at = y < 5, yt < 5
    loss = losses.SoftmaxCrossEntropy()
    base = presets.lenet5(classes=5, seed=0)
    hist = hg.fit(base, loss, optim.SGD(base, 0.03, momentum=0.9), x[a], y[a], epochs=1, batch_size=32,
                  validation_data=(xt[at], yt[at]))
    assert hist.history["val_accuracy"][-1] > 0.6
    net = transfer.freeze(transfer.replace_head(base, 5, rng=0), but_last=1)
    features = {name: p.copy() for name, p in net.parameters() if not name.startswith(f"{len(net.layers) - 1}.")}
    hist = hg.fit(net, loss, optim.SGD(net, 0.05, momentum=0.9), x[~a], y[~a] - 5, epochs=2, batch_size=32,
                  validation_data=(xt[~at], yt[~at] - 5))
    assert hist.history["val_accuracy"][-1] > 0.65, hist.history
    for name, p in net.parameters():
        if name in features:
            assert p.tobytes() == features[name].tobytes()
