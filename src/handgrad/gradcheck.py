"""Finite-difference gradient checking, usable on any layer, loss or model.

The analytic gradient from ``backward`` is compared with fourth-order central differences
(−f(θ + 2h) + 8f(θ + h) − 8f(θ − h) + f(θ − 2h)) / 12h in float64 (error O(h⁴), so with
h = 1e-4 both the truncation and the rounding error stay around 1e-11). For a layer or model the scalar checked is
f = Σ y ⊙ R with a fixed random R, so backward is fed R = df/dy; for a loss it is the loss
value itself. The relative error of each entry is |a − n| / max(|a|, |n|, atol·max(1, |f|)):
the usual relative error, with entries smaller than that floor (where the rounding noise of
f, proportional to |f|, dominates) compared on the scale of the floor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy

from . import backend
from ._checks import check_int
from .losses import Loss
from .model import Sequential


@dataclass
class GradcheckResult:
    """``max_error``: worst relative error over everything checked; ``errors``: worst per
    parameter (``"W"``, or ``"0.W"`` for models) and for ``"input"``."""

    max_error: float
    errors: dict[str, float] = field(default_factory=dict)
    tol: float = 1e-6

    @property
    def passed(self) -> bool:
        return self.max_error < self.tol

    def __bool__(self) -> bool:
        return self.passed

    def table(self) -> str:
        w = max([len(k) for k in self.errors] + [9])
        lines = [f"{'parameter':<{w}}  {'max rel. error':>14}  ok"]
        for k, v in self.errors.items():
            lines.append(f"{k:<{w}}  {v:>14.3e}  {'yes' if v < self.tol else 'NO'}")
        return "\n".join(lines)


def _rel_error(a, n, atol):
    """Worst |a − n| / max(|a|, |n|, atol) over the entries."""
    a = numpy.asarray(backend.to_numpy(a), dtype=numpy.float64)
    n = numpy.asarray(n, dtype=numpy.float64)
    if a.size == 0:
        return 0.0
    denom = numpy.maximum(numpy.maximum(numpy.abs(a), numpy.abs(n)), atol)
    return float((numpy.abs(a - n) / denom).max())


def _stochastic_layers(obj):
    layers = obj.layers if isinstance(obj, Sequential) else [obj]
    return [layer for layer in layers if getattr(layer, "rng", None) is not None]


def _numeric(f, arr, eps, max_entries, rng):
    """Central differences of scalar f() w.r.t. the entries of ``arr`` (perturbed in place)."""
    flat = arr.reshape(-1)
    idx = numpy.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        idx = numpy.sort(rng.choice(flat.size, size=max_entries, replace=False))
    out = numpy.empty(idx.size)
    for j, i in enumerate(idx):
        orig = float(flat[i])
        values = []
        for step in (2 * eps, eps, -eps, -2 * eps):
            flat[i] = orig + step
            values.append(f())
        flat[i] = orig
        f2, f1, fm1, fm2 = values
        # fourth-order central difference: truncation error O(eps⁴), so eps can be large
        # enough that rounding noise stays near 1e-12
        out[j] = (8 * (f1 - fm1) - (f2 - fm2)) / (12 * eps)  # differences first: exact for constant f
    return idx, out


def gradcheck(obj, x, target=None, *, eps: float = 1e-4, atol: float = 1e-5, tol: float = 1e-6,
              max_entries: int | None = 256, seed: int = 0, check_input: bool = True,
              loss: Loss | None = None) -> GradcheckResult:
    """Check ``backward`` of a layer, a loss or a model against finite differences.

    - layer / model: ``gradcheck(layer, x)``; with ``loss=`` and ``target`` a model is checked
      on that loss instead of the random projection.
    - loss: ``gradcheck(loss, output, target)``.

    Parameters and inputs are checked in float64 (copies; the object's own arrays are put back
    afterwards). ``max_entries`` bounds how many entries of each array are perturbed (chosen at
    random with ``seed``); ``None`` checks all. ``eps`` is the finite-difference step: for
    inputs that must stay in a range (probabilities for ``NegativeLogLikelihood``), keep every
    entry at least 2·eps inside it. The object's ``params`` and ``grads`` are restored. Stochastic layers are re-seeded before every
    evaluation so each forward sees the same random draws.
    """
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"gradcheck: expected eps to be a finite number > 0, got {eps!r}")
    if max_entries is not None:
        max_entries = check_int(max_entries, "gradcheck", "max_entries", minimum=1)
    rng = numpy.random.default_rng(seed)
    x64 = numpy.array(backend.to_numpy(x), dtype=numpy.float64, order="C")  # C order: reshape(-1) must be a view
    errors: dict[str, float] = {}

    if isinstance(obj, Loss):
        if target is None:
            raise ValueError("gradcheck: checking a loss needs a target")
        tgt = backend.to_numpy(target)
        tgt = tgt.astype(numpy.float64) if tgt.dtype.kind == "f" else tgt
        f0 = obj.forward(x64, tgt)
        analytic = numpy.array(obj.backward(), dtype=numpy.float64)
        idx, num = _numeric(lambda: obj.forward(x64, tgt), x64, eps, max_entries, rng)
        errors["input"] = _rel_error(analytic.reshape(-1)[idx], num, atol * max(1.0, abs(f0)))
        return GradcheckResult(max(errors.values()), errors, tol)

    is_model = isinstance(obj, Sequential)
    layers = obj.layers if is_model else [obj]
    if not all(hasattr(layer, "params") for layer in layers):
        raise TypeError(f"gradcheck: expected a layer, a loss or a Sequential model, got {type(obj).__name__}")
    # stateful recurrent layers: every evaluation must start from the same (fixed) state
    carried = [(layer, layer.stateful) for layer in layers if getattr(layer, "stateful", False)]
    for layer, _ in carried:
        layer.stateful = False
    saved = [dict(layer.params) for layer in layers]
    saved_grads = [dict(layer.grads) for layer in layers]
    stoch = _stochastic_layers(obj)
    states = [layer.rng.bit_generator.state for layer in stoch]
    # layers whose backward is the derivative of their expected output (StochasticBinary) are
    # checked in expectation mode: forward(training=True) returns the expectation
    expect = [layer for layer in layers if hasattr(layer, "sample")]
    sample_flags = [layer.sample for layer in expect]
    try:
        for layer in expect:
            layer.sample = False
        for layer in layers:
            for k in layer.params:
                layer.params[k] = numpy.array(backend.to_numpy(layer.params[k]), dtype=numpy.float64, order="C")

        def run(training):
            for layer, st in zip(stoch, states):
                layer.rng.bit_generator.state = st
            return obj.forward(x64, training=training)

        y = run(True)
        if loss is not None:
            if target is None:
                raise ValueError("gradcheck: checking with a loss needs a target")
            tgt = backend.to_numpy(target)
            tgt = tgt.astype(numpy.float64) if tgt.dtype.kind == "f" else tgt
            loss.forward(y, tgt)
            grad_y = loss.backward()

            def f():
                return loss.forward(run(True), tgt)
        else:
            R = rng.standard_normal(y.shape)
            grad_y = R

            def f():
                return float((run(True) * R).sum())

        grad_x = obj.backward(grad_y)
        floor = atol * max(1.0, abs(f()))
        analytic = {(li, k): numpy.array(layer.grads[k], dtype=numpy.float64)
                    for li, layer in enumerate(layers) for k in layer.params}
        for (li, k), a in analytic.items():
            idx, num = _numeric(f, layers[li].params[k], eps, max_entries, rng)
            name = f"{li}.{k}" if is_model else k
            errors[name] = _rel_error(a.reshape(-1)[idx], num, floor)
        if check_input:
            ga = numpy.array(grad_x, dtype=numpy.float64)
            idx, num = _numeric(f, x64, eps, max_entries, rng)
            errors["input"] = _rel_error(ga.reshape(-1)[idx], num, floor)
    finally:
        for layer, params, grads in zip(layers, saved, saved_grads):
            layer.params.update(params)
            layer.grads.update(grads)
        for layer, st in zip(stoch, states):
            layer.rng.bit_generator.state = st
        for layer, flag in zip(expect, sample_flags):
            layer.sample = flag
        for layer, flag in carried:
            layer.stateful = flag
    return GradcheckResult(max(errors.values()) if errors else 0.0, errors, tol)
