"""The layer contract of ``DESIGN.md`` (Layers) checked once, for every registered layer.

Each case is a factory (a layer of a given config, the shapes of two batches, an input that
must be rejected) and every test below runs over all of them:

- ``params``/``grads``: the same keys and shapes from construction on, in the layer's dtype;
  ``params`` is the single source of truth (replaced or edited in place, the layer uses it);
- float32 and float64: a layer computes in its parameters' (or its input's) dtype, and its
  output has ``output_shape``;
- ``backward`` overwrites ``grads`` and never accumulates: twice on one batch gives the same
  result, and after a second batch the grads are bit for bit those of a fresh copy that saw
  only that batch;
- ``get_config`` → ``from_config`` (through JSON) rebuilds the same layer;
- ``hg.save`` / ``hg.load`` of the layer inside a ``Sequential``: same config, ``repr`` and
  ``trainable`` flag, bit-identical params, the same outputs (stateful layers keep carrying
  their state);
- bad input raises ``TypeError``/``ValueError`` naming the layer;
- what a training forward keeps for backward is declared in ``_cache``: ``_forget`` (which
  ``Sequential.forward(training=True)`` calls on every layer first) drops all of it, and
  ``backward`` then asks for a new forward; ``_backward_owned`` (the in-place backward
  ``Sequential`` uses on gradients it made) gives the bits of ``backward``.

A layer registered in ``handgrad.layers.base.REGISTRY`` without a case here fails
``test_every_registered_layer_has_a_case``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
from helpers import padded_batch

import handgrad as hg
from handgrad import layers as L
from handgrad.layers.base import REGISTRY

DTYPES = [np.float32, np.float64]


@dataclass(frozen=True)
class Case:
    """``make(dtype)`` builds the layer; ``shapes`` are two batch shapes (the second of another
    size: what is left of the first batch must not show); ``lengths`` pads sequences from
    these step counts on (masked recurrent layers); ``bad_shape`` an input the layer rejects."""

    id: str
    make: Callable
    shapes: tuple
    bad_shape: tuple | None = None
    lengths: tuple | None = field(default=None)

    @property
    def cls(self) -> str:
        return self.id.split("-")[0]

    def inputs(self, which: int, dtype, seed: int = 0):
        shape = self.shapes[which]
        if self.lengths is None:
            return np.random.default_rng(seed + which).standard_normal(shape).astype(dtype)
        lengths = self.lengths[which]
        return padded_batch(lengths, shape[1], shape[2], seed=seed + which, dtype=dtype)


def conv(cin, cout, k, s=1, p=0, **kw):
    return lambda dt: L.Conv2D(cin, cout, k, stride=s, padding=p, rng=1, dtype=dt, **kw)


CASES = [
    Case("Dense", lambda dt: L.Dense(4, 3, bias_init="normal", rng=1, dtype=dt), ((5, 4), (2, 4)), (5, 3)),
    Case("Dense-sequence", lambda dt: L.Dense(4, 3, rng=1, dtype=dt), ((2, 3, 4), (1, 5, 4)), (2, 3, 5)),
    Case("Dense-xavier", lambda dt: L.Dense(5, 4, weight_init="xavier_uniform", rng=3, dtype=dt),
         ((3, 5), (1, 5)), (3, 4, 5, 6)),
    Case("Conv2D-basic", conv(3, 4, (2, 3)), ((2, 3, 5, 7), (1, 3, 5, 7)), (2, 2, 5, 7)),
    Case("Conv2D-stride2", conv(2, 3, 3, s=2), ((2, 2, 7, 7), (1, 2, 7, 7)), (2, 2, 7)),
    Case("Conv2D-pad(0,1)", conv(2, 2, (3, 2), p=(0, 1)), ((2, 2, 5, 4), (1, 2, 5, 4)), (2, 2, 2, 1)),
    Case("Conv2D-stride(2,1)-pad(1,2)", conv(2, 4, (3, 2), s=(2, 1), p=(1, 2), bias_init="normal"),
         ((3, 2, 9, 7), (1, 2, 6, 5)), (3, 9, 7, 2)),
    Case("Conv2D-1x1-stride2", conv(4, 3, 1, s=2, bias_init="normal"), ((2, 4, 5, 4), (1, 4, 3, 3)), (2, 3, 5, 4)),
    Case("Conv2D-untied", conv(2, 3, 3, p=1, untied_bias=(6, 6), bias_init="normal"),
         ((2, 2, 6, 6), (1, 2, 6, 6)), (2, 2, 7, 7)),
    Case("MaxPool2D-3-stride2", lambda dt: L.MaxPool2D(3, stride=2), ((2, 2, 7, 7), (1, 2, 5, 9)), (2, 7, 7)),
    Case("MaxPool2D-(2,3)-stride(1,2)", lambda dt: L.MaxPool2D((2, 3), stride=(1, 2)),
         ((2, 3, 6, 7), (1, 3, 4, 5)), (2, 3, 1, 7)),
    Case("AvgPool2D-3-stride2", lambda dt: L.AvgPool2D(3, stride=2), ((2, 2, 7, 7), (1, 2, 5, 9)), (2, 7, 7)),
    Case("AvgPool2D-2", lambda dt: L.AvgPool2D(2), ((2, 3, 4, 4), (1, 3, 6, 2)), (2, 3, 1, 4)),
    Case("Sigmoid", lambda dt: L.Sigmoid(), ((4, 5), (2, 3, 2))),
    Case("Tanh", lambda dt: L.Tanh(), ((4, 5), (1, 7))),
    Case("ReLU", lambda dt: L.ReLU(), ((4, 5), (2, 2, 3))),
    Case("Identity", lambda dt: L.Identity(), ((4, 5), (1, 2))),
    Case("Softmax", lambda dt: L.Softmax(), ((4, 5), (2, 3, 5))),
    Case("BinaryThreshold", lambda dt: L.BinaryThreshold(theta=0.25), ((4, 5), (1, 5))),
    Case("StochasticBinary", lambda dt: L.StochasticBinary(rng=2), ((4, 5), (2, 6))),
    Case("Dropout", lambda dt: L.Dropout(0.3, rng=2), ((6, 9), (2, 2, 3))),
    Case("Dropout-p0", lambda dt: L.Dropout(0.0), ((3, 4), (1, 4))),
    Case("Flatten", lambda dt: L.Flatten(), ((2, 3, 4, 5), (1, 2, 2)), (5,)),
    Case("Normalize", lambda dt: L.Normalize(mean=0.25, std=1.75), ((4, 5), (1, 1, 3))),
    Case("RNN", lambda dt: L.RNN(3, 4, rng=1, dtype=dt), ((2, 5, 3), (3, 2, 3)), (2, 5, 4)),
    Case("RNN-sigmoid-masked", lambda dt: L.RNN(3, 5, activation="sigmoid", mask_value=0.0, rng=1, dtype=dt),
         ((3, 4, 3), (2, 3, 3)), (3, 4), lengths=((4, 2, 1), (3, 1))),
    Case("RNN-last-stateful", lambda dt: L.RNN(5, 4, return_sequences=False, stateful=True, rng=2, dtype=dt),
         ((3, 4, 5), (2, 2, 5)), (3, 0, 5)),
    Case("LSTM-peepholes", lambda dt: L.LSTM(3, 4, peepholes=True, rng=1, dtype=dt), ((2, 5, 3), (3, 2, 3)),
         (2, 5, 4)),
    Case("LSTM-peepholes-masked", lambda dt: L.LSTM(3, 5, peepholes=True, mask_value=0.0, forget_bias=2.0, rng=1,
                                                    dtype=dt),
         ((3, 4, 3), (2, 3, 3)), (3, 4, 3, 1), lengths=((4, 2, 1), (3, 1))),
    Case("LSTM-last-stateful", lambda dt: L.LSTM(5, 4, return_sequences=False, stateful=True, forget_bias=0.5,
                                                 rng=2, dtype=dt),
         ((3, 4, 5), (2, 2, 5)), (3, 4, 4)),
]
IDS = [c.id for c in CASES]


def build(case: Case, dtype=np.float64, seed: int = 7):
    """The case's layer with every parameter set to random values in place (zero biases or
    zero peepholes would hide mistakes)."""
    layer = case.make(dtype)
    rng = np.random.default_rng(seed)
    for p in layer.params.values():
        p[...] = rng.standard_normal(p.shape)
    return layer


def twin(layer):
    """A fresh layer of the same config holding copies of the same parameters."""
    new = type(layer).from_config(json.loads(json.dumps(layer.get_config())), deferred=True)
    new.params = {k: p.copy() for k, p in layer.params.items()}
    new.zero_grads()
    return new


def reset(layer):
    if hasattr(layer, "reset_state"):
        layer.reset_state()


def train_pass(layer, x, seed=0):
    """Forward (training) and backward of one batch with a random upstream gradient; stochastic
    layers draw from a generator seeded by ``seed``."""
    layer.set_rng(np.random.default_rng(seed))
    y = layer.forward(x, training=True)
    g = np.random.default_rng(seed + 50).standard_normal(y.shape).astype(y.dtype)
    return y, g, layer.backward(g)


# -- every registered layer is covered -----------------------------------------------------------

def test_every_registered_layer_has_a_case():
    covered = {c.cls for c in CASES}
    assert set(REGISTRY) - covered == set(), "registered layers without a contract case"
    assert covered - set(REGISTRY) == set(), "cases for classes that are not registered"
    assert len(set(IDS)) == len(IDS)


# -- params and grads ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_params_and_grads_have_the_same_keys_shapes_and_dtype_from_construction(case, dtype):
    layer = case.make(dtype)
    assert type(layer).__name__ == case.cls and type(layer) is REGISTRY[case.cls]
    assert layer.params.keys() == layer.grads.keys()
    for k, p in layer.params.items():
        assert layer.grads[k].shape == p.shape, k
        assert p.dtype == layer.grads[k].dtype == dtype, k
        assert not layer.grads[k].any(), f"{k}: grads start at zero"
    assert layer.num_params == sum(p.size for p in layer.params.values())


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_computes_in_its_dtype_with_the_announced_output_shape(case, dtype):
    layer = build(case, dtype)
    x = case.inputs(0, dtype)
    y, g, gx = train_pass(layer, x)
    assert y.dtype == dtype and gx.dtype == dtype
    assert y.shape == (x.shape[0], *layer.output_shape(x.shape[1:]))
    assert gx.shape == x.shape
    for k, p in layer.params.items():
        assert layer.grads[k].shape == p.shape and layer.grads[k].dtype == dtype, k
    reset(layer)
    assert layer.forward(x).dtype == dtype


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_params_are_the_single_source_of_truth(case):
    """A float32 layer whose params are replaced by float64 arrays computes in float64 with
    them, exactly as a fresh layer holding the same arrays; so after an in-place edit."""
    layer = build(case, np.float32)
    layer.params = {k: p.astype(np.float64) for k, p in layer.params.items()}
    x = case.inputs(0, np.float64)
    y = layer.forward(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, twin(layer).forward(x))
    for k in layer.params:
        layer.params[k][...] *= 0.5
        reset(layer)
        np.testing.assert_array_equal(layer.forward(x), twin(layer).forward(x), err_msg=k)


# -- backward overwrites, never accumulates ----------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_overwrites_and_never_accumulates(case):
    layer = build(case)
    y, g, gx1 = train_pass(layer, case.inputs(0, np.float64))
    first = {k: v.copy() for k, v in layer.grads.items()}
    gx2 = layer.backward(g)
    np.testing.assert_array_equal(gx2, gx1)
    for k in first:
        np.testing.assert_array_equal(layer.grads[k], first[k], err_msg=k)
    # a second batch of another size: its grads alone, bit for bit those of a fresh copy
    fresh = twin(layer)
    reset(layer)
    x2 = case.inputs(1, np.float64)
    _, _, gx = train_pass(layer, x2, seed=3)
    _, _, gx_fresh = train_pass(fresh, x2, seed=3)
    np.testing.assert_array_equal(gx, gx_fresh)
    for k in first:
        np.testing.assert_array_equal(layer.grads[k], fresh.grads[k], err_msg=k)


# -- what a training pass keeps -------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_training_forward_keeps_only_what_cache_declares(case):
    """Every attribute a training forward sets (beyond its output shape and a stateful
    layer's carried state) is in ``_cache``, so ``_forget`` can drop all of it."""
    layer = build(case)
    layer.forward(case.inputs(0, np.float64), training=True)  # attributes first made by a pass exist
    before = dict(vars(layer))
    x = case.inputs(1, np.float64)
    reset(layer)
    layer.forward(x, training=True)
    changed = {k for k, v in vars(layer).items() if k not in before or before[k] is not v}
    assert changed - {"_out_shape", "initial_state"} <= set(type(layer)._cache)
    layer._forget()
    for name in type(layer)._cache:
        assert getattr(layer, name, None) is None, name
    with pytest.raises(RuntimeError, match="without a preceding forward"):
        layer.backward(np.zeros(1))  # refused before its shape is looked at
    reset(layer)
    y, g, gx = train_pass(layer, x)   # and a new training pass works again
    assert gx.shape == x.shape


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_owned_gives_the_bits_of_backward(case):
    """The in-place backward writes at most into the gradient it is given and returns what
    ``backward`` returns, with the same ``grads``."""
    for dtype in DTYPES:
        layer = build(case, dtype)
        y, g, gx = train_pass(layer, case.inputs(0, dtype))
        grads = {k: v.copy() for k, v in layer.grads.items()}
        gx_owned = layer._backward_checked(g.copy(), need_input_grad=True, owned=True)
        np.testing.assert_array_equal(gx_owned, gx)
        assert gx_owned.dtype == gx.dtype
        for k in grads:
            np.testing.assert_array_equal(layer.grads[k], grads[k], err_msg=k)
        frozen = g.copy()
        frozen.flags.writeable = False  # read-only: the plain backward, not an error
        np.testing.assert_array_equal(layer._backward_checked(frozen, need_input_grad=True, owned=True), gx)


# -- config round trip ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_get_config_from_config_round_trip(case):
    layer = build(case)
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config, "get_config must be JSON-serializable"
    new = type(layer).from_config(json.loads(json.dumps(config)))
    assert new.get_config() == config
    assert repr(new) == repr(layer)
    # the dtype is not architecture: a loaded file's tensors bring it (see the save/load test)
    assert {k: p.shape for k, p in new.params.items()} == {k: p.shape for k, p in layer.params.items()}
    new.params = {k: p.copy() for k, p in layer.params.items()}
    x = case.inputs(0, np.float64)
    np.testing.assert_array_equal(new.forward(x), layer.forward(x))
    with pytest.raises(TypeError, match=f"{case.cls}.from_config"):
        type(layer).from_config([("a", 1)])


# -- save / load -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_save_load_round_trip_inside_a_sequential(case, dtype, tmp_path):
    x = case.inputs(0, dtype)
    for trainable in (True, False):
        layer = build(case, dtype)
        layer.trainable = trainable
        model = hg.Sequential([layer])
        path = tmp_path / f"{case.id}-{trainable}.safetensors"
        hg.save(model, path)
        (loaded,) = hg.load(path).layers
        assert type(loaded) is type(layer)
        assert loaded.get_config() == layer.get_config()
        assert repr(loaded) == repr(layer)
        assert loaded.trainable is trainable
        assert loaded.params.keys() == layer.params.keys()
        for k, p in layer.params.items():
            q = loaded.params[k]
            assert q.dtype == p.dtype == dtype and q.shape == p.shape, k
            assert q.tobytes() == p.tobytes(), f"{layer!r}.{k} not bit-identical"
            assert loaded.grads[k].shape == q.shape
            assert q.flags.writeable, "loaded params must accept in-place optimizer updates"
        assert getattr(loaded, "initial_state", None) is None
        reset(layer)
        y = layer.forward(x)
        np.testing.assert_array_equal(loaded.forward(x), y)
        y2 = layer.forward(x)
        if getattr(layer, "stateful", False):  # the carried state changes the next output, in both
            assert not np.array_equal(y2, y)
        np.testing.assert_array_equal(loaded.forward(x), y2)


# -- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_raises_naming_the_layer(case):
    layer = build(case)
    x = case.inputs(0, np.float64)
    with pytest.raises(TypeError, match=case.cls):
        layer.forward(x.tolist())
    with pytest.raises(TypeError, match=case.cls):
        layer.forward(x.astype(np.int64))
    with pytest.raises(TypeError, match=case.cls):
        layer.forward(x.astype(np.float16))
    if case.bad_shape is not None:
        with pytest.raises(ValueError, match=case.cls):
            layer.forward(np.zeros(case.bad_shape))
    fresh = build(case)
    with pytest.raises(RuntimeError, match=case.cls):
        fresh.backward(np.zeros(fresh.forward(x).shape))
    y = layer.forward(x, training=True)
    with pytest.raises(ValueError, match=f"{case.cls}.*backward.*{tuple(y.shape)}"):
        layer.backward(np.zeros(y.shape + (1,)))
