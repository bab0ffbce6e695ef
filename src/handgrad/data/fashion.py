"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017; MIT licence): 60,000 training and 10,000
test images of 28×28 grey pixels in 10 classes.

``load_fashion_mnist()`` looks for the four IDX files, in this order, in the folder given,
in ``$HANDGRAD_DATA``, and in ``/usr/share/datasets/fashion-mnist/`` (where
``apt-get install dataset-fashion-mnist`` puts them). ``load_fashion_mnist_subset()`` returns
the small balanced subset shipped inside the package (6,000 training, 1,000 test images), so
the demo and the tests run anywhere without a download.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy

from .idx import read_idx

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot")
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def search_dirs(path: str | os.PathLike | None = None) -> list[Path]:
    dirs = []
    if path is not None:
        dirs.append(Path(path))
    if os.environ.get("HANDGRAD_DATA"):
        env = Path(os.environ["HANDGRAD_DATA"])
        dirs += [env / "fashion-mnist", env]
    dirs.append(Path(SYSTEM_DIR))
    return dirs


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_split(folder: Path, split: str):
    images, labels = (_find(folder, s) for s in FILES[split])
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"load_fashion_mnist: {images} and {labels} do not hold matching "
                         f"images (N, 28, 28) and labels (N,): got {x.shape} and {y.shape}")
    if y.size and int(y.max()) > 9:
        raise ValueError(f"load_fashion_mnist: {labels} holds labels above 9")
    return x, y.astype(numpy.int64)


def load_fashion_mnist(path: str | os.PathLike | None = None):
    """Return ``((x_train, y_train), (x_test, y_test))``: uint8 images ``(N, 28, 28)`` and
    int64 labels ``(N,)``. Raises ``FileNotFoundError`` listing where it looked."""
    tried = search_dirs(path)
    for folder in tried:
        if all(_find(folder, s) for split in FILES.values() for s in split):
            return _load_split(folder, "train"), _load_split(folder, "test")
    looked = "\n  ".join(str(d) for d in tried)
    raise FileNotFoundError(
        "load_fashion_mnist: could not find the Fashion-MNIST IDX files "
        "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
        f"t10k-labels-idx1-ubyte[.gz]). Looked in:\n  {looked}\n"
        "Get them with `apt-get install dataset-fashion-mnist` (Debian), or download them from "
        "https://github.com/zalandoresearch/fashion-mnist and pass their folder (or set "
        "HANDGRAD_DATA). The small shipped subset is available as load_fashion_mnist_subset().")


def load_fashion_mnist_subset():
    """The balanced subset shipped with handgrad: 6,000 training and 1,000 test images."""
    folder = resources.files("handgrad.data") / "fashion_subset"
    with resources.as_file(folder) as f:
        return _load_split(Path(f), "train"), _load_split(Path(f), "test")


def load(name: str = "fashion-mnist", path=None):
    """``"fashion-mnist"`` (full set) or ``"fashion-mnist-subset"`` (shipped)."""
    if name == "fashion-mnist":
        return load_fashion_mnist(path)
    if name == "fashion-mnist-subset":
        return load_fashion_mnist_subset()
    raise ValueError(f"data.load: unknown data set {name!r}; expected 'fashion-mnist' or 'fashion-mnist-subset'")
