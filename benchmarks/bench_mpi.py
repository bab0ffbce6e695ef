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
scaling. The step is driven directly by ``handgrad.distributed`` (forward, backward,
Allreduce, optimizer step), not through ``fit``.
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

SIZES = [2 ** k for k in range(8, 23, 2)]  # Allreduce payloads, bytes: 256 B … 4 MiB


def build(name: str):
    from handgrad import presets

    if name == "lenet5":
        return presets.lenet5(seed=0), (1, 28, 28)
    return presets.mlp(hidden=(256, 128), seed=0), (784,)


def child(args) -> None:
    """One rank: time ``args.steps`` sharded steps and the Allreduce of several sizes."""
    from threadpoolctl import threadpool_limits

    import handgrad as hg
    from handgrad import distributed as dist
    from handgrad import losses

    threadpool_limits(args.blas_threads)
    comm = dist.MPICommunicator() if args.mpi else dist.LocalCommunicator()
    model, shape = build(args.model)
    loss = losses.SoftmaxCrossEntropy()
    opt = hg.optim.SGD(model, lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    reducer = dist.MPIReducer(comm)
    dist.broadcast_parameters(comm, model)
    step = dist.ShardedStep(model, loss, reducer, generators=dist.install_row_sharding([model]))
    for _ in range(3):  # warm-up
        step(x, y)
        opt.step()
    if comm.size > 1:
        comm.barrier()
    comm.stats.reset()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step(x, y)
        opt.step()
    seconds = time.perf_counter() - t0
    comm_s, nbytes = comm.stats.seconds / args.steps, comm.stats.bytes / args.steps
    times = []
    for size in SIZES:
        buf = np.zeros(size // 4, dtype=np.float32)
        reps = 20
        if comm.size > 1:
            comm.barrier()
        t = time.perf_counter()
        for _ in range(reps):
            comm.allreduce_sum(buf)
        times.append((time.perf_counter() - t) / reps)
    # the slowest rank sets the pace: report maxima over ranks
    v = np.array([seconds, comm_s, *times], dtype=np.float64)
    if comm.size > 1:
        comm.allreduce_max(v)
    if comm.rank == 0:
        print("RESULT " + json.dumps({"ranks": comm.size, "blas_threads": args.blas_threads,
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
    mpiexec = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    me = [sys.executable, os.path.abspath(__file__), "--child", "--model", args.model, "--batch", str(args.batch),
          "--steps", str(args.steps)]
    rows = []
    if args.threads_baseline:
        rows.append(launch(me + ["--blas-threads", str(args.threads_baseline)], args.timeout))
    for k in (int(s) for s in args.ranks.split(",")):
        rows.append(launch([mpiexec, "-n", str(k)] + me + ["--mpi"], args.timeout) if k > 1
                    else launch(me, args.timeout))
    one = next((r for r in rows if r["ranks"] == 1 and r["blas_threads"] == 1), rows[0])
    cores = os.cpu_count()
    print(f"{args.model}: {one['params']} parameters, global batch {args.batch}, {args.steps} steps, {cores} cores")
    print(f"{'ranks':>5} {'BLAS':>4} {'samples/s':>10} {'vs 1 rank':>9} {'comm share':>10} {'bytes/step':>10}")
    for r in rows:
        note = "  (oversubscribed)" if r["ranks"] > (cores or 1) else ""
        print(f"{r['ranks']:>5} {r['blas_threads']:>4} {args.batch / r['step_s']:>10.0f} "
              f"{one['step_s'] / r['step_s']:>9.2f} {r['comm_s'] / r['step_s']:>10.1%} "
              f"{r['bytes'] if r['ranks'] > 1 else 0:>10.0f}{note}")
    print("comm share: time inside the gradient and loss Allreduce over the step time, waiting for the "
          "slowest rank included")
    fitted = fit_ring(rows)
    if fitted:
        lat, bw = fitted
        print(f"ring model fitted on {len(SIZES)} sizes: latency {lat * 1e6:.1f} us, bandwidth {bw / 1e9:.2f} GB/s")
        b = one["bytes"] or 4 * one["params"]
        for k in (2, 8, 32, 128):
            print(f"  K={k:>3}: predicted Allreduce of {b / 1e6:.2f} MB per step = "
                  f"{(2 * (k - 1) / k * b / bw + 2 * (k - 1) * lat) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
