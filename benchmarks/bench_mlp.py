"""One training epoch of the MLP 784-256-128-10 (ReLU, softmax cross-entropy, SGD momentum
0.9, batch 128) with handgrad and with PyTorch CPU, in one process, on the same data, with the
same number of threads. Prints seconds per epoch, the time ratio, achieved GFLOP/s and peak
memory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlp.py [--repeats 3]

The OPENBLAS variables are unset for the benchmark only (they select a slower kernel); both
frameworks run under the same environment.
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad import layers as L, optim  # noqa: E402

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
    harness.main(__doc__, 'MLP 784-256-128-10', load_data, handgrad_model, torch_model, flops_per_epoch,
                 samples_option=False)


if __name__ == "__main__":
    main()
