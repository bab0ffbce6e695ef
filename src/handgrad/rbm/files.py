"""How ``hg.save`` / ``hg.load`` describe RBMs and stacks of RBMs (no pickle).

A file holds tensors ``"rbms.{i}.{W|b_hidden|b_visible}"`` and, as its ``architecture``
metadata, ``{"class": "RBM", "config": {...}}`` for one machine or ``{"class": "RBMStack",
"rbms": [{...}, ...]}`` for a list (a pretraining stack); each config is
``RBM.get_config()``. Loading rebuilds shapes only (nothing allocated) from validated
configs, and :mod:`handgrad.serialization` checks every tensor against them.
"""
from __future__ import annotations

from .machine import RBM

CLASSES = ("RBM", "RBMStack")
PREFIX = "rbms"
_MAX_STACK = 1000


def is_rbm_object(obj) -> bool:
    """An RBM, or a non-empty list/tuple of RBMs."""
    return isinstance(obj, RBM) or (isinstance(obj, (list, tuple)) and len(obj) > 0
                                    and all(isinstance(r, RBM) for r in obj))


def describe(obj) -> tuple[dict, list]:
    """``(architecture, holders)``: the JSON description and the objects whose ``params``
    are saved under ``rbms.{i}.``."""
    if isinstance(obj, RBM):
        return {"class": "RBM", "config": obj.get_config()}, [obj]
    rbms = list(obj)
    return {"class": "RBMStack", "rbms": [r.get_config() for r in rbms]}, rbms


def build(arch: dict, where: str):
    """``(RBM or list of RBMs, holders)`` from a description; ``ValueError`` when malformed."""
    configs = [arch.get("config")] if arch.get("class") == "RBM" else arch.get("rbms")
    if not isinstance(configs, list) or not configs or len(configs) > _MAX_STACK:
        raise ValueError(f"{where}: malformed RBM architecture (expected 1 to {_MAX_STACK} configs)")
    rbms = []
    for i, cfg in enumerate(configs):
        if not isinstance(cfg, dict):
            raise ValueError(f"{where}: RBM {i} has a malformed description")  # noqa: TRY004 (a bad file)
        try:
            rbms.append(RBM.from_config(cfg, deferred=True))
        except (TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            raise ValueError(f"{where}: cannot rebuild RBM {i}: {exc}") from None
    return (rbms[0] if arch.get("class") == "RBM" else rbms), rbms
