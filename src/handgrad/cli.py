"""The ``handgrad`` command: demo, train, evaluate, gradcheck, and for convolutional models
detect, scenes, train-detector and visualize."""
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


# -- detection and pictures (``003`` §5) -----------------------------------------------------------

def _image_input_shape(model_path) -> tuple[int, int, int]:
    """One image's (C, H, W) for a saved model; a flat (784,) input is a 1×28×28 image."""
    shape = tuple(read_metadata(model_path).get("input_shape", (1, 28, 28)))
    if len(shape) == 1 and shape[0] == 28 * 28:
        return (1, 28, 28)
    if len(shape) != 3:
        raise ValueError(f"{model_path}: expected a model for images (C, H, W), its input shape is {list(shape)}")
    return shape


def _background(args, model_path, fcn) -> int | None:
    """The "no item" class: --background INDEX, none, or auto (the model's metadata, else the
    extra output of an 11-way Fashion-MNIST model)."""
    value = getattr(args, "background", "auto")
    if value == "none":
        return None
    if value != "auto":
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"--background: expected auto, none or a class index, got {value!r}") from None
    meta = read_metadata(model_path)
    if isinstance(meta.get("background"), int):
        return meta["background"]
    outputs = [layer for layer in fcn.layers if getattr(layer, "out_channels", None)][-1].out_channels
    return len(data.CLASSES) if outputs == len(data.CLASSES) + 1 else None


