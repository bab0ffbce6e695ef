"""The ``handgrad`` command line, run in-process through ``handgrad.cli.main`` (fast), plus
one subprocess check of the installed console script."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

import handgrad as hg
from handgrad import cli


def run_cli(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_mlp(tmp_path_factory):
    """``train mlp --subset --epochs 1 --hidden 32`` once for the tests below."""
    out = tmp_path_factory.mktemp("train-mlp")
    code = cli.main(["train", "mlp", "--subset", "--epochs", "1", "--hidden", "32", "--out", str(out)])
    assert code == 0
    return out


def test_demo_writes_model_history_and_curves(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, _ = run_cli(["demo", "--epochs", 1, "--out", out], capsys)
    assert code == 0
    for name in ("model.safetensors", "history.json", "curves.png"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hist = json.loads((out / "history.json").read_text())
    assert hist["preset"] == "mlp" and hist["epochs_run"] == 1
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(hist["history"][key]) == 1
    assert 0.5 < hist["test_accuracy"] <= 1.0
    model = hg.load(out / "model.safetensors")
    assert isinstance(model, hg.Sequential)
    assert hg.serialization.read_metadata(out / "model.safetensors")["preset"] == "mlp"
    assert "pass" in stdout and "FAIL" not in stdout
    assert "epoch   1/1" in stdout


def test_train_then_evaluate(trained_mlp, capsys):
    model_path = trained_mlp / "model.safetensors"
    assert model_path.is_file()
    hist = json.loads((trained_mlp / "history.json").read_text())
    assert hist["args"]["hidden"] == [32]
    assert hist["epochs_run"] == 1
    model = hg.load(model_path)
    widths = [layer.out_features for layer in model.layers if isinstance(layer, hg.layers.Dense)]
    assert widths == [32, 10]
    meta = hg.serialization.read_metadata(model_path)
    assert meta == {"preset": "mlp", "task": "fashion", "loss": "SoftmaxCrossEntropy", "input_shape": [784]}

    code, out, err = run_cli(["evaluate", model_path, "--subset"], capsys)
    assert code == 0, err
    m = re.search(r"accuracy (\d+\.\d+)%", out)
    assert m, out
    acc = float(m.group(1)) / 100
    assert acc > 0.5  # one epoch of a 32-unit MLP: ~0.75-0.8; chance is 0.1
    # the same test set: evaluate reports what training recorded
    assert acc == pytest.approx(hist["test_accuracy"], abs=6e-5)
    assert "1000 test images" in out
    assert re.search(r"top-3 (\d+\.\d+)%", out)
    for name in hg.data.CLASSES:
        assert name in out


def test_evaluate_prints_per_class_lines_that_average_to_accuracy(trained_mlp, capsys):
    code, out, _ = run_cli(["evaluate", trained_mlp / "model.safetensors", "--subset"], capsys)
    assert code == 0
    acc = float(re.search(r"accuracy (\d+\.\d+)%", out).group(1))
    per_class = [float(v) for v in re.findall(r"^\s+\S.*?\s(\d+\.\d+)%$", out, flags=re.M)]
    assert len(per_class) == 10
    # the subset's test part is balanced (100 per class), so the mean of the per-class
    # accuracies is the accuracy
    assert np.mean(per_class) == pytest.approx(acc, abs=0.01)


@pytest.mark.parametrize("args", [["gradcheck", "mlp", "--hidden", "16"], ["gradcheck", "textbook"]])
def test_gradcheck_passes(args, capsys):
    code, out, _ = run_cli(args, capsys)
    assert code == 0
    assert "pass" in out and "FAIL" not in out
    worst = float(re.search(r"worst: (\S+)", out).group(1))
    assert worst < 1e-6


def test_bad_preset_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "resnet50", "--subset"])
    assert info.value.code not in (0, None)
    assert "resnet50" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["train", "mlp", "--subset", "--bogus-option"],
    ["train", "mlp", "--subset", "--hidden", "a,b"],
    ["train", "mlp", "--subset", "--hidden", "0"],
    ["train", "mlp", "--subset", "--optimizer", "lbfgs"],
    ["train", "mlp", "--subset", "--data", "/tmp"],
    ["gradcheck", "nope"],
    ["frobnicate"],
    [],
])
def test_bad_options_exit_nonzero(args, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code not in (0, None)
    assert capsys.readouterr().err


def test_bad_values_return_error_code(tmp_path, capsys):
    code, _, err = run_cli(["train", "mlp", "--subset", "--epochs", "0", "--out", tmp_path / "o"], capsys)
    assert code != 0
    assert "error" in err
    code, _, err = run_cli(["train", "mlp", "--subset", "--epochs", "1", "--lr", "-1",
                            "--out", tmp_path / "o2"], capsys)
    assert code != 0
    assert "lr" in err


def test_evaluate_missing_or_malformed_model(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", tmp_path / "missing.safetensors", "--subset"], capsys)
    assert code != 0 and "error" in err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    code, _, err = run_cli(["evaluate", bad, "--subset"], capsys)
    assert code != 0 and "error" in err


def test_train_without_data_reports_where_it_looked(tmp_path, capsys, monkeypatch):
    from handgrad.data import fashion

    monkeypatch.delenv("HANDGRAD_DATA", raising=False)
    monkeypatch.setattr(fashion, "SYSTEM_DIR", str(tmp_path / "nowhere"))
    code, _, err = run_cli(["train", "mlp", "--data", tmp_path / "empty", "--epochs", "1",
                            "--out", tmp_path / "o"], capsys)
    assert code != 0
    assert str(tmp_path / "nowhere") in err


def _console_script():
    exe = shutil.which("handgrad")
    if exe is None:
        candidate = os.path.join(sysconfig.get_path("scripts"), "handgrad")
        exe = candidate if os.path.exists(candidate) else None
    return exe


def test_console_script_version():
    exe = _console_script()
    assert exe is not None, "the `handgrad` console script is not installed"
    res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"handgrad {hg.__version__}"


def test_module_entry_point_version():
    res = subprocess.run([sys.executable, "-m", "handgrad.cli", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0
    assert hg.__version__ in res.stdout


# -- sequence presets, resume, diagnose ----------------------------------------------------------------

def test_train_reber_tiny(tmp_path, capsys):
    out = tmp_path / "reber"
    code, stdout, err = run_cli(["train", "reber", "--samples", "64", "--epochs", "1", "--out", out], capsys)
    assert code == 0, err
    assert "held-out embedded Reber strings predicted entirely right" in stdout
    hist = json.loads((out / "history.json").read_text())
    assert 0.0 <= hist["string_accuracy"] <= 1.0 and 0.0 <= hist["step_accuracy"] <= 1.0
    code, stdout, err = run_cli(["evaluate", out / "model.safetensors"], capsys)
    assert code == 0, err and "Reber" in stdout


def test_train_adding_tiny_reports_mse_against_baseline(tmp_path, capsys):
    out = tmp_path / "adding"
    code, stdout, err = run_cli(["train", "adding", "--cell", "rnn", "--samples", "128", "--length", "12",
                                 "--epochs", "1", "--hidden", "8", "--out", out], capsys)
    assert code == 0, err
    m = re.search(r"test MSE (\d+\.\d+) \(always answering 1\.0 gives (\d+\.\d+)\)", stdout)
    assert m, stdout
    assert 0.1 < float(m.group(2)) < 0.25
    assert [type(layer).__name__ for layer in hg.load(out / "model.safetensors").layers] == ["RNN", "Dense"]


def test_train_charlm_tiny(tmp_path, capsys):
    text = tmp_path / "words.txt"
    text.write_text("apple\nbanana\ncherry\ndate\nelder\nfig\ngrape\n" * 60)
    out = tmp_path / "charlm"
    code, stdout, err = run_cli(["train", "charlm", "--text", text, "--epochs", "1", "--batch-size", "4",
                                 "--hidden", "16", "--out", out], capsys)
    assert code == 0, err
    assert "bits per character" in stdout and "sample:" in stdout
    model = hg.load(out / "model.safetensors")
    assert model.layers[0].stateful


def test_resume_continues_an_interrupted_run_to_the_same_weights(tmp_path, capsys):
    """A run stopped after epoch 1 of 2 and resumed ends with the weights of an uninterrupted run."""
    common = ["--subset", "--hidden", "16", "--epochs", "2", "--seed", "3"]
    full = tmp_path / "full"
    assert run_cli(["train", "mlp", *common, "--out", full], capsys)[0] == 0
    part = tmp_path / "part"
    assert run_cli(["train", "mlp", *common, "--out", part], capsys)[0] == 0
    ckpts = sorted((part / "checkpoints").glob("ckpt-*.safetensors"))
    assert len(ckpts) == 2
    ckpts[-1].unlink()  # as if the run had died during epoch 2
    code, stdout, err = run_cli(["train", "--resume", part], capsys)
    assert code == 0, err
    assert "resuming from" in stdout
    a, b = hg.load(full / "model.safetensors"), hg.load(part / "model.safetensors")
    for (ka, pa), (kb, pb) in zip(a.parameters(), b.parameters()):
        assert ka == kb and np.array_equal(pa, pb)


def test_resume_without_run_folder_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(["train", "--resume", tmp_path / "nothing"], capsys)
    assert code == 2 and "run.json" in err


def test_diagnose_shows_rnn_error_vanishing_faster_than_lstm(tmp_path, capsys):
    code, stdout, err = run_cli(["diagnose", "--length", "30", "--samples", "128", "--out", tmp_path], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "diagnostics.json").read_text())
    rnn, lstm = data["time"]["RNN (hidden 32)"], data["time"]["LSTM (hidden 32)"]
    assert len(rnn) == len(lstm) == 30
    assert (tmp_path / "delta_time.png").is_file() and (tmp_path / "delta_layers.png").is_file()
    sig, relu = data["layers"]["sigmoid"], data["layers"]["relu"]
    assert len(sig) == len(relu) == 7
    # 003 §4: the deep sigmoid net's first layer gets a far smaller error than its last
    assert sig[0] / sig[-1] < 0.1


def test_compare_trains_each_cell_and_plots(tmp_path, capsys):
    code, stdout, err = run_cli(["compare", "adding", "--samples", "128", "--length", "8", "--epochs", "1",
                                 "--hidden", "4", "--out", tmp_path], capsys)
    assert code == 0, err
    assert re.search(r"RNN +test MSE \d", stdout) and re.search(r"LSTM +test MSE \d", stdout)
    assert (tmp_path / "compare.png").is_file()
    assert (tmp_path / "rnn" / "model.safetensors").is_file() and (tmp_path / "lstm" / "model.safetensors").is_file()


def test_compare_reber_plots_validation_loss(tmp_path, capsys):
    code, stdout, err = run_cli(["compare", "reber", "--samples", "32", "--epochs", "1", "--out", tmp_path], capsys)
    assert code == 0, err
    assert re.search(r"LSTM +held-out strings entirely right \d", stdout)
    assert (tmp_path / "compare.png").is_file()


def test_resume_charlm_mid_epoch_is_bit_identical(tmp_path, capsys):
    """A stateful character model resumed from a mid-epoch checkpoint continues with the recurrent
    states the checkpoint restored (truncated BPTT), so it ends with the uninterrupted run's weights."""
    text = tmp_path / "words.txt"
    text.write_text("apple\nbanana\ncherry\ndate\nelder\nfig\ngrape\n" * 60)
    common = ["--text", text, "--epochs", "2", "--batch-size", "4", "--hidden", "8", "--checkpoint-every", "4"]
    full = tmp_path / "full"
    assert run_cli(["train", "charlm", *common, "--out", full], capsys)[0] == 0
    part = tmp_path / "part"
    assert run_cli(["train", "charlm", *common, "--out", part], capsys)[0] == 0
    ckpts = sorted((part / "checkpoints").glob("ckpt-*.safetensors"))
    # keep only a checkpoint written in the middle of epoch 2: as if the run died there
    _, _, state = hg.training.checkpoint.load_checkpoint(str(ckpts[0]))
    assert state["pos"]["epoch"] == 1 and 0 < state["pos"]["batch"], state["pos"]
    for p in ckpts[1:]:
        p.unlink()
    code, stdout, err = run_cli(["train", "--resume", part], capsys)
    assert code == 0, err
    a, b = hg.load(full / "model.safetensors"), hg.load(part / "model.safetensors")
    for (ka, pa), (kb, pb) in zip(a.parameters(), b.parameters()):
        assert ka == kb and np.array_equal(pa, pb), ka


