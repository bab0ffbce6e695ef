"""Training: the loop of ``003`` §2–4 (``loop``; its docstring maps every concern to its
module), evaluation (``evaluation``), k-fold cross-validation (``crossval``), callbacks,
checkpoints and exact resume (``checkpoint``, ``state``), faults and guards (signals,
divergence: ``faults``, ``guards``), steps (``step``, ``parallel``), the reducer of several
processes (``reducer``) and the progress bar (``progress``).

``handgrad.training`` keeps every public name of the former single module."""
from .callbacks import Callback, EarlyStopping, History, LambdaCallback, ModelCheckpoint
from .crossval import cross_validate
from .evaluation import evaluate
from .faults import TrainingDiverged, TrainingInterrupted
from .loop import fit

__all__ = ["Callback", "EarlyStopping", "History", "LambdaCallback", "ModelCheckpoint", "TrainingDiverged",
           "TrainingInterrupted", "cross_validate", "evaluate", "fit"]
