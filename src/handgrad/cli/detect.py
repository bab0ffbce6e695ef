"""``handgrad detect``, ``scenes``, ``train-detector`` and ``visualize``: detection by sliding a
trained classifier over a larger image, and pictures of what a convolutional model learned
(``003`` §5)."""
from __future__ import annotations

import json
import os

import numpy

from .. import data, losses, optim
from ..fsutil import atomic_write_bytes
from ..serialization import load, read_metadata, save
from ..training import fit
from .common import EpochPrinter as _EpochPrinter

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
        from ..plotting import have_matplotlib

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
    from ..apps import detection

    model = load(model_path)
    fcn = detection.to_fully_convolutional(model, _image_input_shape(model_path))
    return fcn


def cmd_detect(args) -> int:
    from ..apps import detection
    from ..plotting import have_matplotlib

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
        from ..apps import visualize

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
    from ..apps.scenes import evaluate_detection, make_scenes
    from ..apps.visualize import png_bytes

    x, y = _source_images(args)
    scenes = make_scenes(x, y, args.n, size=(args.size, args.size), items=tuple(args.items), seed=args.seed)
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
        res = evaluate_detection(fcn, scenes, threshold=args.threshold, top_k=args.top_k,
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
    """Fine-tune a saved classifier with an extra "background" class (scenes.detector_training_data)."""
    from ..apps import transfer
    from ..apps.scenes import detector_training_data
    from ..layers import Dense

    model = load(args.model)
    meta = read_metadata(args.model)
    shape = _image_input_shape(args.model)
    heads = [i for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]
    if not heads or heads[-1] != len(model.layers) - 1:
        raise ValueError(f"{args.model}: expected a classifier ending in a Dense layer (logits)")
    classes = model.layers[-1].out_features
    (xtr, ytr), (xte, yte) = (data.load_fashion_mnist_subset() if args.subset else data.load_fashion_mnist(args.data))
    x, y = detector_training_data(xtr, ytr, jitter=args.jitter, seed=args.seed)
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
    from ..apps import visualize
    from ..plotting import have_matplotlib

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




def add_commands(sub, data_args) -> None:
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
    dt.add_argument("--out", default=os.path.join("runs", "detect"), help="output folder (default: runs/detect)")
    detection_args(dt)
    dt.set_defaults(func=cmd_detect)

    sc = sub.add_parser("scenes", help="write scenes of Fashion-MNIST items on a black canvas (and detect in them)")
    data_args(sc)
    sc.add_argument("--out", default=os.path.join("runs", "scenes"), help="output folder (default: runs/scenes)")
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
    td.add_argument("--out", default=os.path.join("runs", "detector"), help="output folder (default: runs/detector)")
    td.add_argument("--epochs", type=int, default=3)
    td.add_argument("--lr", type=float, default=0.02)
    td.add_argument("--batch-size", type=int, default=64)
    td.add_argument("--jitter", type=int, default=3, help="shift items by up to this many pixels (default 3)")
    td.add_argument("--head-only", action="store_true", help="freeze every layer below the new output layer")
    td.add_argument("--seed", type=int, default=0)
    td.set_defaults(func=cmd_train_detector)

    vz = sub.add_parser("visualize", help="draw a convolutional model's filters and feature maps")
    vz.add_argument("model")
    vz.add_argument("--out", default=os.path.join("runs", "visualize"), help="output folder (default: runs/visualize)")
    vz.add_argument("--index", type=int, default=0, help="which subset test image to use (default 0)")
    vz.set_defaults(func=cmd_visualize)
