"""``hg.interop.to_onnx``: for every model family, ONNX Runtime computes ``model.predict`` to
1e-5 (float32) at several batch sizes (the batch axis is dynamic); the file passes
``onnx.checker``, uses opset 17 and standard operators only, and is written atomically."""
from __future__ import annotations

import os

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers as L
from handgrad import presets, rbm
from handgrad.interop import to_onnx

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

BATCHES = (1, 3, 5)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_same(model, path, x):
    got = _session(path).run(None, {"input": x})[0]
    want = model.predict(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def _randomize_params(model, seed):
    """Peepholes start at zero and untied biases are easy to miss: give every parameter values."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for p in layer.params.values():
            p[...] = 0.5 * rng.standard_normal(p.shape)
    return model


def _families():
    """(name, model, input_shape, function of (rng, batch) → input)."""
    img = lambda c, h, w: (lambda rng, n: rng.standard_normal((n, c, h, w)))
    seq = lambda t, f: (lambda rng, n: rng.standard_normal((n, t, f)))
    vec = lambda f: (lambda rng, n: rng.standard_normal((n, f)))
    out = [
        ("mlp-activations", hg.Sequential([
            L.Normalize(0.2, 0.5), L.Dense(6, 7), L.Sigmoid(), L.Dense(7, 7), L.Tanh(), L.Dropout(0.5),
            L.Dense(7, 7), L.ReLU(), L.Dense(7, 7), L.Identity(), L.StochasticBinary(), L.Dense(7, 7),
            L.BinaryThreshold(0.1), L.Dense(7, 4), L.Softmax()]), (6,), vec(6)),
        ("lenet5", presets.lenet5(), (1, 28, 28), lambda rng, n: rng.random((n, 1, 28, 28))),
        ("lenet5-sigmoid-avg", presets.lenet5(activation="sigmoid", pool="avg"), (1, 28, 28),
         lambda rng, n: rng.random((n, 1, 28, 28))),
        ("cnn-stride-padding-overlapping-pools", hg.Sequential([
            L.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=(1, 2)), L.ReLU(), L.MaxPool2D(3, stride=2),
            L.Conv2D(3, 2, 2, padding=1), L.AvgPool2D((2, 3), stride=(1, 2)), L.Flatten()]), (2, 11, 9), img(2, 11, 9)),
        ("cnn-untied-bias", hg.Sequential([L.Conv2D(1, 2, 3, untied_bias=(5, 6)), L.Tanh(), L.Flatten(),
                                           L.Dense(60, 3)]), (1, 7, 8), img(1, 7, 8)),
        # the deep autoencoder (003 §9), unrolled from an RBM stack with a linear code layer
        ("autoencoder", rbm.unroll([rbm.RBM(10, 6), rbm.RBM(6, 3, hidden="gaussian")]), (10,),
         lambda rng, n: rng.random((n, 10))),
        ("autoencoder-logits", rbm.unroll([rbm.RBM(10, 6, visible="gaussian"), rbm.RBM(6, 3)], logits=True), (10,),
         lambda rng, n: rng.standard_normal((n, 10))),
    ]
    for seqs in (True, False):
        for act in ("tanh", "sigmoid"):
            out.append((f"rnn-{act}-seq{seqs}", hg.Sequential([L.RNN(3, 5, activation=act, return_sequences=seqs),
                                                               L.Dense(5, 2)]), (4, 3), seq(4, 3)))
        for peep in (False, True):
            out.append((f"lstm-peep{peep}-seq{seqs}", hg.Sequential([
                L.Normalize(0.1, 2.0), L.LSTM(3, 5, peepholes=peep, return_sequences=seqs), L.Dense(5, 2)]),
                (6, 3), seq(6, 3)))
    out.append(("stacked-lstm-rnn", hg.Sequential([L.LSTM(3, 4, peepholes=True), L.RNN(4, 3, return_sequences=False),
                                                   L.Dense(3, 2), L.Softmax()]), (5, 3), seq(5, 3)))
    return out


FAMILIES = _families()


@pytest.mark.parametrize("name,model,shape,make", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_onnx_runtime_matches_predict(name, model, shape, make, tmp_path):
    _randomize_params(model, seed=len(name))
    path = tmp_path / f"{name}.onnx"
    to_onnx(model, path, shape)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    rng = np.random.default_rng(0)
    for n in BATCHES:
        _assert_same(model, path, make(rng, n).astype(np.float32))


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)


def test_opset_standard_operators_and_dynamic_batch(tmp_path):
    model = hg.Sequential([L.LSTM(3, 4, peepholes=True), L.Dense(4, 2)])
    to_onnx(model, tmp_path / "m.onnx", (5, 3))
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    ops = {node.op_type for node in _all_nodes(proto.graph)}
    assert "Scan" in ops and "LSTM" not in ops  # ONNX's LSTM peepholes differ from ours
    assert all(node.domain == "" for node in _all_nodes(proto.graph))
    for node in _all_nodes(proto.graph):
        onnx.defs.get_schema(node.op_type, 17, "")  # every operator is in the standard set
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [5, 3]
    plain = hg.Sequential([L.LSTM(3, 4), L.RNN(4, 2)])
    to_onnx(plain, tmp_path / "p.onnx", (5, 3))
    assert {"LSTM", "RNN"} <= {n.op_type for n in onnx.load(str(tmp_path / "p.onnx")).graph.node}


def test_dynamic_time_axis_and_masked_sequences(tmp_path):
    """``None`` in input_shape is a dynamic time axis; masked (padded) steps carry the state."""
    rng = np.random.default_rng(1)
    for cell in (L.LSTM(7, 5, mask_value=0.0), L.LSTM(7, 5, peepholes=True, mask_value=0.0),
                 L.RNN(7, 5, mask_value=0.0), L.RNN(7, 5, mask_value=0.0, return_sequences=False)):
        model = _randomize_params(hg.Sequential([cell, L.Dense(5, 7)]), 3)
        path = tmp_path / "seq.onnx"
        to_onnx(model, path, (None, 7))
        dims = onnx.load(str(path)).graph.output[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == "N"
        for n, T in ((1, 3), (4, 9)):
            x = rng.standard_normal((n, T, 7)).astype(np.float32)
            x[0, T // 2:] = 0.0  # padding at the end of the first sequence
            _assert_same(model, path, x)


def test_reber_preset_and_stateful_layers_export_as_predict_runs_them(tmp_path):
    model = _randomize_params(presets.reber_net(), 0)
    to_onnx(model, tmp_path / "r.onnx", (None, 7))
    x = np.random.default_rng(0).integers(0, 2, (3, 8, 7)).astype(np.float32)
    _assert_same(model, tmp_path / "r.onnx", x)
    lm = presets.char_lm(vocab_size=6, hidden=4)
    lm.forward(np.ones((2, 3, 6), np.float32))  # leaves a carried state that predict ignores
    to_onnx(lm, tmp_path / "lm.onnx", (None, 6))
    _assert_same(lm, tmp_path / "lm.onnx", np.random.default_rng(2).random((2, 4, 6)).astype(np.float32))


def test_float64_models_export_in_float64(tmp_path):
    model = presets.mlp(hidden=(8,), dtype="float64")
    to_onnx(model, tmp_path / "d.onnx", (784,))
    x = np.random.default_rng(0).random((3, 784))
    got = _session(tmp_path / "d.onnx").run(None, {"input": x})[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-12, atol=1e-12)


def test_unexpressible_layer_is_named_and_the_old_file_kept(tmp_path):
    @L.register
    class Cube(L.Layer):
        def _forward(self, x, training):
            return x ** 3

    try:
        path = tmp_path / "m.onnx"
        path.write_bytes(b"previous")
        with pytest.raises(ValueError, match=r"layer 1 .*Cube"):
            to_onnx(hg.Sequential([L.Dense(2, 2), Cube()]), path, (2,))
        assert path.read_bytes() == b"previous"
        assert os.listdir(tmp_path) == ["m.onnx"]  # no temporary file left behind
    finally:
        del L.REGISTRY["Cube"]


def test_writes_exactly_the_path_atomically(tmp_path):
    path = tmp_path / "model.onnx"
    to_onnx(presets.mlp(hidden=(4,)), path, (784,))
    assert os.listdir(tmp_path) == ["model.onnx"] and path.stat().st_size > 0


@pytest.mark.parametrize("shape,exc,match", [
    ((1, 28, 28), ValueError, "does not fit"),   # an MLP wants (784,)
    ((0, 784), ValueError, "positive"),
    ("784", TypeError, "tuple"),
    ((), TypeError, "tuple"),
    ((784.0,), ValueError, "positive ints"),
])
def test_bad_input_shapes(shape, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        to_onnx(presets.mlp(hidden=(4,)), tmp_path / "m.onnx", shape)


def test_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="Sequential"):
        to_onnx(L.Dense(2, 2), tmp_path / "m.onnx", (2,))
