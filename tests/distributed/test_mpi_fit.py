"""``hg.fit`` and ``handgrad train`` under real ``mpiexec -n 2`` / ``-n 3`` on tiny data,
compared with the same run in one process (this test process): final weights to float32
rounding (float64: 1e-12), histories, resume from 2 ranks onto 3, faults within 30 s, and only
rank 0 writing and printing. Launches are combined (one per rank count for all the fits), each
bounded, its process group killed in ``finally``."""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the dist extra (mpi4py) is not installed")

import handgrad as hg
from handgrad.cli import main as cli_main

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("fit_worker", os.path.join(HERE, "fit_worker.py"))
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

from mpirun import MPIEXEC, SKIP_REASON, job_env, run_job

if MPIEXEC is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)

KINDS = ("mlp", "cnn", "lstm")
TOL = {"float32": 1e-5, "float64": 1e-12}


def launch(n: int, argv: list[str], audit_dir=None, timeout: float = 90.0):
    """``mpiexec -n n python ARGV`` → (exit code, output, seconds); past ``timeout`` the
    process group is killed and the test fails with ``TimeoutExpired``."""
    env = job_env(PYTHONDONTWRITEBYTECODE="1", HANDGRAD_NO_PROGRESS="1")
    env.pop("AUDIT_DIR", None)
    if audit_dir is not None:
        env["AUDIT_DIR"] = str(audit_dir)
    return run_job(n, argv, env, timeout)


def rank_report(audit_dir, rank: int):
    with open(os.path.join(audit_dir, f"rank-{rank}.json")) as f:
        written = json.load(f)
    with open(os.path.join(audit_dir, f"rank-{rank}.out")) as f:
        printed = f.read()
    return written, printed


def weights(model) -> np.ndarray:
    return np.concatenate([p.ravel() for _, p in model.parameters()]).astype(np.float64)


def rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def single():
    """Every job's single-process model and history."""
    return {(k, d): worker.run_job(k, d) for k in KINDS for d in TOL}


