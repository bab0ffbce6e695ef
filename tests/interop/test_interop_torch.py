"""``hg.interop.from_torch`` / ``to_torch_state_dict``: PyTorch → handgrad → PyTorch for every
model family (same outputs to 1e-5 in float32), in-place copies, and the errors that name the
torch key, the layer and both shapes."""
from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers as L
from handgrad import presets, rbm
from handgrad.interop import from_torch, to_torch_state_dict

torch = pytest.importorskip("torch", reason="PyTorch is the reference of these tests")
nn = torch.nn


class Scale(nn.Module):
    """The torch twin of handgrad's Normalize (no parameters)."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        return (x - self.mean) * (1.0 / self.std)


class LastStep(nn.Module):
    """Recurrent module → its output sequence, or its last step (return_sequences=False)."""

    def __init__(self, rnn, sequences):
        super().__init__()
        self.rnn, self.sequences = rnn, sequences

    def forward(self, x):
        y = self.rnn(x)[0]
        return y if self.sequences else y[:, -1]


def _randomize(module, seed):
    """Non-trivial values everywhere, including both recurrent biases (so their sum matters)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))


def _twin_output(tm, x):
    with torch.no_grad():
        return tm(torch.from_numpy(x)).numpy()


def _seq_state_dict(tm):
    """State dict of an nn.Sequential whose recurrent modules are wrapped in LastStep: the
    wrapper's keys lose their '.rnn' so they read like a plain nn.Sequential of torch modules."""
    return {k.replace(".rnn.", "."): v for k, v in tm.state_dict().items()}


def _families():
    """(name, handgrad model, torch twin at the same positions, input)."""
    rng = np.random.default_rng(0)
    out = []
    out.append(("mlp", hg.Sequential([L.Normalize(0.3, 0.4), L.Dense(6, 8, rng=1), L.ReLU(), L.Dropout(0.2),
                                      L.Dense(8, 5, rng=2), L.Tanh(), L.Dense(5, 3, rng=3), L.Softmax()]),
                nn.Sequential(Scale(0.3, 0.4), nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 5),
                              nn.Tanh(), nn.Linear(5, 3), nn.Softmax(dim=-1)),
                rng.standard_normal((4, 6))))
    out.append(("cnn-max", hg.Sequential([L.Conv2D(2, 3, 3, stride=2, padding=1, rng=1), L.ReLU(), L.MaxPool2D(2),
                                          L.Flatten(), L.Dense(12, 4, rng=2)]),
                nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(12, 4)),
                rng.standard_normal((3, 2, 9, 9))))
    out.append(("cnn-avg", hg.Sequential([L.Conv2D(1, 2, (3, 2), padding=(1, 0), rng=1), L.Sigmoid(),
                                          L.AvgPool2D(3, stride=2), L.Flatten(), L.Dense(2 * 3 * 3, 2, rng=2)]),
                nn.Sequential(nn.Conv2d(1, 2, (3, 2), padding=(1, 0)), nn.Sigmoid(), nn.AvgPool2d(3, stride=2),
                              nn.Flatten(), nn.Linear(18, 2)),
                rng.standard_normal((2, 1, 7, 8))))
    for seqs in (True, False):
        out.append((f"rnn-tanh-seq{seqs}", hg.Sequential([L.RNN(3, 4, return_sequences=seqs, rng=1), L.Dense(4, 2, rng=2)]),
                    nn.Sequential(LastStep(nn.RNN(3, 4, batch_first=True), seqs), nn.Linear(4, 2)),
                    rng.standard_normal((3, 5, 3))))
        out.append((f"lstm-seq{seqs}", hg.Sequential([L.LSTM(3, 4, return_sequences=seqs, rng=1), L.Dense(4, 2, rng=2)]),
                    nn.Sequential(LastStep(nn.LSTM(3, 4, batch_first=True), seqs), nn.Linear(4, 2)),
                    rng.standard_normal((3, 5, 3))))
    # the deep autoencoder (003 §9) unrolled from an RBM stack with a linear (gaussian) code layer:
    # Dense + Sigmoid, Dense (code), then the decoder Dense + Sigmoid twice
    out.append(("autoencoder", rbm.unroll([rbm.RBM(8, 5, rng=1), rbm.RBM(5, 2, hidden="gaussian", rng=2)]),
                nn.Sequential(nn.Linear(8, 5), nn.Sigmoid(), nn.Linear(5, 2), nn.Linear(2, 5), nn.Sigmoid(),
                              nn.Linear(5, 8), nn.Sigmoid()),
                rng.random((4, 8))))
    return out


