"""Sequential: forward/backward chaining, gradient checks of whole models, predict, summary,
get_weights/set_weights, astype and backward(input_grad=False)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_gradcheck

import handgrad as hg
from handgrad import layers, losses


def mlp(dtype=np.float32, sizes=(6, 8, 5, 3), seed=0, dropout=None):
    stack = [layers.Dense(sizes[0], sizes[1], bias_init="normal", rng=seed, dtype=dtype), layers.Tanh()]
    if dropout is not None:
        stack.append(layers.Dropout(dropout, rng=seed))
    stack += [layers.Dense(sizes[1], sizes[2], bias_init="normal", rng=seed + 1, dtype=dtype), layers.Sigmoid(),
              layers.Dense(sizes[2], sizes[3], bias_init="normal", rng=seed + 2, dtype=dtype)]
    return hg.Sequential(stack)


def rnd(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- forward / backward ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_backward_chain_the_layers(dtype):
    model = mlp(dtype)
    x = rnd((4, 6), dtype)
    g = rnd((4, 3), dtype, seed=1)
    y = model.forward(x, training=True)
    gx = model.backward(g)
    assert y.dtype == dtype and gx.dtype == dtype

    h, hs = x, []
    for layer in model.layers:
        hs.append(h)
        h = layer.forward(h, training=True)
    np.testing.assert_array_equal(y, h)
    grad = g
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
    np.testing.assert_array_equal(gx, grad)
    np.testing.assert_array_equal(model(x), model.forward(x))
    assert len(model) == 5 and model[0] is model.layers[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5])
def test_gradcheck_model_random_projection(n, dtype):
    model = mlp(dtype)
    result = assert_gradcheck(model, rnd((n, 6), dtype), max_entries=None)
    assert set(result.errors) == {"0.W", "0.b", "2.W", "2.b", "4.W", "4.b", "input"}
    # the model's own arrays are put back, in their dtype
    assert model[0].params["W"].dtype == dtype


@pytest.mark.parametrize("target_kind", ["labels", "probabilities"])
def test_gradcheck_model_with_loss(target_kind):
    model = hg.Sequential([layers.Normalize(0.5, 2.0), layers.Dense(5, 7, rng=0), layers.Tanh(),
                           layers.Dense(7, 4, rng=1)])
    x = rnd((6, 5))
    lab = np.array([0, 1, 2, 3, 3, 1])
    target = lab if target_kind == "labels" else np.eye(4)[lab] * 0.7 + 0.075
    assert_gradcheck(model, x, target, loss=losses.SoftmaxCrossEntropy(), max_entries=None)


def test_gradcheck_model_with_dropout_and_flatten():
    model = hg.Sequential([layers.Flatten(), layers.Dense(6, 5, rng=0, bias_init="normal"),
                           layers.Tanh(), layers.Dropout(0.4, rng=3), layers.Dense(5, 2, rng=1)])
    x = rnd((3, 2, 3))
    assert_gradcheck(model, x, max_entries=None)


def test_gradcheck_model_with_stochastic_binary_output():
    # StochasticBinary's backward is the derivative of its expectation σ(z): checkable
    model = hg.Sequential([layers.Dense(5, 6, rng=0), layers.Tanh(), layers.Dense(6, 3, rng=1),
                           layers.StochasticBinary(rng=1)])
    assert_gradcheck(model, rnd((4, 5)), max_entries=None)


def test_gradcheck_model_with_dropout_and_stochastic_binary_output():
    """Adding a Dropout below the StochasticBinary output must not break the check: the
    numeric and the analytic pass have to see the same dropout mask."""
    model = hg.Sequential([layers.Dense(5, 6, rng=0), layers.Tanh(), layers.Dropout(0.5, rng=2),
                           layers.Dense(6, 3, rng=1), layers.StochasticBinary(rng=1)])
    assert_gradcheck(model, rnd((4, 5)), max_entries=None)


def test_model_of_only_parameter_free_layers():
    model = hg.Sequential([layers.Flatten(), layers.Tanh(), layers.Softmax()])
    x = rnd((2, 3, 4))
    y = model.forward(x, training=True)
    assert y.shape == (2, 12)
    assert model.backward(np.ones_like(y)).shape == (2, 3, 4)
    assert model.num_params == 0
    assert model.get_weights() == {}
    assert_gradcheck(model, x, max_entries=None)


def test_backward_overwrites_model_grads():
    model = mlp(np.float64)
    x, g = rnd((4, 6)), rnd((4, 3), seed=1)
    model.forward(x, training=True)
    model.backward(g)
    first = {f"{i}.{k}": v.copy() for i, l in enumerate(model.layers) for k, v in l.grads.items()}
    model.forward(x, training=True)
    model.backward(g)
    for i, l in enumerate(model.layers):
        for k, v in l.grads.items():
            np.testing.assert_array_equal(v, first[f"{i}.{k}"])
            assert v.shape == l.params[k].shape


def test_backward_before_forward_and_wrong_shape():
    model = mlp()
    with pytest.raises(RuntimeError, match="backward"):
        model.backward(np.ones((2, 3), np.float32))
    model.forward(np.ones((2, 6), np.float32), training=True)
    with pytest.raises(ValueError, match=r"Dense\(5→3\).*\(2, 3\).*\(2, 4\)"):
        model.backward(np.ones((2, 4), np.float32))


def test_wrong_input_names_the_layer():
    with pytest.raises(ValueError, match=r"Dense\(6→8\).*6.*\(2, 7\)"):
        mlp().forward(np.ones((2, 7), np.float32))
    with pytest.raises(TypeError, match=r"Dense\(6→8\)"):
        mlp().forward(np.ones((2, 6), np.int64))


def test_constructor_rejects_non_layers():
    with pytest.raises(TypeError, match=r"Sequential.*position 1"):
        hg.Sequential([layers.Dense(2, 2), "relu"])


# -- backward(input_grad=False) ----------------------------------------------------------------------

def test_input_grad_false_returns_none_and_same_param_grads():
    model = mlp(np.float64)
    x, g = rnd((4, 6)), rnd((4, 3), seed=1)
    model.forward(x, training=True)
    gx = model.backward(g)
    assert gx is not None
    full = {name: model[int(name.split(".")[0])].grads[name.split(".")[1]].copy()
            for name, _ in model.parameters()}
    model.forward(x, training=True)
    assert model.backward(g, input_grad=False) is None
    for name in full:
        i, k = name.split(".")
        np.testing.assert_array_equal(model[int(i)].grads[k], full[name])


def test_input_grad_false_skips_frozen_layers_below_every_trainable_one():
    model = hg.Sequential([layers.Normalize(0.0, 2.0), layers.Dense(4, 5, rng=0), layers.ReLU(),
                          layers.Dense(5, 3, rng=1), layers.Tanh(), layers.Dense(3, 2, rng=2)])
    model[1].trainable = False
    sentinel = {k: np.full_like(v, 7.0) for k, v in model[1].grads.items()}
    model[1].grads.update({k: v.copy() for k, v in sentinel.items()})
    x = rnd((3, 4), np.float32) + 1.0
    g = rnd((3, 2), np.float32, seed=1)
    model.forward(x, training=True)
    assert model.backward(g, input_grad=False) is None
    for k in sentinel:  # frozen first Dense: not visited, grads untouched
        np.testing.assert_array_equal(model[1].grads[k], sentinel[k])
    # the trainable layers' grads equal a full backward's
    ref = hg.Sequential([layers.Normalize(0.0, 2.0), layers.Dense(4, 5, rng=0), layers.ReLU(),
                         layers.Dense(5, 3, rng=1), layers.Tanh(), layers.Dense(3, 2, rng=2)])
    ref.forward(x, training=True)
    ref.backward(g)
    for i in (3, 5):
        for k in ("W", "b"):
            np.testing.assert_allclose(model[i].grads[k], ref[i].grads[k], rtol=1e-6)


def test_input_grad_false_with_activation_first():
    model = hg.Sequential([layers.Tanh(), layers.Dense(3, 2, rng=0, dtype=np.float64)])
    x, g = rnd((4, 3)), rnd((4, 2), seed=1)
    model.forward(x, training=True)
    assert model.backward(g, input_grad=False) is None
    np.testing.assert_allclose(model[1].grads["W"], g.T @ np.tanh(x), rtol=1e-13)


# -- predict ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 3, 7, 1024])
def test_predict_matches_forward_in_batches(batch_size):
    model = mlp(np.float32)
    x = rnd((7, 6), np.float32)
    out = model.predict(x, batch_size=batch_size)
    assert isinstance(out, np.ndarray)
    assert out.shape == (7, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, model.forward(x), rtol=1e-5, atol=1e-6)


def test_predict_is_inference_mode():
    model = mlp(np.float64, dropout=0.5)
    x = rnd((5, 6))
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    np.testing.assert_allclose(model.predict(x), model.forward(x, training=False), rtol=1e-14)


def test_predict_converts_to_model_dtype():
    model = mlp(np.float64)
    x32 = rnd((3, 6), np.float32)
    out = model.predict(x32)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, model.forward(x32.astype(np.float64)), rtol=1e-14)
    out_int = model.predict(np.ones((2, 6), np.int64))
    np.testing.assert_allclose(out_int, model.forward(np.ones((2, 6))), rtol=1e-14)


@pytest.mark.parametrize("bs", [0, -1, 2.5])
def test_predict_bad_batch_size(bs):
    with pytest.raises(ValueError, match="predict"):
        mlp().predict(np.ones((2, 6), np.float32), batch_size=bs)


def test_predict_empty_and_non_numeric():
    with pytest.raises(ValueError, match="predict"):
        mlp().predict(np.ones((0, 6), np.float32))
    with pytest.raises(TypeError, match="predict"):
        mlp().predict(np.array([["a"] * 6]))


# -- summary ----------------------------------------------------------------------------------------

def test_summary_lists_layers_shapes_and_counts():
    model = hg.Sequential([layers.Dense(784, 256), layers.ReLU(), layers.Dropout(0.2),
                           layers.Dense(256, 10)])
    text = model.summary()
    lines = text.splitlines()
    assert any("Dense(784→256)" in ln and "(N, 256)" in ln and "200,960" in ln for ln in lines)
    assert any("ReLU()" in ln and "(N, 256)" in ln for ln in lines)
    assert any("Dense(256→10)" in ln and "(N, 10)" in ln and "2,570" in ln for ln in lines)
    assert "total" in lines[-1] and "203,530" in lines[-1]
    assert model.num_params == 203_530


def test_summary_with_input_shape_through_flatten():
    model = hg.Sequential([layers.Flatten(), layers.Dense(12, 4), layers.Softmax()])
    text = model.summary(input_shape=(3, 2, 2))
    assert "(N, 12)" in text and "(N, 4)" in text
    assert "total" in text and "52" in text


# -- weights ------------------------------------------------------------------------------------------

def test_get_weights_returns_copies_with_names():
    model = mlp()
    w = model.get_weights()
    assert set(w) == {"0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}
    assert w["0.W"].shape == (8, 6) and w["4.b"].shape == (3,)
    w["0.W"][...] = 123.0
    assert not (model[0].params["W"] == 123.0).any()


def test_set_weights_round_trip_in_place():
    a, b = mlp(seed=0), mlp(seed=10)
    x = rnd((3, 6), np.float32)
    assert not np.allclose(a.forward(x), b.forward(x))
    ids = {name: id(p) for name, p in b.parameters()}
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert {name: id(p) for name, p in b.parameters()} == ids  # same array objects
    b.set_weights({k: v.astype(np.float64) for k, v in a.get_weights().items()})
    assert b[0].params["W"].dtype == np.float32  # keeps the model's dtype


def test_set_weights_rejects_wrong_keys_and_shapes():
    model = mlp()
    w = model.get_weights()
    with pytest.raises(ValueError, match="set_weights"):
        model.set_weights({k: v for k, v in w.items() if k != "0.b"})
    with pytest.raises(ValueError, match="set_weights"):
        model.set_weights({**w, "9.W": w["0.W"]})
    bad = dict(w)
    bad["2.W"] = np.zeros((8, 5), np.float32)
    with pytest.raises(ValueError, match=r"set_weights.*2\.W.*\(5, 8\).*\(8, 5\)"):
        model.set_weights(bad)


# -- astype -------------------------------------------------------------------------------------------

def test_astype_float64_converts_params_and_grads():
    model = mlp(np.float32)
    x = rnd((4, 6), np.float32)
    before = model.forward(x).astype(np.float64)
    assert model.astype(np.float64) is model
    for layer in model.layers:
        for k in layer.params:
            assert layer.params[k].dtype == np.float64
            assert layer.grads[k].dtype == np.float64
            assert layer.grads[k].shape == layer.params[k].shape
    assert model.dtype == np.float64
    y = model.forward(x.astype(np.float64), training=True)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, before, rtol=1e-5, atol=1e-6)
    gx = model.backward(np.ones_like(y))
    assert gx.dtype == np.float64
    assert model[0].grads["W"].dtype == np.float64
    model.astype("float32")
    assert model[0].params["W"].dtype == np.float32


def test_astype_rejects_non_float_dtypes():
    with pytest.raises(TypeError, match="astype"):
        mlp().astype(np.int32)


# -- one pass's arrays at a time, gradients written in place ------------------------------------------

def _chain_model(dtype=np.float32):
    return hg.Sequential([layers.Normalize(0.5, 2.0), layers.Conv2D(2, 3, 3, padding=1, rng=0, dtype=dtype),
                          layers.ReLU(), layers.MaxPool2D(2), layers.Flatten(), layers.Dropout(0.0),
                          layers.Dense(3 * 3 * 3, 6, rng=1, dtype=dtype), layers.Tanh(), layers.Dropout(0.4, rng=2),
                          layers.Dense(6, 5, rng=3, dtype=dtype), layers.Sigmoid(), layers.ReLU()])


class _Probe(layers.base.Layer):
    """First layer of a model: records, when it runs, what every other layer still keeps."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def _forward(self, x, training):
        self.seen.append([getattr(layer, name, None) is None
                          for layer in self.model.layers[1:] for name in type(layer)._cache])
        return x

    def _backward(self, grad_y, need_input_grad):
        return grad_y


