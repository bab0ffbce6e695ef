"""What the command line's epoch adds to the benchmarked one: for a preset, one ``hg.fit`` epoch
on 10,000 training images scaled by 5.4 (the epoch the other benchmarks time, on the CLI's
54,000 images), then one on 54,000, then one on 54,000 with what ``handgrad train`` adds (the
6,000 validation images evaluated after the epoch, and a checkpoint folder), in rounds in one
process; the presets' optimizer settings, batch 128, fresh weights each time. Compare the last
column with the epoch times ``handgrad train PRESET`` prints (issue 14: within 15 %).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_cli_epoch.py lenet5 [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad import presets  # noqa: E402
from handgrad.data import load_fashion_mnist  # noqa: E402

SHAPES = {"lenet5": (-1, 1, 28, 28), "lstm": (-1, 28, 28), "rnn": (-1, 28, 28), "mlp": (-1, 784)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset", choices=sorted(SHAPES))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    p = presets.get(args.preset)
    (x, y), _ = load_fashion_mnist()
    x = (x.reshape(SHAPES[args.preset]) / 255).astype("float32")
    recipe = harness.preset_recipe(args.preset)

    def epoch(n: int, **kw) -> float:
        model = p.build()
        opt = harness.handgrad_optimizer(model, recipe)
        t = time.perf_counter()
        hg.fit(model, p.loss(), opt, x[:n], y[:n], epochs=1, batch_size=128, progress_bar=False, **kw)
        return time.perf_counter() - t

    epoch(1024)  # warm-up: compiled kernels and thread pools load
    cols = {"10,000 × 5.4": [], "54,000": [], "54,000 + validation + checkpoints": []}
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as ckpt:
            times = [epoch(10_000) * 5.4, epoch(54_000),
                     epoch(54_000, validation_data=(x[54_000:60_000], y[54_000:60_000]), checkpoint_dir=ckpt)]
        for c, t in zip(cols.values(), times):
            c.append(t)
        print(f"round {r + 1}: " + ", ".join(f"{k} {t:.2f} s" for k, t in zip(cols, times)), file=sys.stderr)
    print(f"### `fit` epoch of preset {args.preset} on the CLI's data (s; median of {args.rounds} rounds)\n")
    print("| " + " | ".join(cols) + " |")
    print("| " + " | ".join("---" for _ in cols) + " |")
    print("| " + " | ".join(f"{statistics.median(c):.2f}" for c in cols.values()) + " |")


if __name__ == "__main__":
    main()
