"""Data-parallel step throughput on MPI: 1, 2 and 4 ranks, the communication share of a step,
bytes per step, and the ring-allreduce cost model fitted from measured Allreduce times.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mpi.py \\
        [--model lenet5|mlp] [--ranks 1,2,4] [--batch 128] [--steps 30] [--threads-baseline 2]

The parent process launches ``mpiexec -n K python bench_mpi.py --child ...`` for every K
(each rank with one BLAS thread) and, with ``--threads-baseline T``, one plain process with T
BLAS threads; it prints samples/s, the speed-up over one rank, the share of a step spent
inside the gradient Allreduce, and the fitted model

    t_allreduce(B) ≈ 2(K−1)/K · B / bandwidth + 2(K−1) · latency

(the bandwidth-optimal ring: a reduce-scatter and an allgather of K−1 steps each), used to
predict the communication time of one step for K hosts. With more ranks than cores (4 ranks
on a 2-core machine) the ranks oversubscribe the CPU: that row measures contention, not
scaling. Every row runs the real ``hg.fit`` (one rank: ``distributed=False``, the plain
single-process path) for one epoch of 3 warm-up and ``--steps`` timed global batches; a
callback times each step from batch begin to batch end (the sharded forward/backward, the
gradient and loss Allreduce, the update, the metric sums, the agreed signal flag).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

import handgrad as hg

SIZES = [2 ** k for k in range(8, 23, 2)]  # Allreduce payloads, bytes: 256 B … 4 MiB


def build(name: str):
    from handgrad import presets

    if name == "lenet5":
        return presets.lenet5(seed=0), (1, 28, 28)
    return presets.mlp(hidden=(256, 128), seed=0), (784,)


class StepTimer(hg.Callback):
    """A ``fit`` callback timing the steps after ``warmup`` (batch begin → batch end: the
    sharded forward and backward, the Allreduces, the update, the metric sums and the agreed
    signal flag — the whole step of ``fit``), and resetting the communicator's counters there."""

    def __init__(self, warmup: int, comm) -> None:
        self.warmup, self.comm, self.seen, self.seconds, self.t = warmup, comm, 0, 0.0, 0.0

    def on_batch_begin(self, batch, logs=None):
        if self.seen == self.warmup and self.comm is not None:
            self.comm.stats.reset()
        self.t = time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        if self.seen >= self.warmup:
            self.seconds += time.perf_counter() - self.t
        self.seen += 1


