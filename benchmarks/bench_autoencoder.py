"""The deep autoencoder 784-1000-500-250-30 (``003`` §9) on Fashion-MNIST: seconds per
pretraining epoch of each RBM (CD-1, batch 100, handgrad only: PyTorch has no RBM), and one
fine-tuning epoch (BCE from logits, Adam, batch 128) with handgrad and with PyTorch CPU on the
same architecture, in one process, on the same data, with the same number of threads,
epochs interleaved. Prints the time ratio and achieved GFLOP/s.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_autoencoder.py [--repeats 3]
    ... --samples 5000 --repeats 1            (a quick check)

The OPENBLAS variables are unset for the benchmark only (they select a slower kernel).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itertools

import harness

import handgrad as hg
from handgrad import losses, optim, rbm

SIZES = (784, 1000, 500, 250, 30)


def load_data(subset: bool, samples: int):
    (x, _), _ = hg.data.load_fashion_mnist_subset() if subset else hg.data.load_fashion_mnist()
    x = (x.reshape(len(x), -1) / 255.0).astype(np.float32)
    return np.ascontiguousarray(x[:samples] if samples else x)


def flops_per_finetune_epoch(n: int) -> float:
    """2 × multiply-adds: forward (1×) and backward (2×, less the first layer's input gradient)."""
    pairs = list(itertools.pairwise(SIZES))
    fwd = 2 * sum(a * b for a, b in pairs)     # encoder and decoder
    return 2.0 * n * (3 * fwd - SIZES[0] * SIZES[1])


def torch_model(torch):
    layers = []
    pairs = list(itertools.pairwise(SIZES))
    for i, (a, b) in enumerate(pairs):
        layers.append(torch.nn.Linear(a, b))
        if i < len(pairs) - 1:
            layers.append(torch.nn.Sigmoid())
    for i, (a, b) in enumerate(reversed(pairs)):
        layers.append(torch.nn.Linear(b, a))
        if i < len(pairs) - 1:
            layers.append(torch.nn.Sigmoid())
    m = torch.nn.Sequential(*layers)
    return m, torch.optim.Adam(m.parameters(), lr=1e-3)


def pretraining_epochs(x, repeats: int) -> list[tuple[str, float]]:
    """Median seconds of one CD-1 epoch of each RBM of the stack on the means below."""
    rows, inp = [], x
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        top = i == len(SIZES) - 2
        r = rbm.RBM(a, b, hidden="gaussian" if top else "bernoulli", rng=i)
        times = []
        for rep in range(repeats):
            t = time.perf_counter()
            rbm.train_rbm(r, inp, epochs=1, batch_size=100, mean_visible=True, seed=rep, progress_bar=False,
                          monitor_size=1, init_visible_bias=rep == 0)
            times.append(time.perf_counter() - t)
        rows.append((f"RBM {a}→{b}{' (gaussian hidden)' if top else ''}", statistics.median(times)))
        if not top:
            inp = rbm.stack.hidden_means(r, inp)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--samples", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--subset", action="store_true", help="use the shipped subset (quick smoke run)")
    ap.add_argument("--no-pretraining", action="store_true", help="time the fine-tuning step only")
    args = ap.parse_args()
    import torch

    threads = harness.blas_info()["num_threads"]
    torch.set_num_threads(threads)
    x = load_data(args.subset, args.samples)
    print(f"deep autoencoder {'-'.join(map(str, SIZES))}-…-784 on {x.shape[0]} images, {threads} BLAS/torch threads")
    print(harness.machine_line(torch))
    if not args.no_pretraining:
        rows = pretraining_epochs(x, args.repeats)
        for name, s in rows:
            print(f"pretraining {name:<32} {s:8.3f} s/epoch")
        print(f"pretraining, one epoch of every RBM: {sum(s for _, s in rows):.3f} s")
    hm = rbm.stack.random_autoencoder(SIZES, logits=True, rng=0)
    ho = optim.Adam(hm, 1e-3)
    tm, to = torch_model(torch)
    xt = torch.from_numpy(x)

    def bce(out, y):  # the per-image sum over pixels, mean over the batch (handgrad's convention)
        return torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="sum") / out.shape[0]

    th, tt = harness.interleaved(
        lambda r: harness.handgrad_epoch(hm, ho, x, x, args.batch, r, loss=losses.BinaryCrossEntropy()),
        lambda r: harness.torch_epoch(torch, tm, to, xt, xt, args.batch, r, lossf=bce), args.repeats)
    h, t = statistics.median(th), statistics.median(tt)
    flops = flops_per_finetune_epoch(x.shape[0])
    print(f"fine-tuning epoch (BCE from logits, Adam, batch {args.batch}):")
    print(f"{'':10} {'s/epoch':>8} {'GFLOP/s':>8}   (all repeats)")
    print(f"{'handgrad':10} {h:8.3f} {flops / h / 1e9:8.1f}   {[round(v, 3) for v in th]}")
    print(f"{'pytorch':10} {t:8.3f} {flops / t / 1e9:8.1f}   {[round(v, 3) for v in tt]}")
    print(f"time ratio handgrad/pytorch: {h / t:.2f}x")


if __name__ == "__main__":
    main()
