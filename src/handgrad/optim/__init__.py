"""Optimizers, gradient clipping and learning-rate schedules: ``from handgrad import optim``."""
from .base import Optimizer, clip_grad_norm, clip_grad_value, global_grad_norm
from .schedules import CosineLR, Schedule, StepLR
from .sgd import SGD, Adam, RMSprop

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "clip_grad_norm", "clip_grad_value",
           "global_grad_norm", "Schedule", "StepLR", "CosineLR"]
