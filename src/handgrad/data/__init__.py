"""Data: the IDX format, Fashion-MNIST (full and the shipped subset), preprocessing, augmentation
and sequence data sets (Reber grammar, adding problem, row-by-row images, character corpus)."""
from . import sequences
from .augment import RandomAffine, RandomShift, affine_transform
from .fashion import CLASSES, load, load_fashion_mnist, load_fashion_mnist_subset
from .idx import parse_idx, read_idx, write_idx
from .preprocess import Standardizer, one_hot, standardize, to_float, train_val_split
from .sequences import *  # noqa: F403 (its __all__ lists the sequence data sets)

__all__ = ["CLASSES", "load", "load_fashion_mnist", "load_fashion_mnist_subset", "read_idx", "parse_idx",
           "write_idx", "Standardizer", "standardize", "one_hot", "to_float", "train_val_split",
           "RandomAffine", "RandomShift", "affine_transform", *sequences.__all__]
