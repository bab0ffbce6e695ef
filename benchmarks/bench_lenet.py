"""LeNet-5 as the ``lenet5`` preset (conv 6@5×5 pad 2, ReLU, max-pool 2, conv 16@5×5, ReLU,
max-pool 2, dense 120, 84, 10; softmax cross-entropy; SGD momentum 0.9, lr 0.05, L2 5e-4)
with handgrad and with PyTorch CPU, side by side: training epochs (plain loop and ``hg.fit``),
inference, peak memory and the GEMM-bound floor, as markdown tables (``harness.py``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lenet.py [--repeats 3]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

from handgrad import presets  # noqa: E402


def products(n: int) -> list[harness.Gemm]:
    """The convolutions as im2col products (28×28 and 10×10 output positions; conv1 needs no
    input gradient), then the three Dense layers."""
    out = harness.conv_products(n * 28 * 28, 1 * 25, 6, input_grad=False, label="conv1")
    out += harness.conv_products(n * 10 * 10, 6 * 25, 16, label="conv2")
    for a, b in ((400, 120), (120, 84), (84, 10)):
        out += harness.dense_products(n, a, b)
    return out


def torch_lenet(torch):
    nn = torch.nn
    return nn.Sequential(harness.torch_normalize(torch), nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                         nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


_P = presets.get("lenet5")
SPECS = [harness.Spec("lenet5", "preset lenet5, ReLU, max-pool, SGD momentum 0.9, L2 5e-4", "image",
                      build=lambda: _P.build(), loss=_P.loss, torch_build=torch_lenet,
                      recipe=harness.preset_recipe("lenet5"), products=products)]


if __name__ == "__main__":
    harness.main(__doc__, "LeNet-5: handgrad vs PyTorch", SPECS)