def fit_jobs(extra=()):
    return [f"fit:{k}:{d}" for k in KINDS for d in TOL] + list(extra)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One launch at -n 2: the six fits, and the MLP and LSTM runs interrupted at step 4."""
    out, audit_dir = tmp_path_factory.mktemp("n2"), tmp_path_factory.mktemp("audit2")
    jobs = fit_jobs(["interrupt:mlp:float64", "interrupt:lstm:float32", "workers:mlp0:float64", "workers:mlp:float64"])
    code, text, _ = launch(2, [os.path.join(HERE, "fit_worker.py"), str(out), *jobs], audit_dir)
    assert code == 0, f"mpiexec -n 2 fit_worker.py failed (exit {code}):\n{text}\n" + rank_report(audit_dir, 0)[1]
    return out, audit_dir


@pytest.fixture(scope="module")
def three_ranks(tmp_path_factory, two_ranks):
    """One launch at -n 3: the six fits, and the runs interrupted on 2 ranks resumed on 3."""
    out2, _ = two_ranks
    audit_dir = tmp_path_factory.mktemp("audit3")
    jobs = fit_jobs(["resume:mlp:float64", "resume:lstm:float32", "mismatch", "badlabel"])
    code, text, _ = launch(3, [os.path.join(HERE, "fit_worker.py"), str(out2), *jobs], audit_dir)
    assert code == 0, f"mpiexec -n 3 fit_worker.py failed (exit {code}):\n{text}\n" + rank_report(audit_dir, 0)[1]
    return out2, audit_dir


def check_job(out, job, ref_model, ref_hist, tol):
    model = hg.load(os.path.join(out, f"{job.replace(':', '-')}.safetensors"))
    r = rel(weights(model), weights(ref_model))
    assert r <= tol, f"{job}: max relative weight difference {r:.3g} > {tol:g}"
    with open(os.path.join(out, f"{job.replace(':', '-')}.json")) as f:
        hist = json.load(f)
    assert sorted(hist) == sorted(ref_hist.history), job
    for key, values in ref_hist.history.items():  # training loss/accuracy sums and validation over ranks
        np.testing.assert_allclose(hist[key], values, rtol=max(tol, 1e-6), err_msg=f"{job}: {key}")


@pytest.mark.parametrize("ranks", [2, 3])
def test_fit_on_k_ranks_equals_one_process_with_the_same_global_batch(ranks, single, request):
    # -n 3: the last batch of 2 rows leaves one rank without rows; the MLP augments the global
    # batch (a custom augmenter), the CNN its rows (RandomAffine), the LSTM's labels are padded
    out, _ = request.getfixturevalue("two_ranks" if ranks == 2 else "three_ranks")
    for kind in KINDS:
        for dtype, tol in TOL.items():
            ref_model, ref_hist = single[kind, dtype]
            check_job(out, f"fit:{kind}:{dtype}", ref_model, ref_hist, tol)


def test_resume_on_three_ranks_of_a_run_interrupted_on_two_equals_the_uninterrupted_run(three_ranks, single):
    out, _ = three_ranks
    for kind, dtype in (("mlp", "float64"), ("lstm", "float32")):
        folder = os.path.join(out, f"ckpt-{kind}-{dtype}")
        steps = sorted(os.listdir(folder))
        assert "ckpt-0000000004.safetensors" in steps, steps  # the interruption's (step 4 of 6)
        check_job(out, f"resume:{kind}:{dtype}", *single[kind, dtype], TOL[dtype])


def test_threads_inside_each_rank(two_ranks):
    # 2 ranks x 2 threads equal one process with one thread (float rounding), dropout too:
    # every thread draws its rows of the global batch's masks (docs/distributed.md)
    out, _ = two_ranks
    check_job(out, "workers:mlp0:float64", *worker.run_job("mlp0", "float64", workers=1), 1e-12)
    check_job(out, "workers:mlp:float64", *worker.run_job("mlp", "float64", workers=1), 1e-12)
    model = hg.load(os.path.join(out, "workers-mlp-float64.safetensors"))
    assert rel(weights(model), weights(worker.build("mlp", "float64"))) > 1e-3  # it trained


def test_a_data_error_on_one_rank_raises_on_every_rank(three_ranks):
    # the job went on after both (exit 0): no abort, no hang, every rank raised ValueError
    out, _ = three_ranks
    with open(os.path.join(out, "mismatch.txt")) as f:
        assert "the 3 ranks disagree about the run" in f.read()
    with open(os.path.join(out, "badlabel.txt")) as f:
        assert "another rank rejected its data" in f.read()  # rank 0's labels were fine


@pytest.mark.parametrize("ranks", [2, 3])
def test_only_rank_zero_writes_and_prints(ranks, request):
    _, audit_dir = request.getfixturevalue("two_ranks" if ranks == 2 else "three_ranks")
    written0, _ = rank_report(audit_dir, 0)
    assert any(p.endswith("fit-mlp-float32.json") for p in written0), written0  # the audit sees writes
    assert any("ckpt-" in p for p in written0), written0
    for r in range(1, ranks):
        written, printed = rank_report(audit_dir, r)
        assert written == [] and printed == "", (r, written, printed)


@pytest.mark.parametrize("job,message", [("fail-step", "rank 1 of 2 failed at epoch 1, batch 1: ValueError: bad batch"),
                                         ("fail-callback", "disk full on rank 1")])
def test_a_failing_rank_ends_the_job_with_its_message(tmp_path, job, message):
    # a hang would exceed the 30 s bound: TimeoutExpired
    code, text, _ = launch(2, [os.path.join(HERE, "fit_worker.py"), str(tmp_path), job], timeout=30)
    assert code != 0 and message in text, text
    if job == "fail-callback":
        assert "rank 1 of 2 failed; ending all ranks" in text, text


CLI = ["train", "mlp", "--subset", "--hidden", "8", "--epochs", "1", "--batch-size", "200", "--dropout", "0.2"]


def test_cli_under_mpiexec_reproduces_the_single_process_model_and_only_rank_zero_writes(tmp_path, capsys):
    assert cli_main([*CLI, "--out", str(tmp_path / "one")]) == 0
    single_out = capsys.readouterr().out
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    runner = os.path.join(HERE, "cli_worker.py")
    code, text, _ = launch(2, [runner, *CLI, "--out", str(tmp_path / "two")], audit_dir)
    _, printed0 = rank_report(audit_dir, 0)
    assert code == 0, text + printed0
    a = hg.load(str(tmp_path / "one" / "model.safetensors"))
    b = hg.load(str(tmp_path / "two" / "model.safetensors"))
    assert rel(weights(b), weights(a)) <= 1e-5
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))
    assert "test accuracy" in printed0 and printed0.count("epoch   1/1") == single_out.count("epoch   1/1") == 1
    written1, printed1 = rank_report(audit_dir, 1)
    assert written1 == [] and printed1 == "", (written1, printed1)
