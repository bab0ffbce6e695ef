"""PyTorch state dicts in and out, with no torch import: tensors are read by duck typing
(``.detach().cpu().numpy()``) and everything produced is NumPy.

The mapping is by position onto handgrad's parameterised layers (DESIGN.md, "Scale-out,
interoperability"). Legend: O/F output/input features, D/C output/input channels, H hidden
units. One torch module's keys are grouped by their prefix (``"4"`` in ``"4.weight"``):

=============================  ===============  ===========================================
torch module                   handgrad layer   keys → params
=============================  ===============  ===========================================
``nn.Linear(F, O)``            ``Dense``        ``weight`` (O, F) → ``W``; ``bias`` (O,) → ``b``
``nn.Conv2d(C, D, k)``         ``Conv2D``       ``weight`` (D, C, kH, kW) → ``W``; ``bias`` (D,) → ``b``
``nn.RNN(F, H)``               ``RNN``          ``weight_ih_l0`` (H, F) → ``W_ih``, ``weight_hh_l0`` (H, H) → ``W_hh``,
                                                ``bias_ih_l0 + bias_hh_l0`` (H,) → ``b``
``nn.LSTM(F, H)``              ``LSTM``         as RNN with 4H rows in the order input, forget, cell, output
=============================  ===============  ===========================================

Recurrent modules must be single-layer, unidirectional, without projections, and are read as
``batch_first=True`` (handgrad's sequences are ``(N, T, F)``; the flag changes no weight).
A missing ``bias`` (``bias=False`` in torch) is read as zeros. Peephole LSTMs, untied
convolution biases and any other layer with parameters have no torch counterpart here and are
refused by name.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy

from .. import backend
from ..layers import LSTM, RNN, Conv2D, Dense
from ..model import Sequential

_RECURRENT_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
_TORCH_NAME = {Dense: "nn.Linear", Conv2D: "nn.Conv2d", RNN: "nn.RNN", LSTM: "nn.LSTM"}


def _as_numpy(value: Any, key: str) -> numpy.ndarray:
    """A torch tensor (any device) or an array-like as a float NumPy array."""
    if hasattr(value, "detach"):
        try:
            value = value.detach().cpu().numpy()
        except (TypeError, RuntimeError) as exc:  # e.g. bfloat16, which NumPy cannot hold
            raise TypeError(f"from_torch: cannot read torch key {key!r} as a NumPy array ({exc})") from None
    arr = backend.to_numpy(value) if hasattr(value, "shape") else numpy.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"from_torch: expected torch key {key!r} to hold floats, got dtype {arr.dtype}")
    if not numpy.isfinite(arr).all():
        raise ValueError(f"from_torch: torch key {key!r} contains NaN or Inf values")
    return arr


def _parameterised(model: Sequential, where: str) -> list[tuple[int, Any]]:
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: expected a handgrad Sequential model, got {type(model).__name__}")
    out = []
    for i, layer in enumerate(model.layers):
        if not layer.params:
            continue
        if type(layer) not in _TORCH_NAME:
            raise ValueError(f"{where}: layer {i} {layer!r} has parameters but no PyTorch counterpart "
                             f"(supported: {', '.join(c.__name__ for c in _TORCH_NAME)})")
        if isinstance(layer, LSTM) and layer.peepholes:
            raise ValueError(f"{where}: layer {i} {layer!r} has peephole weights w_peep, which torch.nn.LSTM "
                             "does not have; only LSTM(peepholes=False) maps onto nn.LSTM")
        if isinstance(layer, Conv2D) and layer.untied_bias is not None:
            raise ValueError(f"{where}: layer {i} {layer!r} has untied biases {tuple(layer.params['b'].shape)}, "
                             "which torch.nn.Conv2d (one bias per output channel) cannot hold")
        out.append((i, layer))
    return out


def _natural(prefix: str) -> tuple:
    """Sort key that reads the numeric parts of a module name as numbers ("net.2" < "net.10")."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in prefix.split("."))


def _group(state_dict: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``[(prefix, {suffix: value})]`` in module order: the mapping's own order (a torch
    ``state_dict()`` lists modules in the order they were registered), except when that order
    is plain string order, as files such as safetensors store keys ("10" before "2"): then the
    numeric parts of the names are sorted as numbers, which restores the order of an
    ``nn.Sequential`` (the names ``to_torch_state_dict`` writes)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"from_torch: expected a state dict (a mapping of names to tensors), "
                        f"got {type(state_dict).__name__}")
    groups: dict[str, dict[str, Any]] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"from_torch: expected string keys, got {key!r}")
        prefix, _, suffix = key.rpartition(".")
        groups.setdefault(prefix, {})[suffix] = value
    items = list(groups.items())
    prefixes = [p for p, _ in items]
    if prefixes == sorted(prefixes) or all(re.fullmatch(r"\d+", p) for p in prefixes):
        items.sort(key=lambda kv: _natural(kv[0]))
    return items


def _key(prefix: str, suffix: str) -> str:
    return f"{prefix}.{suffix}" if prefix else suffix


def _describe(prefix: str, group: dict[str, Any]) -> str:
    parts = []
    for s, v in group.items():
        shape = tuple(getattr(v, "shape", numpy.shape(v)))
        parts.append(f"{_key(prefix, s)!r} {shape}")
    return ", ".join(parts)


