"""Training checkpoints: everything ``fit`` needs to continue a run exactly where it stopped.

A checkpoint is one safetensors file (written atomically: temp file, fsync, rename, fsync of
the folder) holding the model weights and the optimizer's buffers as tensors, and as JSON
metadata the architecture (so ``hg.load`` opens it as a model too), the optimizer's scalars,
the position in the run (epoch, batch, step), the states of every random generator of the run,
the history so far and the running sums of the epoch in progress. Resuming from it replays the
remaining steps with the same data order and the same random draws, so an interrupted and
resumed run ends with weights bit-identical to an uninterrupted one.

Public functions (stable; other trainers use them): ``save_checkpoint``, ``load_checkpoint``,
``latest``, ``list_checkpoints``, ``restore``, ``rng_state``, ``set_rng_state``; and
``Checkpointer``, which writes a run's checkpoints (end of epoch, every k steps, on a signal)
and resumes it. It needs of its ``run`` only ``state_dict()``, ``check_state_dict(state,
where)``, ``load_state_dict(state, where)``, ``step`` and ``batch`` (``state.RunState``).
"""
from __future__ import annotations

import glob
import json
import os
import re

import numpy

from .. import backend
from .._checks import check_positive_int
from ..fsutil import atomic_write_bytes
from ..serialization import FORMAT_VERSION, _holders, _parse_header
from .reducer import LOCAL

CHECKPOINT_VERSION = "1"
_NAME = re.compile(r"^ckpt-(\d{10})\.safetensors$")


def checkpoint_path(folder: str, step: int) -> str:
    return os.path.join(folder, f"ckpt-{step:010d}.safetensors")


def list_checkpoints(folder: str) -> list[str]:
    """Checkpoint files in ``folder``, oldest first."""
    files = [f for f in glob.glob(os.path.join(glob.escape(folder), "ckpt-*.safetensors"))
             if _NAME.match(os.path.basename(f))]
    return sorted(files)


def latest(path: str) -> str:
    """``path`` itself if it is a file, else the newest checkpoint in the folder ``path``
    (or in its ``checkpoints`` subfolder, the layout ``handgrad train`` uses)."""
    if os.path.isfile(path):
        return path
    for folder in (path, os.path.join(path, "checkpoints")):
        found = list_checkpoints(folder) if os.path.isdir(folder) else []
        if found:
            return found[-1]
    raise FileNotFoundError(f"resume: no checkpoint (ckpt-*.safetensors) found in {path!r}")


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(folder: str, model, optimizer, state: dict, keep: int = 3,
                    extra_tensors: dict | None = None) -> str:
    """Write a checkpoint for global step ``state["pos"]["step"]`` into ``folder``; keep the newest
    ``keep`` files. Returns the path written.

    ``model``: whatever ``hg.save`` takes (a ``Sequential``, an RBM or a stack of RBMs), stored
    under the same tensor names, so ``hg.load`` opens the checkpoint as a model.
    ``extra_tensors``: further arrays of the run (e.g. persistent chains), stored as
    ``extra.{name}`` (``load_checkpoint`` returns them under those keys)."""
    keep = check_positive_int(keep, "save_checkpoint", "keep")
    from safetensors.numpy import save as st_save

    arch, holders, prefix = _holders(model, "save_checkpoint")
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for i, layer in enumerate(holders):
        for k, p in layer.params.items():  # same names as a model file: hg.load opens a checkpoint
            tensors[f"{prefix}.{i}.{k}"] = numpy.ascontiguousarray(backend.to_numpy(p))
    for name, arr in (extra_tensors or {}).items():
        tensors[f"extra.{name}"] = numpy.ascontiguousarray(backend.to_numpy(arr))
    for i, layer in enumerate(holders):  # carried states of stateful recurrent layers
        if getattr(layer, "stateful", False) and layer.initial_state is not None:
            parts = layer.initial_state if isinstance(layer.initial_state, tuple) else (layer.initial_state,)
            for j, part in enumerate(parts):
                tensors[f"rstate.{i}.{j}"] = numpy.ascontiguousarray(backend.to_numpy(part))
    opt_state = optimizer.state_dict()
    for key, slots in opt_state["state"].items():
        for slot, arr in slots.items():
            tensors[f"optim.{key}.{slot}"] = numpy.ascontiguousarray(backend.to_numpy(arr))
    meta = {"handgrad": FORMAT_VERSION, "handgrad-checkpoint": CHECKPOINT_VERSION,
            "architecture": json.dumps(arch),
            "optimizer": json.dumps({"class": type(optimizer).__name__, "lr": opt_state["lr"],
                                     "steps": opt_state["steps"]}),
            "state": json.dumps(state)}
    path = checkpoint_path(folder, int(state["pos"]["step"]))
    atomic_write_bytes(path, st_save(tensors, metadata=meta))
    _fsync_dir(folder)
    for old in list_checkpoints(folder)[:-keep]:
        try:
            os.unlink(old)
        except OSError:
            pass
    return path


