"""Shared machinery for the side-by-side benchmarks: handgrad and PyTorch train the same model
on the same data in one process with the same number of threads, epochs interleaved so both
see the same machine state; peak memory is measured per framework in a fresh child process
(the peak RSS of one process cannot be split between two libraries), reset after the data is
loaded so it covers the training epoch only."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import handgrad as hg
from handgrad import losses


def blas_info() -> dict:
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return blas[0] if blas else {"num_threads": os.cpu_count()}


def machine_line(torch) -> str:
    b = blas_info()
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__} "
            f"({b.get('internal_api', '?')} {b.get('version', '')}, {b.get('architecture', '?')}), "
            f"torch {torch.__version__}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")


WORKERS = 1  # set by the scripts' --workers option


def handgrad_epoch(model, opt, x, y, batch, seed, loss=None) -> float:
    t = time.perf_counter()
    hg.fit(model, loss or losses.SoftmaxCrossEntropy(), opt, x, y, epochs=1, batch_size=batch,
           seed=seed, progress_bar=False, workers=WORKERS)
    return time.perf_counter() - t


def torch_epoch(torch, model, opt, xt, yt, batch, seed, lossf=None) -> float:
    lossf = lossf or torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    perm = torch.randperm(xt.shape[0], generator=g)
    for s in range(0, xt.shape[0], batch):
        idx = perm[s:s + batch]
        out = model(xt[idx])
        loss = lossf(out, yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # handgrad's fit reads every batch's loss as a float too
    return time.perf_counter() - t


def interleaved(run_h, run_t, repeats: int):
    run_h(100), run_t(100)  # warm-up
    th, tt = [], []
    for r in range(repeats):
        th.append(run_h(r))
        tt.append(run_t(r))
    return th, tt


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def measure_child(run) -> None:
    """In a child: reset the peak RSS, run one epoch, print the growth above the baseline."""
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # Linux: reset VmHWM to the current RSS
        fh.write("5")
    run()
    peak = _status_kb("VmHWM")
    print(json.dumps({"peak_rss_mb": peak / 1024, "training_mb": (peak - base) / 1024}))


def memory_pair(script: str, extra_args: list[str]) -> dict:
    mem = {}
    for fw in ("handgrad", "torch"):
        out = subprocess.run([sys.executable, script, "--child", fw, "--workers", str(WORKERS), *extra_args],
                             capture_output=True, text=True, check=True).stdout
        mem[fw] = json.loads(out.strip().splitlines()[-1])
    return mem


def report(title, flops, n, th, tt, acc_h, acc_t, mem, torch):
    h, t = statistics.median(th), statistics.median(tt)
    print(title + (f"; handgrad fit(workers={WORKERS}): {WORKERS} threads, one BLAS thread each"
                   if WORKERS > 1 else ""))
    print(machine_line(torch))
    print(f"{'':10} {'s/epoch':>8} {'GFLOP/s':>8} {'train acc':>9}   (all repeats)")
    print(f"{'handgrad':10} {h:8.3f} {flops / h / 1e9:8.1f} {acc_h:9.4f}   {[round(v, 3) for v in th]}")
    print(f"{'pytorch':10} {t:8.3f} {flops / t / 1e9:8.1f} {acc_t:9.4f}   {[round(v, 3) for v in tt]}")
    print(f"time ratio handgrad/pytorch: {h / t:.2f}x   ({n} samples per epoch)")
    if mem:
        hm, tm = mem["handgrad"]["training_mb"], mem["torch"]["training_mb"]
        print(f"peak memory of one epoch above the loaded data (fresh process each): handgrad {hm:.1f} MB, "
              f"pytorch {tm:.1f} MB (ratio {hm / max(tm, 1e-9):.2f}); peak RSS handgrad "
              f"{mem['handgrad']['peak_rss_mb']:.0f} MB, pytorch {mem['torch']['peak_rss_mb']:.0f} MB")


def main(doc: str, title: str, load_data, handgrad_model, torch_model, flops_per_epoch, samples_option=True) -> None:
    """The command line shared by the benchmark scripts: parse options, time both frameworks
    (interleaved), measure memory in child processes, print the report."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    if samples_option:
        ap.add_argument("--samples", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--subset", action="store_true", help="use the shipped subset (quick smoke run)")
    ap.add_argument("--child", choices=("handgrad", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--workers", type=int, default=0,
                    help="handgrad fit(workers=...): 0 (default) uses as many as the BLAS threads")
    args = ap.parse_args()
    import torch

    global WORKERS
    threads = blas_info()["num_threads"]
    torch.set_num_threads(threads)
    WORKERS = args.workers or threads
    x, y = load_data(args.subset)
    if getattr(args, "samples", 0):
        x, y = x[:args.samples], y[:args.samples]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if args.child == "handgrad":
        m, o = handgrad_model()
        return measure_child(lambda: handgrad_epoch(m, o, x, y, args.batch, 0))
    if args.child == "torch":
        m, o = torch_model(torch)
        return measure_child(lambda: torch_epoch(torch, m, o, xt, yt, args.batch, 0))
    hm, ho = handgrad_model()
    tm, to = torch_model(torch)
    th, tt = interleaved(lambda r: handgrad_epoch(hm, ho, x, y, args.batch, r),
                         lambda r: torch_epoch(torch, tm, to, xt, yt, args.batch, r), args.repeats)
    acc_h = hg.evaluate(hm, losses.SoftmaxCrossEntropy(), x, y)["accuracy"]
    with torch.no_grad():
        acc_t = (tm(xt).argmax(1) == yt).float().mean().item()
    extra = ["--batch", str(args.batch)] + (["--subset"] if args.subset else [])
    if getattr(args, "samples", 0):
        extra += ["--samples", str(args.samples)]
    mem = None if args.no_memory else memory_pair(sys.argv[0], extra)
    report(f"{title}, batch {args.batch}, {threads} BLAS/torch threads", flops_per_epoch(x.shape[0]),
           x.shape[0], th, tt, acc_h, acc_t, mem, torch)
