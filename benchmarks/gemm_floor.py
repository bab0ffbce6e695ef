"""The GEMM-bound floor of every model of the suite: this machine's float32 GEMM rate (NumPy, a
large square product and each model's own product shapes), each model's training FLOPs per
sample (forward and backward products), floor seconds per epoch = the epoch's products timed at
their shapes, and handgrad's plain loop and ``hg.fit`` as multiples of it ("× floor"); the issue
wants the MLP epoch within 1.6× of its floor. Markdown table (``harness.py``, section ``floor``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/gemm_floor.py [--repeats 3]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

if __name__ == "__main__":
    harness.main(__doc__, "GEMM-bound floor", harness.all_specs(), sections=("floor",))
