"""Argument checks shared by the sequence data modules."""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy

from .. import backend


# ----------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------
def _int(value, where: str, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{where}: expected {name} to be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: expected {name} to be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(value, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: expected {name} to be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{where}: expected {name} to be finite, got {value!r}")
    return v


def _rng(rng, where: str) -> numpy.random.Generator:
    if isinstance(rng, numpy.random.Generator):
        return rng
    if isinstance(rng, Integral) and not isinstance(rng, bool):
        return numpy.random.default_rng(int(rng))
    raise TypeError(f"{where}: expected rng to be a numpy.random.Generator or an int seed, "
                    f"got {type(rng).__name__}")


def _float_dtype(dtype, where: str) -> numpy.dtype:
    try:
        numpy.dtype(dtype)
    except TypeError:  # numpy.dtype() itself fails on nonsense
        raise TypeError(f"{where}: expected dtype float32 or float64, got {dtype!r}") from None
    return backend.resolve_dtype(dtype, where)




def _codepoints(text: str) -> numpy.ndarray:
    return numpy.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=numpy.uint32)
