"""Memory soak: a long training run must keep a flat memory profile.

Trains an MLP with dropout (784-128-Dropout(0.3)-64-10, ReLU, SGD with momentum 0.9, batch 64)
for 60 epochs on the Fashion-MNIST subset shipped with handgrad (6,000 training images, 10%
held out for validation), and after every epoch prints

- the process's resident set size (``VmRSS`` from ``/proc/self/status``), and
- the memory currently allocated through Python and NumPy (``tracemalloc``), after a
  ``gc.collect()``.

At the end it prints the ratio of memory after epoch 50 to memory after epoch 5, for both
measures; the check passes when both are within 5% (the History grows by a few floats per epoch,
nothing else may). With ``--checkpoint-dir`` the run also writes a checkpoint every 50 steps and
at each epoch end (keeping 3), so the checkpoint path is soaked too.

    python benchmarks/soak.py [--epochs 60] [--checkpoint-dir DIR] [--no-tracemalloc]

Exit status 1 when a ratio exceeds 1.05.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc


import handgrad as hg
from handgrad import layers as L, losses, optim


def vm_rss_bytes() -> int:
    """Resident set size from /proc/self/status (Linux); 0 where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-dir", default=None)
    ap.add_argument("--no-tracemalloc", action="store_true",
                    help="measure RSS only (tracemalloc slows allocation-heavy code down)")
    ap.add_argument("--early", type=int, default=5, help="reference epoch (1-based)")
    ap.add_argument("--late", type=int, default=50, help="epoch compared with the reference (1-based)")
    args = ap.parse_args()
    if not 1 <= args.early < args.late <= args.epochs:
        ap.error("need 1 <= --early < --late <= --epochs")

    use_tm = not args.no_tracemalloc
    if use_tm:
        tracemalloc.start()
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    x = hg.data.standardize(hg.data.to_float(x))
    model = hg.Sequential([L.Dense(784, 128, rng=0), L.ReLU(), L.Dropout(0.3),
                           L.Dense(128, 64, rng=1), L.ReLU(), L.Dense(64, 10, rng=2)])
    opt = optim.SGD(model, 0.01, momentum=0.9)

    rss, traced, times = [], [], []
    t_start = time.perf_counter()
    print(f"soak: {args.epochs} epochs, {x.shape[0]} images (10% validation), batch {args.batch_size}, "
          f"MLP 784-128-Dropout(0.3)-64-10, SGD momentum 0.9"
          + (f", checkpoints in {args.checkpoint_dir}" if args.checkpoint_dir else ""))
    print(f"{'epoch':>5} {'loss':>8} {'val_acc':>8} {'VmRSS MiB':>10} {'traced MiB':>11} {'s/epoch':>8}")

    def on_epoch_end(epoch, logs):
        gc.collect()
        rss.append(vm_rss_bytes())
        traced.append(tracemalloc.get_traced_memory()[0] if use_tm else 0)
        times.append(time.perf_counter())
        dt = times[-1] - (times[-2] if len(times) > 1 else t_start)
        print(f"{epoch + 1:>5} {logs['loss']:>8.4f} {logs.get('val_accuracy', float('nan')):>8.4f} "
              f"{rss[-1] / 2 ** 20:>10.2f} {traced[-1] / 2 ** 20:>11.3f} {dt:>8.2f}", flush=True)

    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=args.epochs, batch_size=args.batch_size,
                  validation_split=0.1, seed=args.seed, progress_bar=False,
                  callbacks=[hg.LambdaCallback(on_epoch_end=on_epoch_end)],
                  checkpoint_dir=args.checkpoint_dir, checkpoint_every=50 if args.checkpoint_dir else 0,
                  keep_checkpoints=3)
    if use_tm:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    e, l_ = args.early - 1, args.late - 1
    rss_ratio = rss[l_] / rss[e] if rss[e] else float("nan")
    traced_ratio = traced[l_] / traced[e] if traced[e] else float("nan")
    print(f"\nfinal val_accuracy {hist.history['val_accuracy'][-1]:.4f}; "
          f"{time.perf_counter() - t_start:.1f} s in all")
    print(f"VmRSS   after epoch {args.early}: {rss[e] / 2 ** 20:.2f} MiB, after epoch {args.late}: "
          f"{rss[l_] / 2 ** 20:.2f} MiB, ratio {rss_ratio:.4f}")
    if use_tm:
        print(f"traced  after epoch {args.early}: {traced[e] / 2 ** 20:.3f} MiB, after epoch {args.late}: "
              f"{traced[l_] / 2 ** 20:.3f} MiB, ratio {traced_ratio:.4f} "
              f"(+{(traced[l_] - traced[e]) / 1024:.1f} KiB; peak {peak / 2 ** 20:.1f} MiB)")
    ok = rss_ratio <= 1.05 and (not use_tm or traced_ratio <= 1.05)
    print("PASS: memory flat within 5%" if ok else "FAIL: memory grew by more than 5%")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
