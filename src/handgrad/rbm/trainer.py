r"""The RBM training loop: mini-batch CD-k / PCD-k with SGD, momentum 0.5 → 0.9, weight decay
on W, per-epoch monitoring, checkpoints and exact resume.

Defaults follow Hinton & Salakhutdinov 2006's code and Hinton 2010's practical guide: batches
of 100, learning rate 0.1 (0.001 for a layer with gaussian units, whose statistics are not
bounded by 1; 0.01 for PCD), momentum 0.5 for the first 5 epochs then 0.9 (§9: the early, large gradients
would otherwise build up a large velocity), weight decay 0.0002 on W only (§10: biases are
not penalised; it keeps the weights small so the chain mixes), CD-1.

Monitored per epoch (the guide's §5–6), in the History:

- ``recon_error``: the mean over the epoch's batches of the reconstruction error each CD
  step returned; ``val_recon_error`` the same on the validation data at the end of the epoch.
- ``free_energy_gap``: mean F(v) on the validation data minus mean F(v) on a fixed subset of
  the training data of the same size (§6: the log-likelihood ratio of the two sets up to the
  unknown log Z; a gap that keeps growing means overfitting).
- ``pll`` / ``val_pll``: mean pseudo-log-likelihood (exact) when the data are binary.
- ``log_likelihood`` / ``val_log_likelihood``: the exact mean log-likelihood when a
  bernoulli layer has at most ``exact_max_units`` units.
- ``lr``, ``momentum``.
"""
from __future__ import annotations

import json
import os

import numpy

from .. import backend
from .._checks import check_positive_int
from ..fsutil import atomic_write_bytes
from ..optim import SGD
from ..training import checkpoint as ckpt
from ..training import progress
from ..training.callbacks import History
from ..training.faults import SignalFlag, TrainingDiverged, TrainingInterrupted
from .cd import PersistentChain, contrastive_divergence
from .exact import log_likelihood, pseudo_log_likelihood
from .machine import RBM

CHECKPOINT_KIND = "handgrad-rbm-checkpoint"
_PLL_BUDGET = 1 << 26  # rows × V × H of the per-epoch pseudo-likelihood (a fraction of a second)


def default_lr(r: RBM, persistent: bool = False) -> float:
    """0.1, or 0.001 when a layer is gaussian (the 2006 code's rates); 0.01 for PCD, whose
    chains stop tracking the model when the weights move fast (Tieleman 2008 used small,
    decaying rates; with 0.1 and momentum 0.9 the reconstruction error jumps on Fashion-MNIST)."""
    if "gaussian" in (r.visible, r.hidden):
        return 0.001
    return 0.01 if persistent else 0.1


def _binary(x) -> bool:
    return bool(numpy.all((x == 0) | (x == 1)))