FAMILIES = _families()


@pytest.mark.parametrize("name,model,twin,x", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_torch_to_handgrad_to_torch_round_trip(name, model, twin, x):
    twin.eval()
    _randomize(twin, seed=len(name))
    x = x.astype(np.float32)
    from_torch(model, _seq_state_dict(twin))
    expected = _twin_output(twin, x)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()))
    # back to torch: a freshly initialised twin loaded from our state dict computes the same
    sd = to_torch_state_dict(model)
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    fresh = copy.deepcopy(twin)
    _randomize(fresh, seed=99)  # different weights until the state dict is loaded
    wrapped = {k: torch.from_numpy(v) for k, v in sd.items()}
    keys = set(fresh.state_dict())
    wrapped = {(k if k in keys else k.replace(".", ".rnn.", 1)): v for k, v in wrapped.items()}
    fresh.load_state_dict(wrapped, strict=True)
    np.testing.assert_allclose(_twin_output(fresh, x), expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()))


def test_state_dict_keys_follow_handgrad_positions():
    """Parameter-free layers occupy positions, as the activation/pool/flatten modules do."""
    model = presets.lenet5()
    sd = to_torch_state_dict(model)
    assert list(sd) == ["1.weight", "1.bias", "4.weight", "4.bias", "8.weight", "8.bias",
                        "10.weight", "10.bias", "12.weight", "12.bias"]
    assert sd["4.weight"].shape == (16, 6, 5, 5)
    rec = hg.Sequential([L.Normalize(), L.LSTM(3, 4), L.Dense(4, 2)])
    sd = to_torch_state_dict(rec)
    assert list(sd) == ["1.weight_ih_l0", "1.weight_hh_l0", "1.bias_ih_l0", "1.bias_hh_l0", "2.weight", "2.bias"]
    np.testing.assert_array_equal(sd["1.bias_ih_l0"], rec.layers[1].params["b"])
    np.testing.assert_array_equal(sd["1.bias_hh_l0"], np.zeros(16, np.float32))
    # copies, not views: changing the state dict leaves the model alone
    sd["2.weight"][...] = 7.0
    assert not np.any(rec.layers[2].params["W"] == 7.0)


