"""The layer interface and the registry used to rebuild models from saved files.

Every layer has ``params`` and ``grads`` (same keys and shapes from construction on),
``forward(x, training=False)`` and ``backward(grad_y)``. ``backward`` is valid after a
``forward(..., training=True)``; it *overwrites* ``grads`` with the gradient of the loss for
that batch (no implicit accumulation) and returns the gradient with respect to the input.

``params`` is the single source of truth: a caller may replace an entry with an array of
the same shape (a float64 copy for a gradient check, say) and the layer computes with it.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy

from .. import backend

#: class name -> layer class; loading a model looks names up here and nowhere else.
REGISTRY: dict[str, type["Layer"]] = {}


def register(cls: type["Layer"]) -> type["Layer"]:
    """Class decorator: make a layer constructible from a saved architecture."""
    REGISTRY[cls.__name__] = cls
    return cls


class Layer:
    """Base class. Subclasses implement ``_forward``/``_backward`` and ``get_config``."""

    #: whether the layer draws random numbers when training (Dropout, StochasticBinary)
    stochastic: ClassVar[bool] = False
    #: whether splitting the batch over threads (``fit``'s workers) pays for this layer: much
    #: element-wise or memory-bound work between small products (convolution, pooling, LSTM).
    #: A model of only Dense-like layers runs faster as one batch with BLAS on every core, so
    #: ``fit``'s default ``workers`` is 1 for it (``training/step.py``, ``auto_workers``).
    splits_well: ClassVar[bool] = False
    #: the fewest batch rows per worker for which the split still pays (fit's default workers)
    split_min_rows: ClassVar[int] = 32
    #: the attributes a training forward keeps for backward (inputs, outputs, masks, a pass's
    #: buffers); ``_forget`` drops them before the next training pass computes its own
    _cache: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.trainable = True
        self._out_shape: tuple[int, ...] | None = None  # set by a training forward

    # -- public interface -------------------------------------------------------------
    def forward(self, x, training: bool = False):
        """Compute the layer's output; with ``training=True`` also keep what backward needs."""
        self._check_input(x)
        if training:
            self._forget()
        y = self._forward(x, training)
        if training:
            self._out_shape = y.shape
        return y

    def _forget(self) -> None:
        """Drop what the last training forward kept (``_cache``), so that a new training pass
        does not hold the old pass's arrays beside its own: ``backward`` then needs a new
        training forward. ``Sequential.forward(training=True)`` calls it on every layer before
        the first computes (an epoch's peak memory is one pass's arrays, not two: LeNet-5,
        batch 128, holds 5 MB between a step's forward and the next)."""
        self._out_shape = None
        for name in self._cache:
            if name in self.__dict__:
                setattr(self, name, None)

    def backward(self, grad_y):
        """Given dC/dy, write dC/dparams into ``grads`` and return dC/dx."""
        return self._backward_checked(grad_y, need_input_grad=True)

    def _backward_checked(self, grad_y, need_input_grad: bool, owned: bool = False):
        expected = self._out_shape
        if expected is None:
            raise RuntimeError(
                f"{self}: backward called without a preceding forward(..., training=True)"
            )
        if tuple(grad_y.shape) != tuple(expected):
            raise ValueError(
                f"{self}.backward: expected gradient of shape {tuple(expected)}, "
                f"got {tuple(grad_y.shape)}"
            )
        if owned:
            return self._backward_owned(grad_y, need_input_grad)
        return self._backward(grad_y, need_input_grad)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one sample's output given one sample's input shape (no batch axis)."""
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serializable; ``from_config`` rebuilds the layer from them."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], *, deferred: bool = False) -> "Layer":
        """A new layer built from ``get_config()``'s dict (the one place layers are rebuilt:
        loading a file, cloning for transfer, data-parallel replicas).

        ``deferred=True``: shapes only, nothing drawn or allocated (``init.deferred``); the
        caller then puts real arrays into ``params`` (a loaded file's, a copy, shared ones).
        A malformed config raises ``TypeError``/``ValueError`` from the constructor."""
        if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
            raise TypeError(f"{cls.__name__}.from_config: expected a dict with string keys, "
                            f"got {type(config).__name__}")
        if not deferred:
            return cls(**config)
        from .. import init

        with init.deferred():
            return cls(**config)

    def set_rng(self, rng) -> None:  # noqa: B027 - optional hook
        """Give a stochastic layer the generator for its draws (``fit`` calls this)."""

    def zero_grads(self) -> None:
        from .. import init

        for k, p in self.params.items():
            if init.is_deferred():
                self.grads[k] = init.placeholder(p.shape, p.dtype)
                continue
            xp = backend.array_module(p)
            self.grads[k] = xp.zeros(p.shape, dtype=p.dtype)

    @property
    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- to implement ---------------------------------------------------------------------
    def _check_input(self, x) -> None:
        from .._checks import check_float_array

        check_float_array(x, self)

    def _forward(self, x, training: bool):
        raise NotImplementedError

    def _backward(self, grad_y, need_input_grad: bool):
        raise NotImplementedError

    def _backward_owned(self, grad_y, need_input_grad: bool):
        """``_backward`` when nothing else holds ``grad_y`` (``Sequential.backward`` passes a
        gradient that an earlier layer of the same call has just made): a layer whose input
        gradient is ``grad_y`` times a factor of its own may write it into ``grad_y`` and
        return that, instead of allocating another array of the same size."""
        return self._backward(grad_y, need_input_grad)


class ParamCache:
    """Arrays derived from some of a layer's ``params`` (LSTM's gate-permuted weights), built
    again only when one of those params has changed.

    ``params`` stays the single source of truth, and it changes in two ways: an entry is
    replaced by another array (a float64 copy for a gradient check, a loaded file's tensor),
    or an array is written in place (every optimizer step; one entry at a time in a
    finite-difference check; a checkpoint restore). NumPy arrays carry no version counter, so
    an in-place write shows only in the values: ``get`` compares each source bit for bit with
    the copy it last built from — one read-only pass, cheaper than the gathers and products
    of a build — and builds again only on a difference. Training thus builds once per
    optimizer step (a batch's forward and backward share the build), evaluation once for all
    its batches, and the results are those of building on every call, bit for bit.
    """

    def __init__(self, names) -> None:
        self.names = tuple(names)
        self._sources: list | None = None
        self._value: Any = None
        self.builds = 0  # how many times ``build`` ran (tests and benchmarks read it)

    def get(self, params: dict[str, Any], build: Callable[..., Any]) -> Any:
        """``build(*sources)`` for the current ``params[name]`` of each name (``None`` where
        absent), reused while they hold the same bits. ``build`` receives private copies, so
        what it returns may keep them."""
        current = [params.get(k) for k in self.names]
        if self._sources is None or not all(map(_same_bits, current, self._sources)):
            self._sources = [None if p is None else p.copy() for p in current]
            self._value = build(*self._sources)
            self.builds += 1
        return self._value


def _same_bits(a, b) -> bool:
    """Same array type, dtype, shape and bit pattern (so -0.0 differs from 0.0 and a NaN
    equals itself: exactly when a build from ``a`` equals the build from ``b``)."""
    if a is None or b is None:
        return a is b
    if type(a) is not type(b) or a.dtype != b.dtype or a.shape != b.shape:
        return False
    xp = backend.array_module(a)
    if a.dtype.itemsize in (1, 2, 4, 8):
        bits = numpy.dtype(f"u{a.dtype.itemsize}")
        return bool(xp.array_equal(a.view(bits), b.view(bits)))
    return bool(xp.array_equal(a, b))
