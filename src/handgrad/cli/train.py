"""``handgrad demo``, ``train``, ``evaluate``, ``gradcheck`` and ``diagnose``."""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy

from .. import __version__, data, losses, optim, presets, tasks
from ..fsutil import atomic_write_bytes
from ..gradcheck import gradcheck
from ..serialization import load, read_metadata, save
from ..training import TrainingDiverged, TrainingInterrupted, evaluate, fit
from ..training import callbacks as cb
from . import rbm as rbm_cli
from .common import EpochPrinter, data_options, fault_exit, jsonable, run_distributed

#: the fraction of the training set ``train`` and ``demo`` hold out for validation by default
VAL_SPLIT = 0.1

#: options a resumed run takes from the run it continues
RUN_OPTIONS = ("preset", "data", "subset", "hidden", "activation", "dropout", "pool", "cell", "augment",
                "aug_shift", "aug_rotation", "aug_scale", "aug_flip",
                "optimizer", "lr", "momentum", "weight_decay", "schedule", "clip_norm", "epochs", "batch_size",
                "val_split", "early_stopping", "seed", "samples", "length", "text", "max_chars",
                "checkpoint_every", "workers")


def make_optimizer(name, model, lr, momentum, weight_decay, clip_norm):
    kw = {"weight_decay": weight_decay, "clip_norm": clip_norm}
    if name == "sgd":
        return optim.SGD(model, lr, momentum=momentum, **kw)
    if name == "adam":
        return optim.Adam(model, lr, **kw)
    if name == "rmsprop":
        return optim.RMSprop(model, lr, momentum=momentum, **kw)
    raise ValueError(f"unknown optimizer {name!r}")


def _build_kwargs(args, preset, pick, extra) -> dict:
    kw = {"seed": args.seed}
    if preset.name == "mlp":
        kw.update(hidden=args.hidden or (256, 128), activation=args.activation or "relu", dropout=pick("dropout"))
    elif preset.name == "lenet5":
        kw.update(activation=args.activation or "relu", pool=args.pool or "max", dropout=pick("dropout"))
    else:
        if args.hidden:
            kw["hidden"] = args.hidden[0]
        if getattr(args, "cell", None):
            kw["cell"] = args.cell
    if "vocab_size" in extra:
        kw["vocab_size"] = extra["vocab_size"]
    return kw


def _restore_run_options(args) -> None:
    """``--resume RUN_DIR``: take every training option from RUN_DIR/run.json."""
    path = os.path.join(args.resume, "run.json")
    try:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"--resume: {path} not found (is {args.resume!r} a folder written by "
                                "`handgrad train`?)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--resume: {path} is not valid JSON ({exc})") from None
    for k in RUN_OPTIONS:
        if k in saved:
            v = saved[k]
            setattr(args, k, tuple(v) if k == "hidden" and v else v)
    args.out = args.resume


