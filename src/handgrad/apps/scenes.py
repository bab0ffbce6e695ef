"""Synthetic detection scenes (Fashion-MNIST items pasted on a larger canvas at known places),
the detection rate over them, and training data with a "no item" class (``003`` §5)."""
from __future__ import annotations

from typing import NamedTuple

import numpy

from .._checks import check_int, check_probability
from ..kernels import pair
from ..model import Sequential
from .detection import check_background, class_map, detections_from_map, geometry, iou

# -- synthetic scenes ------------------------------------------------------------------------------

class Scenes(NamedTuple):
    """Generated scenes: ``images`` (n, 1, H, W) float32 in [0, 1]; per scene, ``boxes`` (k, 4)
    int ``(top, left, h, w)``, ``labels`` (k,) and ``sources`` (k,) the indices of the pasted
    images."""

    images: numpy.ndarray
    boxes: list
    labels: list
    sources: list


def _place(rng, k: int, H: int, W: int, h: int, w: int, tries: int):
    """Top-left corners of k non-overlapping h×w boxes in an H×W canvas, or None. Each box
    takes the first of ``tries`` random candidates that overlaps no box placed before it
    (all candidates tested at once)."""
    placed = numpy.empty((0, 2), dtype=numpy.int64)
    for _ in range(k):
        cand = numpy.stack([rng.integers(0, H - h + 1, tries), rng.integers(0, W - w + 1, tries)], 1)
        d = numpy.abs(cand[:, None, :] - placed[None, :, :])
        free = ~((d[..., 0] < h) & (d[..., 1] < w)).any(axis=1)
        if not free.any():
            return None
        placed = numpy.vstack([placed, cand[numpy.argmax(free)][None]])
    return placed



def _grey_images(images, where: str) -> numpy.ndarray:
    """Item images ``(N, h, w)`` or ``(N, 1, h, w)``, uint8 or floats in [0, 1], as float32
    ``(N, h, w)`` in [0, 1]."""
    x = numpy.asarray(images)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{where}: expected images (N, h, w) or (N, 1, h, w), got shape {numpy.shape(images)}")
    if x.dtype.kind in "iu":
        return x.astype(numpy.float32) / 255.0
    if x.dtype.kind != "f":
        raise TypeError(f"{where}: expected numeric images, got dtype {x.dtype}")
    if not numpy.isfinite(x).all() or (x.size and (x.min() < 0 or x.max() > 1)):
        raise ValueError(f"{where}: expected float images in [0, 1]")
    return x.astype(numpy.float32, copy=False)

def make_scenes(images, labels, n_scenes: int, size=(96, 96), items=(2, 4), seed: int = 0,
                max_tries: int = 64) -> Scenes:
    """``n_scenes`` black canvases of ``size`` with between ``items[0]`` and ``items[1]``
    (inclusive) images pasted at random, non-overlapping positions (boxes may touch).

    ``images``: ``(N, h, w)`` or ``(N, 1, h, w)``, uint8 or floats in [0, 1]; ``labels`` ``(N,)``.
    Seeded: the same arguments give the same scenes. Positions are drawn ``max_tries`` at a
    time per item (vectorized) and the first that overlaps no placed item is taken; when none
    is free the scene is started over; a canvas too small for the items raises ``ValueError``.
    """
    where = "make_scenes"
    x = _grey_images(images, where)
    y = numpy.asarray(labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"{where}: expected labels of shape ({x.shape[0]},), got {y.shape}")
    n_scenes = check_int(n_scenes, where, "n_scenes", minimum=1)
    H, W = pair(size, "size", where)
    lo, hi = pair(items, "items", where)
    if not 1 <= lo <= hi:
        raise ValueError(f"{where}: expected items=(min, max) with 1 <= min <= max, got {items!r}")
    h, w = x.shape[1:]
    if H < h or W < w:
        raise ValueError(f"{where}: canvas {H}×{W} is smaller than one item {h}×{w}")
    if hi * h * w > H * W:
        raise ValueError(f"{where}: {hi} items of {h}×{w} cannot fit without overlap on a {H}×{W} canvas")
    rng = numpy.random.default_rng(seed)
    canvas = numpy.zeros((n_scenes, 1, H, W), dtype=numpy.float32)
    counts = rng.integers(lo, hi + 1, size=n_scenes)
    sources = rng.integers(0, x.shape[0], size=int(counts.sum()))
    all_boxes, all_labels, all_sources = [], [], []
    start = 0
    for s, k in enumerate(counts):
        src = sources[start:start + k]
        start += k
        for _ in range(32):  # random placement can paint itself into a corner: then start the scene over
            placed = _place(rng, k, H, W, h, w, max_tries)
            if placed is not None:
                break
        else:
            raise ValueError(f"{where}: could not place {k} items of {h}×{w} without overlap on a "
                             f"{H}×{W} canvas; use a larger size or fewer items")
        for (t, l_), i in zip(placed, src):
            canvas[s, 0, t:t + h, l_:l_ + w] = x[i]
        boxes = numpy.column_stack([placed, numpy.full((k, 2), (h, w))]).astype(numpy.int64)
        all_boxes.append(boxes)
        all_labels.append(y[src].astype(numpy.int64))
        all_sources.append(src.astype(numpy.int64))
    return Scenes(canvas, all_boxes, all_labels, all_sources)


