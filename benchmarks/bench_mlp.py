"""One training epoch of the MLP 784-256-128-10 (ReLU, softmax cross-entropy, SGD momentum
0.9, batch 128) with handgrad and with PyTorch CPU, in one process, on the same data, with
the same number of threads. Prints seconds per epoch, the time ratio, achieved GFLOP/s and
peak memory (peak RSS of a fresh child process per framework, since one process's peak
cannot be split between two libraries).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlp.py [--repeats 3]

The OPENBLAS variables are unset for the benchmark only (they select a slower kernel);
both frameworks run under the same environment.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import handgrad as hg
from handgrad import layers as L, losses, optim

SIZES = (784, 256, 128, 10)


def load_data(subset: bool):
    if subset:
        (x, y), _ = hg.data.load_fashion_mnist_subset()
    else:
        (x, y), _ = hg.data.load_fashion_mnist()
    x = hg.data.standardize(hg.data.to_float(x))
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


def flops_per_epoch(n: int) -> float:
    """Multiply-adds ×2 of forward (1×) and backward (2×, less the unneeded input gradient)."""
    fwd = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    bwd = 2 * fwd - SIZES[0] * SIZES[1]
    return 2.0 * n * (fwd + bwd)


def handgrad_model(seed=0):
    return hg.Sequential([L.Dense(784, 256, weight_init="he_normal", rng=seed), L.ReLU(),
                          L.Dense(256, 128, weight_init="he_normal", rng=seed + 1), L.ReLU(),
                          L.Dense(128, 10, rng=seed + 2)])


def handgrad_epoch(model, opt, x, y, batch, seed):
    t = time.perf_counter()
    hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=1, batch_size=batch, seed=seed,
           progress_bar=False)
    return time.perf_counter() - t


def torch_setup(torch):
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt


def torch_epoch(torch, model, opt, xt, yt, batch, seed):
    lossf = torch.nn.CrossEntropyLoss()
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


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> None:
    """Reset VmHWM (the peak RSS) to the current RSS (Linux: write 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def child(framework: str, subset: bool, batch: int, threads: int) -> None:
    """Peak RSS of one epoch of one framework, measured in a fresh process: the peak is reset
    after the data is loaded (and torch imported), so it covers the training epoch only."""
    x, y = load_data(subset)
    if framework == "torch":
        import torch  # noqa: F401  (imported before the baseline)
    base = _status_kb("VmRSS")
    _reset_peak()
    if framework == "handgrad":
        m = handgrad_model()
        handgrad_epoch(m, optim.SGD(m, 0.05, momentum=0.9), x, y, batch, 0)
    else:
        import torch

        torch.set_num_threads(threads)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        m, o = torch_setup(torch)
        torch_epoch(torch, m, o, xt, yt, batch, 0)
    peak = _status_kb("VmHWM")
    print(json.dumps({"peak_rss_mb": peak / 1024, "training_mb": (peak - base) / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--subset", action="store_true", help="use the shipped subset (quick smoke run)")
    ap.add_argument("--child", choices=("handgrad", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()

    import torch
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    threads = blas[0]["num_threads"] if blas else os.cpu_count()
    if args.child:
        child(args.child, args.subset, args.batch, threads)
        return
    torch.set_num_threads(threads)
    x, y = load_data(args.subset)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    hm = handgrad_model()
    hopt = optim.SGD(hm, 0.05, momentum=0.9)
    tm, topt = torch_setup(torch)
    handgrad_epoch(hm, hopt, x, y, args.batch, 100)  # warm-up
    torch_epoch(torch, tm, topt, xt, yt, args.batch, 100)
    th, tt = [], []
    for r in range(args.repeats):  # interleaved, so both see the same machine state
        th.append(handgrad_epoch(hm, hopt, x, y, args.batch, r))
        tt.append(torch_epoch(torch, tm, topt, xt, yt, args.batch, r))
    h, t = statistics.median(th), statistics.median(tt)
    fl = flops_per_epoch(x.shape[0])
    acc_h = hg.evaluate(hm, losses.SoftmaxCrossEntropy(), x, y)["accuracy"]
    with torch.no_grad():
        acc_t = (tm(xt).argmax(1) == yt).float().mean().item()

    print(f"MLP 784-256-128-10, batch {args.batch}, {x.shape[0]} samples, {threads} BLAS/torch threads")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"numpy {np.__version__} ({blas[0].get('internal_api', '?')} {blas[0].get('version', '')}, "
          f"{blas[0].get('architecture', '?')}), torch {torch.__version__}")
    print(f"{'':10} {'s/epoch':>8} {'GFLOP/s':>8} {'train acc':>9}   (all repeats)")
    print(f"{'handgrad':10} {h:8.3f} {fl / h / 1e9:8.1f} {acc_h:9.4f}   {[round(v, 3) for v in th]}")
    print(f"{'pytorch':10} {t:8.3f} {fl / t / 1e9:8.1f} {acc_t:9.4f}   {[round(v, 3) for v in tt]}")
    print(f"time ratio handgrad/pytorch: {h / t:.2f}x")
    if not args.no_memory:
        mem = {}
        for fw in ("handgrad", "torch"):
            cmd = [sys.executable, __file__, "--child", fw, "--batch", str(args.batch)] + (["--subset"] if args.subset else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            mem[fw] = json.loads(out.strip().splitlines()[-1])
        h_mb, t_mb = mem["handgrad"]["training_mb"], mem["torch"]["training_mb"]
        print(f"peak memory of one epoch above the loaded data (fresh process each): handgrad {h_mb:.1f} MB, "
              f"pytorch {t_mb:.1f} MB (ratio {h_mb / max(t_mb, 1e-9):.2f}); peak RSS handgrad "
              f"{mem['handgrad']['peak_rss_mb']:.0f} MB, pytorch {mem['torch']['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
