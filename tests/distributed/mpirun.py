"""Launching real MPI jobs from the tests: where ``mpiexec`` is, and one bounded launch that
kills the job's whole process group whatever happens (imported by the ``test_mpi_*`` modules)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import handgrad

#: the mpich wheel puts mpiexec next to the interpreter (the Python scripts folder), which a
#: fresh environment need not have on PATH; a system MPI's is found on PATH
MPIEXEC = next((p for p in (os.path.join(os.path.dirname(sys.executable), "mpiexec"), shutil.which("mpiexec"))
                if p and os.access(p, os.X_OK)), None)
SKIP_REASON = ("mpi4py is installed but no mpiexec was found next to the interpreter or on PATH "
               "(pip install 'handgrad[dist]' brings the mpich wheel's)")


def job_env(**extra: str) -> dict:
    """The environment of a launched job: this checkout's ``handgrad`` first on the path, one BLAS
    thread per rank."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **extra)
    src = os.path.dirname(os.path.dirname(os.path.abspath(handgrad.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return env


def run_job(n: int, argv: list[str], env: dict, timeout: float):
    """``mpiexec -n n python argv...`` → (exit code, stdout+stderr, seconds). Past ``timeout``
    the test fails with ``TimeoutExpired`` after the process group is killed."""
    t0 = time.monotonic()
    proc = subprocess.Popen([MPIEXEC, "-n", str(n), sys.executable, *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, time.monotonic() - t0