def _want(prefix: str, want: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{_key(prefix, s)!r} {shape}" for s, shape in want.items())


def _expected(layer) -> dict[str, tuple[int, ...]]:
    """The torch keys (suffixes) the layer needs and their shapes."""
    p = layer.params
    if isinstance(layer, (Dense, Conv2D)):
        return {"weight": tuple(p["W"].shape), "bias": tuple(p["b"].shape)}
    return {"weight_ih_l0": tuple(p["W_ih"].shape), "weight_hh_l0": tuple(p["W_hh"].shape),
            "bias_ih_l0": tuple(p["b"].shape), "bias_hh_l0": tuple(p["b"].shape)}


def _read_group(i: int, layer, prefix: str, group: dict[str, Any]) -> dict[str, numpy.ndarray]:
    """Check one torch module against one layer; returns the new params (NumPy)."""
    where = f"from_torch: layer {i} {layer!r}"
    want = _expected(layer)
    unknown = sorted(set(group) - set(want))
    if unknown:
        hint = ""
        if any(re.search(r"_l[1-9]\d*$|_reverse$|weight_hr", s) for s in unknown):
            hint = " (only single-layer, unidirectional recurrent modules without projections map)"
        raise ValueError(f"{where} ({_TORCH_NAME[type(layer)]}) expects torch keys {_want(prefix, want)}; "
                         f"the torch module has {_describe(prefix, group)}: "
                         f"unexpected {[_key(prefix, s) for s in unknown]}{hint}")
    weights = [s for s in want if s.startswith("weight")]
    missing = [s for s in weights if s not in group]
    if missing:
        raise ValueError(f"{where} ({_TORCH_NAME[type(layer)]}) expects torch keys {_want(prefix, want)}; "
                         f"the torch module has {_describe(prefix, group)}: "
                         f"missing {[_key(prefix, s) for s in missing]}")
    arrays = {}
    for s, shape in want.items():
        if s not in group:  # bias=False in torch
            arrays[s] = numpy.zeros(shape)
            continue
        arr = _as_numpy(group[s], _key(prefix, s))
        if tuple(arr.shape) != shape:
            raise ValueError(f"{where}: torch key {_key(prefix, s)!r} has shape {tuple(arr.shape)}, "
                             f"the layer expects {shape}")
        arrays[s] = arr
    if isinstance(layer, (Dense, Conv2D)):
        return {"W": arrays["weight"], "b": arrays["bias"]}
    # the two torch biases only ever appear as their sum b_ih + b_hh (in float64, then cast once)
    b = arrays["bias_ih_l0"].astype(numpy.float64) + arrays["bias_hh_l0"].astype(numpy.float64)
    return {"W_ih": arrays["weight_ih_l0"], "W_hh": arrays["weight_hh_l0"], "b": b}


def from_torch(model: Sequential, state_dict: Mapping[str, Any]) -> Sequential:
    """Copy a ``torch.nn`` model's ``state_dict`` into ``model`` in place and return ``model``.

    ``state_dict``: ``{name: tensor or array}``, e.g. ``torch_model.state_dict()`` or
    ``safetensors.numpy.load_file(path)``. The torch modules with parameters (keys grouped by
    prefix) are matched in order with the layers of ``model`` that have parameters. Every
    array is checked before any is copied, so on error ``model`` is unchanged; values are
    copied into the existing ``params`` arrays (same objects, their dtype kept).

    Raises ``ValueError`` naming the torch key, the layer and both shapes when a kind, shape
    or count does not match; ``TypeError`` for non-float tensors.
    """
    layers = _parameterised(model, "from_torch")
    groups = _group(state_dict)
    if len(groups) != len(layers):
        detail = ""
        if len(groups) > len(layers):
            prefix, group = groups[len(layers)]
            detail = f"; first torch module without a layer: {_describe(prefix, group)}"
        else:
            i, layer = layers[len(groups)]
            detail = (f"; first layer without a torch module: layer {i} {layer!r} expects "
                      + ", ".join(f"'{i}.{s}' {shape}" for s, shape in _expected(layer).items()))
        raise ValueError(f"from_torch: the state dict has {len(groups)} modules with parameters, the model "
                         f"has {len(layers)} layers with parameters{detail}")
    new = [(layer, _read_group(i, layer, prefix, group)) for (i, layer), (prefix, group) in zip(layers, groups)]
    for layer, params in new:
        for k, arr in params.items():
            p = layer.params[k]
            p[...] = backend.asarray(arr, dtype=p.dtype, xp=backend.array_module(p))
    return model


def to_torch_state_dict(model: Sequential) -> dict[str, numpy.ndarray]:
    """The inverse of ``from_torch``: NumPy arrays (copies) under the names an ``nn.Sequential``
    of the matching torch modules at the same positions would use — ``'{i}.weight'``,
    ``'{i}.bias'`` for Dense/Conv2D; ``'{i}.weight_ih_l0'``, ``'{i}.weight_hh_l0'``,
    ``'{i}.bias_ih_l0'`` (= ``b``) and ``'{i}.bias_hh_l0'`` (zeros) for RNN/LSTM, where i is
    the layer's position in ``model`` (parameter-free layers occupy positions too, as the
    activations, pooling and flatten modules do in the torch twin). Load it into torch with
    ``twin.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``."""
    out: dict[str, numpy.ndarray] = {}
    for i, layer in _parameterised(model, "to_torch_state_dict"):
        p = {k: numpy.array(backend.to_numpy(v)) for k, v in layer.params.items()}
        if isinstance(layer, (Dense, Conv2D)):
            out[f"{i}.weight"], out[f"{i}.bias"] = p["W"], p["b"]
        else:
            out[f"{i}.weight_ih_l0"], out[f"{i}.weight_hh_l0"] = p["W_ih"], p["W_hh"]
            out[f"{i}.bias_ih_l0"], out[f"{i}.bias_hh_l0"] = p["b"], numpy.zeros_like(p["b"])
    return out
