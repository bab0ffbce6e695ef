"""The ``handgrad`` command: demo, train, evaluate, gradcheck."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy

from . import __version__, data, losses, optim, presets
from .callbacks import Callback, EarlyStopping
from .gradcheck import gradcheck
from .io import atomic_write_bytes, load, read_metadata, save
from .training import evaluate, fit


class _EpochPrinter(Callback):
    """One line per epoch on stdout (the CLI's report; the library itself never prints)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1:>3}/{self.epochs}"]
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if k in logs:
                parts.append(f"{k} {logs[k]:.4f}")
        parts.append(f"lr {logs.get('lr', float('nan')):.4g}")
        parts.append(f"{time.perf_counter() - self._t:.1f}s")
        print("  ".join(parts), flush=True)


def _load_data(args, input_shape):
    if args.subset:
        (xtr, ytr), (xte, yte) = data.load_fashion_mnist_subset()
    else:
        (xtr, ytr), (xte, yte) = data.load_fashion_mnist(args.data)
    flat = len(input_shape) == 1
    xtr, xte = data.to_float(xtr, flatten=flat), data.to_float(xte, flatten=flat)
    if not flat:
        xtr, xte = xtr.reshape((-1, *input_shape)), xte.reshape((-1, *input_shape))
    return (xtr, ytr), (xte, yte)


def _make_optimizer(name, model, lr, momentum, weight_decay, clip_norm):
    kw = {"weight_decay": weight_decay, "clip_norm": clip_norm}
    if name == "sgd":
        return optim.SGD(model, lr, momentum=momentum, **kw)
    if name == "adam":
        return optim.Adam(model, lr, **kw)
    if name == "rmsprop":
        return optim.RMSprop(model, lr, momentum=momentum, **kw)
    raise ValueError(f"unknown optimizer {name!r}")


def _hidden(text: str):
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 256,128, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths like 256,128, got {text!r}")
    return widths


def _train(args, *, title: str = "") -> dict:
    preset = presets.get(args.preset)
    d = preset.defaults
    pick = lambda name: getattr(args, name) if getattr(args, name, None) is not None else d.get(name)  # noqa: E731
    epochs, batch_size, lr = pick("epochs"), pick("batch_size"), pick("lr")
    build_kw = {"seed": args.seed}
    if args.preset == "mlp":
        build_kw.update(hidden=args.hidden or (256, 128), activation=args.activation or "relu",
                        dropout=pick("dropout"))
    elif args.preset == "lenet5":
        build_kw.update(activation=args.activation or "relu", pool=getattr(args, "pool", None) or "max",
                        dropout=pick("dropout"))
    elif args.hidden:
        build_kw["hidden"] = args.hidden[0]
    model = preset.build(**build_kw)
    loss = preset.loss()
    opt = _make_optimizer(pick("optimizer"), model, lr, pick("momentum"), pick("weight_decay"), args.clip_norm)
    (xtr, ytr), (xte, yte) = _load_data(args, preset.input_shape)
    if args.val_split:
        (xtr, ytr), val = data.train_val_split(xtr, ytr, args.val_split, seed=args.seed)
    else:
        val = (xte, yte)
    callbacks = [_EpochPrinter(epochs)]
    schedule = pick("schedule")
    if schedule == "cosine":
        callbacks.append(optim.CosineLR(opt, epochs))
    elif schedule == "step":
        callbacks.append(optim.StepLR(opt, max(1, epochs // 3), 0.1))
    if args.early_stopping:
        callbacks.append(EarlyStopping("val_accuracy", patience=args.early_stopping, restore_best_weights=True))

    print(title or f"handgrad {__version__}: training preset {preset.name!r} ({preset.description})")
    print(f"data: {len(xtr)} training, {len(val[0])} {'validation' if args.val_split else 'test'} samples"
          + (" (shipped subset)" if args.subset else ""))
    print(model.summary(preset.input_shape))
    augment = None
    if getattr(args, "augment", False):
        augment = data.RandomAffine(image_shape=preset.input_shape[-2:] if len(preset.input_shape) > 1 else (28, 28))
        print(f"augmentation: {augment}")
    t0 = time.perf_counter()
    hist = fit(model, loss, opt, xtr, ytr, epochs=epochs, batch_size=batch_size, validation_data=val,
               callbacks=callbacks, seed=args.seed, augment=augment)
    seconds = time.perf_counter() - t0
    test = evaluate(model, loss, xte, yte, metrics=("accuracy", "per_class_accuracy"))

    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "model.safetensors")
    save(model, model_path, metadata={"preset": preset.name, "loss": type(loss).__name__,
                                      "input_shape": list(preset.input_shape)})
    run = {"preset": preset.name, "epochs_run": len(hist.epoch), "seconds": seconds,
           "test_loss": test["loss"], "test_accuracy": test["accuracy"],
           "per_class_accuracy": dict(zip(data.CLASSES, test["per_class_accuracy"])),
           "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items() if k != "func"},
           "history": hist.history}
    atomic_write_bytes(os.path.join(args.out, "history.json"), json.dumps(run, indent=2).encode())
    from .plotting import have_matplotlib, learning_curves

    if have_matplotlib():
        learning_curves(hist.history, os.path.join(args.out, "curves.png"), title=f"{preset.name}: {preset.description}")
        curves = os.path.join(args.out, "curves.png")
    else:
        curves = "(not drawn: install matplotlib, `pip install 'handgrad[plot]'`)"
    print(f"\ntrained {len(hist.epoch)} epochs in {seconds:.1f}s "
          f"({seconds / max(1, len(hist.epoch)):.2f}s per epoch)")
    print(f"test accuracy {test['accuracy'] * 100:.2f}%   test loss {test['loss']:.4f}")
    print(f"model:   {model_path}\nhistory: {os.path.join(args.out, 'history.json')}\ncurves:  {curves}")
    return run


def cmd_train(args) -> int:
    _train(args)
    return 0


def cmd_demo(args) -> int:
    args.preset, args.subset, args.data = "mlp", True, None
    args.hidden, args.activation, args.dropout, args.pool, args.augment = None, None, None, None, False
    args.optimizer = args.momentum = args.weight_decay = args.schedule = args.lr = None
    args.batch_size, args.val_split, args.early_stopping, args.clip_norm = None, 0.0, 0, None
    _train(args, title="handgrad demo: an MLP on the shipped Fashion-MNIST subset "
                       "(6,000 training / 1,000 test images)")
    model = presets.mlp(hidden=(32, 16), seed=0, dtype="float64")
    (x, y), _ = data.load_fashion_mnist_subset()
    res = gradcheck(model, data.to_float(x[:8], numpy.float64), y[:8], loss=losses.SoftmaxCrossEntropy(),
                    max_entries=64)
    print(f"gradient check of a small MLP (float64, central differences): worst relative error "
          f"{res.max_error:.2e} -> {'pass' if res.passed else 'FAIL'}")
    return 0 if res.passed else 1


def cmd_evaluate(args) -> int:
    model = load(args.model)
    meta = read_metadata(args.model)
    shape = tuple(meta.get("input_shape", (784,)))
    loss = losses.get(meta.get("loss", "SoftmaxCrossEntropy"))
    _, (xte, yte) = _load_data(args, shape)
    res = evaluate(model, loss, xte, yte, metrics=("accuracy", "top3_accuracy", "per_class_accuracy"))
    print(f"{args.model}: {len(xte)} test images")
    print(f"loss {res['loss']:.4f}  accuracy {res['accuracy'] * 100:.2f}%  top-3 {res['top3_accuracy'] * 100:.2f}%")
    for name, acc in zip(data.CLASSES, res["per_class_accuracy"]):
        print(f"  {name:<12} {acc * 100:6.2f}%")
    return 0


def cmd_gradcheck(args) -> int:
    """Check every layer of a preset on its own input from a forward pass over real images,
    then the loss on the model's output. Layer by layer, because a finite-difference step
    through a whole network with max pooling and ReLU crosses some kink or tie with high
    probability, while each layer checked alone is smooth around a jittered input."""
    preset = presets.get(args.preset)
    kw = {"seed": args.seed, "dtype": "float64"}
    if args.preset == "mlp":
        kw["hidden"] = args.hidden or (256, 128)
    if args.preset == "lenet5" and args.pool:
        kw["pool"] = args.pool
    if args.activation:
        kw["activation"] = args.activation
    model = preset.build(**kw)
    (x, y), _ = data.load_fashion_mnist_subset()
    a = data.to_float(x[:args.batch], numpy.float64).reshape((-1, *preset.input_shape))
    y = y[:args.batch]
    rng = numpy.random.default_rng(args.seed)
    print(f"gradient check of preset {preset.name!r}, layer by layer (float64, fourth-order central "
          f"differences, up to {args.entries} entries per array, batch {args.batch}; each layer's input "
          "is its real input, jittered by 10% of its spread to move it off ReLU kinks and max-pool ties)")
    rows, worst = [], 0.0
    for i, layer in enumerate(model.layers):
        a = a + 0.1 * (float(a.std()) or 1.0) * rng.standard_normal(a.shape)
        # piecewise-linear parameter-free layers (pooling, ReLU) get a smaller step: fewer ties
        # within reach, and their outputs are exact enough that rounding stays negligible
        res = gradcheck(layer, a, max_entries=args.entries, seed=args.seed + i,
                        eps=1e-4 if layer.params else 1e-5)
        for k, v in res.errors.items():
            rows.append((f"{i}: {layer!r}", k, v))
            worst = max(worst, v)
        a = layer.forward(a, training=True)
    loss = preset.loss()
    res = gradcheck(loss, a, y, max_entries=args.entries, seed=args.seed)
    rows.append((f"loss: {type(loss).__name__}", "output", res.errors["input"]))
    worst = max(worst, res.errors["input"])
    w = max(len(r[0]) for r in rows)
    print(f"{'layer':<{w}}  {'array':<6}  {'max rel. error':>14}  result")
    for name, k, v in rows:
        print(f"{name:<{w}}  {k:<6}  {v:>14.2e}  {'pass' if v < res.tol else 'FAIL'}")
    print(f"worst: {worst:.2e} (tolerance {res.tol:.0e}) -> {'pass' if worst < res.tol else 'FAIL'}")
    return 0 if worst < res.tol else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handgrad", description="Neural networks with hand-derived gradients.")
    p.add_argument("--version", action="version", version=f"handgrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def data_args(sp):
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--data", metavar="DIR", help="folder with the Fashion-MNIST IDX files "
                       "(default: $HANDGRAD_DATA, then /usr/share/datasets/fashion-mnist)")
        g.add_argument("--subset", action="store_true", help="use the small subset shipped with handgrad")

    demo = sub.add_parser("demo", help="train an MLP on the shipped subset and check its gradients")
    demo.add_argument("--epochs", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="handgrad-demo", help="output folder (default: handgrad-demo)")
    demo.set_defaults(func=cmd_demo)

    tr = sub.add_parser("train", help="train a preset model on Fashion-MNIST")
    tr.add_argument("preset", choices=sorted(presets.PRESETS))
    data_args(tr)
    tr.add_argument("--hidden", type=_hidden, help="hidden widths, e.g. 256,128 (width and depth)")
    tr.add_argument("--activation", choices=sorted(presets.ACTIVATIONS))
    tr.add_argument("--dropout", type=float, help="dropout probability after each hidden layer")
    tr.add_argument("--pool", choices=("max", "avg"), help="lenet5: max pooling (default) or mean pooling")
    tr.add_argument("--augment", action="store_true",
                    help="expand the training data on the fly: random translation, rotation and scaling")
    tr.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop"))
    tr.add_argument("--lr", type=float)
    tr.add_argument("--momentum", type=float)
    tr.add_argument("--weight-decay", type=float)
    tr.add_argument("--schedule", choices=("none", "step", "cosine"))
    tr.add_argument("--clip-norm", type=float, help="clip the global gradient norm")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--val-split", type=float, default=0.0,
                    help="hold out this fraction of the training set for validation (default: validate on test)")
    tr.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                    help="stop when validation accuracy has not improved for PATIENCE epochs; keep the best weights")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", help="output folder (default: runs/PRESET)")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a saved model on the Fashion-MNIST test set")
    ev.add_argument("model")
    data_args(ev)
    ev.set_defaults(func=cmd_evaluate)

    gc = sub.add_parser("gradcheck", help="finite-difference check of every layer of a preset")
    gc.add_argument("preset", choices=sorted(presets.PRESETS))
    gc.add_argument("--hidden", type=_hidden, help="hidden widths of the mlp preset")
    gc.add_argument("--activation", choices=sorted(presets.ACTIVATIONS))
    gc.add_argument("--pool", choices=("max", "avg"), help="lenet5 pooling")
    gc.add_argument("--batch", type=int, default=4)
    gc.add_argument("--entries", type=int, default=64, help="entries checked per parameter array")
    gc.add_argument("--seed", type=int, default=0)
    gc.set_defaults(func=cmd_gradcheck)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "out", "x") is None:
        args.out = os.path.join("runs", args.preset)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"handgrad: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
