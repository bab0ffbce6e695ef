"""handgrad: neural networks whose gradients are derived by hand.

    import handgrad as hg
    from handgrad import layers, losses, optim
"""
import os as _os
import sys as _sys

# OpenBLAS's idle threads spin for 2^28 cycles (~0.1 s) after every product before they sleep,
# taking a core from the threads handgrad starts for its own work in between; 2^20 (~0.3 ms)
# keeps them warm between consecutive products and lets them sleep during the element-wise
# work. Set only when NumPy is not loaded yet (OpenBLAS reads it once, when it loads) and the
# user has not chosen a value; ``HANDGRAD_BLAS_TIMEOUT=0`` leaves it alone
# (docs/performance.md, "BLAS threads").
if ("numpy" not in _sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in _os.environ
        and _os.environ.get("HANDGRAD_BLAS_TIMEOUT", "").strip() != "0"):
    _os.environ["OPENBLAS_THREAD_TIMEOUT"] = "20"
from . import accel as _accel, backend, data, init, layers, losses, metrics, optim
_accel.tune_malloc()  # the arrays of one step reused by the next without page faults
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
