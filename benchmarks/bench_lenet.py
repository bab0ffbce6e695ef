"""One training epoch of LeNet-5 (conv 6@5×5 pad 2, ReLU, max-pool 2, conv 16@5×5, ReLU,
max-pool 2, dense 120, 84, 10; softmax cross-entropy; SGD momentum 0.9; batch 128) with
handgrad and with PyTorch CPU, in one process, on the same data and threads. Prints seconds
per epoch, the time ratio, achieved GFLOP/s and peak memory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lenet.py [--repeats 3]
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad import layers as L, optim  # noqa: E402


def load_data(subset: bool):
    (x, y), _ = hg.data.load_fashion_mnist_subset() if subset else hg.data.load_fashion_mnist()
    x = hg.data.standardize(hg.data.to_float(x, flatten=False)).reshape(-1, 1, 28, 28)
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


def flops_per_epoch(n: int) -> float:
    """2 × multiply-adds: forward once, backward twice (conv1 needs no input gradient)."""
    conv1 = 28 * 28 * 6 * 25
    conv2 = 10 * 10 * 16 * 150
    dense = 400 * 120 + 120 * 84 + 84 * 10
    fwd = conv1 + conv2 + dense
    return 2.0 * n * (fwd + 2 * fwd - conv1)


def handgrad_model():
    m = hg.Sequential([
        L.Conv2D(1, 6, 5, padding=2, weight_init="he_normal", rng=0), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(6, 16, 5, weight_init="he_normal", rng=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
        L.Dense(400, 120, weight_init="he_normal", rng=2), L.ReLU(),
        L.Dense(120, 84, weight_init="he_normal", rng=3), L.ReLU(), L.Dense(84, 10, rng=4)])
    return m, optim.SGD(m, 0.05, momentum=0.9)


def torch_model(torch):
    nn = torch.nn
    m = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                      nn.Linear(84, 10))
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)


def main() -> None:
    harness.main(__doc__, 'LeNet-5', load_data, handgrad_model, torch_model, flops_per_epoch,
                 samples_option=True)


if __name__ == "__main__":
    main()
