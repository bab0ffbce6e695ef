"""Detection by sliding a trained classifier over a larger image (``003`` §5).

A convolutional classifier trained on 28×28 images maps the 16×5×5 image that reaches its
first fully connected layer to class scores. ``003`` §5 observes that the convolution and
pooling layers apply just as well to a larger image; their output is then larger, and every
5×5 window of it is exactly what the fully connected layers would see for one window of the
input. Rewriting the fully connected layers as convolutions does the partitioning for free:

- the first ``Dense(C·h·w → m)`` after ``Flatten`` becomes ``Conv2D(C → m, kernel h×w)``
  with ``W_conv = W_dense.reshape(m, C, h, w)`` (``Flatten`` is C order over (c, i, j), so
  the reshape lines every weight up with the input unit it multiplied before);
- every later ``Dense(a → b)`` becomes a 1×1 ``Conv2D(a → b)``; element-wise layers
  (activations, dropout) stay; ``Flatten`` is removed.

``to_fully_convolutional(model, (1, 28, 28))`` returns that network. On a 28×28 image its
output is ``(N, 10, 1, 1)`` — the original logits. On an ``(N, 1, H, W)`` image it is a *class
map* ``(N, 10, H', W')`` whose position (p, q) scores the 28×28 window with top-left corner
(p·s, q·s), s the product of the strides of the layers below (4 for LeNet-5), H' =
⌊(H − 28)/s⌋ + 1. The work shared by overlapping windows is done once.

Zero padding. ``003`` says "precisely the same class map would be obtained by exhaustively
applying the convolutional network for each window". That holds exactly for networks whose
convolutions do not pad (the notes' convolutional layer). A padded convolution (LeNet-5's
first layer pads by 2) pads a lone 28×28 crop with zeros, while inside the larger image the
same positions hold the window's real surroundings: the class map then equals the
classifier applied to each window *with its true 2-pixel context in place of the zero
padding* (zeros still at the border of the large image). ``sliding_window_logits`` is the
exhaustive reference (one forward pass per crop).

Detection: ``class_map`` turns the map into softmax probabilities over the class axis;
``detect`` keeps the windows whose top probability is above a threshold and removes
overlapping ones by greedy non-maximum suppression. ``scenes.make_scenes`` pastes
Fashion-MNIST items onto a black canvas with known boxes and ``scenes.evaluate_detection``
reports recall (with and without the right class) and precision at IoU ≥ 0.5 (``scenes``
builds on this module; this module does not import it).

A classifier trained only on centred items has no "background" class: on an empty window or
one that cuts an item in half it still names some class, often as confidently as on a centred
item, and suppression then keeps the wrong windows. ``scenes.detector_training_data`` builds the
missing negatives (windows of scenes that miss every item) so that a classifier with one
extra class — e.g. ``transfer.replace_head(model, 11)`` fine-tuned on them — can say "no item
here"; ``detect(..., background=10)`` then ignores the windows it assigns to that class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy

from .. import backend, init
from .._checks import check_int, check_probability
from ..layers import (
    AvgPool2D,
    BinaryThreshold,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Identity,
    MaxPool2D,
    Normalize,
    ReLU,
    Sigmoid,
    StochasticBinary,
    Tanh,
)
from ..layers.base import Layer
from ..model import Sequential
from .transfer import clone_layer

#: layers that act element-wise (any input shape) and can sit anywhere in the network
ELEMENTWISE = (ReLU, Sigmoid, Tanh, Identity, BinaryThreshold, StochasticBinary, Dropout, Normalize)
#: spatial layers allowed before the fully connected part
SPATIAL = (Conv2D, MaxPool2D, AvgPool2D)


# -- the fully convolutional network --------------------------------------------------------------

def _image_shape(input_shape, where: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected input_shape to be (C, H, W), got {input_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{where}: expected input_shape (C, H, W) of one image, got {input_shape!r}")
    return shape  # type: ignore[return-value]


def to_fully_convolutional(model: Sequential, input_shape=(1, 28, 28)) -> Sequential:
    """The network computing ``model`` for every window of a larger image (see the module
    docstring). ``input_shape`` is one training image's shape ``(C, H, W)``.

    Supported: element-wise layers, ``Conv2D`` and pooling, then ``Flatten`` followed by
    ``Dense`` layers with element-wise layers between them. A model without ``Flatten`` whose
    first ``Dense`` takes the whole flattened image (an MLP on 784 pixels) works too: that
    ``Dense`` becomes a ``Conv2D`` with an H×W kernel and the stride is 1. The new network
    holds copies of the parameters (same dtype and device); ``model`` is not changed.
    """
    where = "to_fully_convolutional"
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: expected a Sequential model, got {type(model).__name__}")
    shape = _image_shape(input_shape, where)
    out: list[Layer] = []
    grid = None  # (C, h, w) at the flatten point, once passed
    for i, layer in enumerate(model.layers):
        if grid is None:
            if isinstance(layer, Flatten):
                grid = shape
                continue
            if isinstance(layer, Dense):  # implicit flatten: an MLP on the raw image
                grid = shape
            elif isinstance(layer, ELEMENTWISE + SPATIAL):
                try:
                    shape = tuple(layer.output_shape(shape))
                except ValueError as exc:
                    raise ValueError(f"{where}: layer {i} ({layer!r}) cannot take input {shape}: {exc}") from None
                if min(shape) < 1:
                    raise ValueError(f"{where}: input_shape {tuple(input_shape)} is too small for layer {i} ({layer!r})")
                out.append(clone_layer(layer))
                continue
            else:
                raise ValueError(f"{where}: layer {i} ({layer!r}) is not supported before the fully "
                                 f"connected layers; expected one of "
                                 f"{sorted(c.__name__ for c in ELEMENTWISE + SPATIAL + (Flatten,))}")
        if isinstance(layer, Dense):
            W, b = layer.params["W"], layer.params["b"]
            if isinstance(grid, tuple):  # the first fully connected layer: kernel = the whole grid
                c, h, w = grid
                if layer.in_features != c * h * w:
                    raise ValueError(f"{where}: layer {i} ({layer!r}) expects {layer.in_features} inputs, but "
                                     f"input_shape {tuple(input_shape)} gives {c}×{h}×{w} = {c * h * w} there")
                kernel = (h, w)
                grid = layer.out_features
            else:
                c, kernel = layer.in_features, (1, 1)
                if c != grid:
                    raise ValueError(f"{where}: layer {i} ({layer!r}) expects {c} inputs, gets {grid}")
                grid = layer.out_features
            with init.deferred():  # shapes only: the Dense weights replace whatever init would draw
                conv = Conv2D(c, layer.out_features, kernel, dtype=W.dtype)
            conv.params = {"W": W.reshape(layer.out_features, c, *kernel).copy(), "b": b.copy()}
            conv.trainable = layer.trainable
            conv.zero_grads()
            out.append(conv)
        elif isinstance(layer, ELEMENTWISE):
            out.append(clone_layer(layer))
        else:
            raise ValueError(f"{where}: layer {i} ({layer!r}) is not supported after the flatten point: only "
                             f"Dense and element-wise layers can be turned into convolutions "
                             f"(a Softmax over the last axis would act on the wrong axis of a class map)")
    if grid is None or isinstance(grid, tuple):
        raise ValueError(f"{where}: the model has no fully connected (Dense) layer to turn into a convolution")
    return Sequential(out)


class Geometry(NamedTuple):
    """Where the windows of a fully convolutional network's output lie in its input.

    Position (p, q) of the map scores the window with top-left corner (p·stride[0],
    q·stride[1]) and size ``window``; ``receptive_field`` (starting at ``offset``, negative
    when convolutions pad) is every input pixel that can influence it."""

    window: tuple[int, int]
    stride: tuple[int, int]
    receptive_field: tuple[int, int]
    offset: tuple[int, int]


def geometry(fcn: Sequential) -> Geometry:
    """Window size and stride of a fully convolutional network (from its conv/pool layers)."""
    if not isinstance(fcn, Sequential):
        raise TypeError(f"geometry: expected a Sequential model, got {type(fcn).__name__}")
    dims = []
    for axis in (0, 1):
        r, start, stride = 1, 0, 1  # receptive field and its start, going down from one output unit
        for layer in reversed(fcn.layers):
            if isinstance(layer, SPATIAL):
                k, s = layer.kernel_size[axis], layer.stride[axis]
                p = layer.padding[axis] if isinstance(layer, Conv2D) else 0
                r, start, stride = (r - 1) * s + k, start * s - p, stride * s
            elif not isinstance(layer, ELEMENTWISE):
                raise ValueError(f"geometry: {layer!r} is not a convolutional, pooling or element-wise layer; "
                                 f"convert the classifier with to_fully_convolutional first")
        dims.append((r + 2 * start, stride, r, start))
    (wh, sh, rh, oh), (ww, sw, rw, ow) = dims
    return Geometry((wh, ww), (sh, sw), (rh, rw), (oh, ow))


def _as_images(scene, where: str, dtype) -> numpy.ndarray:
    x = backend.to_numpy(scene)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{where}: expected a numeric image, got dtype {x.dtype}")
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"{where}: expected an image (H, W), (C, H, W) or a batch (N, C, H, W), got shape {scene.shape}")
    if x.dtype.kind in "iu":
        x = x.astype(dtype) / 255.0
    if not numpy.isfinite(x).all():
        raise ValueError(f"{where}: the image contains NaN or Inf values")
    return x.astype(dtype, copy=False)


def class_map(fcn: Sequential, scene, batch_size: int = 64) -> numpy.ndarray:
    """Softmax probabilities over the class axis of ``fcn``'s output for ``scene``:
    ``(K, H', W')`` for one image ``(H, W)``/``(C, H, W)``, ``(N, K, H', W')`` for a batch.
    uint8 images are scaled to [0, 1]."""
    x = _as_images(scene, "class_map", fcn.dtype)
    win = geometry(fcn).window
    if x.shape[2] < win[0] or x.shape[3] < win[1]:
        raise ValueError(f"class_map: image of shape {x.shape[2:]} is smaller than the classifier's window {win}")
    logits = fcn.predict(x, batch_size=batch_size).astype(numpy.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = numpy.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return p[0] if numpy.ndim(scene) < 4 else p


def sliding_window_logits(model: Sequential, scene, window=(28, 28), stride=(4, 4)) -> numpy.ndarray:
    """The exhaustive reference of ``003`` §5: ``model`` applied to every ``window`` crop of
    ``scene`` ``(C, H, W)`` at ``stride``; returns ``(K, H', W')`` logits (one forward pass of
    H'·W' crops)."""
    x = _as_images(scene, "sliding_window_logits", model.dtype)[0]
    (wh, ww), (sh, sw) = window, stride
    c, h, w = x.shape
    nh, nw = (h - wh) // sh + 1, (w - ww) // sw + 1
    if nh < 1 or nw < 1:
        raise ValueError(f"sliding_window_logits: image {x.shape} is smaller than the window {window}")
    s0, s1, s2 = x.strides
    crops = numpy.lib.stride_tricks.as_strided(x, (nh, nw, c, wh, ww), (s1 * sh, s2 * sw, s0, s1, s2),
                                               writeable=False).reshape(nh * nw, c, wh, ww)
    logits = model.predict(numpy.ascontiguousarray(crops))
    return logits.reshape(nh, nw, -1).transpose(2, 0, 1)


# -- boxes -----------------------------------------------------------------------------------------

def iou(a, b) -> numpy.ndarray:
    """Intersection over union of boxes ``(top, left, h, w)``: ``a`` (n, 4) × ``b`` (m, 4) → (n, m)."""
    a = numpy.asarray(a, dtype=numpy.float64).reshape(-1, 4)
    b = numpy.asarray(b, dtype=numpy.float64).reshape(-1, 4)
    t = numpy.maximum(a[:, None, 0], b[None, :, 0])
    l_ = numpy.maximum(a[:, None, 1], b[None, :, 1])
    bot = numpy.minimum((a[:, 0] + a[:, 2])[:, None], (b[:, 0] + b[:, 2])[None, :])
    r = numpy.minimum((a[:, 1] + a[:, 3])[:, None], (b[:, 1] + b[:, 3])[None, :])
    inter = numpy.clip(bot - t, 0, None) * numpy.clip(r - l_, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return numpy.divide(inter, union, out=numpy.zeros_like(inter), where=union > 0)


def nms(boxes, scores, iou_threshold: float = 0.3, labels=None) -> numpy.ndarray:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first. A box is
    dropped when it overlaps a kept, higher-scoring box with IoU > ``iou_threshold`` (only
    boxes of the same label compete when ``labels`` is given)."""
    boxes = numpy.asarray(boxes, dtype=numpy.float64).reshape(-1, 4)
    scores = numpy.asarray(scores, dtype=numpy.float64).reshape(-1)
    order = numpy.argsort(-scores, kind="stable")
    overlap = iou(boxes[order], boxes[order]) > iou_threshold
    if labels is not None:
        lab = numpy.asarray(labels)[order]
        overlap &= lab[:, None] == lab[None, :]
    alive = numpy.ones(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if alive[i]:
            keep.append(order[i])
            alive &= ~overlap[i]
    return numpy.asarray(keep, dtype=numpy.int64)


@dataclass(frozen=True)
class Detections:
    """``boxes`` (k, 4) int ``(top, left, h, w)``, ``labels`` (k,) int, ``scores`` (k,) float,
    best first; ``len()`` is k."""

    boxes: numpy.ndarray
    labels: numpy.ndarray
    scores: numpy.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def rows(self) -> list[tuple[int, int, int, int, int, float]]:
        """``[(top, left, h, w, label, score), ...]``."""
        return [(*map(int, b), int(c), float(s)) for b, c, s in zip(self.boxes, self.labels, self.scores)]


def check_background(background, n_classes: int, where: str) -> int | None:
    """``None`` or the index of the "no item" class among ``n_classes``."""
    return None if background is None else check_int(background, where, "background", minimum=0,
                                                     maximum=n_classes - 1)


def detections_from_map(probs, geom: Geometry, threshold: float = 0.9, top_k: int | None = 10,
                        iou_threshold: float = 0.3, background: int | None = None) -> Detections:
    """Windows of the class map ``probs`` ``(K, H', W')`` whose top probability exceeds
    ``threshold``, after non-maximum suppression (class-agnostic: an item gets one label),
    at most ``top_k`` of them. With ``background=b`` (a model trained with a "no item" class
    b, see ``detector_training_data``) windows whose most probable class is b are dropped and
    the others are scored by their best non-background class."""
    where = "detect"
    threshold = check_probability(threshold, where, "threshold", closed_right=True)
    iou_threshold = check_probability(iou_threshold, where, "iou_threshold", closed_right=True)
    if top_k is not None:
        top_k = check_int(top_k, where, "top_k", minimum=1)
    probs = numpy.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"{where}: expected a class map (K, H', W'), got shape {probs.shape}")
    background = check_background(background, probs.shape[0], where)
    if background is None:
        conf, label = probs.max(axis=0), probs.argmax(axis=0)
        ok = conf > threshold
    else:
        objects = probs.copy()
        objects[background] = -1.0
        conf, label = objects.max(axis=0), objects.argmax(axis=0)
        ok = (conf > threshold) & (probs.argmax(axis=0) != background)
    ps, qs = numpy.nonzero(ok)
    (wh, ww), (sh, sw) = geom.window, geom.stride
    boxes = numpy.stack([ps * sh, qs * sw, numpy.full_like(ps, wh), numpy.full_like(qs, ww)], axis=1)
    scores, labels = conf[ps, qs], label[ps, qs]
    keep = nms(boxes, scores, iou_threshold)
    if top_k is not None:
        keep = keep[:top_k]
    return Detections(boxes[keep].astype(numpy.int64).reshape(-1, 4), labels[keep].astype(numpy.int64),
                      scores[keep].astype(numpy.float64))


def detect(fcn: Sequential, scene, threshold: float = 0.9, top_k: int | None = 10,
           iou_threshold: float = 0.3, background: int | None = None) -> Detections:
    """Find items in ``scene`` (one image ``(H, W)`` or ``(C, H, W)``, floats in [0, 1] or
    uint8) with the fully convolutional network ``fcn``: softmax over the class axis of its
    map, keep windows whose top probability exceeds ``threshold``, non-maximum suppression
    at ``iou_threshold``, best ``top_k``. ``background``: the index of a "no item" class, if
    the classifier has one. Returns ``Detections`` (boxes ``(top, left, h, w)``, labels,
    scores)."""
    if numpy.ndim(scene) == 4:
        raise ValueError(f"detect: expected one image (H, W) or (C, H, W), got shape {numpy.shape(scene)}; "
                         f"use evaluate_detection or class_map for a batch")
    return detections_from_map(class_map(fcn, scene), geometry(fcn), threshold, top_k, iou_threshold, background)

