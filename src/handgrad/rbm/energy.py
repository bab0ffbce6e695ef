"""The closed-form pieces of RBM energies and free energies ((E1)–(F2) of
:mod:`handgrad.rbm.machine`), shared by the machine, CD and the exact computations."""
from __future__ import annotations

import math

from .. import functional as F

UNITS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2.0 * math.pi)


def softplus(x):
    """log(1 + eˣ), stable for any x: max(x, 0) + log1p(e^{−|x|}) (``functional.softplus``)."""
    return F.softplus(x)


def sigmoid(x):
    """σ(x), stable, with values below the smallest normal number flushed to 0
    (``functional.sigmoid``): subnormal hidden means would make every later product slow."""
    return F.sigmoid(x)


def summed_out(a, b, kind: str):
    """−log of the sum (bernoulli) or integral (gaussian) over one layer of exp(uᵀa − [½‖u−b‖²
    − ½... ]): the layer-dependent part of (F1)/(F2), for inputs ``a`` ``(..., K)`` to that layer
    with biases ``b`` ``(K,)``; returns ``(...)``."""
    if kind == "bernoulli":
        return -softplus(a).sum(axis=-1)
    k = a.shape[-1]
    return -0.5 * (a * a).sum(axis=-1) + 0.5 * float((b * b).sum()) - 0.5 * k * LOG_2PI


def own_term(x, b, kind: str):
    """The part of −(−E) that depends on one layer alone: −xᵀb (bernoulli) or ½‖x − b‖²
    (gaussian); ``x`` ``(..., K)`` → ``(...)``."""
    if kind == "bernoulli":
        return -(x @ b)
    d = x - b
    return 0.5 * (d * d).sum(axis=-1)


def is_rbm(obj) -> bool:
    """Whether ``obj`` behaves as an ``RBM`` (checked by its interface, so that ``cd`` and
    ``exact`` need not import the class that calls them)."""
    return all(hasattr(obj, a) for a in ("n_visible", "n_hidden", "visible", "hidden", "params", "hidden_input"))
