"""Save and load models: one safetensors file holding the weights and, as JSON metadata,
the architecture. No pickle anywhere; layers are rebuilt through the explicit registry in
``handgrad.layers.base.REGISTRY`` from their constructor arguments.

File layout (safetensors): tensors ``"layers.{i}.{name}"``; metadata ``"handgrad"`` (format
version) and ``"architecture"`` (JSON: ``{"class": "Sequential", "layers": [{"class": ...,
"config": {...}}, ...]}``). RBMs and stacks of RBMs (``handgrad.rbm``) are saved the same way,
with tensors ``"rbms.{i}.{name}"`` and the architecture of ``handgrad.rbm.files``.
"""
from __future__ import annotations

import json
import os
import struct

import numpy

from . import backend
from .layers.base import REGISTRY
from .fsutil import atomic_write_bytes
from .model import Sequential

FORMAT_VERSION = "1"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


def _architecture(model: Sequential) -> dict:
    return {"class": "Sequential",
            "layers": [{"class": type(layer).__name__, "config": layer.get_config(),
                        "trainable": layer.trainable} for layer in model.layers]}


def _holders(model, where: str):
    """(architecture, objects whose params are saved, tensor-name prefix) of what ``save`` got."""
    from .rbm import files as rbm_files  # noqa: PLC0415 (handgrad.rbm builds on this module)

    if rbm_files.is_rbm_object(model):
        arch, holders = rbm_files.describe(model)
        return arch, holders, rbm_files.PREFIX
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: expected a Sequential model, an RBM or a list of RBMs, got {type(model).__name__}")
    return _architecture(model), model.layers, "layers"


def save(model: Sequential, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``model`` (architecture + weights, bit for bit, same dtype) to exactly ``path``.
    ``model`` is a ``Sequential``, an ``rbm.RBM`` or a list of RBMs (a pretraining stack).

    ``metadata``: optional JSON-serializable dict stored beside the architecture (the CLI keeps
    the preset, the loss and the input shape there); read it back with ``read_metadata``."""
    from safetensors.numpy import save as st_save

    arch, holders, prefix = _holders(model, "save")
    tensors = {}
    for i, layer in enumerate(holders):
        for k, p in layer.params.items():
            tensors[f"{prefix}.{i}.{k}"] = numpy.ascontiguousarray(backend.to_numpy(p))
    meta = {"handgrad": FORMAT_VERSION, "architecture": json.dumps(arch)}
    if metadata is not None:
        try:
            meta["user"] = json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"save: metadata must be JSON-serializable ({exc})") from None
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def _parse_header(data: bytes, where: str) -> dict:
    if len(data) < 8:
        raise ValueError(f"{where}: not a handgrad model file (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise ValueError(f"{where}: not a handgrad model file (header length {n} exceeds the file)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}: malformed safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: malformed safetensors header (not a JSON object)")
    return header


def _build(arch, where: str) -> Sequential:
    if not isinstance(arch, dict) or arch.get("class") != "Sequential" or not isinstance(arch.get("layers"), list):
        raise ValueError(f"{where}: architecture must describe a Sequential model")
    layers = []
    for i, spec in enumerate(arch["layers"]):
        if not isinstance(spec, dict) or not isinstance(spec.get("config", {}), dict):
            raise ValueError(f"{where}: layer {i} has a malformed description")
        name = spec.get("class")
        cls = REGISTRY.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(f"{where}: layer {i} has unknown class {spec.get('class')!r}; "
                             f"known classes are {sorted(REGISTRY)}")
        try:  # shapes only: nothing is drawn or allocated before the file's tensors are checked
            layer = cls.from_config(spec.get("config", {}), deferred=True)
        except (TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            raise ValueError(f"{where}: cannot rebuild layer {i} ({name}): {exc}") from None
        trainable = spec.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ValueError(f"{where}: layer {i} has a non-boolean 'trainable' flag {trainable!r}")
        layer.trainable = trainable
        layers.append(layer)
    return Sequential(layers)


def _read_meta(path, where: str) -> tuple[bytes, dict]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError:
        raise ValueError(f"{where}: is a directory, not a model file") from None
    header = _parse_header(data, where)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or "architecture" not in meta:
        raise ValueError(f"{where}: not a handgrad model file (no architecture metadata)")
    if meta.get("handgrad") != FORMAT_VERSION:
        raise ValueError(f"{where}: unsupported handgrad format version {meta.get('handgrad')!r}")
    return data, meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata`` dict given to ``save`` (empty if none)."""
    where = f"read_metadata({os.fspath(path)!r})"
    _, meta = _read_meta(path, where)
    try:
        user = json.loads(meta.get("user", "{}"))
    except (TypeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}: malformed metadata ({exc})") from None
    if not isinstance(user, dict):
        raise ValueError(f"{where}: malformed metadata (not a JSON object)")
    return user


def load(path: str | os.PathLike) -> Sequential:
    """Rebuild the model saved at ``path`` (a ``Sequential``, or the RBM / list of RBMs that
    was saved). Untrusted, truncated or malformed files raise ``ValueError``; nothing in the
    file is executed."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    where = f"load({os.fspath(path)!r})"
    data, meta = _read_meta(path, where)
    try:
        arch = json.loads(meta["architecture"])
    except (TypeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}: malformed architecture metadata ({exc})") from None
    from .rbm import files as rbm_files  # noqa: PLC0415

    if isinstance(arch, dict) and arch.get("class") in rbm_files.CLASSES:
        model, holders = rbm_files.build(arch, where)
        prefix = rbm_files.PREFIX
    else:
        model = _build(arch, where)
        holders, prefix = model.layers, "layers"
    header = _parse_header(data, where)
    for key, info in header.items():
        if key != "__metadata__" and not (isinstance(info, dict) and info.get("dtype") in ("F32", "F64")):
            dtype = info.get("dtype") if isinstance(info, dict) else None
            raise ValueError(f"{where}: tensor {key!r} has dtype {dtype!r}, expected F32 or F64")
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, TypeError, OverflowError, KeyError) as exc:
        raise ValueError(f"{where}: malformed tensor data ({exc})") from None
    expected = {f"{prefix}.{i}.{k}": p for i, layer in enumerate(holders) for k, p in layer.params.items()}
    if "handgrad-checkpoint" in meta:  # a training checkpoint also holds optimizer buffers and states
        tensors = {k: v for k, v in tensors.items() if k.startswith(f"{prefix}.")}
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        raise ValueError(f"{where}: tensors do not match the architecture (missing {missing}, unexpected {extra})")
    xp = backend.default_xp()
    for key, ref in expected.items():
        arr = tensors[key]
        if tuple(arr.shape) != tuple(ref.shape):
            raise ValueError(f"{where}: tensor {key} has shape {tuple(arr.shape)}, the architecture "
                             f"expects {tuple(ref.shape)}")
        if arr.dtype not in (numpy.float32, numpy.float64):
            raise ValueError(f"{where}: tensor {key} has dtype {arr.dtype}, expected float32 or float64")
        _, i, k = key.split(".", 2)
        layer = holders[int(i)]
        layer.params[k] = backend.asarray(arr, xp=xp)
    for layer in holders:
        layer.zero_grads()
    return model