# -- evaluation ------------------------------------------------------------------------------------

def match(det_boxes, det_labels, true_boxes, true_labels, iou_threshold: float = 0.5,
          use_class: bool = False) -> numpy.ndarray:
    """One-to-one greedy matching (detections in the order given, best first): for each true
    item, the index of the detection matched to it, or -1."""
    m = iou(det_boxes, true_boxes) if len(det_boxes) and len(true_boxes) else numpy.zeros((len(det_boxes), len(true_boxes)))
    ok = m >= iou_threshold
    if use_class:
        ok &= numpy.asarray(det_labels)[:, None] == numpy.asarray(true_labels)[None, :]
    matched = numpy.full(len(true_boxes), -1, dtype=numpy.int64)
    for d in range(len(det_boxes)):
        cand = numpy.nonzero(ok[d] & (matched < 0))[0]
        if cand.size:
            matched[cand[numpy.argmax(m[d, cand])]] = d
    return matched


def evaluate_detection(fcn: Sequential, scenes: Scenes, threshold: float = 0.9, top_k: int | None = 10,
                       iou_threshold: float = 0.3, match_iou: float = 0.5, background: int | None = None,
                       batch_size: int = 64) -> dict:
    """Detection quality of ``fcn`` on ``scenes`` (from ``make_scenes``).

    A true item is *found* when a detection overlaps its box with IoU ≥ ``match_iou``
    (one detection per item). Returns ``recall`` (found, any class), ``recall_class`` (found
    with the right class), ``precision`` and ``precision_class`` (the fraction of detections
    that found an item, resp. with its class), ``per_class_recall`` (a list indexed by class),
    and the counts ``items``, ``detections``, ``found``, ``found_class``, ``scenes``.
    ``threshold``, ``top_k``, ``iou_threshold`` (suppression) and ``background`` are those of
    ``detect``.
    """
    if not isinstance(scenes, Scenes):
        raise TypeError(f"evaluate_detection: expected Scenes from make_scenes, got {type(scenes).__name__}")
    match_iou = check_probability(match_iou, "evaluate_detection", "match_iou", closed_right=True)
    probs = class_map(fcn, scenes.images, batch_size=batch_size)
    geom = geometry(fcn)
    n_classes = probs.shape[1]
    background = check_background(background, n_classes, "evaluate_detection")
    items = found = found_class = n_det = 0
    per_class_items = numpy.zeros(n_classes, dtype=numpy.int64)
    per_class_found = numpy.zeros(n_classes, dtype=numpy.int64)
    for p, boxes, labels in zip(probs, scenes.boxes, scenes.labels):
        det = detections_from_map(p, geom, threshold, top_k, iou_threshold, background)
        any_match = match(det.boxes, det.labels, boxes, labels, match_iou) >= 0
        cls_match = match(det.boxes, det.labels, boxes, labels, match_iou, use_class=True) >= 0
        items += len(boxes)
        n_det += len(det)
        found += int(any_match.sum())
        found_class += int(cls_match.sum())
        numpy.add.at(per_class_items, labels, 1)
        numpy.add.at(per_class_found, labels, cls_match.astype(numpy.int64))
    per_class = numpy.where(per_class_items > 0, per_class_found / numpy.maximum(per_class_items, 1), numpy.nan)
    return {"recall": found / items if items else float("nan"),
            "recall_class": found_class / items if items else float("nan"),
            "precision": found / n_det if n_det else float("nan"),
            "precision_class": found_class / n_det if n_det else float("nan"),
            "per_class_recall": [float(v) for v in per_class],
            "items": items, "detections": n_det, "found": found, "found_class": found_class,
            "scenes": len(scenes.boxes)}


