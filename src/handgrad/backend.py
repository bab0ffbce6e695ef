"""The one place that hands out the array namespace, the dtype policy and random generators.

Layers never ``import numpy`` for array math: they ask :func:`array_module` for the namespace
of the arrays they hold (NumPy on the CPU; CuPy once the GPU backend lands), so the same
layer code runs on every device. CuPy is imported only here, lazily, behind an availability
check.
"""
from __future__ import annotations

import os
from typing import Any

import numpy

DEFAULT_DTYPE = numpy.float32
FLOAT_DTYPES = (numpy.float32, numpy.float64)

_device = "cpu"


def _cupy():
    try:
        import cupy  # noqa: PLC0415  (optional dependency, imported only on demand)
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "handgrad: device 'cuda' needs CuPy; install it with "
            "`pip install 'handgrad[gpu]'` on a machine with an NVIDIA GPU"
        ) from exc
    return cupy


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        cp = _cupy()
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def set_device(device: str) -> None:
    """Choose where layers created (or models loaded) from now on keep their parameters."""
    global _device
    if device not in ("cpu", "cuda"):
        raise ValueError(f"set_device: expected 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        _cupy()
        raise NotImplementedError(
            "set_device: the CuPy backend is not implemented yet in this version of handgrad"
        )
    _device = device


def get_device() -> str:
    """The current default device, ``'cpu'`` or ``'cuda'``."""
    return _device


if os.environ.get("HANDGRAD_DEVICE"):
    set_device(os.environ["HANDGRAD_DEVICE"])


def default_xp():
    """The array namespace of the current device."""
    return numpy if _device == "cpu" else _cupy()


def array_module(*arrays: Any):
    """The namespace (``numpy`` or ``cupy``) that the given arrays live in."""
    for a in arrays:
        mod = type(a).__module__
        if mod.startswith("cupy"):
            return _cupy()
    return numpy


def to_numpy(a: Any) -> numpy.ndarray:
    """A NumPy copy (or view) of an array of any backend."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return numpy.asarray(a)


def asarray(a: Any, dtype=None, xp=None):
    """``a`` on the namespace ``xp`` (the current device's by default)."""
    xp = xp or default_xp()
    if xp is numpy:
        return numpy.asarray(to_numpy(a), dtype=dtype)
    return xp.asarray(a, dtype=dtype)


def resolve_dtype(dtype, where: str):
    """Check that ``dtype`` is float32 or float64 and return it as a NumPy dtype."""
    dt = numpy.dtype(dtype)
    if dt not in (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64)):
        raise TypeError(f"{where}: expected dtype float32 or float64, got {dt}")
    return dt


def make_rng(rng=None) -> numpy.random.Generator:
    """A ``numpy.random.Generator`` from a Generator, an int seed or None (seed 0).

    handgrad never touches global random state; every random draw goes through a generator.
    ``None`` gives a fixed seed so runs are reproducible unless a caller asks otherwise.
    """
    if isinstance(rng, numpy.random.Generator):
        return rng
    if rng is None:
        return numpy.random.default_rng(0)
    if isinstance(rng, (int, numpy.integer)) and not isinstance(rng, bool):
        return numpy.random.default_rng(int(rng))
    raise TypeError(f"make_rng: expected a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")
