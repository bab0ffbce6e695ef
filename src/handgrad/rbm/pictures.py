"""The pictures of RBMs and deep autoencoders (need matplotlib, the ``plot`` extra): learned
filters, reconstructions beside originals, Gibbs-chain samples, 2-D codes coloured by class
(Hinton & Salakhutdinov 2006, Fig. 3) beside PCA's, and the pretraining curves. Every file
is written atomically through ``handgrad.plotting.save_png``."""
from __future__ import annotations

import os

import numpy

from .. import backend
from ..plotting import save_png


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _tile(images, rows: int, cols: int, shape=(28, 28), pad: int = 1, normalize: bool = False):
    """One array of ``rows × cols`` images, each scaled to [0, 1] when ``normalize``."""
    h, w = shape
    out = numpy.ones((rows * (h + pad) + pad, cols * (w + pad) + pad))
    for i, img in enumerate(images[:rows * cols]):
        img = numpy.asarray(img, dtype=numpy.float64).reshape(h, w)
        if normalize:
            lo, hi = img.min(), img.max()
            img = (img - lo) / (hi - lo + 1e-12)
        r, c = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return out


def filters(W, path: str | os.PathLike, n: int = 100, title: str = "") -> None:
    """The first ``n`` rows of ``W`` ``(H, 784)`` as 28×28 images (each scaled to its range)."""
    plt = _plt()
    W = backend.to_numpy(W)
    n = min(n, W.shape[0])
    cols = int(numpy.ceil(numpy.sqrt(n)))
    rows = int(numpy.ceil(n / cols))
    fig, ax = plt.subplots(figsize=(cols * 0.6 + 1, rows * 0.6 + 1))
    ax.imshow(_tile(W[:n], rows, cols, normalize=True), cmap="gray")
    ax.set_axis_off()
    ax.set_title(title or f"filters of the first RBM ({n} of {W.shape[0]} hidden units)", fontsize=9)
    save_png(fig, path)


def rows_of_images(named_rows, path: str | os.PathLike, title: str = "") -> None:
    """One row per ``(label, images (n, 784))``: e.g. originals, autoencoder, PCA."""
    plt = _plt()
    n = len(named_rows[0][1])
    fig, axes = plt.subplots(len(named_rows), 1, figsize=(n * 0.7 + 1.5, len(named_rows) * 0.85 + 0.6))
    axes = numpy.atleast_1d(axes)
    for ax, (label, imgs) in zip(axes, named_rows):
        ax.imshow(_tile(numpy.clip(backend.to_numpy(imgs), 0, 1), 1, n), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def gibbs_chains(r, start, steps=(0, 1, 10, 100, 1000), rng=0, path: str | os.PathLike = "samples.png") -> None:
    """Block-Gibbs chains of the RBM ``r`` from the rows of ``start``: one column per chain, one
    row per number of steps (the visible means E[v | h] at that step)."""
    gen = backend.make_rng(rng)
    v = start.astype(r.dtype)
    shown, done = [], 0
    for s in steps:
        if s > done:
            v = r.gibbs(v, s - done, rng=gen)
            done = s
        shown.append((f"{s} steps", r.visible_mean(r.sample_hidden(v, gen)) if s else start))
    rows_of_images(shown, path, title="samples from the RBM's Gibbs chain (visible means), started at test images")


def codes_2d(codes, labels, pca_codes, class_names, path: str | os.PathLike) -> None:
    """Test-set codes of a 2-D autoencoder beside PCA's 2-D projection, coloured by class."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    labels = numpy.asarray(labels)
    for ax, (name, z) in zip(axes, (("deep autoencoder (2-D code)", codes), ("PCA (first 2 components)", pca_codes))):
        z = backend.to_numpy(z)
        for c in range(len(class_names)):
            m = labels == c
            ax.scatter(z[m, 0], z[m, 1], s=2, alpha=0.5, label=class_names[c], color=plt.cm.tab10(c))
        ax.set_title(name)
    axes[1].legend(markerscale=5, fontsize=7, loc="best")
    fig.tight_layout()
    save_png(fig, path)


def pretraining_curves(histories, path: str | os.PathLike) -> None:
    """Reconstruction error per epoch of each RBM of the stack (training and validation)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(histories), figsize=(3.2 * len(histories) + 0.5, 3.2), squeeze=False)
    for i, (ax, h) in enumerate(zip(axes[0], histories)):
        h = h.history if hasattr(h, "history") else h
        for key, style in (("recon_error", "-"), ("val_recon_error", "--")):
            if h.get(key):
                ax.plot(range(1, len(h[key]) + 1), h[key], style, marker="o", markersize=3, label=key)
        ax.set_title(f"RBM {i + 1}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
