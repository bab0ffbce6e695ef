"""Data: the IDX format, Fashion-MNIST (full and the shipped subset), preprocessing and augmentation."""
from .augment import RandomAffine, RandomShift, affine_transform
from .fashion import CLASSES, load, load_fashion_mnist, load_fashion_mnist_subset
from .idx import parse_idx, read_idx, write_idx
from .preprocess import Standardizer, one_hot, standardize, to_float, train_val_split

__all__ = ["CLASSES", "load", "load_fashion_mnist", "load_fashion_mnist_subset", "read_idx", "parse_idx",
           "write_idx", "Standardizer", "standardize", "one_hot", "to_float", "train_val_split",
           "RandomAffine", "RandomShift", "affine_transform"]
