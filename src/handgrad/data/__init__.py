"""Data: the IDX format, Fashion-MNIST (full and the shipped subset), preprocessing, augmentation
and sequence data sets (Reber grammar, adding problem, row-by-row images, character corpus)."""
from .augment import RandomAffine, RandomShift, affine_transform
from .fashion import CLASSES, load, load_fashion_mnist, load_fashion_mnist_subset
from .idx import parse_idx, read_idx, write_idx
from .preprocess import Standardizer, one_hot, standardize, to_float, train_val_split
from .sequences import (
                        ADDING_BASELINE_HALVED_MSE,
                        ADDING_BASELINE_MSE,
                        DEFAULT_CORPUS_PATH,
                        REBER_SYMBOLS,
                        CharCorpus,
                        ReberSet,
                        adding_baseline,
                        adding_problem,
                        embedded_reber,
                        embedded_reber_string,
                        encode_reber,
                        is_reber_string,
                        reber_accuracy,
                        reber_graph,
                        reber_next_symbols,
                        reber_string,
                        reber_strings,
                        reber_successor_sets,
                        sample_text,
                        sequential_images,
)

__all__ = ["CLASSES", "load", "load_fashion_mnist", "load_fashion_mnist_subset", "read_idx", "parse_idx",
           "write_idx", "Standardizer", "standardize", "one_hot", "to_float", "train_val_split",
           "RandomAffine", "RandomShift", "affine_transform",
           "REBER_SYMBOLS", "ReberSet", "reber_graph", "reber_next_symbols", "reber_successor_sets",
           "is_reber_string", "reber_string", "embedded_reber_string", "reber_strings", "encode_reber",
           "embedded_reber", "reber_accuracy", "adding_problem", "adding_baseline", "ADDING_BASELINE_MSE",
           "ADDING_BASELINE_HALVED_MSE", "sequential_images", "CharCorpus", "sample_text", "DEFAULT_CORPUS_PATH"]