def test_recurrent_biases_are_summed_and_gates_keep_torch_order():
    lstm = nn.LSTM(2, 3, batch_first=True)
    _randomize(lstm, 5)
    sd = {"0." + k: v for k, v in lstm.state_dict().items()}
    model = from_torch(hg.Sequential([L.LSTM(2, 3)]), sd)
    p = model.layers[0].params
    np.testing.assert_allclose(p["b"], (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(p["W_ih"], lstm.weight_ih_l0.detach().numpy())  # rows I, F, g, O as torch


def test_sigmoid_rnn_against_a_hand_written_torch_cell():
    """torch.nn.RNN has no sigmoid nonlinearity; its weights still map, and a torch loop of
    h_t = σ(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh) over them gives our output."""
    rnn = nn.RNN(3, 4, batch_first=True)
    _randomize(rnn, 3)
    model = from_torch(hg.Sequential([L.RNN(3, 4, activation="sigmoid")]), {"0." + k: v for k, v in rnn.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    h = torch.zeros(2, 4)
    outs = []
    with torch.no_grad():
        for t in range(5):
            h = torch.sigmoid(torch.from_numpy(x[:, t]) @ rnn.weight_ih_l0.T + rnn.bias_ih_l0
                              + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0)
            outs.append(h)
    np.testing.assert_allclose(model.predict(x), torch.stack(outs, 1).numpy(), rtol=1e-5, atol=1e-6)
    sd = to_torch_state_dict(model)
    back = from_torch(hg.Sequential([L.RNN(3, 4, activation="sigmoid", rng=7)]), sd)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_copies_in_place_keeping_dtype_and_objects():
    model = hg.Sequential([L.Dense(3, 2, dtype="float64"), L.ReLU(), L.Dense(2, 1, dtype="float64")])
    before = [id(layer.params[k]) for layer in model.layers for k in layer.params]
    lin = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    assert from_torch(model, lin.state_dict()) is model
    assert [id(layer.params[k]) for layer in model.layers for k in layer.params] == before
    assert all(layer.params[k].dtype == np.float64 for layer in model.layers for k in layer.params)
    np.testing.assert_allclose(model.layers[0].params["W"], lin[0].weight.detach().numpy().astype(np.float64))


def test_accepts_numpy_arrays_and_safetensors_key_order(tmp_path):
    """Keys stored alphabetically ("10" before "2", as safetensors files do) still map by position."""
    from safetensors.numpy import load_file, save_file

    model = hg.Sequential([L.Dense(2, 3, rng=0)] + [L.Tanh()] * 1 + [L.Dense(3, 3, rng=i) for i in range(1, 11)])
    twin_sd = to_torch_state_dict(model)
    path = tmp_path / "sd.safetensors"
    save_file(twin_sd, str(path))
    loaded = load_file(str(path))
    assert list(loaded).index("10.weight") < list(loaded).index("2.weight")
    fresh = hg.Sequential([L.Dense(2, 3, rng=50)] + [L.Tanh()] + [L.Dense(3, 3, rng=50 + i) for i in range(1, 11)])
    from_torch(fresh, loaded)
    for a, b in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(a[1], b[1])


def test_nested_sequential_names_from_a_sorted_file_map_in_numeric_order():
    net = nn.Sequential()
    net.add_module("net", nn.Sequential(*[nn.Linear(3, 3) for _ in range(12)]))
    sd = {k: v.detach().numpy() for k, v in sorted(net.state_dict().items())}  # as a file stores them
    assert list(sd)[2] == "net.1.bias" and list(sd)[4] == "net.10.bias"
    model = from_torch(hg.Sequential([L.Dense(3, 3) for _ in range(12)]), sd)
    for i in range(12):
        np.testing.assert_array_equal(model.layers[i].params["W"], net.net[i].weight.detach().numpy())


def test_torch_names_outside_a_sequential_keep_registration_order():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Linear(4, 3)
            self.classifier = nn.Linear(3, 2)  # alphabetically before "features"

    net = Net()
    model = from_torch(hg.Sequential([L.Dense(4, 3), L.ReLU(), L.Dense(3, 2)]), net.state_dict())
    np.testing.assert_array_equal(model.layers[2].params["W"], net.classifier.weight.detach().numpy())


def test_missing_bias_reads_as_zero():
    lin = nn.Linear(3, 2, bias=False)
    model = hg.Sequential([L.Dense(3, 2, bias_init="normal")])
    from_torch(model, {"0.weight": lin.weight})
    np.testing.assert_array_equal(model.layers[0].params["b"], np.zeros(2, np.float32))


def _error(model, sd):
    with pytest.raises(ValueError) as info:
        from_torch(model, sd)
    return str(info.value)


def test_shape_mismatch_names_key_layer_and_both_shapes():
    model = hg.Sequential([L.Dense(4, 3), L.ReLU(), L.Dense(3, 2)])
    before = model.layers[0].params["W"].copy()
    msg = _error(model, {"0.weight": np.ones((3, 4)), "0.bias": np.ones(3),
                         "2.weight": np.ones((2, 5)), "2.bias": np.ones(2)})
    assert "'2.weight'" in msg and "Dense(3→2)" in msg and "(2, 5)" in msg and "(2, 3)" in msg
    np.testing.assert_array_equal(model.layers[0].params["W"], before)  # nothing copied on error


def test_kind_mismatch_is_named():
    conv = hg.Sequential([L.Conv2D(1, 2, 3)])
    msg = _error(conv, {"0.weight": np.ones((2, 9)), "0.bias": np.ones(2)})
    assert "'0.weight'" in msg and "Conv2D" in msg and "(2, 9)" in msg and "(2, 1, 3, 3)" in msg
    rnn = hg.Sequential([L.RNN(3, 4)])
    msg = _error(rnn, nn.Sequential(nn.Linear(3, 4)).state_dict())
    assert "RNN(3→4)" in msg and "'0.weight'" in msg and "weight_ih_l0" in msg
    msg = _error(rnn, {"0." + k: v for k, v in nn.LSTM(3, 4).state_dict().items()})
    assert "'0.weight_ih_l0'" in msg and "(16, 3)" in msg and "(4, 3)" in msg


def test_count_mismatch_names_the_first_unmatched():
    model = hg.Sequential([L.Dense(4, 3), L.Dense(3, 2)])
    msg = _error(model, {"0.weight": np.ones((3, 4)), "0.bias": np.ones(3)})
    assert "1 modules" in msg and "layer 1 Dense(3→2)" in msg and "(2, 3)" in msg
    msg = _error(model, nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2), nn.Linear(2, 2)).state_dict())
    assert "'2.weight' (2, 2)" in msg


def test_multilayer_bidirectional_and_projected_rnns_are_refused():
    model = hg.Sequential([L.LSTM(3, 4)])
    for kw in ({"num_layers": 2}, {"bidirectional": True}, {"proj_size": 2}):
        msg = _error(model, {"0." + k: v for k, v in nn.LSTM(3, 4, **kw).state_dict().items()})
        assert "single-layer" in msg, kw


def test_layers_without_torch_counterpart_are_refused_both_ways():
    peep = hg.Sequential([L.LSTM(3, 4, peepholes=True)])
    msg = _error(peep, {"0." + k: v for k, v in nn.LSTM(3, 4).state_dict().items()})
    assert "peephole" in msg and "LSTM(3→4, peepholes)" in msg
    with pytest.raises(ValueError, match="peephole"):
        to_torch_state_dict(peep)
    untied = hg.Sequential([L.Conv2D(1, 2, 3, untied_bias=(4, 4))])
    with pytest.raises(ValueError, match="untied"):
        to_torch_state_dict(untied)
    with pytest.raises(ValueError, match="untied"):
        from_torch(untied, nn.Sequential(nn.Conv2d(1, 2, 3)).state_dict())


def test_bad_inputs():
    model = hg.Sequential([L.Dense(2, 2)])
    with pytest.raises(TypeError, match="state dict"):
        from_torch(model, [np.ones((2, 2))])
    with pytest.raises(TypeError, match="Sequential"):
        from_torch(L.Dense(2, 2), {})
    with pytest.raises(TypeError, match="floats"):
        from_torch(model, {"0.weight": np.ones((2, 2), dtype=np.int64), "0.bias": np.ones(2)})
    with pytest.raises(TypeError, match="'0.weight'"):
        from_torch(model, {"0.weight": torch.ones(2, 2, dtype=torch.bfloat16), "0.bias": torch.ones(2)})
    with pytest.raises(ValueError, match="NaN"):
        from_torch(model, {"0.weight": np.full((2, 2), np.nan), "0.bias": np.ones(2)})
    with pytest.raises(ValueError, match="'0.running_mean'"):
        from_torch(model, {"0.weight": np.ones((2, 2)), "0.bias": np.ones(2), "0.running_mean": np.ones(2)})


def test_interop_imports_neither_torch_nor_onnx():
    code = ("import sys, handgrad as hg; hg.interop.to_torch_state_dict(hg.Sequential([hg.layers.Dense(2, 2)])); "
            "print('torch' in sys.modules, 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]
