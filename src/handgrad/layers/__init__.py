"""Layers with hand-derived backward passes: ``from handgrad import layers``."""
from .activations import BinaryThreshold, Identity, ReLU, Sigmoid, Softmax, StochasticBinary, Tanh
from .base import REGISTRY, Layer, register
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout, Flatten
from .pool import AvgPool2D, MaxPool2D
from .lstm import LSTM
from .preprocessing import Normalize
from .recurrent import RNN

__all__ = [
    "Layer", "register", "REGISTRY",
    "Dense", "Sigmoid", "Tanh", "ReLU", "Identity", "Softmax", "BinaryThreshold",
    "StochasticBinary", "Dropout", "Flatten", "Normalize", "Conv2D", "MaxPool2D", "AvgPool2D", "RNN", "LSTM",
]