def test_train_validates_on_a_held_out_part_of_the_training_set(trained_mlp, tmp_path, capsys, monkeypatch):
    """003 §4: val_* come from 10% of the training set (seeded), the test set is evaluated once
    after training and stored as test_*; --val-split 0 trains on everything, with no val_*."""
    hist = json.loads((trained_mlp / "history.json").read_text())
    assert hist["samples"] == {"train": 5400, "validation": 600, "test": 1000}
    assert {"val_loss", "val_accuracy"} <= set(hist["history"]) and "test_accuracy" in hist
    assert not any(k.startswith("test_") for k in hist["history"])  # never during training
    from handgrad.cli import train as cli_train

    seen = []
    real_fit = cli_train.fit
    monkeypatch.setattr(cli_train, "fit", lambda *a, **k: seen.append(k["validation_data"]) or real_fit(*a, **k))
    code, stdout, _ = run_cli(["train", "mlp", "--subset", "--epochs", "1", "--hidden", "8", "--out", tmp_path / "a"],
                              capsys)
    assert code == 0 and "5400 training, 600 validation" in stdout and "1000 test samples" in stdout
    (_, _), (xte, _) = hg.data.load_fashion_mnist_subset()
    xv = seen[0][0].reshape(len(seen[0][0]), -1)
    test_rows = {r.tobytes() for r in hg.data.to_float(xte)}
    assert not any(r.tobytes() in test_rows for r in xv)  # validation rows are training rows
    code, stdout, _ = run_cli(["train", "mlp", "--subset", "--epochs", "1", "--hidden", "8", "--val-split", "0",
                               "--out", tmp_path / "b"], capsys)
    assert code == 0 and seen[1] is None and "no validation" in stdout
    hist = json.loads((tmp_path / "b" / "history.json").read_text())
    assert not any(k.startswith("val_") for k in hist["history"]) and "test_accuracy" in hist


