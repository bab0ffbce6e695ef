"""The ``lstm`` preset: LSTM(28→128) over the 28 rows of each Fashion-MNIST image, Dense(128→10)
on the last state, softmax cross-entropy, Adam 2e-3 with gradient-norm clipping 5, with handgrad
and with PyTorch CPU, side by side: training epochs (plain loop and ``hg.fit``), inference, peak
memory and the GEMM-bound floor, as markdown tables (``harness.py``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lstm.py [--repeats 3]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

from handgrad import presets  # noqa: E402

H, T, F = 128, 28, 28


def sequence_products(gates: int, label: str):
    """The recurrent layer (the first trainable one) and the Dense(H→10) output layer."""
    def products(n: int) -> list[harness.Gemm]:
        return harness.recurrent_products(n, T, F, H, gates, label) + harness.dense_products(n, H, 10)
    return products


def torch_sequence_classifier(torch, cell: str):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = harness.torch_normalize(torch)
            self.rnn = (nn.LSTM if cell == "lstm" else nn.RNN)(F, H, batch_first=True)
            self.out = nn.Linear(H, 10)

        def forward(self, x):
            return self.out(self.rnn(self.norm(x))[0][:, -1])

    return Net()


def spec(cell: str, title: str) -> harness.Spec:
    p = presets.get(cell)
    return harness.Spec(cell, title, "rows", build=lambda: p.build(), loss=p.loss,
                        torch_build=lambda torch: torch_sequence_classifier(torch, cell),
                        recipe=harness.preset_recipe(cell), products=sequence_products(4 if cell == "lstm" else 1, cell))


SPECS = [spec("lstm", "preset lstm: LSTM(28→128) → Dense(128→10) on the last state, Adam 2e-3, clip 5")]


if __name__ == "__main__":
    harness.main(__doc__, "LSTM(28→128) sequence classifier: handgrad vs PyTorch", SPECS)
