"""handgrad: neural networks whose gradients are derived by hand.

    import handgrad as hg
    from handgrad import layers, losses, optim
"""
from . import backend, data, init, layers, losses, metrics, optim
from .training import callbacks
from .apps import detection, transfer, visualize  # visualize imports matplotlib only when it draws
from . import interop  # PyTorch state dicts, ONNX export (torch/onnx imported only when used)
from .backend import get_device, set_device
from .training.callbacks import Callback, EarlyStopping, History, LambdaCallback, ModelCheckpoint
from .gradcheck import GradcheckResult, gradcheck
from .serialization import load, save
from .model import Sequential
from .training.crossval import cross_validate
from .training.evaluation import evaluate
from .training.loop import fit

__version__ = "0.1.0"

__all__ = ["Sequential", "fit", "evaluate", "cross_validate", "save", "load", "gradcheck",
           "GradcheckResult", "set_device", "get_device", "Callback", "History", "EarlyStopping",
           "ModelCheckpoint", "LambdaCallback", "layers", "losses", "optim", "data", "init",
           "metrics", "callbacks", "backend", "training", "serialization", "detection", "transfer", "visualize", "__version__"]
