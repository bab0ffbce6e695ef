"""Data sets and evaluations behind the presets: what ``handgrad train PRESET`` trains on and
how it reports the result.

Each task loads ``(train, validation, test)`` pairs of ``(x, y)`` arrays — the validation
pair held out of the training data (``003`` §4: training data to learn, validation data to
choose, test data touched once, at the end), None when ``val_split`` is 0 — and evaluates a
trained model on the test pair with the measure its literature uses: test accuracy for
Fashion-MNIST, the 1997 all-steps criterion for the embedded Reber grammar, the (unhalved)
MSE against the 0.167 baseline for the adding problem, and per-character cross-entropy for
the character model. Every report names its test numbers ``test_*``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy

from . import data
from . import functional as F
from .training.evaluation import evaluate


@dataclass(frozen=True)
class DataOptions:
    """What a task's data depends on (the command line fills it; see ``cli.common``)."""
    seed: int = 0
    val_split: float = 0.0       # fraction of the training data held out for validation
    subset: bool = False         # fashion: the subset shipped with handgrad
    data: str | None = None      # fashion: folder of the IDX files
    samples: int | None = None   # reber/adding: training sequences
    length: int | None = None    # adding: sequence length T
    text: str | None = None      # charlm: text file
    max_chars: int | None = None
    batch_size: int | None = None  # charlm: the streams of truncated BPTT


@dataclass
class Task:
    name: str
    load: Callable  # (DataOptions, preset) -> ((x, y), (x_val, y_val) or None, (x_test, y_test), extra)
    report: Callable  # (model, loss, test, extra) -> dict of named results
    fit_options: dict


def _hold_out(train, opts: DataOptions, stratify: bool = False):
    """``(train, val)``: a seeded ``opts.val_split`` of the training pair (val None at 0)."""
    if not opts.val_split:
        return train, None
    return data.train_val_split(*train, opts.val_split, seed=opts.seed, stratify=stratify)


def _fashion_load(opts: DataOptions, preset):
    if opts.subset:
        (xtr, ytr), (xte, yte) = data.load_fashion_mnist_subset()
    else:
        (xtr, ytr), (xte, yte) = data.load_fashion_mnist(opts.data)
    shape = preset.input_shape
    flat = len(shape) == 1
    xtr, xte = data.to_float(xtr, flatten=flat), data.to_float(xte, flatten=flat)
    if not flat:
        xtr, xte = xtr.reshape((-1, *shape)), xte.reshape((-1, *shape))
    train, val = _hold_out((xtr, ytr), opts, stratify=True)
    return train, val, (xte, yte), {}


def _fashion_report(model, loss, test, extra):
    res = evaluate(model, loss, *test, metrics=("accuracy", "per_class_accuracy"))
    return {"test_loss": res["loss"], "test_accuracy": res["accuracy"],
            "per_class_accuracy": dict(zip(data.CLASSES, res["per_class_accuracy"])),
            "summary": f"test accuracy {res['accuracy'] * 100:.2f}%   test loss {res['loss']:.4f}"}


def _reber_load(opts: DataOptions, preset):
    n = opts.samples or 4000
    train = data.embedded_reber(n, numpy.random.default_rng(opts.seed))
    test = data.embedded_reber(1000, numpy.random.default_rng(opts.seed + 10_000))
    train, val = _hold_out((train.x, train.targets), opts)
    return train, val, (test.x, test.targets), {"test_lengths": test.lengths}


def _reber_report(model, loss, test, extra):
    logits = model.predict(test[0])
    strings, steps = data.reber_accuracy(F.sigmoid(logits), test[1], extra["test_lengths"])
    return {"test_loss": evaluate(model, loss, *test, metrics=())["loss"], "string_accuracy": strings,
            "step_accuracy": steps, "test_string_accuracy": strings, "test_step_accuracy": steps,
            "summary": f"held-out embedded Reber strings predicted entirely right: {strings * 100:.1f}% "
                       f"(per step {steps * 100:.2f}%)"}


def _adding_load(opts: DataOptions, preset):
    T = opts.length or 100
    n = opts.samples or 20_000
    train = data.adding_problem(n, T, numpy.random.default_rng(opts.seed))
    test = data.adding_problem(2000, T, numpy.random.default_rng(opts.seed + 10_000))
    train, val = _hold_out(train, opts)
    return train, val, test, {"T": T}


def _adding_report(model, loss, test, extra):
    pred = model.predict(test[0])
    mse = float(((pred - test[1]) ** 2).mean())
    baseline = data.adding_baseline(test[1])["mse"]
    return {"test_loss": evaluate(model, loss, *test, metrics=())["loss"], "test_mse": mse, "baseline_mse": baseline,
            "T": extra["T"],
            "summary": f"adding problem T={extra['T']}: test MSE {mse:.4f} (always answering 1.0 gives "
                       f"{baseline:.3f})"}


def _charlm_load(opts: DataOptions, preset):
    corpus = data.CharCorpus.from_file(opts.text, max_chars=opts.max_chars or 400_000)
    cut = int(len(corpus.data) * 0.9)
    # text is held out in contiguous pieces (random windows would overlap the training streams):
    # the last 10% is the test text, the validation text the val_split end of the rest
    val_cut = cut - int(round(cut * opts.val_split)) if opts.val_split else cut
    piece = lambda a, b: data.CharCorpus(corpus.decode(corpus.data[a:b]), vocab=corpus.chars)
    batch = opts.batch_size or preset.defaults["batch_size"]
    seq = 50
    # lay the streams out so that consecutive batches continue each stream (truncated BPTT)
    xs, ys = zip(*piece(0, val_cut).batches_for_truncated_bptt(batch, seq))
    x, y = numpy.concatenate(xs), numpy.concatenate(ys)
    val = piece(val_cut, cut).windows(seq) if val_cut < cut else None
    return (x, y), val, piece(cut, None).windows(seq), {"corpus": corpus, "vocab_size": corpus.vocab_size}


def _charlm_report(model, loss, test, extra):
    for layer in model.layers:
        if hasattr(layer, "reset_state"):
            layer.reset_state()
    stateful = [layer for layer in model.layers if getattr(layer, "stateful", False)]
    for layer in stateful:  # evaluate independent windows
        layer.stateful = False
    try:
        res = evaluate(model, loss, *test, metrics=("accuracy",))
        sample = data.sample_text(model, extra["corpus"], "the", 200, temperature=0.8,
                                  rng=numpy.random.default_rng(0))
    finally:
        for layer in stateful:
            layer.stateful = True
            layer.reset_state()
    bpc = res["loss"] / math.log(2)
    return {"test_loss": res["loss"], "bits_per_char": bpc, "test_accuracy": res["accuracy"], "sample": sample,
            "summary": f"held-out text: {bpc:.3f} bits per character, next-character accuracy "
                       f"{res['accuracy'] * 100:.1f}%\nsample: {sample!r}"}


TASKS = {
    "fashion": Task("fashion", _fashion_load, _fashion_report, {}),
    "reber": Task("reber", _reber_load, _reber_report, {}),
    "adding": Task("adding", _adding_load, _adding_report, {}),
    "charlm": Task("charlm", _charlm_load, _charlm_report, {"shuffle": False}),
}
