"""Real ``mpiexec -n 2`` / ``-n 3`` runs of the distributed pieces on tiny data
(``mpi_worker.py``): each rank also computes the single-process result itself, so the
comparison needs nothing but the job's output. Every launch is bounded (60 s) and its whole
process group is killed in ``finally``."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

pytest.importorskip("mpi4py", reason="the dist extra (mpi4py) is not installed")

import handgrad

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_worker.py")
from mpirun import MPIEXEC, SKIP_REASON, job_env, run_job

if MPIEXEC is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)


def launch(n: int, *args: str, timeout: float = 60.0):
    """``mpiexec -n n python mpi_worker.py args`` → (exit code, stdout+stderr, seconds);
    past ``timeout`` the test fails with ``TimeoutExpired`` after the group is killed."""
    return run_job(n, [WORKER, *args], job_env(), timeout)


def result(n: int, *args: str) -> dict:
    code, out, _ = launch(n, *args)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert code == 0 and lines, f"mpiexec -n {n} {' '.join(args)} failed (exit {code}):\n{out}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("ranks", [2, 3])
def test_one_step_allreduced_gradient_is_the_global_batch_gradient(ranks):
    # 11 samples over 2 or 3 ranks (6+5, 4+4+3 rows); dropout on; the LSTM's labels have
    # -1 padding, one sample padding only, so the (sample, step) weights are uneven;
    # at -n 3 also in 64-byte pieces of the one buffer
    res = result(ranks, "grad+bucket" if ranks == 3 else "grad", "mlp,cnn,lstm", "float64", "--bucket=64")
    for key, r in res.items():
        assert r["rel"] < 1e-12, (key, r)
        assert r["value"] < 1e-12, (key, r)
        assert r["same"], f"{key}: the ranks' gradients differ"
        if key.startswith("grad:"):
            assert r["allreduce_calls"] == 2, f"{key}: expected one gradient and one loss Allreduce, got {r}"
        else:
            assert r["allreduce_calls"] > 2, (key, r)
    assert len(res) == (6 if ranks == 3 else 3)


@pytest.mark.parametrize("ranks,dtype,tol", [(3, "float64", 1e-12), (2, "float32", 1e-5)])
def test_training_with_dropout_matches_one_process(ranks, dtype, tol):
    # Adam, two epochs of batches 4, 4, 3 and a 2-row batch (a rank with no rows at -n 3);
    # "norows": the same without row-sharded dropout draws must differ (the check can fail)
    res = result(ranks, "train+norows", "mlp,cnn,lstm", dtype)
    for kind in ("mlp", "cnn", "lstm"):
        r = res[f"train:{kind}"]
        assert r["rel"] < tol, (kind, r)
        assert r["same"], f"{kind}: the ranks' weights drifted apart"
        assert res[f"norows:{kind}"]["rel"] > 100 * tol, (kind, res[f"norows:{kind}"])


def test_broadcasts_from_rank_zero_and_validation_sums_over_ranks():
    # rank 0 took two Adam steps, the others none and another learning rate
    res = result(3, "bcast+eval", "mlp,lstm", "float64")
    for kind in ("mlp", "lstm"):
        r = res[f"bcast:{kind}"]
        assert r["same"] and r["gen_same"] and r["lr_same"] and r["steps"] == 2 and r["n_slots"] > 0, r
        e = res[f"eval:{kind}"]
        assert e["loss"] < 1e-12 and e["accuracy"] < 1e-12 and e["top2"] < 1e-12 and e["per_class"], (kind, e)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_mpiexec_stops_every_rank_at_one_step_and_rank_zero_writes_once(tmp_path, sig):
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(handgrad.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([MPIEXEC, "-n", "3", sys.executable, WORKER, "signal", "mlp", "float64", str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    watchdog = threading.Timer(30, lambda: os.killpg(proc.pid, signal.SIGKILL))  # bounds the read loop
    watchdog.start()
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("READY"):
                proc.send_signal(sig)  # mpiexec forwards it to every rank
                break
        out, _ = proc.communicate(timeout=30)
        out = "".join(lines) + out
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    res = json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert len(set(res["steps"])) == 1 and res["signal"] == [int(sig)], res
    assert [p.name for p in tmp_path.iterdir()] == [f"ckpt-{res['steps'][0]}.txt"]


def test_a_failing_rank_ends_every_rank_with_its_message():
    # a hang would exceed the 30 s bound and fail with TimeoutExpired
    code, out, _ = launch(3, "fail", "mlp", "float64", timeout=30)
    assert code != 0
    assert "rank 1 of 3 failed" in out and "bad batch on rank 1" in out, out


def test_an_error_outside_a_step_aborts_the_job():
    code, out, _ = launch(3, "abort", "mlp", "float64", timeout=30)
    assert code != 0
    assert "rank 1 of 3 failed" in out and "disk full while writing on rank 1" in out, out
