"""Argument helpers shared by the sequence data modules (``reber``, ``sequences``, ``text``);
integers and real numbers are checked by ``handgrad._checks``."""
from __future__ import annotations

from numbers import Integral

import numpy

from .. import backend

def as_generator(rng, where: str) -> numpy.random.Generator:
    """A ``Generator`` as given, or a new one seeded by an int."""
    if isinstance(rng, numpy.random.Generator):
        return rng
    if isinstance(rng, Integral) and not isinstance(rng, bool):
        return numpy.random.default_rng(int(rng))
    raise TypeError(f"{where}: expected rng to be a numpy.random.Generator or an int seed, "
                    f"got {type(rng).__name__}")


def float_dtype(dtype, where: str) -> numpy.dtype:
    """float32 or float64 as a ``numpy.dtype``; anything else raises naming ``where``."""
    try:
        numpy.dtype(dtype)
    except TypeError:  # numpy.dtype() itself fails on nonsense
        raise TypeError(f"{where}: expected dtype float32 or float64, got {dtype!r}") from None
    return backend.resolve_dtype(dtype, where)


def codepoints(text: str) -> numpy.ndarray:
    """The Unicode code points of ``text`` as ``uint32`` (lone surrogates kept)."""
    return numpy.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=numpy.uint32)
