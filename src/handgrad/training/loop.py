"""The training loop: mini-batch gradient descent (``003`` §2–4) with checkpoints, exact resume,
signal handling, a divergence guard and optional data-parallel steps."""
from __future__ import annotations

import math
import os
import warnings
from typing import Callable, Sequence

import numpy

from .. import backend
from . import progress
from .. import metrics as M
from .._checks import check_positive_int, check_probability
from .callbacks import Callback, CallbackList, History
from .evaluation import _as_numpy_data, _class_labels, cross_validate, evaluate  # noqa: F401 (re-exported)
from .faults import TrainingDiverged, TrainingInterrupted, _SignalFlag  # noqa: F401 (re-exported)
from ..losses import Loss
from ..optim.base import global_grad_norm


def _split_validation(x, y, fraction, rng):
    fraction = check_probability(fraction, "fit", "validation_split")
    n_val = int(round(x.shape[0] * fraction))
    if fraction > 0 and (n_val < 1 or n_val >= x.shape[0]):
        raise ValueError(f"fit: validation_split={fraction} leaves no training or no validation "
                         f"samples out of {x.shape[0]}")
    perm = rng.permutation(x.shape[0])
    val, train = perm[:n_val], perm[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def _check_labels_fit_output(model, xb, y, labels) -> None:
    """Integer labels must index the model's output classes: checked on the whole training set
    at the first step (not batch by batch, after earlier updates)."""
    with model.stateless():
        width = model.forward(xb[:1], training=False).shape[-1]
    lo, hi = int(y.min()), int(y.max())
    if lo < -1 or hi >= width:
        raise ValueError(f"fit: class labels must be in [0, {width - 1}] (or -1 for padding) for a model with "
                         f"{width} outputs, got labels in [{lo}, {hi}]")


def all_finite_params(model) -> bool:
    return all(bool(backend.array_module(p).isfinite(p).all()) for _, p in model.parameters())


def fit(model, loss: Loss, optimizer, x, y, epochs: int = 1, batch_size: int = 32,
        validation_data=None, validation_split: float = 0.0, callbacks: Sequence[Callback] = (),
        seed: int = 0, shuffle: bool = True, metrics: Sequence[str] = ("accuracy",),
        progress_bar: bool | None = None, augment: Callable | None = None,
        checkpoint_dir: str | None = None, checkpoint_every: int = 0, keep_checkpoints: int = 3,
        resume_from: str | None = None, on_nonfinite: str = "raise",
        handle_signals: bool = True, workers: int = 1) -> History:
    """Train ``model`` by mini-batch gradient descent and return its ``History``.

    Each epoch shuffles the training set (seeded), splits it into mini-batches, and for each
    batch runs forward (training mode), the loss, backward and ``optimizer.step()`` — the
    stochastic gradient descent of ``003`` §2. Then the model is evaluated on the validation
    data (``validation_data=(x_val, y_val)``, or a seeded ``validation_split`` fraction held
    out of ``x``), callbacks see the epoch's logs, and the History records them.

    Logs per epoch: ``loss`` and ``accuracy`` (running means over the epoch's batches, as the
    model changed during it), ``val_loss``/``val_accuracy`` (the model at the end of the
    epoch) and ``lr``. ``seed`` fixes shuffling, the validation split, dropout masks and every
    other random draw of the run. Data may be NumPy arrays whatever the device; it is moved to
    the model's device one batch at a time. The progress bar appears only on a terminal
    (``progress_bar=None``) and never in CI or when output is piped.

    ``augment(x_batch, rng) -> x_batch`` transforms each training batch on the fly (data
    expansion, ``003`` §4; e.g. ``hg.data.RandomAffine``), with a generator derived from
    ``seed``; validation data is never augmented.

    Surviving faults:

    - ``checkpoint_dir``: write a checkpoint (weights, optimizer state, position, random
      states, history) there at the end of every epoch and, with ``checkpoint_every=k``, every
      k steps; the newest ``keep_checkpoints`` are kept. ``resume_from`` (a checkpoint file or
      folder) continues such a run exactly: called with the same arguments, an interrupted and
      resumed run ends with the same weights, bit for bit, as an uninterrupted one.
    - Ctrl-C or SIGTERM (``handle_signals``): the current step finishes, a checkpoint is written
      (with ``checkpoint_dir``) and ``TrainingInterrupted`` is raised saying how to resume.
    - ``on_nonfinite``: when the loss or the gradient holds NaN/Inf the update is never
      applied, so the weights stay the last good ones; ``"raise"`` (default) raises
      ``TrainingDiverged`` naming the step and suggesting a lower learning rate, ``"stop"``
      ends training with a warning, ``"skip"`` drops that batch and goes on (counted in the
      ``skipped_steps`` log).

    ``workers=k`` (k > 1) splits every mini-batch into k parts computed in k threads on replicas
    that share the parameters (``handgrad.training.parallel``; needs ``threadpoolctl``): the same mini-batch
    gradient up to the order of floating-point additions, faster on a multi-core CPU.
    """
    where = "fit"
    epochs = check_positive_int(epochs, where, "epochs")
    batch_size = check_positive_int(batch_size, where, "batch_size")
    if not isinstance(loss, Loss):
        raise TypeError(f"fit: expected loss to be a handgrad Loss, got {type(loss).__name__}")
    if not isinstance(shuffle, bool):
        raise TypeError(f"fit: expected shuffle to be a bool, got {shuffle!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"fit: expected seed to be an int >= 0, got {seed!r}")
    if on_nonfinite not in ("raise", "stop", "skip"):
        raise ValueError(f"fit: expected on_nonfinite 'raise', 'stop' or 'skip', got {on_nonfinite!r}")
    if checkpoint_every and (isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int)
                             or checkpoint_every < 0):
        raise ValueError(f"fit: expected checkpoint_every to be an int >= 0, got {checkpoint_every!r}")
    if checkpoint_every and not checkpoint_dir:
        raise ValueError("fit: checkpoint_every needs checkpoint_dir")
    if isinstance(keep_checkpoints, bool) or not isinstance(keep_checkpoints, int) or keep_checkpoints < 1:
        raise ValueError(f"fit: expected keep_checkpoints to be an int >= 1, got {keep_checkpoints!r}")
    if checkpoint_dir is not None and os.path.exists(checkpoint_dir) and not os.path.isdir(checkpoint_dir):
        raise ValueError(f"fit: checkpoint_dir {checkpoint_dir!r} exists and is not a folder")
    names = [n for n in M.parse(metrics) if n != "per_class_accuracy"]
    x, y = _as_numpy_data(x, y, where)
    seed_seq = numpy.random.SeedSequence(seed)
    split_ss, shuffle_ss, layer_ss, augment_ss = seed_seq.spawn(4)
    if augment is not None and not callable(augment):
        raise TypeError(f"fit: expected augment to be callable (x_batch, rng) -> x_batch, got {type(augment).__name__}")
    augment_rng = numpy.random.default_rng(augment_ss)
    if validation_data is not None and validation_split:
        raise ValueError("fit: give validation_data or validation_split, not both")
    if validation_data is None and validation_split:
        (x, y), validation_data = _split_validation(x, y, validation_split, numpy.random.default_rng(split_ss))
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("fit: expected validation_data to be a pair (x_val, y_val)")
        xv, yv = _as_numpy_data(*validation_data, "fit (validation_data)")
        free = 2 if x.ndim == 3 else 1  # sequences (N, T, F) may differ in length T
        if xv.ndim != x.ndim or xv.shape[free:] != x.shape[free:]:
            raise ValueError(f"fit: validation x has sample shape {xv.shape[1:]}, training x has {x.shape[1:]}")
    labels = _class_labels(y)
    rng = numpy.random.default_rng(shuffle_ss)
    workers = check_positive_int(workers, where, "workers")
    dp = None
    if workers > 1:
        from . import parallel

        if not parallel.available():
            warnings.warn("fit: workers > 1 needs threadpoolctl (pip install threadpoolctl); training with one",
                          RuntimeWarning, stacklevel=2)
        else:
            dp = parallel.DataParallel(model, loss, workers)
    all_layers = [layer for m in (dp.models if dp else [model]) for layer in m.layers]
    stochastic = [layer for layer in all_layers if layer.stochastic]
    for layer, ss in zip(all_layers, layer_ss.spawn(len(all_layers))):
        if layer.stochastic:
            layer.set_rng(numpy.random.default_rng(ss))

    xp, dtype = model.xp, model.dtype
    # Convert the data to the model's dtype once, not per batch.
    x = x.astype(dtype, copy=False)
    y_dev = y.astype(dtype, copy=False) if y.dtype.kind == "f" else y.astype(numpy.int64, copy=False)
    history = History()
    cbs = CallbackList([history, *callbacks], model)
    model.stop_training = False
    n = x.shape[0]
    steps = math.ceil(n / batch_size)
    show = progress.enabled() if progress_bar is None else progress_bar

    # position in the run, and the running sums of the epoch in progress
    pos = {"epoch": 0, "batch": 0, "step": 0, "skipped": 0,
           "sums": {"loss": 0.0, "seen": 0, "items": 0, "correct": {k: 0 for k in names}}}
    resumed = None
    if resume_from is not None:
        from . import checkpoint as ck

        path = ck.latest(resume_from)
        where_r = f"fit(resume_from={path!r})"
        tensors, opt_meta, resumed = ck.load_checkpoint(path)
        if resumed["fit"] != {"epochs": epochs, "batch_size": batch_size, "seed": seed, "n": n}:
            raise ValueError(f"fit: checkpoint {path!r} was written by a run with {resumed['fit']}, not "
                             f"epochs={epochs}, batch_size={batch_size}, seed={seed}, n={n}")
        if len(resumed["rng"]["layers"]) != len(stochastic):
            raise ValueError(f"{where_r}: the checkpoint has {len(resumed['rng']['layers'])} stochastic layers' "
                             f"generator states, the model {len(stochastic)}")
        # generator states first (checked by NumPy), then weights and optimizer (checked first)
        probe = numpy.random.default_rng()
        for st in [resumed["rng"]["epoch_start"], resumed["rng"]["augment"], *resumed["rng"]["layers"]]:
            ck.set_rng_state(probe, st, where_r)
        ck.restore(model, optimizer, tensors, opt_meta, where_r, resumed.get("architecture"))
        pos = resumed["pos"]
        ck.set_rng_state(augment_rng, resumed["rng"]["augment"], where_r)
        for layer, st in zip(stochastic, resumed["rng"]["layers"]):
            ck.set_rng_state(layer.rng, st, where_r)

    def write_checkpoint(epoch_start_state) -> str:
        from . import checkpoint as ck

        state = {"fit": {"epochs": epochs, "batch_size": batch_size, "seed": seed, "n": n},  # noqa: E501
                 "pos": pos, "history": history.history, "history_epochs": history.epoch,
                 "rng": {"epoch_start": epoch_start_state, "augment": ck.rng_state(augment_rng),
                         "layers": [ck.rng_state(layer.rng) for layer in stochastic]}}
        return ck.save_checkpoint(checkpoint_dir, model, optimizer, state, keep_checkpoints)

    def nonfinite(value) -> str | None:
        if not math.isfinite(value):
            return f"the loss is {value}"
        norm = global_grad_norm(model)
        return None if math.isfinite(norm) else "a gradient holds NaN or Inf"

    labels_unchecked = y_dev.dtype.kind in "iu"
    cbs.on_train_begin({})
    if resumed is not None:
        history.history = {k: list(v) for k, v in resumed["history"].items()}
        history.epoch = list(resumed["history_epochs"])
    try:
        with _SignalFlag(handle_signals) as flag:
            first_epoch = pos["epoch"]
            for epoch in range(first_epoch, epochs):
                if resumed is not None and epoch == first_epoch:
                    rng.bit_generator.state = resumed["rng"]["epoch_start"]
                epoch_start_state = rng.bit_generator.state
                if pos["batch"] == 0:
                    pos["sums"] = {"loss": 0.0, "seen": 0, "items": 0, "correct": {k: 0 for k in names}}
                sums = pos["sums"]
                if pos["batch"] == 0:
                    model.reset_states()  # truncated BPTT: every epoch starts from zero states
                good_weights = model.get_weights()  # fallback if an update itself overflows
                skipped_before = pos["skipped"]
                cbs.on_epoch_begin(epoch, {})
                order = rng.permutation(n) if shuffle else numpy.arange(n)
                bar = progress.bar(steps, f"epoch {epoch + 1}/{epochs}") if show else progress._Null()
                bar.update(pos["batch"])
                try:
                    for b in range(pos["batch"], steps):
                        idx = order[b * batch_size:(b + 1) * batch_size]
                        if shuffle:
                            idx = numpy.sort(idx)  # same batch, friendlier memory access
                        xb = x[idx]
                        if augment is not None:
                            xb = augment(xb, augment_rng)
                        xb = backend.asarray(xb, dtype=dtype, xp=xp)
                        yb = backend.asarray(y_dev[idx], xp=xp)
                        cbs.on_batch_begin(b, {})
                        if labels_unchecked:  # class labels vs the model's output width, before any update
                            labels_unchecked = False
                            _check_labels_fit_output(model, xb, y_dev, labels)
                        if dp is None:
                            out = model.forward(xb, training=True)
                            value = loss.forward(out, yb)
                            model.backward(loss.backward(), input_grad=False)
                            outs, spans = [out], [(0, xb.shape[0])]
                        else:
                            value, outs, spans = dp.step(xb, yb)
                        bad = nonfinite(value)
                        pos["batch"], pos["step"] = b + 1, pos["step"] + 1
                        if bad is not None:
                            restored = ""
                            if not all_finite_params(model):  # an earlier update overflowed the weights
                                model.set_weights(good_weights)
                                restored = f" (restored from the start of epoch {epoch + 1})"
                            message = (f"fit: {bad} at epoch {epoch + 1}, batch {b + 1} (step {pos['step']}); "
                                       f"the update was not applied, so the weights are the last good ones"
                                       f"{restored}. Try a lower learning rate (now {optimizer.lr:g}) or gradient "
                                       f"clipping (clip_norm=...).")
                            if on_nonfinite == "skip":
                                pos["skipped"] += 1
                                cbs.on_batch_end(b, {"loss": value})
                                bar.update(1)
                                if model.stop_training:
                                    break
                                continue
                            if on_nonfinite == "stop":
                                warnings.warn(message, RuntimeWarning, stacklevel=2)
                                model.stop_training = True
                                break
                            raise TrainingDiverged(message, history)
                        optimizer.step()
                        m = xb.shape[0]
                        sums["loss"] += value * m
                        sums["seen"] += m
                        if labels is not None:
                            lb = backend.asarray(labels[idx], xp=xp)
                            sums["items"] += M.count(lb)
                            for out, (a, b_) in zip(outs, spans):
                                for k in names:
                                    topk = M.topk_of(k)
                                    sums["correct"][k] += (M.correct(out, lb[a:b_]) if topk is None
                                                           else M.top_k_correct(out, lb[a:b_], topk))
                        cbs.on_batch_end(b, {"loss": value})
                        bar.update(1)
                        if b % 20 == 0:
                            bar.set_postfix_str(f"loss {sums['loss'] / max(1, sums['seen']):.4f}")
                        if checkpoint_every and pos["step"] % checkpoint_every == 0 and b + 1 < steps:
                            write_checkpoint(epoch_start_state)
                        if flag.raised is not None:
                            saved = write_checkpoint(epoch_start_state) if checkpoint_dir else None
                            how = (f"resume with fit(..., resume_from={checkpoint_dir!r}) or "
                                   f"`handgrad train --resume RUN_DIR`" if saved else
                                   "no checkpoint was written (pass checkpoint_dir= to fit to make one)")
                            raise TrainingInterrupted(
                                f"training interrupted at epoch {epoch + 1}, batch {b + 1} (step {pos['step']}); "
                                f"{how}", saved, history)
                finally:
                    bar.close()
                if model.stop_training and sums["seen"] == 0:
                    break
                logs = {"loss": sums["loss"] / max(1, sums["seen"])}
                if labels is not None:
                    for k in names:
                        logs[k] = sums["correct"][k] / max(1, sums["items"])
                if validation_data is not None:
                    res = evaluate(model, loss, xv, yv, batch_size=max(batch_size, 1024), metrics=names)
                    logs.update({f"val_{k}": v for k, v in res.items()})
                logs["lr"] = optimizer.lr
                if on_nonfinite == "skip":
                    logs["skipped_steps"] = pos["skipped"] - skipped_before  # in this epoch
                cbs.on_epoch_end(epoch, logs)
                pos["epoch"], pos["batch"] = epoch + 1, 0
                saved = write_checkpoint(rng.bit_generator.state) if checkpoint_dir else None
                if flag.raised is not None:  # a signal during validation or the callbacks
                    how = (f"resume with fit(..., resume_from={checkpoint_dir!r}) or `handgrad train --resume "
                           f"RUN_DIR`" if saved else "no checkpoint was written (pass checkpoint_dir= to fit)")
                    raise TrainingInterrupted(f"training interrupted after epoch {epoch + 1} (step {pos['step']}); "
                                              f"{how}", saved, history)
                if model.stop_training:
                    break
    finally:
        if dp is not None:
            dp.close()
        cbs.on_train_end({})
    return history