# -- a "no item" class ------------------------------------------------------------------------------

def detector_training_data(images, labels, n_background: int | None = None, jitter: int = 3,
                           size=(96, 96), max_iou: float = 0.3, seed: int = 0):
    """Training data for a classifier that also knows "no item here" (class ``max(labels) + 1``).

    A classifier trained only on centred items has never seen an empty window or one that
    cuts an item in half, yet sliding it over a scene shows it thousands of them, and it
    names a class for each — often with the confidence it has on a centred item. Learning a
    background class from such windows (the negatives of a sliding-window detector) fixes
    that. Returns ``(x, y)``: ``x`` ``(N + n_background, 1, h, w)`` float32 in [0, 1] —
    every image shifted by a random offset of up to ``jitter`` pixels each way (black fill,
    as a window a few pixels off an item sees it), then ``n_background`` (default N // 2)
    windows of scenes from ``make_scenes`` whose IoU with every item is below ``max_iou`` —
    and ``y`` the labels, with the background class for the windows. Combine with
    ``transfer.replace_head(model, num_classes + 1)`` and pass ``background=num_classes`` to
    ``detect``/``evaluate_detection``.
    """
    where = "detector_training_data"
    x = _grey_images(images, where)
    y = numpy.asarray(labels)
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        raise ValueError(f"{where}: expected integer labels >= 0 of shape ({x.shape[0]},), got {y.dtype} {y.shape}")
    jitter = check_int(jitter, where, "jitter", minimum=0)
    n = x.shape[0]
    n_background = n // 2 if n_background is None else n_background
    n_background = check_int(n_background, where, "n_background", minimum=0)
    max_iou = check_probability(max_iou, where, "max_iou", closed_right=True)
    rng = numpy.random.default_rng(seed)
    h, w = x.shape[1:]
    j = jitter
    # positives: every image in a black frame, cropped back at a random offset (one gather)
    framed = numpy.zeros((n, h + 2 * j, w + 2 * j), dtype=numpy.float32)
    framed[:, j:j + h, j:j + w] = x
    dy, dx = rng.integers(0, 2 * j + 1, n), rng.integers(0, 2 * j + 1, n)
    rows = dy[:, None] + numpy.arange(h)[None, :]
    cols = dx[:, None] + numpy.arange(w)[None, :]
    pos = framed[numpy.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    background = int(y.max()) + 1 if y.size else 0
    neg = numpy.empty((0, h, w), dtype=numpy.float32)
    if n_background:
        per_scene = 4
        scenes = make_scenes(x, y, n_background // (per_scene - 1) + 1, size=size, items=(1, 3),
                             seed=int(rng.integers(2**31)))
        H, W = scenes.images.shape[2:]
        crops = []
        for img, boxes in zip(scenes.images, scenes.boxes):
            tl = numpy.stack([rng.integers(0, H - h + 1, 8 * per_scene), rng.integers(0, W - w + 1, 8 * per_scene)], 1)
            cand = numpy.column_stack([tl, numpy.full((len(tl), 2), (h, w))])
            free = tl[iou(cand, boxes).max(axis=1) < max_iou][:per_scene]
            crops += [img[0, t:t + h, l_:l_ + w] for t, l_ in free]
        neg = numpy.stack(crops)[:n_background] if crops else neg
        if len(neg) < n_background:
            raise ValueError(f"{where}: found only {len(neg)} background windows for the {n_background} asked; "
                             f"use a larger size or a higher max_iou")
    xs = numpy.concatenate([pos, neg])[:, None]
    ys = numpy.concatenate([y.astype(numpy.int64), numpy.full(len(neg), background, dtype=numpy.int64)])
    return xs, ys