def child(args) -> None:
    """One rank: ``hg.fit`` for one epoch of ``3 + args.steps`` global batches (3 warm-up
    steps), then the Allreduce of several sizes."""
    from threadpoolctl import threadpool_limits

    from handgrad import distributed as dist
    from handgrad import losses

    threadpool_limits(args.blas_threads)
    comm = dist.MPICommunicator() if args.mpi else None
    model, shape = build(args.model)
    opt = hg.optim.SGD(model, lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    n = (3 + args.steps) * args.batch
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, 10, n)
    timer = StepTimer(3, comm)
    hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=1, batch_size=args.batch, callbacks=[timer],
           progress_bar=False, distributed=dist.Distributed(comm=comm) if comm is not None else False)
    size = comm.size if comm is not None else 1
    comm_s = comm.stats.seconds / args.steps if comm is not None else 0.0
    nbytes = comm.stats.bytes / args.steps if comm is not None else 0
    times = []
    for nb in SIZES:
        buf = np.zeros(nb // 4, dtype=np.float32)
        reps = 20
        if size > 1:
            comm.barrier()
        t = time.perf_counter()
        for _ in range(reps):
            if size > 1:
                comm.allreduce_sum(buf)
        times.append((time.perf_counter() - t) / reps)
    # the slowest rank sets the pace: report maxima over ranks
    v = np.array([timer.seconds, comm_s, *times], dtype=np.float64)
    if size > 1:
        comm.allreduce_max(v)
    if comm is None or comm.rank == 0:
        print("RESULT " + json.dumps({"ranks": size, "blas_threads": args.blas_threads,
                                      "step_s": v[0] / args.steps, "comm_s": v[1], "bytes": nbytes,
                                      "params": model.num_params, "allreduce": dict(zip(SIZES, v[2:].tolist()))}),
              flush=True)


def launch(cmd, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{out}")
    return json.loads(lines[-1][7:])


def fit_ring(rows) -> tuple[float, float] | None:
    """Least-squares (latency α s, bandwidth β B/s) of t = 2(K−1)/K·B/β + 2(K−1)·α over all
    measured (K ≥ 2, B, t)."""
    a, t = [], []
    for r in rows:
        k = r["ranks"]
        if k < 2:
            continue
        for size, sec in r["allreduce"].items():
            a.append([2 * (k - 1) / k * int(size), 2 * (k - 1)])
            t.append(sec)
    if len(t) < 2:
        return None
    (inv_bw, lat), *_ = np.linalg.lstsq(np.array(a), np.array(t), rcond=None)
    return float(lat), float(1.0 / inv_bw) if inv_bw > 0 else float("inf")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["lenet5", "mlp"], default="lenet5")
    p.add_argument("--ranks", default="1,2,4")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads-baseline", type=int, default=2, help="one process with this many BLAS threads (0: none)")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--blas-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    # the mpich wheel's mpiexec lies next to the interpreter; else a system MPI's on PATH
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = here if os.access(here, os.X_OK) else shutil.which("mpiexec")
    me = [sys.executable, os.path.abspath(__file__), "--child", "--model", args.model, "--batch", str(args.batch),
          "--steps", str(args.steps)]
    rows = []
    if args.threads_baseline:
        rows.append(launch(me + ["--blas-threads", str(args.threads_baseline)], args.timeout))
    for k in (int(s) for s in args.ranks.split(",")):
        rows.append(launch([mpiexec, "-n", str(k)] + me + ["--mpi"], args.timeout) if k > 1
                    else launch(me, args.timeout))
    one = next((r for r in rows if r["ranks"] == 1 and r["blas_threads"] == 1), rows[0])
    cores = os.cpu_count() or 1
    print(f"{args.model}: {one['params']} parameters, global batch {args.batch}, {args.steps} timed steps of hg.fit, "
          f"{cores} cores")
    print(f"{'ranks':>5} {'BLAS':>4} {'samples/s':>10} {'vs 1 rank':>9} {'comm share':>10} {'bytes/step':>10}")
    for r in rows:
        note = f"  (oversubscribed: {r['ranks']} ranks on {cores} cores)" if r["ranks"] > cores else ""
        print(f"{r['ranks']:>5} {r['blas_threads']:>4} {args.batch / r['step_s']:>10.0f} "
              f"{one['step_s'] / r['step_s']:>9.2f} {r['comm_s'] / r['step_s']:>10.1%} "
              f"{r['bytes'] if r['ranks'] > 1 else 0:>10.0f}{note}")
    print("comm share: time inside the gradient and loss Allreduce (Allreduce SUM calls) over the step time, "
          "waiting for the slowest rank included; the signal flag's 4-byte Allreduce MAX is not counted")
    two = next((r for r in rows if r["ranks"] == 2), None)
    threads = next((r for r in rows if r["ranks"] == 1 and r["blas_threads"] > 1), None)
    if two and threads:
        print(f"2 ranks x 1 BLAS thread vs 1 process x {threads['blas_threads']} BLAS threads: "
              f"{threads['step_s'] / two['step_s']:.2f}x the throughput (same run)")
    fitted = fit_ring(rows)
    if fitted:
        lat, bw = fitted
        print(f"ring model t = 2(K-1)/K * B / bw + 2(K-1) * lat, fitted on {len(SIZES)} sizes x the rank counts: "
              f"lat {lat * 1e6:.1f} us, bw {bw / 1e9:.2f} GB/s (shared memory here, not a network)")
        # a step's payload: the gradient buffer (+ count and failure flag) and the 16-byte loss; three
        # collectives per step (gradients, loss, the signal flag), each paying the latency term
        b = next((r["bytes"] for r in rows if r["ranks"] > 1), 4 * one["params"])
        step = one["step_s"]
        for k in (2, 8, 32, 128):
            t = 2 * (k - 1) / k * b / bw + 3 * 2 * (k - 1) * lat
            print(f"  K={k:>3}: predicted Allreduce of {b / 1e6:.3f} MB per step = {t * 1e3:.3f} ms; "
                  f"with the global batch split K ways the compute is {step / k * 1e3:.2f} ms, so comm share "
                  f"{t / (t + step / k):.0%}")


if __name__ == "__main__":
    main()
