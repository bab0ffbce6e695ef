"""One training epoch of the MLP 784-256-128-10 (ReLU, softmax cross-entropy, SGD momentum
0.9, batch 128) with handgrad and with PyTorch CPU, in one process, on the same data, with the
same number of threads. Prints seconds per epoch, the time ratio, achieved GFLOP/s and peak
memory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlp.py [--repeats 3]

The OPENBLAS variables are unset for the benchmark only (they select a slower kernel); both
frameworks run under the same environment.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad import layers as L, losses, optim  # noqa: E402

SIZES = (784, 256, 128, 10)


def load_data(subset: bool):
    (x, y), _ = hg.data.load_fashion_mnist_subset() if subset else hg.data.load_fashion_mnist()
    x = hg.data.standardize(hg.data.to_float(x))
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


def flops_per_epoch(n: int) -> float:
    """2 × multiply-adds of forward (1×) and backward (2×, less the unneeded input gradient)."""
    fwd = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    return 2.0 * n * (fwd + 2 * fwd - SIZES[0] * SIZES[1])


def handgrad_model():
    m = hg.Sequential([L.Dense(784, 256, weight_init="he_normal", rng=0), L.ReLU(),
                       L.Dense(256, 128, weight_init="he_normal", rng=1), L.ReLU(), L.Dense(128, 10, rng=2)])
    return m, optim.SGD(m, 0.05, momentum=0.9)


def torch_model(torch):
    m = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                            torch.nn.ReLU(), torch.nn.Linear(128, 10))
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--subset", action="store_true", help="use the shipped subset (quick smoke run)")
    ap.add_argument("--child", choices=("handgrad", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--workers", type=int, default=0,
                    help="handgrad fit(workers=...): 0 (default) uses as many as the BLAS threads")
    args = ap.parse_args()
    import torch

    threads = harness.blas_info()["num_threads"]
    torch.set_num_threads(threads)
    harness.WORKERS = args.workers or threads
    x, y = load_data(args.subset)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if args.child == "handgrad":
        m, o = handgrad_model()
        return harness.measure_child(lambda: harness.handgrad_epoch(m, o, x, y, args.batch, 0))
    if args.child == "torch":
        m, o = torch_model(torch)
        return harness.measure_child(lambda: harness.torch_epoch(torch, m, o, xt, yt, args.batch, 0))

    hm, ho = handgrad_model()
    tm, to = torch_model(torch)
    th, tt = harness.interleaved(lambda r: harness.handgrad_epoch(hm, ho, x, y, args.batch, r),
                                 lambda r: harness.torch_epoch(torch, tm, to, xt, yt, args.batch, r), args.repeats)
    acc_h = hg.evaluate(hm, losses.SoftmaxCrossEntropy(), x, y)["accuracy"]
    with torch.no_grad():
        acc_t = (tm(xt).argmax(1) == yt).float().mean().item()
    mem = None if args.no_memory else harness.memory_pair(
        __file__, ["--batch", str(args.batch)] + (["--subset"] if args.subset else []))
    harness.report(f"MLP 784-256-128-10, batch {args.batch}, {threads} BLAS/torch threads",
                   flops_per_epoch(x.shape[0]), x.shape[0], th, tt, acc_h, acc_t, mem, torch)


if __name__ == "__main__":
    main()