def test_early_stopping_without_validation_is_an_error(tmp_path, capsys):
    code, _, err = run_cli(["train", "mlp", "--subset", "--epochs", "1", "--val-split", "0", "--early-stopping", "2",
                            "--out", tmp_path], capsys)
    assert code == 2 and "--val-split" in err


def test_sequence_presets_validate_on_held_out_training_data(tmp_path, capsys):
    text = tmp_path / "words.txt"
    text.write_text("apple\nbanana\ncherry\ndate\nelder\nfig\ngrape\n" * 60)
    code, stdout, err = run_cli(["train", "charlm", "--text", text, "--epochs", "1", "--batch-size", "4",
                                 "--hidden", "8", "--out", tmp_path / "c"], capsys)
    assert code == 0, err
    hist = json.loads((tmp_path / "c" / "history.json").read_text())
    assert "val_loss" in hist["history"] and "test_loss" in hist and hist["samples"]["validation"] > 0
    code, _, err = run_cli(["train", "reber", "--samples", "40", "--epochs", "1", "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    hist = json.loads((tmp_path / "r" / "history.json").read_text())
    assert hist["samples"] == {"train": 36, "validation": 4, "test": 1000} and "test_string_accuracy" in hist


def test_out_defaults_live_under_runs():
    parser = cli.build_parser()
    for argv in (["demo"], ["compare", "adding"], ["diagnose"], ["detect", "m", "i"], ["scenes"],
                 ["train-detector", "m"], ["visualize", "m"]):
        out = parser.parse_args(argv).out
        assert os.path.dirname(out) == "runs", (argv, out)