def test_a_training_forward_drops_the_last_pass_before_computing():
    """Each layer's arrays of the last pass are gone before the first layer of the next one
    runs (peak memory is one pass, not two); an inference forward keeps them (backward after it
    still differentiates the last training pass)."""
    inner = _chain_model()
    probe = _Probe(inner)
    model = hg.Sequential([probe, *inner.layers])
    probe.model = model
    x = np.random.default_rng(0).standard_normal((4, 2, 6, 6)).astype(np.float32)
    model.forward(x, training=True)
    y = model.forward(x, training=False)
    assert not all(probe.seen[-1])              # what the training pass kept survives inference
    gx = model.backward(np.ones(y.shape, np.float32))
    assert gx.shape == x.shape
    model.forward(x, training=True)
    assert all(probe.seen[-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_writes_only_into_its_own_gradients(dtype):
    """``Sequential.backward`` lets a layer reuse the gradient an earlier layer of the same call
    made, never the caller's (nor a view of it, as Flatten or Dropout(0) pass on), and gives the
    bits of chaining every layer's ``backward``."""
    x = np.random.default_rng(1).standard_normal((4, 2, 6, 6)).astype(dtype)
    model = _chain_model(dtype)
    for layer in model.layers:
        if layer.stochastic:
            layer.set_rng(5)
    y = model.forward(x, training=True)
    g = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    given = g.copy()
    gx = model.backward(g)
    np.testing.assert_array_equal(g, given)
    ref, grads = given.copy(), [{k: v.copy() for k, v in layer.grads.items()} for layer in model.layers]
    for layer in reversed(model.layers):
        ref = layer.backward(ref)
    np.testing.assert_array_equal(gx, ref)
    for layer, before in zip(model.layers, grads):
        for k in before:
            np.testing.assert_array_equal(layer.grads[k], before[k])
    # only views of the caller's gradient reach the first layers: none of them is written
    short = hg.Sequential([layers.ReLU(), layers.Dropout(0.0), layers.Flatten()])
    y = short.forward(x, training=True)
    g = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    given = g.copy()
    short.backward(g)
    np.testing.assert_array_equal(g, given)


def test_backward_never_writes_into_what_a_users_layer_returns():
    """A layer defined outside handgrad may return an array it keeps (here: its own buffer,
    and a Flatten's view of it): the layers below it compute into new arrays."""

    class Keeps(layers.base.Layer):
        def _forward(self, x, training):
            self.buffer = np.full(x.shape, -1.0, dtype=x.dtype)
            return x

        def _backward(self, grad_y, need_input_grad):
            return self.buffer

    x = np.random.default_rng(4).standard_normal((3, 2, 2, 2))
    for model in (hg.Sequential([layers.ReLU(), Keeps()]),
                  hg.Sequential([layers.ReLU(), layers.Flatten(), Keeps()])):
        keeps = model.layers[-1]
        y = model.forward(x, training=True)
        model.backward(np.ones(y.shape))
        np.testing.assert_array_equal(keeps.buffer, -1.0)