def _monitor(r: RBM, train_sub, val, logs: dict, exact_max_units: int, rng) -> None:
    """Add the end-of-epoch monitors to ``logs`` (evaluated on fixed subsets)."""
    f_train = float(r.free_energy(train_sub).mean())
    if val is not None:
        logs["val_recon_error"] = r.reconstruction_error(val, rng)
        logs["free_energy_gap"] = float(r.free_energy(val).mean()) - f_train
    sets = [("", train_sub)] + ([("val_", val)] if val is not None else [])
    if r.visible == "bernoulli" and all(_binary(backend.to_numpy(s)) for _, s in sets):
        for prefix, s in sets:
            rows = max(1, min(s.shape[0], _PLL_BUDGET // (r.n_visible * r.n_hidden)))
            logs[prefix + "pll"] = float(pseudo_log_likelihood(r, s[:rows]).mean())
    small = [n for kind, n in ((r.visible, r.n_visible), (r.hidden, r.n_hidden)) if kind == "bernoulli"]
    binary_ok = r.visible == "gaussian" or all(_binary(backend.to_numpy(s)) for _, s in sets)
    if min(small) <= exact_max_units and binary_ok:
        for prefix, s in sets:
            logs[prefix + "log_likelihood"] = float(log_likelihood(r, s).mean())


def train_rbm(r: RBM, x, epochs: int = 10, batch_size: int = 100, lr: float | None = None, k: int = 1,
              persistent: bool = False, n_chains: int | None = None, momentum=(0.5, 0.9),
              momentum_switch: int = 5, weight_decay: float = 2e-4, mean_visible: bool = False,
              validation_data=None, monitor_size: int = 1000, exact_max_units: int = 16, seed: int = 0,
              progress_bar: bool | None = None, checkpoint_dir: str | None = None,
              resume_from: str | None = None, keep_checkpoints: int = 3, handle_signals: bool = True,
              init_visible_bias: bool = True, lr_decay: bool | None = None, desc: str = "rbm") -> History:
    """Train ``r`` on ``x`` ``(N, V)`` by CD-k (PCD-k with ``persistent=True``, ``n_chains``
    persistent chains, default ``batch_size``) and SGD; returns the ``History``.

    Each epoch visits the training set in a seeded random order, in mini-batches; every batch
    runs ``contrastive_divergence`` and one ``SGD(r, lr, momentum, weight_decay)`` step. The
    momentum is ``momentum[0]`` for the first ``momentum_switch`` epochs, then ``momentum[1]``
    (the optimizer's velocity is kept across the switch). ``validation_data`` ``(M, V)``
    feeds the monitors of the module docstring. ``seed`` fixes the order, the Gibbs draws and
    the persistent chains' start. ``init_visible_bias`` sets b_v from the data first (only on
    a fresh run). ``lr_decay`` (default: on for PCD only) lowers the rate linearly to 0 over
    the run, epoch by epoch, as Tieleman 2008 did for PCD: its chains track the model only
    while the weights move slowly. ``checkpoint_dir`` gets a checkpoint at the end of every epoch (and on
    Ctrl-C/SIGTERM, after the step in progress, raising ``TrainingInterrupted``);
    ``resume_from`` (a checkpoint file or folder) continues such a run with the same
    arguments to the same weights, bit for bit. NaN/Inf parameters raise ``TrainingDiverged``.
    """
    where = "train_rbm"
    if not isinstance(r, RBM):
        raise TypeError(f"{where}: expected an RBM, got {type(r).__name__}")
    x = r._check(x, "visible", where)
    epochs = check_positive_int(epochs, where, "epochs")
    batch_size = check_positive_int(batch_size, where, "batch_size")
    k = check_positive_int(k, where, "k")
    if not (isinstance(momentum, (tuple, list)) and len(momentum) == 2):
        raise ValueError(f"{where}: expected momentum to be a pair (initial, final), got {momentum!r}")
    if persistent and mean_visible:
        raise ValueError(f"{where}: mean_visible=True cannot be combined with persistent=True")
    val = None
    if validation_data is not None:
        val = r._check(validation_data, "visible", where)
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"{where}: expected at least one training row, got shape {tuple(x.shape)}")
    lr = default_lr(r, persistent) if lr is None else lr
    opt = SGD(r, lr, momentum=momentum[0], weight_decay=weight_decay)
    decay = bool(persistent) if lr_decay is None else bool(lr_decay)
    shuffle_rng = numpy.random.default_rng([seed, 0])
    sample_rng = numpy.random.default_rng([seed, 1])
    monitor_rng_seed = [seed, 2]
    sub_n = min(n, monitor_size, val.shape[0] if val is not None else n)
    train_sub = x[numpy.random.default_rng([seed, 3]).permutation(n)[:sub_n]]  # fixed for the run
    val_sub = val[:monitor_size] if val is not None else None
    chain = PersistentChain(r, n_chains or batch_size, numpy.random.default_rng([seed, 4])) if persistent else None
    history = History()
    history.on_train_begin()
    start_epoch, start_batch, sums = 0, 0, {"error": 0.0, "batches": 0}
    epoch_state = ckpt.rng_state(shuffle_rng)
    if resume_from is not None:
        start_epoch, start_batch, sums, epoch_state = _resume(r, opt, chain, history, sample_rng, resume_from,
                                                              {"n": n, "batch_size": batch_size, "seed": seed})
    elif init_visible_bias:
        r.init_visible_bias(x)
    steps = -(-n // batch_size)
    show = progress.enabled() if progress_bar is None else progress_bar
    meta = {"n": n, "batch_size": batch_size, "seed": seed}
    with SignalFlag(handle_signals) as flag:
        for epoch in range(start_epoch, epochs):
            opt.momentum = momentum[0] if epoch < momentum_switch else momentum[1]
            if decay:
                opt.lr = lr * (1.0 - epoch / epochs)
            if epoch != start_epoch or resume_from is None:
                epoch_state = ckpt.rng_state(shuffle_rng)
            ckpt.set_rng_state(shuffle_rng, epoch_state)
            order = shuffle_rng.permutation(n)
            first = start_batch if epoch == start_epoch else 0
            if epoch != start_epoch:
                sums = {"error": 0.0, "batches": 0}
            bar = progress.bar(steps, f"{desc} epoch {epoch + 1}/{epochs}") if show else progress._Null()
            bar.update(first)
            for b in range(first, steps):
                xb = x[order[b * batch_size:(b + 1) * batch_size]]
                err = contrastive_divergence(r, xb, k=k, rng=sample_rng, persistent=chain, mean_visible=mean_visible)
                opt.step()
                sums["error"] += err
                sums["batches"] += 1
                bar.update(1)
                if flag.raised is not None:
                    bar.close()
                    pos = {"epoch": epoch, "batch": b + 1, "sums": sums, "epoch_rng": epoch_state}
                    path = _save(checkpoint_dir, r, opt, chain, history, sample_rng, pos, meta, keep_checkpoints)
                    raise TrainingInterrupted(f"{where}: interrupted by signal {flag.raised} in epoch {epoch + 1}"
                                              + (f"; checkpoint {path}" if path else ""), path, history)
            bar.close()
            if not all(bool(numpy.isfinite(backend.to_numpy(p)).all()) for p in r.params.values()):
                raise TrainingDiverged(f"{where}: parameters became NaN/Inf in epoch {epoch + 1} "
                                       f"(lower lr={opt.lr})", history)
            logs = {"recon_error": sums["error"] / max(1, sums["batches"]), "lr": opt.lr, "momentum": opt.momentum}
            _monitor(r, train_sub, val_sub, logs, exact_max_units, numpy.random.default_rng(monitor_rng_seed))
            history.on_epoch_end(epoch, logs)
            if checkpoint_dir is not None:
                pos = {"epoch": epoch + 1, "batch": 0, "sums": {"error": 0.0, "batches": 0},
                       "epoch_rng": ckpt.rng_state(shuffle_rng)}
                _save(checkpoint_dir, r, opt, chain, history, sample_rng, pos, meta, keep_checkpoints)
    return history


def _save(folder, r, opt, chain, history, sample_rng, pos, meta, keep) -> str | None:
    """One safetensors file: parameters, velocities, persistent state; run state as JSON."""
    if folder is None:
        return None
    from safetensors.numpy import save as st_save

    os.makedirs(folder, exist_ok=True)
    tensors = {f"params.{k}": numpy.ascontiguousarray(backend.to_numpy(p)) for k, p in r.params.items()}
    for (_, name), slots in opt.state.items():
        for slot, arr in slots.items():
            tensors[f"optim.{name}.{slot}"] = numpy.ascontiguousarray(backend.to_numpy(arr))
    if chain is not None:
        tensors["chain.state"] = numpy.ascontiguousarray(backend.to_numpy(chain.state))
    step = pos["epoch"] * 10**6 + pos["batch"]
    state = {"pos": pos, "meta": meta, "config": r.get_config(), "history": history.history,
             "epochs_done": history.epoch, "opt": {"lr": opt.lr, "steps": opt.steps, "momentum": opt.momentum},
             "sample_rng": ckpt.rng_state(sample_rng)}
    path = ckpt.checkpoint_path(folder, step)
    atomic_write_bytes(path, st_save(tensors, metadata={CHECKPOINT_KIND: "1", "state": json.dumps(state)}))
    for old in ckpt.list_checkpoints(folder)[:-keep]:
        try:
            os.unlink(old)
        except OSError:
            pass
    return path


def _metadata(data: bytes, where: str) -> dict:
    """The ``__metadata__`` of a safetensors file's JSON header (ValueError when malformed)."""
    if len(data) < 8:
        raise ValueError(f"{where}: not a checkpoint ({len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if 8 + n > len(data):
        raise ValueError(f"{where}: not a checkpoint (header length {n} exceeds the file)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}: malformed checkpoint header ({exc})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _resume(r, opt, chain, history, sample_rng, resume_from, meta):
    """Load the latest checkpoint into ``r``, ``opt``, ``chain``; everything is validated first."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    path = ckpt.latest(resume_from)
    where = f"train_rbm(resume_from={path!r})"
    with open(path, "rb") as fh:
        data = fh.read()
    m = _metadata(data, where)
    if not isinstance(m, dict) or m.get(CHECKPOINT_KIND) != "1":
        raise ValueError(f"{where}: not an RBM training checkpoint")
    try:
        tensors = st_load(data)
        state = json.loads(m["state"])
        pos, sums = state["pos"], state["pos"]["sums"]
        ok = (state["meta"] == meta and state["config"] == r.get_config() and isinstance(pos["epoch"], int)
              and isinstance(pos["batch"], int) and isinstance(sums["error"], (int, float)))
    except (SafetensorError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{where}: malformed checkpoint ({exc})") from None
    if not ok:
        raise ValueError(f"{where}: the checkpoint was written for another RBM or other data/batch size/seed")
    for key, p in r.params.items():
        arr = tensors.get(f"params.{key}")
        if arr is None or arr.shape != p.shape or arr.dtype != p.dtype or not numpy.isfinite(arr).all():
            raise ValueError(f"{where}: parameter {key} is missing, malformed or non-finite in the checkpoint")
    if chain is not None and tensors.get("chain.state", numpy.empty(0)).shape != chain.state.shape:
        raise ValueError(f"{where}: the persistent chain's state is missing or has the wrong shape")
    ckpt.set_rng_state(sample_rng, state["sample_rng"], where)
    for key, p in r.params.items():
        p[...] = tensors[f"params.{key}"]
    slots = {}
    for key, arr in tensors.items():
        if key.startswith("optim."):
            _, name, slot = key.split(".", 2)
            slots.setdefault(f"0.{name}", {})[slot] = arr
    opt.load_state_dict({"lr": state["opt"]["lr"], "steps": state["opt"]["steps"], "state": slots})
    if chain is not None:
        chain.state = backend.asarray(tensors["chain.state"], xp=backend.array_module(r.params["W"]))
    history.history = {key: list(v) for key, v in state["history"].items()}
    history.epoch = list(state["epochs_done"])
    return pos["epoch"], pos["batch"], dict(sums), pos["epoch_rng"]
