"""``handgrad compare`` and ``handgrad diagnose``: experiments that show why LSTM exists —
an RNN and an LSTM trained side by side, and the error signal vanishing along time and depth
(``003`` §4, §6–7; ``000`` §3.2)."""
from __future__ import annotations

import copy
import json
import os

import numpy

from .. import data, losses, optim, presets
from ..fsutil import atomic_write_bytes
from ..training import fit
from .common import widths
from .train import RUN_OPTIONS, VAL_SPLIT, train_run


def cmd_diagnose(args) -> int:
    """Train an Elman RNN and an LSTM briefly on the adding problem and record ‖δ[t]‖ at every
    time step; then a deep sigmoid MLP and a deep ReLU MLP on the shipped subset, recording
    ‖δ⁽ˡ⁾‖ per layer. Plots both and prints the ratios."""
    from ..diagnostics import DeltaNormRecorder, plot_delta_norms
    from ..plotting import have_matplotlib

    os.makedirs(args.out, exist_ok=True)
    rng = numpy.random.default_rng(args.seed)
    x, y = data.adding_problem(args.samples, args.length, rng)
    time_curves = {}
    print(f"error norm along time: adding problem, T={args.length}, {args.samples} sequences, "
          f"{args.epochs} epoch(s), Adam lr 1e-2, clip 1; the last epoch's mean ‖δ[t]‖")
    for cell in ("rnn", "lstm"):
        model = presets.adding_net(cell=cell, hidden=32, seed=args.seed)
        rec = DeltaNormRecorder()
        fit(model, losses.MeanSquaredError(), optim.Adam(model, 1e-2, clip_norm=1.0), x, y, epochs=args.epochs,
            batch_size=64, callbacks=[rec], seed=args.seed)
        norms = rec.time[-1][0]
        time_curves[f"{cell.upper()} (hidden 32)"] = norms
        print(f"  {cell.upper():<5} ‖δ[1]‖ = {norms[0]:.2e}, ‖δ[T]‖ = {norms[-1]:.2e}, "
              f"ratio first/last = {norms[0] / max(norms[-1], 1e-300):.2e}")
    (xs, ys), _ = data.load_fashion_mnist_subset()
    xs = data.to_float(xs)
    layer_curves = {}
    print("error norm along depth: 6-hidden-layer MLPs (width 64) on the shipped subset, 1 epoch, SGD lr 0.1")
    for act in ("sigmoid", "relu"):
        model = presets.mlp(hidden=(64,) * 6, activation=act, seed=args.seed)
        rec = DeltaNormRecorder()
        fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), xs, ys, epochs=1, batch_size=64,
            callbacks=[rec], seed=args.seed)
        norms = list(rec.layers[-1].values())
        layer_curves[act] = norms
        print(f"  {act:<8} ‖δ⁽ˡ⁾‖ from the first to the last Dense: " + ", ".join(f"{v:.1e}" for v in norms))
    if have_matplotlib():
        plot_delta_norms(time_curves, os.path.join(args.out, "delta_time.png"),
                         title=f"error ‖δ[t]‖ along time, adding problem T={args.length}")
        plot_delta_norms(layer_curves, os.path.join(args.out, "delta_layers.png"),
                         title="error ‖δ⁽ˡ⁾‖ along depth, 6 hidden layers", xlabel="Dense layer l",
                         ylabel="mean ‖δ⁽ˡ⁾‖")
        print(f"plots: {os.path.join(args.out, 'delta_time.png')}, {os.path.join(args.out, 'delta_layers.png')}")
    atomic_write_bytes(os.path.join(args.out, "diagnostics.json"),
                       json.dumps({"time": time_curves, "layers": layer_curves}, indent=1).encode())
    return 0