def load_checkpoint(path: str) -> tuple[dict, dict, dict]:
    """Read a checkpoint: ``(tensors, optimizer scalars, run state)``. Malformed files raise
    ``ValueError``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    where = f"load_checkpoint({path!r})"
    with open(path, "rb") as fh:
        data = fh.read()
    header = _parse_header(data, where)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("handgrad-checkpoint") != CHECKPOINT_VERSION:
        raise ValueError(f"{where}: not a handgrad training checkpoint")
    for key, info in header.items():
        if key != "__metadata__" and not (isinstance(info, dict) and info.get("dtype") in ("F32", "F64")):
            raise ValueError(f"{where}: tensor {key!r} has an unsupported dtype")
    try:
        tensors = st_load(data)
        opt = json.loads(meta["optimizer"])
        state = json.loads(meta["state"])
    except (SafetensorError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{where}: malformed checkpoint ({exc})") from None
    _validate(state, opt, where)
    state["architecture"] = meta.get("architecture")
    return tensors, opt, state


def _validate(state, opt, where: str) -> None:
    """Check the run state's structure and types, so a damaged checkpoint is a ValueError."""
    def need(cond, what):
        if not cond:
            raise ValueError(f"{where}: malformed checkpoint ({what})")

    def is_int(v, low=0):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    need(isinstance(state, dict) and isinstance(opt, dict), "state is not an object")
    need(isinstance(opt.get("class"), str) and isinstance(opt.get("lr"), (int, float)) and is_int(opt.get("steps")),
         "optimizer scalars")
    fit_args, pos, rng = state.get("fit"), state.get("pos"), state.get("rng")
    need(isinstance(fit_args, dict) and all(is_int(fit_args.get(k), 1) for k in ("epochs", "batch_size", "n"))
         and isinstance(fit_args.get("seed"), int), "fit arguments")
    need(isinstance(pos, dict) and all(is_int(pos.get(k)) for k in ("epoch", "batch", "step", "skipped")), "position")
    steps_per_epoch = -(-fit_args["n"] // fit_args["batch_size"])
    need(pos["epoch"] <= fit_args["epochs"] and pos["batch"] <= steps_per_epoch, "position out of range")
    sums = pos.get("sums")
    need(isinstance(sums, dict) and isinstance(sums.get("loss"), (int, float)) and is_int(sums.get("seen"))
         and is_int(sums.get("items")) and isinstance(sums.get("correct"), dict)
         and all(is_int(v) for v in sums["correct"].values()), "running sums")
    need(isinstance(state.get("history"), dict) and all(isinstance(v, list) for v in state["history"].values())
         and isinstance(state.get("history_epochs"), list), "history")
    need(isinstance(rng, dict) and isinstance(rng.get("layers"), list)
         and all(isinstance(r, dict) for r in [rng.get("epoch_start"), rng.get("augment"), *rng["layers"]]),
         "random generator states")


def set_rng_state(rng: numpy.random.Generator, state, where: str = "resume") -> None:
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"{where}: malformed random generator state in the checkpoint ({exc})") from None


