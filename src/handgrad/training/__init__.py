"""Training: the loop of ``003`` §2–4 (``loop``), evaluation and cross-validation
(``evaluation``), callbacks, checkpoints and exact resume (``checkpoint``), faults (signals,
divergence: ``faults``), data-parallel steps (``parallel``) and the progress bar (``progress``).

``handgrad.training`` keeps every public name of the former single module."""
from .callbacks import Callback, EarlyStopping, History, LambdaCallback, ModelCheckpoint
from .evaluation import cross_validate, evaluate
from .faults import TrainingDiverged, TrainingInterrupted
from .loop import fit

__all__ = ["fit", "evaluate", "cross_validate", "TrainingDiverged", "TrainingInterrupted", "Callback",
           "History", "EarlyStopping", "LambdaCallback", "ModelCheckpoint"]
