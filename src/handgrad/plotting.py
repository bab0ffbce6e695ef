"""Learning curves (``003`` §4: cost and accuracy on training and validation data per epoch).
Needs matplotlib (the ``plot`` extra)."""
from __future__ import annotations

import os
import textwrap


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def learning_curves(history: dict, path: str | os.PathLike, title: str = "") -> None:
    """Write a PNG with two panels: cost and accuracy per epoch, training and validation."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "loss", "cost"), (axes[1], "accuracy", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key)
            if values:
                epochs = range(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o", markersize=3,
                        label=("validation " if prefix else "training ") + label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if title:  # long preset descriptions wrap instead of running off the figure
        fig.suptitle("\n".join(textwrap.wrap(title, 100)), fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def save_png(fig, path: str | os.PathLike) -> None:
    """Write a matplotlib figure as a PNG atomically (temp file + rename) and close it."""
    import io as _io  # noqa: PLC0415

    import matplotlib.pyplot as plt  # noqa: PLC0415

    from .fsutil import atomic_write_bytes  # noqa: PLC0415

    buf = _io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
