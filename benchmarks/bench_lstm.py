"""One training epoch of LSTM(28→128) → Dense(128→10) on sequential Fashion-MNIST (each image
as 28 rows of 28 features; softmax cross-entropy on the last step; SGD momentum 0.9; batch
128) with handgrad and with PyTorch CPU, in one process, on the same data and threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lstm.py [--repeats 3]
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad import layers as L, optim  # noqa: E402

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
    harness.main(__doc__, f"LSTM(28→{H}) + Dense({H}→10), sequential Fashion-MNIST", load_data, handgrad_model, torch_model, flops_per_epoch,
                 samples_option=True)


if __name__ == "__main__":
    main()
