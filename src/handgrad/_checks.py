"""Input validation shared by layers, losses and training: errors name the caller, what it
expected and what it got (never ``assert``, never silent broadcasting)."""
from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy

from . import backend


def check_float_array(x: Any, where: Any, ndim: int | tuple[int, ...] | None = None,
                      last: int | None = None, name: str = "input"):
    """Return ``x`` if it is a float32/float64 array of the given rank and last-axis width.
    ``where`` names the caller in the messages: a string, or an object (a layer) whose ``str``
    is only built when there is an error (a layer's repr costs 2–3 µs: every forward paid it)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{where}: expected {name} to be an array, got {type(x).__name__}")
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise TypeError(f"{where}: expected {name} of dtype float32 or float64, got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            want = " or ".join(f"{k}-D" for k in allowed)
            raise ValueError(f"{where}: expected {name} to be {want}, got shape {tuple(x.shape)}")
    if last is not None and (x.ndim == 0 or x.shape[-1] != last):
        raise ValueError(f"{where}: expected {name} with last dimension {last}, got shape {tuple(x.shape)}")
    return x


def all_finite(x: Any, chunk_bytes: int = 1 << 22) -> bool:
    """True when no element of ``x`` is NaN or Inf; checked in slices along the first axis so a
    large data set does not need a same-sized boolean temporary."""
    if x.dtype.kind != "f":
        return True
    xp = backend.array_module(x)
    if x.ndim == 0 or x.nbytes <= chunk_bytes:
        return bool(xp.isfinite(x).all())
    rows = max(1, chunk_bytes // max(1, x[0].nbytes))
    return all(bool(xp.isfinite(x[s:s + rows]).all()) for s in range(0, x.shape[0], rows))


def check_finite(x: Any, where: str, name: str = "input") -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or Inf."""
    if not all_finite(x):
        raise ValueError(f"{where}: {name} contains NaN or Inf values")


class IntegerTypeError(TypeError, ValueError):
    """An integer argument of the wrong type. A ``TypeError`` by kind, and a ``ValueError``
    too, because much of the package raised ``ValueError`` for it before the checks were
    unified (``numpy.exceptions.AxisError`` is both an ``IndexError`` and a ``ValueError``
    for the same reason)."""


def check_int(value: Any, where: str, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer (a Python ``int`` or a
    ``numpy.integer``; never a ``bool``) in ``[minimum, maximum]`` (either bound optional).

    The one integer check of the package: a wrong type raises ``IntegerTypeError`` (a
    ``TypeError`` and a ``ValueError``), an integer out of range ``ValueError``."""
    if minimum is not None and maximum is not None:
        want = f"an integer in [{minimum}, {maximum}]"
    elif minimum is not None:
        want = f"an integer >= {minimum}"
    elif maximum is not None:
        want = f"an integer <= {maximum}"
    else:
        want = "an integer"
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise IntegerTypeError(f"{where}: expected {name} to be {want}, got {type(value).__name__} {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{where}: expected {name} to be {want}, got {value!r}")
    return int(value)


def check_positive_int(value: Any, where: str, name: str) -> int:
    """``check_int(value, where, name, minimum=1)``."""
    return check_int(value, where, name, minimum=1)


def check_bool(value: Any, where: str, name: str) -> bool:
    """Return ``value`` if it is a ``bool`` (``numpy.bool_`` too); anything else is a ``TypeError``
    (a flag given as 0/1 or "yes" is a mistake worth naming)."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{where}: expected {name} to be a bool, got {value!r}")
    return bool(value)


def check_option(value: Any, where: str, name: str, choices) -> Any:
    """Return ``value`` if it is one of ``choices`` (strings or other hashable options)."""
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{where}: expected {name} to be one of {listed}, got {value!r}")
    return value


def check_real(value: Any, where: str, name: str, *, minimum: float | None = None) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number (``numpy`` scalars too;
    never a ``bool``), at least ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: expected {name} to be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{where}: expected {name} to be finite, got {value!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{where}: expected {name} >= {minimum:g}, got {value!r}")
    return v


def check_probability(value: Any, where: str, name: str, *, closed_right: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected {name} to be a number, got {type(value).__name__}") from None
    ok = 0.0 <= v <= 1.0 if closed_right else 0.0 <= v < 1.0
    if not ok:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{where}: expected {name} in {interval}, got {value!r}")
    return v


def check_nonnegative(value: Any, where: str, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected {name} to be a number, got {type(value).__name__}") from None
    if not (v >= 0.0) or v == float("inf"):
        raise ValueError(f"{where}: expected {name} to be a finite number >= 0, got {value!r}")
    return v
