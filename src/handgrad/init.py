"""Weight and bias initializers. Each takes a shape, the fan-in/fan-out, a generator and a
dtype, and returns a NumPy array (layers move it to their device).

``normal_fan_in`` is the default: ``003`` §4 shows that weights drawn from N(0, 1/p), p the
number of inputs of a neuron, keep the weighted input z ~ N(0, 1) for unit inputs and so avoid
early saturation; the notes draw biases from N(0, 1) (``bias="normal"``), we default to zeros.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Callable

import numpy

from ._checks import check_option

_state = threading.local()


@contextlib.contextmanager
def deferred():
    """Inside this context initializers draw nothing and allocate nothing: they return
    read-only zero-stride views of the right shape and dtype. ``hg.load`` builds layers this
    way, so a forged architecture cannot make it allocate before the file's own tensors (whose
    sizes the file bounds) have been checked against it."""
    previous = getattr(_state, "deferred", False)
    _state.deferred = True
    try:
        yield
    finally:
        _state.deferred = previous


def is_deferred() -> bool:
    return getattr(_state, "deferred", False)


def placeholder(shape, dtype):
    """A zero-stride, read-only view standing for an array of ``shape`` (no memory)."""
    return numpy.broadcast_to(numpy.zeros((), dtype=dtype), tuple(shape))

WEIGHT_INITS: dict[str, Callable] = {}
BIAS_INITS = ("zeros", "normal")


def _weight_init(fn: Callable) -> Callable:
    WEIGHT_INITS[fn.__name__] = fn
    return fn


@_weight_init
def normal_fan_in(shape, fan_in: int, fan_out: int, rng: numpy.random.Generator, dtype):
    """w ~ N(0, 1/fan_in) (``003`` §4)."""
    return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(dtype)


@_weight_init
def xavier_normal(shape, fan_in: int, fan_out: int, rng: numpy.random.Generator, dtype):
    """Glorot & Bengio (2010): w ~ N(0, 2/(fan_in + fan_out))."""
    return (rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


@_weight_init
def xavier_uniform(shape, fan_in: int, fan_out: int, rng: numpy.random.Generator, dtype):
    """Glorot & Bengio (2010): w ~ U(-a, a), a = sqrt(6/(fan_in + fan_out))."""
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(dtype)


@_weight_init
def he_normal(shape, fan_in: int, fan_out: int, rng: numpy.random.Generator, dtype):
    """He et al. (2015), for ReLU units: w ~ N(0, 2/fan_in)."""
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)


@_weight_init
def he_uniform(shape, fan_in: int, fan_out: int, rng: numpy.random.Generator, dtype):
    """He et al. (2015): w ~ U(-a, a), a = sqrt(6/fan_in)."""
    a = math.sqrt(6.0 / fan_in)
    return rng.uniform(-a, a, size=shape).astype(dtype)


@_weight_init
def standard_normal(shape, fan_in: int, fan_out: int, rng: numpy.random.Generator, dtype):
    """w ~ N(0, 1): the naive choice ``003`` §4 warns saturates neurons with many inputs."""
    return rng.standard_normal(shape).astype(dtype)


def weights(name: str, shape, fan_in: int, fan_out: int, rng, dtype, where: str):
    """The initializer ``name`` of ``WEIGHT_INITS`` applied (a placeholder when deferred)."""
    check_option(name, where, "weight_init", sorted(WEIGHT_INITS))
    if is_deferred():
        return placeholder(shape, dtype)
    return WEIGHT_INITS[name](shape, fan_in, fan_out, rng, dtype)


def bias(name: str, shape, rng, dtype, where: str):
    """Zeros or N(0, 1) (``003``'s choice) biases (a placeholder when deferred)."""
    check_option(name, where, "bias_init", BIAS_INITS)
    if is_deferred():
        return placeholder(shape, dtype)
    if name == "zeros":
        return numpy.zeros(shape, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)
