"""One training epoch of LSTM(28→128) → Dense(128→10) on sequential Fashion-MNIST (each image
as 28 rows of 28 features; softmax cross-entropy on the last step; SGD momentum 0.9; batch
128) with handgrad and with PyTorch CPU, in one process, on the same data and threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lstm.py [--repeats 3]
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

H = 128


def load_data(subset: bool):
    (x, y), _ = hg.data.load_fashion_mnist_subset() if subset else hg.data.load_fashion_mnist()
    x = hg.data.standardize(hg.data.to_float(x, flatten=False)).reshape(-1, 28, 28)
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


def flops_per_epoch(n: int) -> float:
    """2 × multiply-adds: the gate products x W_ihᵀ and h W_hhᵀ at 28 steps, forward once and
    backward twice (no input gradient needed), plus the output layer."""
    per_step = 4 * H * (28 + H)
    fwd = 28 * per_step + H * 10
    return 2.0 * n * 3 * fwd


def handgrad_model():
    m = hg.Sequential([L.LSTM(28, H, return_sequences=False, rng=0), L.Dense(H, 10, rng=1)])
    return m, optim.SGD(m, 0.05, momentum=0.9)


class TorchLSTM:
    def __init__(self, torch):
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(28, H, batch_first=True)
                self.out = nn.Linear(H, 10)

            def forward(self, x):
                return self.out(self.lstm(x)[0][:, -1])

        self.model = Net()


def torch_model(torch):
    m = TorchLSTM(torch).model
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--samples", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--subset", action="store_true")
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
    if args.samples:
        x, y = x[:args.samples], y[:args.samples]
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
    extra = ["--batch", str(args.batch), "--samples", str(args.samples)] + (["--subset"] if args.subset else [])
    mem = None if args.no_memory else harness.memory_pair(__file__, extra)
    harness.report(f"LSTM(28→{H}) + Dense({H}→10), sequential Fashion-MNIST, batch {args.batch}, {threads} threads",
                   flops_per_epoch(x.shape[0]), x.shape[0], th, tt, acc_h, acc_t, mem, torch)


if __name__ == "__main__":
    main()
