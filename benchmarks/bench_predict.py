"""Inference throughput of every model of the suite: ``model.predict(x, batch_size=B)`` against
PyTorch's ``model(x)`` under ``torch.no_grad()`` at batch 1 and 1024 (``--predict-batches``),
samples/s and the time ratio, as a markdown table (``harness.py``, section ``predict``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_predict.py [--repeats 3]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

if __name__ == "__main__":
    harness.main(__doc__, "Inference: handgrad vs PyTorch", harness.all_specs(), sections=("predict",))
