"""``handgrad import-torch`` and ``handgrad export``. The done-means check: a LeNet-5 trained
in PyTorch (a few steps on the shipped subset), saved as a safetensors state dict and imported
with the CLI, has the same test accuracy in ``handgrad evaluate`` as in PyTorch."""
from __future__ import annotations

import re

import numpy as np
import pytest

import handgrad as hg
from handgrad import cli, data, presets
from handgrad import layers as L

torch = pytest.importorskip("torch", reason="PyTorch trains the model that is imported")
nn = torch.nn


def run_cli(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


class Scale(nn.Module):
    def forward(self, x):
        return (x - presets.FASHION_MEAN) * (1.0 / presets.FASHION_STD)


def torch_lenet5():
    """The twin of ``presets.lenet5()``, module for module (Normalize at position 0)."""
    return nn.Sequential(Scale(), nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


@pytest.fixture(scope="module")
def torch_trained(tmp_path_factory):
    """A torch LeNet-5 after 40 SGD steps on the shipped training subset, its state dict as
    safetensors, and its test accuracy and loss on the subset's 1,000 test images."""
    from safetensors.torch import save_file

    (xtr, ytr), (xte, yte) = data.load_fashion_mnist_subset()
    xtr = torch.from_numpy(data.to_float(xtr).reshape(-1, 1, 28, 28))
    xte_np = data.to_float(xte).reshape(-1, 1, 28, 28)
    torch.manual_seed(0)
    net = torch_lenet5()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        idx = torch.randint(0, len(xtr), (64,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(xtr[idx]), torch.from_numpy(ytr)[idx]).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(xte_np))
        loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(yte)))
    acc = float((logits.argmax(1).numpy() == yte).mean())
    assert acc > 0.3  # it learned something, so equal accuracies are not a coincidence of chance
    folder = tmp_path_factory.mktemp("torch-lenet")
    path = folder / "lenet5_state.safetensors"
    save_file(net.state_dict(), str(path))
    return {"path": path, "acc": acc, "loss": loss, "logits": logits.numpy(), "x_test": xte_np, "folder": folder}


def test_torch_trained_lenet5_evaluates_the_same_after_import(torch_trained, capsys):
    out = torch_trained["folder"] / "model.safetensors"
    code, stdout, err = run_cli(["import-torch", torch_trained["path"], "--preset", "lenet5", "--out", out], capsys)
    assert code == 0, err
    assert "10 tensors into 5 layers" in stdout
    meta = hg.serialization.read_metadata(out)
    assert meta["preset"] == "lenet5" and meta["input_shape"] == [1, 28, 28] and meta["task"] == "fashion"
    code, stdout, err = run_cli(["evaluate", out, "--subset"], capsys)
    assert code == 0, err
    m = re.search(r"loss (\d+\.\d+)\s+accuracy (\d+\.\d+)%", stdout)
    assert m, stdout
    assert m.group(2) == f"{torch_trained['acc'] * 100:.2f}", (stdout, torch_trained["acc"])
    assert abs(float(m.group(1)) - torch_trained["loss"]) < 2e-4
    model = hg.load(out)
    logits = model.predict(torch_trained["x_test"])
    np.testing.assert_allclose(logits, torch_trained["logits"], rtol=1e-5, atol=1e-4)


def test_import_then_export_runs_in_onnx_runtime(torch_trained, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model_path, onnx_path = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    assert run_cli(["import-torch", torch_trained["path"], "--preset", "lenet5", "--out", model_path], capsys)[0] == 0
    code, stdout, err = run_cli(["export", model_path, onnx_path], capsys)
    assert code == 0, err
    assert "input (N, 1, 28, 28)" in stdout and "output (N, 10)" in stdout
    x = torch_trained["x_test"][:50]
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, hg.load(model_path).predict(x), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(got.argmax(1), torch_trained["logits"][:50].argmax(1))


def test_import_recurrent_preset_with_options(tmp_path, capsys):
    from safetensors.torch import save_file

    class Last(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(28, 8, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0][:, -1]

    net = nn.Sequential(Scale(), Last(), nn.Linear(8, 10))
    sd = {k.replace(".rnn.", "."): v for k, v in net.state_dict().items()}
    save_file(sd, str(tmp_path / "rnn.safetensors"))
    out = tmp_path / "rnn_model.safetensors"
    code, _, err = run_cli(["import-torch", tmp_path / "rnn.safetensors", "--preset", "rnn", "--hidden", "8",
                            "--out", out], capsys)
    assert code == 0, err
    x = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(hg.load(out).predict(x), want, rtol=1e-5, atol=1e-5)
    # the wrong width: the error names the torch key and both shapes
    code, _, err = run_cli(["import-torch", tmp_path / "rnn.safetensors", "--preset", "rnn", "--out", out], capsys)
    assert code == 2 and "'1.weight_ih_l0'" in err and "(8, 28)" in err and "(128, 28)" in err


def test_import_refuses_pickles_and_garbage(tmp_path, capsys):
    pickled = tmp_path / "state.pt"
    torch.save(torch_lenet5().state_dict(), pickled)
    code, _, err = run_cli(["import-torch", pickled, "--preset", "lenet5", "--out", tmp_path / "o.safetensors"], capsys)
    assert code == 2 and "pickle" in err and "safetensors.torch.save_file" in err
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    code, _, err = run_cli(["import-torch", garbage, "--preset", "lenet5", "--out", tmp_path / "o.safetensors"], capsys)
    assert code == 2 and "not a readable safetensors file" in err
    code, _, err = run_cli(["import-torch", tmp_path / "missing.safetensors", "--preset", "lenet5",
                            "--out", tmp_path / "o.safetensors"], capsys)
    assert code == 2 and "missing.safetensors" in err
    assert not (tmp_path / "o.safetensors").exists()


def test_export_shapes_from_metadata_option_or_model(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    reber = tmp_path / "reber.safetensors"
    hg.save(presets.reber_net(hidden=4), reber, metadata={"preset": "reber", "input_shape": [None, 7]})
    code, stdout, err = run_cli(["export", reber, tmp_path / "reber.onnx"], capsys)
    assert code == 0, err
    assert "input (N, T, 7)" in stdout
    x = np.random.default_rng(0).integers(0, 2, (2, 5, 7)).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "reber.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, hg.load(reber).predict(x), rtol=1e-5, atol=1e-6)
    bare = tmp_path / "bare.safetensors"  # no metadata: the first Dense says (784,)
    hg.save(presets.mlp(hidden=(4,)), bare)
    code, stdout, err = run_cli(["export", bare, tmp_path / "bare.onnx"], capsys)
    assert code == 0 and "input (N, 784)" in stdout, err
    conv = tmp_path / "conv.safetensors"
    hg.save(hg.Sequential([L.Conv2D(1, 2, 3), L.Flatten()]), conv)
    code, _, err = run_cli(["export", conv, tmp_path / "conv.onnx"], capsys)
    assert code == 2 and "--input-shape" in err
    code, stdout, err = run_cli(["export", conv, tmp_path / "conv.onnx", "--input-shape", "1,5,6"], capsys)
    assert code == 0 and "output (N, 24)" in stdout, err
    code, _, err = run_cli(["export", conv, tmp_path / "conv.onnx", "--input-shape", "3,5,6"], capsys)
    assert code == 2 and "does not fit" in err


def test_export_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["export", "m.safetensors", "m.onnx", "--input-shape", "a,b"])
    code, _, err = run_cli(["export", tmp_path / "nope.safetensors", tmp_path / "m.onnx"], capsys)
    assert code == 2 and "nope.safetensors" in err