def train_run(args, *, title: str = "") -> int:
    # under mpiexec (cli.common.run_distributed): every rank trains, rank 0 alone writes files
    distributed = getattr(args, "distributed", None)
    root = distributed is None or distributed.is_root
    resuming = bool(getattr(args, "resume", None))
    if resuming:
        _restore_run_options(args)
    if args.preset is None:
        raise ValueError("train: name a preset (or --resume RUN_DIR)")
    preset = presets.get(args.preset)
    task = tasks.TASKS[preset.task]
    d = preset.defaults
    pick = lambda name: getattr(args, name) if getattr(args, name, None) is not None else d.get(name)
    epochs, batch_size, lr = pick("epochs"), pick("batch_size"), pick("lr")
    val_split = args.val_split if args.val_split is not None else VAL_SPLIT
    if args.early_stopping and not val_split:
        raise ValueError("--early-stopping chooses the weights on validation data: it needs --val-split > 0 "
                         "(the test set is never used to choose)")
    # 003 §4: the training data to learn, a held-out part of it to validate and choose (early
    # stopping), the test data touched once, after training
    (xtr, ytr), val, (xte, yte), extra = task.load(data_options(args, val_split=val_split), preset)
    model = preset.build(**_build_kwargs(args, preset, pick, extra))
    loss = preset.loss()
    opt = make_optimizer(pick("optimizer"), model, lr, pick("momentum"), pick("weight_decay"), pick("clip_norm"))
    classes = ytr.dtype.kind in "iu" and preset.task == "fashion"
    callbacks = [EpochPrinter(epochs)]
    schedule = pick("schedule")
    if schedule == "cosine":
        callbacks.append(optim.CosineLR(opt, epochs))
    elif schedule == "step":
        callbacks.append(optim.StepLR(opt, max(1, epochs // 3), 0.1))
    if args.early_stopping and val is not None:
        callbacks.append(cb.EarlyStopping("val_accuracy" if classes else "val_loss", patience=args.early_stopping,
                                          restore_best_weights=True))
    if root:
        os.makedirs(args.out, exist_ok=True)
    if root and not resuming:
        run_options = {k: jsonable(getattr(args, k, None)) for k in RUN_OPTIONS}
        atomic_write_bytes(os.path.join(args.out, "run.json"), json.dumps(run_options, indent=2).encode())

    print(title or f"handgrad {__version__}: training preset {preset.name!r} ({preset.description})")
    print(f"data: {len(xtr)} training, " + (f"{len(val[0])} validation ({val_split:g} of the training set, "
                                              f"seed {args.seed})" if val is not None else "no validation")
          + f", {len(xte)} test samples (evaluated once, after training)"
          + (" (shipped subset)" if getattr(args, "subset", False) else ""))
    shape = preset.input_shape if None not in preset.input_shape else None
    print(model.summary(shape))
    augment = None
    if getattr(args, "augment", False):
        if preset.task != "fashion":
            raise ValueError(f"--augment: only image presets can be augmented, not {preset.name!r}")
        shape = preset.input_shape[-2:] if len(preset.input_shape) > 1 else (28, 28)
        augment = data.RandomAffine(max_shift=args.aug_shift, max_rotation=args.aug_rotation,
                                    scale=(1 - args.aug_scale, 1 + args.aug_scale), image_shape=shape,
                                    flip=args.aug_flip)
        print(f"augmentation: {augment}")
    ckpt_dir = os.path.join(args.out, "checkpoints")
    if resuming:
        print(f"resuming from {ckpt_dir}")
    t0 = time.perf_counter()
    try:
        hist = fit(model, loss, opt, xtr, ytr, epochs=epochs, batch_size=batch_size, validation_data=val,
                   callbacks=callbacks, seed=args.seed, augment=augment, checkpoint_dir=ckpt_dir,
                   checkpoint_every=getattr(args, "checkpoint_every", 0) or 0,
                   resume_from=ckpt_dir if resuming else None, workers=getattr(args, "workers", None),
                   distributed=distributed if distributed is not None else "auto", **task.fit_options)
    except (TrainingInterrupted, TrainingDiverged) as exc:
        return fault_exit(exc, args.out)
    seconds = time.perf_counter() - t0
    if not root:  # the model is rank 0's (the same on every rank): it reports and writes
        return 0
    report = task.report(model, loss, (xte, yte), extra)  # the one look at the test set
    model_path = os.path.join(args.out, "model.safetensors")
    meta = {"preset": preset.name, "task": preset.task, "loss": type(loss).__name__,
            "input_shape": list(preset.input_shape)}
    if preset.task == "adding":
        meta["length"] = extra["T"]
    save(model, model_path, metadata=meta)
    run = {"preset": preset.name, "epochs_run": len(hist.epoch), "seconds": seconds,
           "samples": {"train": len(xtr), "validation": len(val[0]) if val is not None else 0, "test": len(xte)},
           **{k: v for k, v in report.items() if k != "summary"},
           "args": {k: jsonable(getattr(args, k, None)) for k in RUN_OPTIONS}, "history": hist.history}
    atomic_write_bytes(os.path.join(args.out, "history.json"), json.dumps(jsonable(run), indent=2).encode())
    from ..plotting import have_matplotlib, learning_curves

    if have_matplotlib():
        learning_curves(hist.history, os.path.join(args.out, "curves.png"), title=f"{preset.name}: {preset.description}")
        curves = os.path.join(args.out, "curves.png")
    else:
        curves = "(not drawn: install matplotlib, `pip install 'handgrad[plot]'`)"
    print(f"\ntrained {len(hist.epoch)} epochs in {seconds:.1f}s ({seconds / max(1, len(hist.epoch)):.2f}s per epoch"
          + (", this session" if resuming else "") + ")")
    print(report["summary"])
    print(f"model:   {model_path}\nhistory: {os.path.join(args.out, 'history.json')}\ncurves:  {curves}")
    return 0


def cmd_train(args) -> int:
    if args.preset is None and not args.resume:
        raise ValueError("train: name a preset, or --resume RUN_DIR")
    if args.preset in rbm_cli.PRESETS or (args.resume and rbm_cli.is_run(args.resume)):
        _refuse_rbm_under_mpi(args.preset or "rbm/autoencoder")
        return rbm_cli.run_train(args)  # 003 §8-9: contrastive divergence, then fine-tuning
    if args.out is None:
        args.out = os.path.join("runs", args.preset or "run")
    return run_distributed(train_run, args)


def cmd_demo(args) -> int:
    return run_distributed(_demo, args)


def _demo(args) -> int:
    for k in ("hidden", "activation", "dropout", "pool", "cell", "optimizer", "momentum", "weight_decay",
              "schedule", "lr", "batch_size", "clip_norm", "data", "resume", "samples", "length", "text", "max_chars"):
        setattr(args, k, None)
    args.preset, args.subset, args.augment, args.val_split, args.early_stopping = "mlp", True, False, VAL_SPLIT, 0
    args.checkpoint_every = 0
    code = train_run(args, title="handgrad demo: an MLP on the shipped Fashion-MNIST subset (6,000 training "
                                 f"images, {VAL_SPLIT:.0%} of them held out for validation; 1,000 test images)")
    model = presets.mlp(hidden=(32, 16), seed=0, dtype="float64")
    (x, y), _ = data.load_fashion_mnist_subset()
    res = gradcheck(model, data.to_float(x[:8], numpy.float64), y[:8], loss=losses.SoftmaxCrossEntropy(),
                    max_entries=64)
    print(f"gradient check of a small MLP (float64, central differences): worst relative error "
          f"{res.max_error:.2e} -> {'pass' if res.passed else 'FAIL'}")
    return code or (0 if res.passed else 1)


def _refuse_rbm_under_mpi(preset: str) -> None:
    """The RBM trainer runs as one process (its CD steps are not sharded over ranks yet)."""
    from ..distributed import launcher_world

    world = launcher_world()
    if world is not None and world.size > 1:
        raise ValueError(f"train {preset}: the RBM and autoencoder presets run as one process, not under "
                         f"mpiexec -n {world.size}")


def cmd_evaluate(args) -> int:
    meta = read_metadata(args.model)
    if meta.get("task") in ("autoencoder", "rbm"):
        return rbm_cli.evaluate_model(args)  # reconstruction error per test image
    model = load(args.model)
    preset = presets.get(meta["preset"]) if meta.get("preset") in presets.PRESETS else None
    task = tasks.TASKS[meta.get("task", "fashion")]
    loss = losses.get(meta.get("loss", "SoftmaxCrossEntropy"))
    if task.name == "fashion":
        shape = tuple(meta.get("input_shape", (784,)))
        stub = presets.Preset("saved", "", None, None, shape)
        _, _, (xte, yte), _ = task.load(data_options(args), stub)
        res = evaluate(model, loss, xte, yte, metrics=("accuracy", "top3_accuracy", "per_class_accuracy"))
        print(f"{args.model}: {len(xte)} test images")
        print(f"loss {res['loss']:.4f}  accuracy {res['accuracy'] * 100:.2f}%  top-3 {res['top3_accuracy'] * 100:.2f}%")
        for name, acc in zip(data.CLASSES, res["per_class_accuracy"]):
            print(f"  {name:<12} {acc * 100:6.2f}%")
        return 0
    # the adding problem is tested at the length it was trained for
    _, _, test, extra = task.load(data_options(args, length=meta.get("length")), preset)
    print(f"{args.model}: {task.report(model, loss, test, extra)['summary']}")
    return 0


def cmd_gradcheck(args) -> int:
    """Check every layer of a preset on its own input from a forward pass over real data,
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
    task = tasks.TASKS[preset.task]
    if preset.task == "charlm":
        text = "the quick brown fox jumps over the lazy dog\n" * 20
        corpus = data.CharCorpus(text)
        x, y = corpus.windows(12)
        kw["vocab_size"] = corpus.vocab_size
    elif preset.task == "adding":
        x, y = data.adding_problem(args.batch, 12, numpy.random.default_rng(args.seed))
    else:
        opts = data_options(args, subset=True, data=None, samples=args.batch if preset.task == "reber" else None)
        (x, y), _, _, _ = task.load(opts, preset)
    model = preset.build(**kw)
    a = numpy.asarray(x[:args.batch], dtype=numpy.float64)
    y = y[:args.batch]
    rng = numpy.random.default_rng(args.seed)
    print(f"gradient check of preset {preset.name!r}, layer by layer (float64, fourth-order central "
          f"differences, up to {args.entries} entries per array, batch {args.batch}; each layer's input "
          "is its real input, jittered by 10% of its spread to move it off ReLU kinks and max-pool ties)")
    rows, worst = [], 0.0
    for i, layer in enumerate(model.layers):
        masked = getattr(layer, "mask_value", None) is not None
        if not masked:  # jittering would turn padding into data
            a = a + 0.1 * (float(a.std()) or 1.0) * rng.standard_normal(a.shape)
        # piecewise-linear parameter-free layers (pooling, ReLU) get a smaller step: fewer ties
        # within reach, and their outputs are exact enough that rounding stays negligible
        res = gradcheck(layer, a, max_entries=args.entries, seed=args.seed + i,
                        eps=1e-4 if layer.params else 1e-5, check_input=not masked)
        for k, v in res.errors.items():
            rows.append((f"{i}: {layer!r}", k, v))
            worst = max(worst, v)
        if hasattr(layer, "reset_state"):
            layer.reset_state()
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


def add_commands(sub, data_args) -> None:
    from .common import widths

    demo = sub.add_parser("demo", help="train an MLP on the shipped subset and check its gradients")
    demo.add_argument("--epochs", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default=os.path.join("runs", "demo"), help="output folder (default: runs/demo)")
    demo.set_defaults(func=cmd_demo)

    tr = sub.add_parser("train", help="train a preset model (Fashion-MNIST, sequence tasks)")
    tr.add_argument("preset", nargs="?", choices=sorted(presets.PRESETS) + sorted(rbm_cli.PRESETS))
    data_args(tr)
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its latest checkpoint")
    tr.add_argument("--hidden", type=widths, help="hidden widths, e.g. 256,128 (mlp), or the recurrent width")
    tr.add_argument("--activation", choices=sorted(presets.ACTIVATIONS))
    tr.add_argument("--dropout", type=float, help="dropout probability after each hidden layer")
    tr.add_argument("--pool", choices=("max", "avg"), help="lenet5: max pooling (default) or mean pooling")
    tr.add_argument("--cell", choices=sorted(presets.CELLS), help="sequence presets: lstm (default) or rnn")
    tr.add_argument("--augment", action="store_true",
                    help="expand the training data on the fly: random translation, rotation and scaling")
    # defaults: the mild setting that measured best for LeNet-5 on Fashion-MNIST (docs/benchmarks.md)
    tr.add_argument("--aug-shift", type=float, default=1.0, help="--augment: largest shift in pixels (default 1)")
    tr.add_argument("--aug-rotation", type=float, default=5.0, help="--augment: largest rotation in degrees (default 5)")
    tr.add_argument("--aug-scale", type=float, default=0.05, help="--augment: scale within 1 ± this (default 0.05)")
    tr.add_argument("--aug-flip", action=argparse.BooleanOptionalAction, default=True,
                    help="--augment: also mirror left-right with probability 1/2 (default: on)")
    tr.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop"))
    tr.add_argument("--lr", type=float)
    tr.add_argument("--momentum", type=float)
    tr.add_argument("--weight-decay", type=float)
    tr.add_argument("--schedule", choices=("none", "step", "cosine"))
    tr.add_argument("--clip-norm", type=float, help="clip the global gradient norm")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--val-split", type=float, default=VAL_SPLIT,
                    help=f"hold out this seeded fraction of the training set for validation (default {VAL_SPLIT}); "
                         "0 trains on all of it and reports no val_*. The test set is evaluated once, at the end")
    tr.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                    help="stop when the validation metric has not improved for PATIENCE epochs; keep the best weights")
    tr.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                    help="also checkpoint every STEPS steps (always at the end of each epoch)")
    tr.add_argument("--samples", type=int, help="reber/adding: number of training sequences")
    tr.add_argument("--length", type=int, help="adding: sequence length T (default 100)")
    tr.add_argument("--text", help="charlm: text file (default /usr/share/dict/words)")
    tr.add_argument("--max-chars", type=int, help="charlm: read at most this many characters")
    tr.add_argument("--workers", type=int, default=None,
                    help="split each batch over this many threads (data-parallel; default: every core, "
                         "HANDGRAD_NUM_THREADS or OMP_NUM_THREADS when set, for models with convolution, "
                         "pooling or LSTM layers and enough rows per thread; 1 for Dense-only and stateful "
                         "models); "
                         "under `mpiexec -n K` the threads of each rank split its shard (docs/distributed.md)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", help="output folder (default: runs/PRESET)")
    rbm_cli.add_train_arguments(tr)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a saved model on its task's test data")
    ev.add_argument("model")
    data_args(ev)
    ev.set_defaults(func=cmd_evaluate)

    gc = sub.add_parser("gradcheck", help="finite-difference check of every layer of a preset")
    gc.add_argument("preset", choices=sorted(presets.PRESETS))
    gc.add_argument("--hidden", type=widths, help="hidden widths of the mlp preset")
    gc.add_argument("--activation", choices=sorted(presets.ACTIVATIONS))
    gc.add_argument("--pool", choices=("max", "avg"), help="lenet5 pooling")
    gc.add_argument("--batch", type=int, default=4)
    gc.add_argument("--entries", type=int, default=64, help="entries checked per parameter array")
    gc.add_argument("--seed", type=int, default=0)
    gc.set_defaults(func=cmd_gradcheck)

