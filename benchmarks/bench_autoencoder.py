"""The deep autoencoder 784-1000-500-250-30 (``003`` §9): one fine-tuning epoch (BCE from logits,
Adam 1e-3) from random initialization with handgrad and with PyTorch CPU on the same
architecture, side by side: training epochs (plain loop and ``hg.fit``), inference, peak memory
and the GEMM-bound floor (``harness.py``); and the ``pretraining`` section: seconds per CD-1 epoch
of each RBM of the stack (batch 100, handgrad only: PyTorch has no RBM).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_autoencoder.py [--repeats 3]
    ... --samples 5000 --repeats 1 --batches 128          (a quick check)
"""
from __future__ import annotations

import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

from handgrad import losses, rbm  # noqa: E402

SIZES = (784, 1000, 500, 250, 30)
PAIRS = list(itertools.pairwise(SIZES))
WIDTHS = [*SIZES, *reversed(SIZES[:-1])]  # encoder then decoder: 784-…-30-…-784


def products(n: int) -> list[harness.Gemm]:
    """Eight Dense layers; the first needs no input gradient."""
    out = []
    for i, (a, b) in enumerate(itertools.pairwise(WIDTHS)):
        out += harness.dense_products(n, a, b, input_grad=i > 0)
    return out


def torch_autoencoder(torch):
    """The same stack as ``rbm.stack.random_autoencoder(SIZES, logits=True)``: sigmoid between
    layers, none after the 30-unit code layer nor after the output logits."""
    nn = torch.nn
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(WIDTHS)):
        layers.append(nn.Linear(a, b))
        if i not in (len(PAIRS) - 1, len(WIDTHS) - 2):
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


SPECS = [harness.Spec("autoencoder", "784-1000-500-250-30-…-784 from random init, BCE from logits, Adam 1e-3",
                      "flat", build=lambda: rbm.stack.random_autoencoder(SIZES, logits=True, rng=0),
                      loss=losses.BinaryCrossEntropy, torch_build=torch_autoencoder,
                      recipe={"optimizer": "adam", "lr": 1e-3}, products=products, target="input")]


def pretraining_section(ctx, specs) -> str:
    """Median seconds of one CD-1 epoch of each RBM of the stack, on the hidden means below."""
    x, _ = ctx.data(SPECS[0])
    rows, inp = [], x
    for i, (a, b) in enumerate(PAIRS):
        top = i == len(PAIRS) - 1
        r = rbm.RBM(a, b, hidden="gaussian" if top else "bernoulli", rng=i)
        times = []
        for rep in range(ctx.repeats):
            s = time.perf_counter()
            rbm.train_rbm(r, inp, epochs=1, batch_size=100, mean_visible=True, seed=rep, progress_bar=False,
                          monitor_size=1, init_visible_bias=rep == 0)
            times.append(time.perf_counter() - s)
        rows.append([f"RBM {a}→{b}" + (" (gaussian hidden)" if top else ""), statistics.median(times)])
        if not top:
            inp = rbm.stack.hidden_means(r, inp)
    rows.append(["one epoch of every RBM", sum(v for _, v in rows)])
    return "\n".join([f"### RBM pretraining (handgrad only): seconds per CD-1 epoch, batch 100 "
                      f"({ctx.samples_note}; median of {ctx.repeats})", "",
                      harness.table(["RBM", "s/epoch"], rows)])


harness.SECTION_FUNCS["pretraining"] = pretraining_section


if __name__ == "__main__":
    harness.main(__doc__, "Deep autoencoder: handgrad vs PyTorch", SPECS, sections=(*harness.SECTIONS, "pretraining"))
