"""The MLP preset 784-256-128-10 (ReLU; dropout 0.2 as ``handgrad train mlp``, and without;
softmax cross-entropy; the preset's SGD momentum 0.9, lr 0.05, L2 5e-4) with handgrad and with
PyTorch CPU, side by side: training epochs (plain loop and ``hg.fit``), inference, peak memory
and the GEMM-bound floor, as markdown tables (see ``harness.py`` for what each section measures).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlp.py [--repeats 3]
    ... --samples 0 --batches 128 --sections training      (full 60,000 images, one batch size)
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

from handgrad import presets  # noqa: E402

SIZES = (784, 256, 128, 10)


def products(n: int) -> list[harness.Gemm]:
    """Three Dense layers; the first needs no input gradient."""
    out = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        out += harness.dense_products(n, a, b, input_grad=i > 0)
    return out


def torch_mlp(torch, dropout: float):
    nn = torch.nn
    layers = [harness.torch_normalize(torch)]
    for a, b in zip(SIZES[:-2], SIZES[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers, nn.Linear(SIZES[-2], SIZES[-1]))


def spec(name: str, dropout: float) -> harness.Spec:
    p = presets.get("mlp")
    return harness.Spec(
        name, f"preset mlp 784-256-128-10 ReLU, dropout {dropout}, SGD momentum 0.9, L2 5e-4", "flat",
        build=lambda: p.build(dropout=dropout), loss=p.loss,
        torch_build=lambda torch: torch_mlp(torch, dropout),
        recipe=harness.preset_recipe("mlp"), products=products)


SPECS = [spec("mlp", presets.get("mlp").defaults["dropout"]), spec("mlp-nodrop", 0.0)]


if __name__ == "__main__":
    harness.main(__doc__, "MLP 784-256-128-10: handgrad vs PyTorch", SPECS)
