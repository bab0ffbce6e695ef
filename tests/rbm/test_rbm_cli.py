"""``handgrad.cli.rbm``: both presets end to end on a few hundred images (files written, test
error reported, resume, evaluate), and bad options."""
from __future__ import annotations

import json

import numpy as np
import pytest

import handgrad as hg
from handgrad.cli import rbm as cli


@pytest.fixture()
def small_data(monkeypatch):
    (x, _), (xt, yt) = hg.data.load_fashion_mnist_subset()
    x = (x[:300].reshape(300, -1) / 255.0).astype(np.float32)
    xt = (xt[:100].reshape(100, -1) / 255.0).astype(np.float32)
    monkeypatch.setattr(cli, "_load_data", lambda args: (x[:240], x[240:], (xt, yt[:100])))
    monkeypatch.setenv("HANDGRAD_NO_PROGRESS", "1")
    return xt


def test_autoencoder_preset_writes_everything_and_reports_the_test_error(tmp_path, small_data, capsys):
    out = tmp_path / "ae"
    code = cli.main(["autoencoder", "--hidden", "16,8", "--code-size", "2", "--pretrain-epochs", "2",
                     "--epochs", "2", "--batch-size", "40", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "test squared error per image" in text and "PCA-2" in text
    hist = json.loads((out / "history.json").read_text())
    assert hist["pretrained"] and len(hist["pretraining"]) == 3 and len(hist["history"]["val_loss"]) == 2
    model = hg.load(out / "model.safetensors")
    from handgrad.rbm.autoencoder import reconstruction_error

    assert reconstruction_error(model, small_data, True) == pytest.approx(hist["test"]["squared_error_per_image"])
    stack = hg.load(out / "stack.safetensors")
    assert [r.n_hidden for r in stack] == [16, 8, 2] and stack[-1].hidden == "gaussian"
    if hg.plotting.have_matplotlib():
        for name in ("curves.png", "filters.png", "reconstructions.png", "samples.png", "codes.png", "pretraining.png"):
            assert (out / name).stat().st_size > 1000, name
    # a finished run resumes to the same result
    assert cli.main(["--resume", str(out)]) == 0
    again = json.loads((out / "history.json").read_text())
    assert again["test"]["squared_error_per_image"] == pytest.approx(hist["test"]["squared_error_per_image"])
    monkeypatch_args = type("A", (), {"model": str(out / "model.safetensors"), "subset": True, "data": None})
    assert cli.evaluate_model(monkeypatch_args) == 0


def test_no_pretrain_and_the_rbm_preset(tmp_path, small_data, capsys):
    assert cli.main(["autoencoder", "--no-pretrain", "--hidden", "8", "--code-size", "3", "--epochs", "1",
                     "--finetune-loss", "mse", "--out", str(tmp_path / "rand")]) == 0
    assert not (tmp_path / "rand" / "stack.safetensors").exists()
    assert cli.main(["rbm", "--hidden", "12", "--epochs", "2", "--persistent", "-k", "2",
                     "--out", str(tmp_path / "r")]) == 0
    r = hg.load(tmp_path / "r" / "model.safetensors")
    assert r.n_hidden == 12
    assert "test reconstruction error" in capsys.readouterr().out
    assert cli.is_run(str(tmp_path / "r")) and not cli.is_run(str(tmp_path))


def test_bad_options(tmp_path, small_data, capsys):
    assert cli.main(["autoencoder", "-k", "0", "--out", str(tmp_path / "x")]) == 2
    assert "-k" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["autoencoder", "--finetune-loss", "l1"])


def test_handgrad_train_and_evaluate_run_the_rbm_presets(tmp_path, small_data, capsys, monkeypatch):
    """The presets through the ``handgrad`` command itself: ``train autoencoder``, then
    ``evaluate`` reports the same squared error per test image; under ``mpiexec -n 2`` they refuse."""
    from handgrad import cli as main_cli

    out = tmp_path / "ae"
    assert main_cli.main(["train", "autoencoder", "--hidden", "16", "--code-size", "3", "--pretrain-epochs", "1",
                          "--epochs", "1", "--batch-size", "40", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main_cli.main(["evaluate", "--subset", str(out / "model.safetensors")]) == 0
    from handgrad.rbm.autoencoder import reconstruction_error

    _, (xt, _) = hg.data.load_fashion_mnist_subset()
    expected = reconstruction_error(hg.load(out / "model.safetensors"), hg.data.to_float(xt), True)
    assert f"{len(xt)} test images: squared error {expected:.4f} per image" in capsys.readouterr().out
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "0")
    assert main_cli.main(["train", "rbm", "--out", str(tmp_path / "r")]) == 2
    assert "run as one process" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
