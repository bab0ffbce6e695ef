"""scikit-learn's ``MLPClassifier`` against handgrad on the same network 784-256-128-10 (ReLU,
softmax cross-entropy, SGD momentum 0.9 without Nesterov, lr 0.05, no L2, batch 128, pixels in
[0, 1], no normalization layer) and the same data: one epoch each, sklearn's ``fit`` with
``max_iter=1`` (one shuffled pass; its ConvergenceWarning suppressed) against handgrad's plain
loop and ``hg.fit`` (default arguments), PyTorch beside them; medians of interleaved repeats.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_sklearn.py [--repeats 3]
"""
from __future__ import annotations

import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from bench_mlp import SIZES, products  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad import layers as L, losses  # noqa: E402

BATCH = 128
RECIPE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0}


def build():
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        last = i == len(SIZES) - 2
        layers.append(L.Dense(a, b, weight_init="normal_fan_in" if last else "he_normal", rng=i))
        if not last:
            layers.append(L.ReLU())
    return hg.Sequential(layers)


def torch_build(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


SPEC = harness.Spec("mlp-plain", "784-256-128-10 ReLU, no normalization, SGD momentum 0.9, lr 0.05, no L2", "flat",
                    build=build, loss=losses.SoftmaxCrossEntropy, torch_build=torch_build, recipe=RECIPE,
                    products=products)
SPECS: list[harness.Spec] = []  # not one of the suite's models: only this section uses SPEC


def sklearn_epoch(x, y, seed: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=SIZES[1:-1], activation="relu", solver="sgd", alpha=0.0,
                        batch_size=BATCH, learning_rate="constant", learning_rate_init=RECIPE["lr"],
                        momentum=RECIPE["momentum"], nesterovs_momentum=False, max_iter=1, shuffle=True,
                        random_state=seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return time.perf_counter() - start


def sklearn_section(ctx, specs) -> str:
    import sklearn

    x, y = ctx.data(SPEC)
    r = harness.Runners(SPEC, ctx.torch, x, y)
    for f in (r.loop, r.fit, r.pytorch):
        harness.warm_up(f, BATCH)
    sklearn_epoch(x[:4 * BATCH], y[:4 * BATCH], 100)
    times = harness.interleaved({"sklearn": lambda i: sklearn_epoch(x, y, i), "loop": lambda i: r.loop(BATCH, i),
                                 "fit": lambda i: r.fit(BATCH, i), "torch": lambda i: r.pytorch(BATCH, i)},
                                ctx.repeats)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"[sklearn] {times}", file=sys.stderr, flush=True)
    row = [BATCH, med["sklearn"], med["loop"], med["fit"], med["torch"],
           harness.ratio(med["loop"], med["sklearn"]), harness.ratio(med["fit"], med["sklearn"])]
    return "\n".join([f"### scikit-learn `MLPClassifier` {sklearn.__version__}: seconds per epoch "
                      f"({ctx.samples_note}; median of {ctx.repeats})", "",
                      harness.table(["batch", "sklearn", "handgrad loop", "handgrad fit", "PyTorch",
                                     "loop / sklearn", "fit / sklearn"], [row]), "",
                      "`MLPClassifier(hidden_layer_sizes=(256, 128), activation='relu', solver='sgd', alpha=0, "
                      "batch_size=128, learning_rate_init=0.05, momentum=0.9, nesterovs_momentum=False, "
                      "max_iter=1)`; handgrad and PyTorch on the same architecture, optimizer and float32 data. "
                      "Ratios > 1: handgrad slower."])


harness.SECTION_FUNCS["sklearn"] = sklearn_section


if __name__ == "__main__":
    harness.main(__doc__, "scikit-learn MLPClassifier vs handgrad", SPECS, sections=("sklearn",))