def cmd_compare(args) -> int:
    """Train a sequence preset once per recurrent cell and plot their validation curves together
    (for ``adding``: the validation MSE per epoch against the 0.167 baseline of always answering
    1.0); the test results are printed once every cell has finished training (``003`` §4)."""
    preset = presets.get(args.preset)
    if preset.task not in ("adding", "reber", "fashion") or args.preset not in ("adding", "reber", "lstm", "rnn"):
        raise ValueError(f"compare: expected a recurrent preset (adding, reber, lstm, rnn), got {args.preset!r}")
    results = {}
    for cell in args.cells:
        sub = copy.copy(args)
        sub.cell, sub.out, sub.resume = cell, os.path.join(args.out, cell), None
        for k in RUN_OPTIONS:
            if not hasattr(sub, k):
                setattr(sub, k, None)
        sub.val_split = VAL_SPLIT if sub.val_split is None else sub.val_split
        if not sub.val_split:
            raise ValueError("compare: plots validation curves, so it needs --val-split > 0")
        sub.early_stopping = sub.early_stopping or 0
        print(f"\n=== {args.preset} with cell {cell} ===")
        code = train_run(sub)
        if code:
            return code
        with open(os.path.join(sub.out, "history.json"), encoding="utf-8") as fh:
            results[cell] = json.load(fh)
    adding = preset.task == "adding"
    key = "val_accuracy" if all("val_accuracy" in r["history"] for r in results.values()) else "val_loss"
    curves = {f"{cell.upper()}": [(2 * v if adding else v) for v in r["history"][key]] for cell, r in results.items()}
    print()
    for cell, r in results.items():
        if adding:
            print(f"{cell.upper():<5} test MSE {r['test_mse']:.4f}  (baseline {r['baseline_mse']:.3f})")
        elif "string_accuracy" in r:
            print(f"{cell.upper():<5} held-out strings entirely right {r['string_accuracy'] * 100:.1f}%")
        else:
            print(f"{cell.upper():<5} test accuracy {r['test_accuracy'] * 100:.2f}%")
    from ..plotting import have_matplotlib, save_png

    if have_matplotlib():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for label, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        if adding:
            base = next(iter(results.values()))["baseline_mse"]
            ax.axhline(base, color="grey", linestyle="--", label=f"always 1.0 ({base:.3f})")
            ax.set_yscale("log")
            ax.set_ylabel("validation MSE")
            ax.set_title(f"adding problem, T={next(iter(results.values()))['T']}")
        else:
            ax.set_ylabel("validation accuracy" if key == "val_accuracy" else "validation loss")
            ax.set_title(args.preset)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(args.out, "compare.png")
        save_png(fig, path)
        print(f"plot: {path}")
    return 0


def add_commands(sub, data_args) -> None:
    cp = sub.add_parser("compare", help="train a sequence preset with an RNN and with an LSTM and plot both")
    cp.add_argument("preset", choices=("adding", "reber", "lstm", "rnn"))
    cp.add_argument("--cells", type=lambda t: tuple(c for c in t.split(",") if c), default=("rnn", "lstm"),
                    help="comma-separated cells to compare (default rnn,lstm)")
    data_args(cp)
    for opt in ("--samples", "--length", "--epochs", "--batch-size"):
        cp.add_argument(opt, type=int)
    cp.add_argument("--hidden", type=widths)
    cp.add_argument("--lr", type=float)
    cp.add_argument("--val-split", type=float, default=VAL_SPLIT,
                    help=f"fraction of the training set held out for the validation curves (default {VAL_SPLIT})")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--out", default=os.path.join("runs", "compare"), help="output folder (default: runs/compare)")
    cp.set_defaults(func=cmd_compare, early_stopping=0)

    dg = sub.add_parser("diagnose", help="show the error signal vanish along time (RNN vs LSTM) and depth")
    dg.add_argument("--length", type=int, default=100, help="adding-problem sequence length (default 100)")
    dg.add_argument("--samples", type=int, default=4096)
    dg.add_argument("--epochs", type=int, default=8)
    dg.add_argument("--seed", type=int, default=0)
    dg.add_argument("--out", default=os.path.join("runs", "diagnose"), help="output folder (default: runs/diagnose)")
    dg.set_defaults(func=cmd_diagnose)
