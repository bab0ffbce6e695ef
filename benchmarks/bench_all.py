"""The whole benchmark suite of the issue "fast by default" in one command: handgrad against
PyTorch (and scikit-learn) on the MLP preset (with and without dropout), LeNet-5, the Elman RNN
and LSTM sequence classifiers and the deep autoencoder, same data and threads, one markdown
section per table: training epochs (plain loop and ``hg.fit``) at batch 32/128/512, inference
throughput at batch 1/1024, peak memory of an epoch, the GEMM-bound floor, scikit-learn's
``MLPClassifier`` and the autoencoder's RBM pretraining. Output pastes into docs/benchmarks.md.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_all.py [--repeats 3]
    ... --samples 0                                 (full 60,000-image epochs: long)
    ... --subset --repeats 1                        (smoke run, about 2 minutes)

Progress goes to stderr, the tables to stdout (``> results.md``).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import bench_autoencoder  # noqa: E402,F401  (registers the pretraining section)
import bench_sklearn  # noqa: E402,F401  (registers the sklearn section)

SECTIONS = (*harness.SECTIONS, "sklearn", "pretraining")
MODEL_SCRIPTS = "bench_mlp.py, bench_lenet.py, bench_rnn.py, bench_lstm.py, bench_autoencoder.py"
SCRIPTS = {"training": f"`--sections training` of {MODEL_SCRIPTS}", "predict": "`bench_predict.py`",
           "memory": f"`--sections memory` of the same", "floor": "`gemm_floor.py`",
           "sklearn": "`bench_sklearn.py`", "pretraining": "`bench_autoencoder.py --sections pretraining`"}


def main() -> None:
    args = harness.parser(__doc__, SECTIONS).parse_args()
    ctx = harness.setup(args)
    sections = harness.section_list(args)
    passed = sys.argv[1:]
    print(harness.header("handgrad benchmark suite", ctx.torch, [harness.command_line()]) + "\n")
    print("Each section alone (scripts in benchmarks/): " + "; ".join(f"{s}: {SCRIPTS[s]}" for s in sections
                                                                   if s in SCRIPTS)
          + (f"; with the same options (`{' '.join(passed)}`)" if passed else "") + ".\n", flush=True)
    harness.run_sections(ctx, harness.pick(harness.all_specs(), args.models), sections)


if __name__ == "__main__":
    main()
