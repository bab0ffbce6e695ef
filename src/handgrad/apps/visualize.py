"""Pictures of a convolutional network (``003`` §5): its learned filters, the activation maps
one image produces in every convolution and pooling layer, class maps and detections.

Needs matplotlib (``pip install 'handgrad[plot]'``), imported only when a picture is drawn, so
``import handgrad`` works without it; a missing matplotlib raises ``ImportError`` naming the
extra to install. Every PNG is written atomically (``handgrad.fsutil.atomic_write_bytes``).
``png_bytes`` encodes a grey image as PNG without matplotlib (for scene files).
"""
from __future__ import annotations

import os
import struct
import zlib

import numpy

from .. import backend
from .._checks import check_int
from ..layers import AvgPool2D, Conv2D, MaxPool2D
from ..layers.base import Layer
from ..model import Sequential

INSTALL_HINT = "pip install 'handgrad[plot]' (or pip install matplotlib)"


def _pyplot(where: str):
    try:
        import matplotlib  # noqa: PLC0415
    except ImportError:
        raise ImportError(f"{where} needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _save(fig, path, plt) -> None:
    from ..plotting import save_png

    save_png(fig, path)


def png_bytes(image) -> bytes:
    """An 8-bit grey PNG of ``image`` ``(H, W)`` (uint8, or floats in [0, 1]); no matplotlib."""
    img = numpy.asarray(image)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2 or min(img.shape) < 1:
        raise ValueError(f"png_bytes: expected a grey image (H, W), got shape {numpy.shape(image)}")
    if img.dtype.kind == "f":
        if not numpy.isfinite(img).all():
            raise ValueError("png_bytes: the image contains NaN or Inf values")
        img = numpy.rint(numpy.clip(img, 0.0, 1.0) * 255.0)
    elif img.dtype.kind not in "iu":
        raise TypeError(f"png_bytes: expected a numeric image, got dtype {img.dtype}")
    img = numpy.clip(img, 0, 255).astype(numpy.uint8)
    h, w = img.shape
    raw = numpy.hstack([numpy.zeros((h, 1), dtype=numpy.uint8), img]).tobytes()  # filter 0 per row

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def conv_layers(model) -> list[tuple[int, Conv2D]]:
    """``(index, layer)`` of every ``Conv2D`` in ``model``."""
    return [(i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D)]


def plot_filters(model_or_layer, path: str | os.PathLike, title: str | None = None) -> None:
    """The filters of a ``Conv2D`` (or of a model's first one) as a grid of grey images.

    One tile per (output channel, input channel) kernel: with one input channel the filters
    are laid out 8 to a row; otherwise one row per filter, one column per input channel (at
    most 16 of each). All tiles share one grey scale, symmetric about 0 (black negative,
    white positive), so their magnitudes can be compared.
    """
    where = "plot_filters"
    if isinstance(model_or_layer, Conv2D):
        layer, name = model_or_layer, repr(model_or_layer)
    elif isinstance(model_or_layer, Sequential):
        found = conv_layers(model_or_layer)
        if not found:
            raise ValueError(f"{where}: the model has no Conv2D layer (its layers: "
                             f"{', '.join(type(la).__name__ for la in model_or_layer.layers)})")
        i, layer = found[0]
        name = f"layer {i}: {layer!r}"
    else:
        raise TypeError(f"{where}: expected a Sequential model or a Conv2D layer, got {type(model_or_layer).__name__}")
    plt = _pyplot(where)
    W = backend.to_numpy(layer.params["W"]).astype(numpy.float64)
    d, c = W.shape[:2]
    if c == 1:
        tiles = [(k, 0) for k in range(d)]
        ncols = min(d, 8)
        nrows = -(-d // ncols)
        place = {t: divmod(n, ncols) for n, t in enumerate(tiles)}
    else:
        d, c = min(d, 16), min(c, 16)
        tiles = [(k, j) for k in range(d) for j in range(c)]
        nrows, ncols = d, c
        place = {t: t for t in tiles}
    scale = float(numpy.abs(W).max()) or 1.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.1 * ncols + 1.2, 1.1 * nrows + 0.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    im = None
    for (k, j) in tiles:
        ax = axes[place[(k, j)]]
        im = ax.imshow(W[k, j], cmap="gray", vmin=-scale, vmax=scale, interpolation="nearest")
        ax.set_title(f"{k}" if c == 1 else f"{k},{j}", fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(title or f"filters of {name}", fontsize=9)
    _save(fig, path, plt)


def _one_image(image, model, where: str):
    x = backend.to_numpy(image)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{where}: expected a numeric image, got dtype {x.dtype}")
    while x.ndim < 4:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"{where}: expected one image (H, W), (C, H, W) or (1, C, H, W), got shape {numpy.shape(image)}")
    if x.dtype.kind in "iu":
        x = x / 255.0
    if not numpy.isfinite(x).all():
        raise ValueError(f"{where}: the image contains NaN or Inf values")
    return backend.asarray(x, dtype=model.dtype, xp=model.xp)


def feature_maps(model: Sequential, image) -> list[tuple[int, Layer, numpy.ndarray]]:
    """``(index, layer, output (C, H, W))`` of every convolution and pooling layer of ``model``
    for one ``image`` (inference mode)."""
    x = _one_image(image, model, "feature_maps")
    out = []
    for i, layer in enumerate(model.layers):
        x = layer.forward(x, training=False)
        if isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D)):
            out.append((i, layer, backend.to_numpy(x)[0]))
    return out