def restore(model, optimizer, tensors: dict, opt: dict, where: str, architecture: str | None = None) -> None:
    """Copy checkpoint weights and optimizer buffers into ``model`` and ``optimizer``. Everything
    is checked first: a rejected checkpoint leaves both untouched."""
    arch, holders, prefix = _holders(model, where)
    if architecture is not None and json.loads(architecture) != json.loads(json.dumps(arch)):
        raise ValueError(f"{where}: the checkpoint was written for a different architecture")
    own = {f"{prefix}.{i}.{k}": p for i, layer in enumerate(holders) for k, p in layer.params.items()}
    saved = {k: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    if set(saved) != set(own):
        raise ValueError(f"{where}: the checkpoint's weights {sorted(saved)} do not match the model's {sorted(own)}")
    for key, p in own.items():
        arr = saved[key]
        if tuple(arr.shape) != tuple(p.shape) or arr.dtype != p.dtype:
            raise ValueError(f"{where}: {key} is {arr.dtype}{tuple(arr.shape)} in the checkpoint, "
                             f"{p.dtype}{tuple(p.shape)} in the model")
        if not numpy.isfinite(arr).all():
            raise ValueError(f"{where}: {key} holds NaN or Inf values")
    if opt.get("class") != type(optimizer).__name__:
        raise ValueError(f"{where}: the checkpoint was written with optimizer {opt.get('class')!r}, "
                         f"not {type(optimizer).__name__}")
    buffers_check = {}
    for key, arr in tensors.items():
        if key.startswith("optim."):
            parts = key.split(".", 3)
            if len(parts) != 4:
                raise ValueError(f"{where}: malformed optimizer buffer name {key!r}")
            buffers_check[key] = arr
    snapshot = optimizer.state_dict()
    try:
        _apply_optimizer(optimizer, tensors, opt)
    except ValueError:
        optimizer.load_state_dict(snapshot)
        raise
    for key, p in own.items():
        p[...] = backend.asarray(saved[key], xp=backend.array_module(p))
    _apply_states(holders, tensors)


def _apply_optimizer(optimizer, tensors: dict, opt: dict) -> None:
    buffers: dict[str, dict] = {}
    for key, arr in tensors.items():
        if key.startswith("optim."):
            _, i, name, slot = key.split(".", 3)
            buffers.setdefault(f"{i}.{name}", {})[slot] = arr
    optimizer.load_state_dict({"lr": opt["lr"], "steps": opt["steps"], "state": buffers})


def _apply_states(layers, tensors: dict) -> None:
    states: dict[int, dict[int, object]] = {}
    for key, arr in tensors.items():
        if key.startswith("rstate."):
            _, i, j = key.split(".")
            states.setdefault(int(i), {})[int(j)] = arr
    for i, layer in enumerate(layers):
        if getattr(layer, "stateful", False):
            parts = states.get(i)
            if parts is None:
                layer.reset_state()
            else:
                arrs = tuple(backend.asarray(parts[j], xp=backend.array_module(layer.params["W_ih"]))
                             for j in sorted(parts))
                layer.initial_state = arrs if len(arrs) > 1 else arrs[0]


def rng_state(rng: numpy.random.Generator) -> dict:
    return rng.bit_generator.state




class Checkpointer:
    """A run's checkpoints in ``folder`` (None: none are written): ``write()`` now,
    ``after_step(steps_per_epoch)`` every ``every`` global steps inside an epoch (the end of an
    epoch has its own ``write()``), ``resume(path)`` to continue from the newest checkpoint.

    Only the process with ``reducer.is_root`` writes; every process calls ``write`` (the run
    state's sums are reduced over processes there) and gets None back when it wrote nothing.

    ``model``: anything ``hg.save`` takes (a ``Sequential``, an RBM, a stack). For arrays of the
    run beyond the weights and the optimizer (an RBM's persistent chains): ``extra_tensors()``
    returns ``{name: array}`` to save, and ``load_extra({name: array})`` takes them back on
    resume, after the weights (it must check everything before changing anything)."""

    def __init__(self, folder: str | None, every: int, keep: int, model, optimizer, run, reducer=LOCAL,
                 extra_tensors=None, load_extra=None) -> None:
        self.folder, self.every, self.keep = folder, every, keep
        self.model, self.optimizer, self.run, self.reducer = model, optimizer, run, reducer
        self.extra_tensors, self.load_extra = extra_tensors, load_extra
        #: the run state (JSON-ready) of the checkpoint ``resume`` loaded, for other processes
        self.resumed_state: dict | None = None

    def write(self) -> str | None:
        if not self.folder:
            return None
        state = self.run.state_dict()
        if not self.reducer.is_root:
            return None
        extra = self.extra_tensors() if self.extra_tensors is not None else None
        return save_checkpoint(self.folder, self.model, self.optimizer, state, self.keep, extra)

    def after_step(self, steps_per_epoch: int) -> None:
        if self.every and self.run.step % self.every == 0 and self.run.batch < steps_per_epoch:
            self.write()

    def resume(self, path: str) -> str:
        """Load the newest checkpoint at ``path`` (file or folder) into the model, the optimizer
        and the run. Everything is checked first: a rejected checkpoint changes nothing."""
        path = latest(path)
        where = f"fit(resume_from={path!r})"
        tensors, opt_meta, state = load_checkpoint(path)
        self.run.check_state_dict(state, where)
        restore(self.model, self.optimizer, tensors, opt_meta, where, state.get("architecture"))
        if self.load_extra is not None:
            self.load_extra({k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")})
        self.run.load_state_dict(state, where)
        self.resumed_state = state
        return path