def _read_image(path) -> numpy.ndarray:
    """A grey image (H, W) float32 in [0, 1] from a .npy (no pickle) or a .png file."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        try:
            img = numpy.load(path, allow_pickle=False)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
    elif ext == ".png":
        from .plotting import have_matplotlib

        if not have_matplotlib():
            raise ValueError(f"{path}: reading PNG images needs matplotlib: pip install 'handgrad[plot]' "
                             "(or pass the image as a .npy array)")
        import matplotlib.image  # noqa: PLC0415

        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
        try:
            img = matplotlib.image.imread(path)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable PNG image ({exc})") from None
        if img.ndim == 3 and img.shape[2] in (3, 4):  # colour: luminance (ITU-R 601)
            img = img[..., :3] @ numpy.array([0.299, 0.587, 0.114], dtype=numpy.float32)
    else:
        raise ValueError(f"{path}: expected a .npy or .png image, got {ext or 'no extension'!r}")
    img = numpy.asarray(img)
    while img.ndim > 2 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2:
        raise ValueError(f"{path}: expected a grey image (H, W) (or (1, H, W)), got shape {img.shape}")
    if img.dtype.kind in "iu":
        if img.min() < 0 or img.max() > 255:
            raise ValueError(f"{path}: integer pixels must lie in [0, 255]")
        return img.astype(numpy.float32) / 255.0
    if img.dtype.kind != "f":
        raise ValueError(f"{path}: expected numeric pixels, got dtype {img.dtype}")
    if not numpy.isfinite(img).all():
        raise ValueError(f"{path}: the image contains NaN or Inf values")
    if img.min() < 0 or img.max() > 1:
        raise ValueError(f"{path}: float pixels must lie in [0, 1] (got [{img.min():.3g}, {img.max():.3g}])")
    return img.astype(numpy.float32)


def _fcn(model_path):
    from . import detection

    model = load(model_path)
    fcn = detection.to_fully_convolutional(model, _image_input_shape(model_path))
    return fcn


def cmd_detect(args) -> int:
    from . import detection
    from .plotting import have_matplotlib

    fcn = _fcn(args.model)
    background = _background(args, args.model, fcn)
    image = _read_image(args.image)
    geom = detection.geometry(fcn)
    probs = detection.class_map(fcn, image)
    det = detection.detections_from_map(probs, geom, args.threshold, args.top_k, args.nms_iou, background)
    names = list(data.CLASSES) + ["background"]
    print(f"{args.image}: {image.shape[0]}×{image.shape[1]} image, {probs.shape[1]}×{probs.shape[2]} windows "
          f"of {geom.window[0]}×{geom.window[1]} at stride {geom.stride[0]}"
          + (f", class {background} = background" if background is not None else ""))
    print(f"{len(det)} detection{'s' if len(det) != 1 else ''} (probability > {args.threshold}, "
          f"suppression IoU > {args.nms_iou}, top {args.top_k}):")
    if len(det):
        print(f"  {'top':>4} {'left':>4} {'h':>3} {'w':>3}  {'class':<12} score")
    rows = []
    for t, l_, h, w, c, sc in det.rows():
        name = names[c] if c < len(names) else f"class {c}"
        print(f"  {t:>4} {l_:>4} {h:>3} {w:>3}  {name:<12} {sc:.3f}")
        rows.append({"box": [t, l_, h, w], "label": c, "class": name, "score": sc})
    os.makedirs(args.out, exist_ok=True)
    atomic_write_bytes(os.path.join(args.out, "detections.json"),
                       json.dumps({"image": os.fspath(args.image), "detections": rows}, indent=2).encode())
    if have_matplotlib():
        from . import visualize

        visualize.plot_class_map(probs, os.path.join(args.out, "confidence.png"), image=image, geometry=geom,
                                 class_names=data.CLASSES, background=background)
        visualize.plot_detections(image, det, os.path.join(args.out, "detections.png"), class_names=data.CLASSES)
        print(f"class map:  {os.path.join(args.out, 'confidence.png')}\n"
              f"detections: {os.path.join(args.out, 'detections.png')}")
    else:
        print("(pictures not drawn: install matplotlib, `pip install 'handgrad[plot]'`)")
    print(f"boxes:      {os.path.join(args.out, 'detections.json')}")
    return 0


def _source_images(args):
    if args.subset:
        train, test = data.load_fashion_mnist_subset()
    else:
        train, test = data.load_fashion_mnist(args.data)
    return train if getattr(args, "split", "test") == "train" else test


def _print_detection_report(res) -> None:
    print(f"found {res['found']}/{res['items']} items ({res['recall'] * 100:.1f}%) with a box at IoU >= 0.5; "
          f"with the right class {res['found_class']}/{res['items']} ({res['recall_class'] * 100:.1f}%)")
    print(f"precision: {res['precision'] * 100:.1f}% of {res['detections']} detections found an item, "
          f"{res['precision_class'] * 100:.1f}% with the right class")


def cmd_scenes(args) -> int:
    from . import detection
    from .visualize import png_bytes

    x, y = _source_images(args)
    scenes = detection.make_scenes(x, y, args.n, size=(args.size, args.size), items=tuple(args.items), seed=args.seed)
    os.makedirs(args.out, exist_ok=True)
    width = max(4, len(str(args.n - 1)))
    listing = []
    for s, (img, boxes, labels, src) in enumerate(zip(*scenes)):
        stem = f"scene_{s:0{width}d}"
        buf = _io_bytes(img[0])
        atomic_write_bytes(os.path.join(args.out, stem + ".npy"), buf)
        atomic_write_bytes(os.path.join(args.out, stem + ".png"), png_bytes(img[0]))
        listing.append({"npy": stem + ".npy", "png": stem + ".png",
                        "items": [{"box": [int(v) for v in b], "label": int(c), "class": data.CLASSES[int(c)],
                                   "source_index": int(i)} for b, c, i in zip(boxes, labels, src)]})
    meta = {"size": [args.size, args.size], "items": list(args.items), "seed": args.seed,
            "split": args.split, "source": "subset" if args.subset else "fashion-mnist",
            "box_format": "top, left, height, width", "classes": list(data.CLASSES), "scenes": listing}
    atomic_write_bytes(os.path.join(args.out, "scenes.json"), json.dumps(meta, indent=1).encode())
    n_items = sum(len(b) for b in scenes.boxes)
    print(f"wrote {args.n} scenes of {args.size}×{args.size} with {n_items} items ({args.split} images) to "
          f"{args.out} (.npy, .png, scenes.json)")
    if args.model:
        fcn = _fcn(args.model)
        background = _background(args, args.model, fcn)
        res = detection.evaluate_detection(fcn, scenes, threshold=args.threshold, top_k=args.top_k,
                                           iou_threshold=args.nms_iou, background=background)
        print(f"detection with {args.model} (probability > {args.threshold}, suppression IoU > {args.nms_iou}, "
              f"top {args.top_k}" + (f", class {background} = background)" if background is not None else ")"))
        _print_detection_report(res)
    return 0


def _io_bytes(array) -> bytes:
    import io as _io  # noqa: PLC0415

    buf = _io.BytesIO()
    numpy.save(buf, numpy.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def cmd_train_detector(args) -> int:
    """Fine-tune a saved classifier with an extra "background" class (detection.detector_training_data)."""
    from . import detection, transfer
    from .layers import Dense

    model = load(args.model)
    meta = read_metadata(args.model)
    shape = _image_input_shape(args.model)
    heads = [i for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]
    if not heads or heads[-1] != len(model.layers) - 1:
        raise ValueError(f"{args.model}: expected a classifier ending in a Dense layer (logits)")
    classes = model.layers[-1].out_features
    (xtr, ytr), (xte, yte) = (data.load_fashion_mnist_subset() if args.subset else data.load_fashion_mnist(args.data))
    x, y = detection.detector_training_data(xtr, ytr, jitter=args.jitter, seed=args.seed)
    if meta.get("input_shape") and len(meta["input_shape"]) == 1:
        x = x.reshape(len(x), -1)
    net = transfer.replace_head(model, classes + 1, rng=args.seed)
    if args.head_only:
        transfer.freeze(net, but_last=1)
    opt = optim.SGD(net, args.lr, momentum=0.9, weight_decay=5e-4)
    print(f"fine-tuning {args.model} with a background class ({classes} = background) on "
          f"{int((y < classes).sum())} jittered items and {int((y == classes).sum())} background windows"
          + (" (head only)" if args.head_only else ""))
    fit(net, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=args.epochs, batch_size=args.batch_size,
        callbacks=[_EpochPrinter(args.epochs), optim.CosineLR(opt, args.epochs)], seed=args.seed)
    xte_f = data.to_float(xte).reshape((-1, *meta.get("input_shape", shape)))
    acc = float((net.predict(xte_f).argmax(axis=1) == yte).mean())
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.safetensors")
    save(net, path, metadata={**meta, "background": classes})
    print(f"test accuracy on centred items {acc * 100:.2f}%\nmodel: {path}")
    return 0


def cmd_visualize(args) -> int:
    from . import visualize
    from .plotting import have_matplotlib

    if not have_matplotlib():
        raise ValueError(f"visualize needs matplotlib: {visualize.INSTALL_HINT}")
    model = load(args.model)
    shape = tuple(read_metadata(args.model).get("input_shape", ()))
    if len(shape) != 3:
        raise ValueError(f"{args.model}: visualize needs a convolutional model for images (C, H, W); "
                         f"its input shape is {list(shape)}")
    if not visualize.conv_layers(model):
        raise ValueError(f"{args.model}: the model has no Conv2D layer, so there are no filters to show")
    _, (xte, yte) = data.load_fashion_mnist_subset()
    if not 0 <= args.index < len(xte):
        raise ValueError(f"--index: expected 0 <= index < {len(xte)}, got {args.index}")
    image = data.to_float(xte[args.index:args.index + 1]).reshape((1, *shape))
    os.makedirs(args.out, exist_ok=True)
    filters, maps = os.path.join(args.out, "filters.png"), os.path.join(args.out, "feature_maps.png")
    visualize.plot_filters(model, filters)
    visualize.plot_feature_maps(model, image, maps)
    print(f"subset test image {args.index} ({data.CLASSES[int(yte[args.index])]})")
    print(f"filters:      {filters}\nfeature maps: {maps}")
    return 0


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

    def detection_args(sp):
        sp.add_argument("--threshold", type=float, default=0.5,
                        help="keep windows whose top class probability exceeds this (default 0.5)")
        sp.add_argument("--nms-iou", type=float, default=0.1,
                        help="non-maximum suppression: drop a window overlapping a better one with IoU above this "
                             "(default 0.1)")
        sp.add_argument("--top-k", type=int, default=10, help="at most this many detections per image (default 10)")
        sp.add_argument("--background", default="auto",
                        help="index of a 'no item' class: auto (from the model), none, or an index")

    dt = sub.add_parser("detect", help="find items in a larger image by sliding a saved classifier over it")
    dt.add_argument("model")
    dt.add_argument("image", help="a grey image, .npy (pixels in [0, 1] or uint8) or .png")
    dt.add_argument("--out", default="handgrad-detect", help="output folder (default: handgrad-detect)")
    detection_args(dt)
    dt.set_defaults(func=cmd_detect)

    sc = sub.add_parser("scenes", help="write scenes of Fashion-MNIST items on a black canvas (and detect in them)")
    data_args(sc)
    sc.add_argument("--out", default="handgrad-scenes", help="output folder (default: handgrad-scenes)")
    sc.add_argument("--n", type=int, default=100, help="number of scenes (default 100)")
    sc.add_argument("--size", type=int, default=96, help="canvas side in pixels (default 96)")
    sc.add_argument("--items", type=int, nargs=2, default=(2, 4), metavar=("MIN", "MAX"),
                    help="items per scene (default 2 4)")
    sc.add_argument("--split", choices=("test", "train"), default="test", help="source images (default test)")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--model", help="also run detection with this saved model and print the found rate")
    detection_args(sc)
    sc.set_defaults(func=cmd_scenes)

    td = sub.add_parser("train-detector", help="fine-tune a saved classifier with a background class for detection")
    td.add_argument("model")
    data_args(td)
    td.add_argument("--out", default="runs/detector", help="output folder (default: runs/detector)")
    td.add_argument("--epochs", type=int, default=3)
    td.add_argument("--lr", type=float, default=0.02)
    td.add_argument("--batch-size", type=int, default=64)
    td.add_argument("--jitter", type=int, default=3, help="shift items by up to this many pixels (default 3)")
    td.add_argument("--head-only", action="store_true", help="freeze every layer below the new output layer")
    td.add_argument("--seed", type=int, default=0)
    td.set_defaults(func=cmd_train_detector)

    vz = sub.add_parser("visualize", help="draw a convolutional model's filters and feature maps")
    vz.add_argument("model")
    vz.add_argument("--out", default="handgrad-visualize", help="output folder (default: handgrad-visualize)")
    vz.add_argument("--index", type=int, default=0, help="which subset test image to use (default 0)")
    vz.set_defaults(func=cmd_visualize)
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