def plot_feature_maps(model: Sequential, image, path: str | os.PathLike, max_channels: int = 16,
                      ncols: int = 8) -> None:
    """The input image, then the activation maps of every convolution and pooling layer for
    it (``003`` §5: each output channel is the response to one learned filter), one block of
    rows per layer, ``ncols`` channels to a row, at most ``max_channels`` per layer. Each map
    has its own grey scale."""
    where = "plot_feature_maps"
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: expected a Sequential model, got {type(model).__name__}")
    if not conv_layers(model):
        raise ValueError(f"{where}: the model has no Conv2D layer, so it has no feature maps to show")
    max_channels = check_int(max_channels, where, "max_channels", minimum=1)
    ncols = check_int(ncols, where, "ncols", minimum=1)
    maps = feature_maps(model, image)
    plt = _pyplot(where)
    x = backend.to_numpy(_one_image(image, model, where))[0]
    blocks = [("input", x)] + [(f"{i}: {layer!r}  {'×'.join(map(str, a.shape))}", a[:max_channels])
                               for i, layer, a in maps]
    rows = [-(-a.shape[0] // ncols) for _, a in blocks]
    fig, axes = plt.subplots(sum(rows), ncols, figsize=(1.3 * ncols, 1.45 * sum(rows)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    r = 0
    for (label, a), nr in zip(blocks, rows):
        for ch in range(a.shape[0]):
            ax = axes[r + ch // ncols, ch % ncols]
            ax.imshow(a[ch], cmap="gray", interpolation="nearest")
        axes[r, 0].set_title(label, loc="left", fontsize=8)
        r += nr
    fig.tight_layout()
    _save(fig, path, plt)


def _class_names(n: int, names, background) -> list[str]:
    names = list(names) if names is not None else []
    out = []
    for k in range(n):
        if background is not None and k == background:
            out.append("background")
        elif k < len(names):
            out.append(str(names[k]))
        else:
            out.append(f"class {k}")
    return out


def _extent(shape_map, window, stride):
    """imshow extent placing map cell (p, q) over the centre of its window."""
    (hm, wm), (wh, ww), (sh, sw) = shape_map, window, stride
    top, left = (wh - 1) / 2 - sh / 2, (ww - 1) / 2 - sw / 2
    return (left, left + wm * sw, top + hm * sh, top)


def plot_class_map(probs, path: str | os.PathLike, image=None, geometry=None, class_names=None,
                   background: int | None = None) -> None:
    """The class map of a scene: the highest class probability of every window (the
    confidence that it holds *some* item) and the most probable class of every window
    (one colour per class), drawn over the scene when ``image`` and ``geometry`` (from
    ``detection.geometry``) are given."""
    where = "plot_class_map"
    probs = numpy.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"{where}: expected a class map (K, H', W'), got shape {probs.shape}")
    plt = _pyplot(where)
    from matplotlib.colors import ListedColormap  # noqa: PLC0415

    k = probs.shape[0]
    names = _class_names(k, class_names, background)
    objects = probs.copy()
    if background is not None:
        objects[background] = -1.0
    conf, label = objects.max(axis=0), objects.argmax(axis=0)
    if background is not None:
        label = numpy.where(probs.argmax(axis=0) == background, background, label)
    extent = None
    panels = 2 + (image is not None)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6))
    if image is not None:
        img = numpy.asarray(image, dtype=numpy.float64).reshape(numpy.shape(image)[-2:])
        axes[0].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[0].set_title("image")
        if geometry is not None:
            extent = _extent(conf.shape, geometry.window, geometry.stride)
    ax_conf, ax_cls = axes[-2], axes[-1]
    im = ax_conf.imshow(conf, cmap="viridis", vmin=0, vmax=1, extent=extent, interpolation="nearest")
    ax_conf.set_title("top class probability" + (" (items only)" if background is not None else ""))
    fig.colorbar(im, ax=ax_conf, shrink=0.8)
    colours = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20b").colors)
    colours = [colours[i % len(colours)] for i in range(k)]
    if background is not None:
        colours[background] = (0.15, 0.15, 0.15)
    im = ax_cls.imshow(label, cmap=ListedColormap(colours), vmin=-0.5, vmax=k - 0.5, extent=extent,
                       interpolation="nearest")
    ax_cls.set_title("most probable class")
    bar = fig.colorbar(im, ax=ax_cls, ticks=range(k), shrink=0.8)
    bar.ax.set_yticklabels(names, fontsize=7)
    if extent is not None:
        for ax in (ax_conf, ax_cls):
            ax.set_xlim(-0.5, img.shape[1] - 0.5)
            ax.set_ylim(img.shape[0] - 0.5, -0.5)
    fig.tight_layout()
    _save(fig, path, plt)


def plot_detections(image, detections, path: str | os.PathLike, class_names=None,
                    truth=None) -> None:
    """The scene with each detection drawn as a labelled box (``"Sneaker 0.97"``); ``truth``
    (boxes ``(k, 4)``) adds the true boxes as dashed outlines."""
    where = "plot_detections"
    plt = _pyplot(where)
    from matplotlib.patches import Rectangle  # noqa: PLC0415

    img = numpy.asarray(image, dtype=numpy.float64)
    img = img.reshape(img.shape[-2:])
    fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1] + 0.3))
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    colours = plt.get_cmap("tab10").colors
    if truth is not None:
        for t, l_, h, w in numpy.asarray(truth).reshape(-1, 4):
            ax.add_patch(Rectangle((l_ - 0.5, t - 0.5), w, h, fill=False, ls="--", lw=1, ec="white", alpha=0.7))
    n = int(numpy.asarray(detections.labels).max()) + 1 if len(detections) else 0
    names = _class_names(max(n, len(class_names or ())), class_names, None)
    for (t, l_, h, w), c, s in zip(detections.boxes, detections.labels, detections.scores):
        col = colours[int(c) % len(colours)]
        ax.add_patch(Rectangle((l_ - 0.5, t - 0.5), w, h, fill=False, lw=2, ec=col))
        ax.text(l_ - 0.5, t - 1.5, f"{names[int(c)]} {s:.2f}", color="white", fontsize=8,
                bbox=dict(facecolor=col, alpha=0.8, pad=1, lw=0))
    ax.set_title(f"{len(detections)} detection{'s' if len(detections) != 1 else ''}")
    ax.axis("off")
    fig.tight_layout()
    _save(fig, path, plt)
