"""The ``rnn`` preset: Elman RNN(28→128, tanh) over the 28 rows of each Fashion-MNIST image,
Dense(128→10) on the last state, softmax cross-entropy, Adam 1e-3 with gradient-norm clipping 1,
with handgrad and with PyTorch CPU (``nn.RNN``), side by side: training epochs (plain loop and
``hg.fit``), inference, peak memory and the GEMM-bound floor, as markdown tables (``harness.py``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_rnn.py [--repeats 3]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from bench_lstm import spec  # noqa: E402  (the sequence classifier is shared with the LSTM)

SPECS = [spec("rnn", "preset rnn: Elman RNN(28→128, tanh) → Dense(128→10) on the last state, Adam 1e-3, clip 1")]


if __name__ == "__main__":
    harness.main(__doc__, "Elman RNN(28→128) sequence classifier: handgrad vs PyTorch", SPECS)
