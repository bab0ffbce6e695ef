"""Checkpoints and exact resume: ``fit(checkpoint_dir=..., checkpoint_every=..., keep_checkpoints=...,
resume_from=...)``.

The contract under test (``fit``'s docstring, ``handgrad.checkpoint``): a run that is interrupted
-- by an exception from a callback, by ``kill -9``, by a crash while a checkpoint is being
written -- and then resumed with the same arguments ends with weights bit-identical to an
uninterrupted run, and with an identical ``History``. Checkpoints are single safetensors files
named ``ckpt-{step:010d}.safetensors`` that ``hg.load`` also opens as models; at most
``keep_checkpoints`` are kept; a damaged checkpoint or one from a different run or model raises
``ValueError``; a folder without checkpoints raises ``FileNotFoundError``.
"""
from __future__ import annotations

import glob
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import handgrad as hg
from handgrad.training import checkpoint as ck
from handgrad import layers as L
from handgrad import losses, optim

# ----------------------------------------------------------------------------------------
# the run under test: MLP with dropout, Adam, RandomAffine augmentation, validation_split and a
# cosine schedule -- every source of state that a resume has to restore
# ----------------------------------------------------------------------------------------
EPOCHS, BATCH, SEED, EVERY = 4, 32, 3, 2
N_SAMPLES = 200            # 160 training samples after validation_split=0.2 -> 5 steps per epoch
STEPS_PER_EPOCH = 5
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH
NAME = re.compile(r"^ckpt-(\d{10})\.safetensors$")


class Crash(Exception):
    """Raised by ``Interrupter``: stands for a crash in the middle of training."""


class Interrupter(hg.Callback):
    """Raises ``Crash`` on the ``at``-th call (1-based) of ``hook``."""

    def __init__(self, hook: str, at: int) -> None:
        self.hook, self.at, self.calls = hook, at, 0
        setattr(self, hook, self._tick)

    def _tick(self, *args) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise Crash(f"{self.hook} #{self.at}")


@pytest.fixture(scope="module")
def data():
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    return hg.data.to_float(x[:N_SAMPLES]), y[:N_SAMPLES]


def make_model(hidden=16, act=L.ReLU, dtype="float32"):
    return hg.Sequential([L.Dense(784, hidden, rng=0, dtype=dtype), act(), L.Dropout(0.3),
                          L.Dense(hidden, 10, rng=1, dtype=dtype)])


def run(data, ckdir=None, resume=None, callbacks=(), model=None, opt_cls=optim.Adam, every=EVERY, keep=3,
        epochs=EPOCHS, batch_size=BATCH, seed=SEED, validation_split=0.2):
    """One call of ``fit`` with the run's fixed arguments; returns (model, optimizer, history)."""
    x, y = data
    model = model if model is not None else make_model()
    opt = opt_cls(model, 2e-3)
    cbs = [optim.CosineLR(opt, epochs), *callbacks]
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=epochs, batch_size=batch_size,
                  validation_split=validation_split, augment=hg.data.RandomAffine(), callbacks=cbs, seed=seed,
                  checkpoint_dir=ckdir, checkpoint_every=every if ckdir else 0, keep_checkpoints=keep,
                  resume_from=resume, progress_bar=False)
    return model, opt, hist


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert wa.keys() == wb.keys()
    for k in wa:
        assert wa[k].dtype == wb[k].dtype, k
        assert wa[k].tobytes() == wb[k].tobytes(), f"{k} differs after resume"


def assert_same_optimizer(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["lr"] == sb["lr"] and sa["steps"] == sb["steps"]
    assert sa["state"].keys() == sb["state"].keys()
    for key in sa["state"]:
        assert sa["state"][key].keys() == sb["state"][key].keys()
        for slot in sa["state"][key]:
            assert sa["state"][key][slot].tobytes() == sb["state"][key][slot].tobytes(), (key, slot)


def assert_same_history(h1, h2):
    assert h1.epoch == h2.epoch
    assert h1.history == h2.history  # exact float equality, every metric of every epoch


@pytest.fixture(scope="module")
def reference(data):
    """The uninterrupted run (no checkpointing at all: writing checkpoints must not change it)."""
    return run(data)


def checkpoints(folder):
    return sorted(os.path.basename(f) for f in glob.glob(os.path.join(folder, "ckpt-*.safetensors")))


def step_of(path) -> int:
    return int(NAME.match(os.path.basename(path)).group(1))


# ----------------------------------------------------------------------------------------
# (a) interrupt by an exception and resume: bit-identical weights and History
# ----------------------------------------------------------------------------------------
INTERRUPTS = {
    # (hook, nth call): 5 steps per epoch, a checkpoint every 2 steps and at each epoch end
    "mid-epoch (step 3)": ("on_batch_end", 3),
    "last batch of epoch 1, before its epoch end": ("on_batch_end", 5),
    "first batch of epoch 2, before its step": ("on_batch_begin", 6),
    "first batch of epoch 2, after its step": ("on_batch_end", 6),
    "epoch boundary: end of epoch 1 (History updated, checkpoint not yet written)": ("on_epoch_end", 1),
    "epoch boundary: start of epoch 2": ("on_epoch_begin", 2),
    "epoch boundary: end of epoch 3": ("on_epoch_end", 3),
    "first batch of the last epoch": ("on_batch_begin", 16),
    "last batch of the last epoch": ("on_batch_end", 20),
    "end of the last epoch": ("on_epoch_end", 4),
}


@pytest.mark.parametrize("where", list(INTERRUPTS))
def test_interrupted_and_resumed_run_is_bit_identical(data, reference, tmp_path, where):
    hook, at = INTERRUPTS[where]
    ckdir = str(tmp_path / "ckpt")
    with pytest.raises(Crash):
        run(data, ckdir, callbacks=[Interrupter(hook, at)])
    assert checkpoints(ckdir), "the interrupted run should have written a checkpoint"
    model, opt, hist = run(data, ckdir, resume=ckdir)
    ref_model, ref_opt, ref_hist = reference
    assert_same_weights(model, ref_model)
    assert_same_optimizer(opt, ref_opt)
    assert_same_history(hist, ref_hist)
    assert len(hist.history["loss"]) == EPOCHS


def test_interrupted_twice_resumed_twice(data, reference, tmp_path):
    ckdir = str(tmp_path / "ckpt")
    with pytest.raises(Crash):
        run(data, ckdir, callbacks=[Interrupter("on_batch_end", 3)])
    with pytest.raises(Crash):  # the resumed run crashes too, seven steps later
        run(data, ckdir, resume=ckdir, callbacks=[Interrupter("on_batch_end", 7)])
    model, opt, hist = run(data, ckdir, resume=ckdir)
    assert_same_weights(model, reference[0])
    assert_same_optimizer(opt, reference[1])
    assert_same_history(hist, reference[2])


def test_resume_from_any_checkpoint_file_is_bit_identical(data, reference, tmp_path):
    ckdir = str(tmp_path / "all")
    run(data, ckdir, keep=1000)
    files = ck.list_checkpoints(ckdir)
    # every 2 steps (not at an epoch end) and at every epoch end
    expected = sorted({s for s in range(EVERY, TOTAL_STEPS + 1, EVERY) if s % STEPS_PER_EPOCH}
                      | set(range(STEPS_PER_EPOCH, TOTAL_STEPS + 1, STEPS_PER_EPOCH)))
    assert [step_of(f) for f in files] == expected
    for path in files:
        model, opt, hist = run(data, resume=path)  # a file, not the folder; no new checkpoints
        assert_same_weights(model, reference[0])
        assert_same_optimizer(opt, reference[1])
        assert_same_history(hist, reference[2])


def test_resuming_a_finished_run_changes_nothing(data, reference, tmp_path):
    ckdir = str(tmp_path / "ckpt")
    run(data, ckdir)
    before = checkpoints(ckdir)
    seen = []
    model, opt, hist = run(data, ckdir, resume=ckdir,
                           callbacks=[hg.LambdaCallback(on_batch_end=lambda b, logs: seen.append(b))])
    assert seen == []  # no extra step
    assert_same_weights(model, reference[0])
    assert_same_history(hist, reference[2])
    assert checkpoints(ckdir) == before


def test_resume_from_run_folder_with_checkpoints_subfolder(data, reference, tmp_path):
    run_dir = tmp_path / "run"
    ckdir = str(run_dir / "checkpoints")  # the layout of `handgrad train`
    with pytest.raises(Crash):
        run(data, ckdir, callbacks=[Interrupter("on_batch_end", 9)])
    model, _, hist = run(data, ckdir, resume=str(run_dir))
    assert_same_weights(model, reference[0])
    assert_same_history(hist, reference[2])


def test_checkpointing_does_not_change_the_run(data, reference, tmp_path):
    model, opt, hist = run(data, str(tmp_path / "ckpt"), every=1)
    assert_same_weights(model, reference[0])
    assert_same_optimizer(opt, reference[1])
    assert_same_history(hist, reference[2])


# ----------------------------------------------------------------------------------------
# (b) kill -9 at a random moment, resume in a fresh process
# ----------------------------------------------------------------------------------------
TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    import handgrad as hg
    from handgrad import layers as L, losses, optim

    ckdir, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    x, y = hg.data.to_float(x[:384]), y[:384]
    model = hg.Sequential([L.Dense(784, 24, rng=0), L.ReLU(), L.Dropout(0.2), L.Dense(24, 10, rng=1)])
    opt = optim.SGD(model, 0.05, momentum=0.9)
    # a few ms per step so the run lasts long enough to be killed in the middle (sleeping changes no number)
    pace = hg.LambdaCallback(on_batch_end=lambda b, logs: time.sleep(0.004))
    hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=3, batch_size=16, seed=11,
           callbacks=[pace], checkpoint_dir=ckdir, checkpoint_every=3, keep_checkpoints=3,
           resume_from=ckdir if mode == "resume" else None, progress_bar=False)
    hg.save(model, out)
""")


def _spawn(script, *args):
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_checkpoint(folder, newer_than: int, proc, timeout=60.0) -> int:
    """Poll until a checkpoint with a step > ``newer_than`` exists; returns its step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [step_of(f) for f in ck.list_checkpoints(str(folder))] if os.path.isdir(folder) else []
        if steps and max(steps) > newer_than:
            return max(steps)
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training process ended (rc {proc.returncode}) before writing a checkpoint:\n{err}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no checkpoint appeared in time")


def _weights_of_file(path):
    return {k: v for k, v in hg.load(path).get_weights().items()}


def test_kill_9_at_random_times_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    ref_out, out = tmp_path / "reference.safetensors", tmp_path / "resumed.safetensors"
    ckdir = tmp_path / "ckpt"
    baseline = _spawn(script, tmp_path / "ckpt-baseline", ref_out, "fresh")  # runs alongside
    delays = random.Random(20240607)  # fixed seed: the "random" kill times are reproducible
    mode, newest, kills = "fresh", 0, []
    for _ in range(2):  # killed twice: once in the first run, once in a resumed one
        proc = _spawn(script, ckdir, out, mode)
        newest = _wait_for_checkpoint(ckdir, newest, proc)
        delay = delays.uniform(0.0, 0.1)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL, \
            f"the run ended (rc {proc.returncode}) before the kill {delay:.3f} s after checkpoint {newest}"
        kills.append((newest, round(delay, 3)))
        newest = max(step_of(f) for f in ck.list_checkpoints(str(ckdir)))
        mode = "resume"
    proc = _spawn(script, ckdir, out, "resume")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _, err = baseline.communicate(timeout=120)
    assert baseline.returncode == 0, err
    ref, got = _weights_of_file(ref_out), _weights_of_file(out)
    assert ref.keys() == got.keys()
    for k in ref:
        assert ref[k].tobytes() == got[k].tobytes(), f"{k} differs after kill -9 at {kills} and resume"
        assert ref[k].dtype == got[k].dtype
    # (the files' bytes are not compared: safetensors writes the metadata map in a per-process
    # random order, so two saves of the same model may differ in the header)


# ----------------------------------------------------------------------------------------
# (c) checkpoint files
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [1, 3])
def test_at_most_keep_checkpoints_and_their_names(data, tmp_path, keep):
    ckdir = str(tmp_path / "ckpt")
    counts = []

    def count(*_):
        counts.append(len(checkpoints(ckdir)) if os.path.isdir(ckdir) else 0)

    run(data, ckdir, every=1, keep=keep,
        callbacks=[hg.LambdaCallback(on_batch_end=count, on_epoch_begin=count, on_epoch_end=count)])
    names = checkpoints(ckdir)
    assert max(counts) <= keep and len(names) == keep
    assert all(NAME.match(n) for n in names)
    # the newest are kept: the last `keep` steps of the run
    assert [step_of(n) for n in names] == list(range(TOTAL_STEPS - keep + 1, TOTAL_STEPS + 1))
    assert set(os.listdir(ckdir)) == set(names), "no temporary files may be left behind"


def test_checkpoint_name_is_its_step_and_position(data, tmp_path):
    ckdir = str(tmp_path / "ckpt")
    with pytest.raises(Crash):
        run(data, ckdir, keep=1000, callbacks=[Interrupter("on_batch_end", 8)])
    for path in ck.list_checkpoints(ckdir):
        _, opt_meta, state = ck.load_checkpoint(path)
        pos = state["pos"]
        assert pos["step"] == step_of(path) == opt_meta["steps"]
        assert pos["epoch"] * STEPS_PER_EPOCH + pos["batch"] == pos["step"]
        assert os.path.basename(ck.checkpoint_path(ckdir, pos["step"])) == os.path.basename(path)


def test_checkpoint_opens_with_hg_load_as_a_model(data, tmp_path):
    ckdir = str(tmp_path / "ckpt")
    model, _, _ = run(data, ckdir)
    last = ck.latest(ckdir)
    loaded = hg.load(last)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    assert_same_weights(loaded, model)
    x = data[0][:7]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # an older checkpoint opens too (it holds the weights of its step)
    for path in ck.list_checkpoints(ckdir)[:-1]:
        assert hg.load(path).predict(x).shape == (7, 10)


def _one_checkpoint(data, tmp_path):
    ckdir = str(tmp_path / "ckpt")
    with pytest.raises(Crash):
        run(data, ckdir, callbacks=[Interrupter("on_batch_end", 7)])
    return ckdir, ck.latest(ckdir)


@pytest.mark.parametrize("cut", [0, 1, 7, 8, 9, 64, 0.5, -100, -4, -1])
def test_truncated_checkpoint_raises_value_error(data, tmp_path, cut):
    ckdir, path = _one_checkpoint(data, tmp_path)
    raw = open(path, "rb").read()
    n = int(len(raw) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(raw) + cut)
    with open(path, "wb") as fh:
        fh.write(raw[:n])
    with pytest.raises(ValueError):
        run(data, ckdir, resume=ckdir)
    with pytest.raises(ValueError):
        run(data, ckdir, resume=path)


def _header(raw):
    (n,) = struct.unpack("<Q", raw[:8])
    return n, json.loads(raw[8:8 + n])


def _with_header(raw, header):
    n, _ = _header(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + raw[8 + n:]


CORRUPTIONS = {
    "header length beyond the file": lambda raw: struct.pack("<Q", len(raw)) + raw[8:],
    "header length 2**64-1": lambda raw: b"\xff" * 8 + raw[8:],
    "garbage in the JSON header": lambda raw: raw[:8] + b"{\x00\xff" + raw[11:],
    "header is a JSON list": lambda raw: _with_header(raw, []),
    "not UTF-8": lambda raw: raw[:9] + b"\xc3\x28" + raw[11:],
    "all zeros": lambda raw: bytes(len(raw)),
    "random bytes": lambda raw: np.random.default_rng(0).bytes(len(raw)),
    "metadata removed": lambda raw: _with_header(raw, {k: v for k, v in _header(raw)[1].items()
                                                       if k != "__metadata__"}),
    "state is not JSON": lambda raw: _with_header(raw, _edit_meta(raw, state="{not json")),
    "state is a JSON list": lambda raw: _with_header(raw, _edit_meta(raw, state="[]")),
    "optimizer metadata missing": lambda raw: _with_header(raw, _edit_meta(raw, optimizer=None)),
    "tensor data offsets beyond the data": lambda raw: _with_header(raw, _edit_offsets(raw, 10 ** 9)),
    "tensor dtype I64": lambda raw: _with_header(raw, _edit_dtype(raw, "I64")),
    "a plain hg.save model file": None,  # built in the test
}


def _edit_meta(raw, **changes):
    _, h = _header(raw)
    for k, v in changes.items():
        if v is None:
            del h["__metadata__"][k]
        else:
            h["__metadata__"][k] = v
    return h


def _edit_offsets(raw, end):
    _, h = _header(raw)
    key = next(k for k in h if k != "__metadata__")
    h[key]["data_offsets"][1] = end
    return h


def _edit_dtype(raw, dtype):
    _, h = _header(raw)
    key = next(k for k in h if k != "__metadata__")
    h[key]["dtype"] = dtype
    return h


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupted_checkpoint_raises_value_error(data, tmp_path, kind):
    ckdir, path = _one_checkpoint(data, tmp_path)
    raw = open(path, "rb").read()
    if CORRUPTIONS[kind] is None:
        hg.save(make_model(), path)
    else:
        with open(path, "wb") as fh:
            fh.write(CORRUPTIONS[kind](raw))
    with pytest.raises(ValueError):
        run(data, ckdir, resume=ckdir)


# A checkpoint whose JSON is well-formed but whose run state is damaged (a flipped bit in a key
# name, a value of the wrong type) is as corrupt as one with broken JSON: the documented outcome
# is ValueError ("Malformed files raise ValueError"), not a KeyError/TypeError from deep inside fit.
def _state_edit(fn):
    def apply(raw):
        _, h = _header(raw)
        state = json.loads(h["__metadata__"]["state"])
        fn(state)
        h["__metadata__"]["state"] = json.dumps(state)
        return _with_header(raw, h)
    return apply


def _opt_edit(fn):
    def apply(raw):
        _, h = _header(raw)
        meta = json.loads(h["__metadata__"]["optimizer"])
        fn(meta)
        h["__metadata__"]["optimizer"] = json.dumps(meta)
        return _with_header(raw, h)
    return apply


DAMAGED_STATE = {
    "key 'pos' renamed (one flipped bit: 'pos' -> 'pow')": _state_edit(lambda s: s.update(pow=s.pop("pos"))),
    "key 'rng' missing": _state_edit(lambda s: s.pop("rng")),
    "pos.batch is a string": _state_edit(lambda s: s["pos"].update(batch="1")),
    "rng.epoch_start is a number": _state_edit(lambda s: s["rng"].update(epoch_start=5)),
    "history is a list": _state_edit(lambda s: s.update(history=[])),
    "optimizer lr missing": _opt_edit(lambda m: m.pop("lr")),
}


@pytest.mark.parametrize("kind", list(DAMAGED_STATE))
def test_checkpoint_with_damaged_run_state_raises_value_error(data, tmp_path, kind):
    ckdir, path = _one_checkpoint(data, tmp_path)
    raw = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write(DAMAGED_STATE[kind](raw))
    with pytest.raises(ValueError):
        run(data, ckdir, resume=ckdir)


@pytest.mark.parametrize("change", [dict(epochs=5), dict(batch_size=16), dict(seed=4), dict(validation_split=0.25)])
def test_resume_with_different_run_arguments_raises(data, tmp_path, change):
    ckdir, _ = _one_checkpoint(data, tmp_path)
    with pytest.raises(ValueError, match="checkpoint"):
        run(data, ckdir, resume=ckdir, **change)


@pytest.mark.parametrize("change", [dict(epochs=5), dict(seed=4)])
def test_rejected_resume_leaves_model_and_optimizer_untouched(data, tmp_path, change):
    # validation first, then side effects: a resume that raises must not have overwritten the
    # caller's model weights or optimizer state with the checkpoint's
    ckdir, _ = _one_checkpoint(data, tmp_path)
    model = make_model()
    before = model.get_weights()
    with pytest.raises(ValueError):
        run(data, ckdir, resume=ckdir, model=model, **change)
    for k, v in model.get_weights().items():
        assert v.tobytes() == before[k].tobytes(), f"{k} was overwritten by a rejected resume"


ARCH_MISMATCH = {
    "wider hidden layer": lambda: make_model(hidden=17),
    "extra layer": lambda: hg.Sequential([*make_model().layers, L.Dense(10, 10, rng=2)]),
    "float64 model": lambda: make_model(dtype="float64"),
    "different activation (ReLU -> Tanh)": lambda: make_model(act=L.Tanh),
}


@pytest.mark.parametrize("kind", list(ARCH_MISMATCH))
def test_resume_into_a_different_architecture_raises(data, tmp_path, kind):
    ckdir, _ = _one_checkpoint(data, tmp_path)
    with pytest.raises(ValueError):
        run(data, ckdir, resume=ckdir, model=ARCH_MISMATCH[kind]())


def test_resume_with_a_different_optimizer_raises(data, tmp_path):
    ckdir, _ = _one_checkpoint(data, tmp_path)
    with pytest.raises(ValueError, match="optimizer"):
        run(data, ckdir, resume=ckdir, opt_cls=optim.SGD)


def test_resume_from_folder_without_checkpoint_raises_file_not_found(data, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError):
        run(data, resume=str(empty))
    with pytest.raises(FileNotFoundError):
        run(data, resume=str(tmp_path / "does-not-exist"))
    # files that merely look like checkpoints do not count
    for name in ("ckpt-12.safetensors", "ckpt-0000000012.safetensors.tmp", ".handgrad-abc.tmp",
                 "ckpt-00000000120.safetensors", "model.safetensors"):
        (empty / name).write_bytes(b"junk")
    with pytest.raises(FileNotFoundError):
        run(data, resume=str(empty))


@pytest.mark.parametrize("keep", [-1, "3"])
def test_bad_keep_checkpoints_is_rejected_before_training(data, tmp_path, keep):
    steps = []
    with pytest.raises((ValueError, TypeError), match="keep_checkpoints"):
        run(data, str(tmp_path / "ckpt"), keep=keep,
            callbacks=[hg.LambdaCallback(on_batch_end=lambda b, logs: steps.append(b))])
    assert steps == [], "fit trained before rejecting keep_checkpoints"


@pytest.mark.parametrize("every", [-1, 1.5, True, "2"])
def test_bad_checkpoint_every_raises(data, tmp_path, every):
    with pytest.raises(ValueError, match="checkpoint_every"):
        run(data, str(tmp_path / "ckpt"), every=every)


def test_checkpoint_every_needs_checkpoint_dir(data):
    x, y = data
    model = make_model()
    with pytest.raises(ValueError, match="checkpoint_dir"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, checkpoint_every=3)


# ----------------------------------------------------------------------------------------
# (d) atomicity: a crash while a checkpoint is written leaves the previous ones intact
# ----------------------------------------------------------------------------------------
def _snapshot(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize("fail_in", ["os.replace", "os.fsync", "write", "KeyboardInterrupt in os.replace"])
def test_crash_during_checkpoint_write_keeps_previous_checkpoints(data, reference, tmp_path, monkeypatch, fail_in):
    ckdir = str(tmp_path / "ckpt")
    snap = {}
    real_replace, real_fsync, real_fdopen = os.replace, os.fsync, os.fdopen

    def arm(batch, logs=None):
        # at the end of step 7 (a checkpoint exists for steps 4, 5 and 6), make the next write fail
        arm.calls += 1
        if arm.calls != 7:
            return
        snap.update(_snapshot(ckdir))
        if fail_in == "os.replace":
            monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
        elif fail_in == "KeyboardInterrupt in os.replace":
            monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        elif fail_in == "os.fsync":
            monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "I/O error")))
        else:  # the data write itself fails half way
            class HalfWriter:
                def __init__(self, fh):
                    self.fh = fh

                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    self.fh.close()

                def write(self, b):
                    self.fh.write(b[:len(b) // 2])
                    raise OSError(28, "No space left on device")

                def __getattr__(self, name):
                    return getattr(self.fh, name)

            monkeypatch.setattr(os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    arm.calls = 0

    expected_exc = KeyboardInterrupt if "KeyboardInterrupt" in fail_in else OSError
    with pytest.raises(expected_exc):
        run(data, ckdir, every=1, callbacks=[hg.LambdaCallback(on_batch_end=arm)])
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(os, "fsync", real_fsync)
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert snap, "the failure was never armed"
    assert _snapshot(ckdir) == snap, "previous checkpoints changed, or a temporary file was left behind"
    for name in snap:
        ck.load_checkpoint(os.path.join(ckdir, name))  # each still opens
    model, opt, hist = run(data, ckdir, every=1, resume=ckdir)
    assert_same_weights(model, reference[0])
    assert_same_optimizer(opt, reference[1])
    assert_same_history(hist, reference[2])


def test_stale_temporary_files_are_ignored_on_resume(data, reference, tmp_path):
    ckdir, path = _one_checkpoint(data, tmp_path)
    # what a kill -9 in the middle of atomic_write_bytes leaves behind
    raw = open(path, "rb").read()
    (tmp_path / "ckpt" / ".handgrad-deadbeef.tmp").write_bytes(raw[: len(raw) // 3])
    (tmp_path / "ckpt" / ".handgrad-zzzz.tmp").write_bytes(b"")
    model, _, hist = run(data, ckdir, resume=ckdir)
    assert_same_weights(model, reference[0])
    assert_same_history(hist, reference[2])


def test_atomic_write_bytes_failure_keeps_old_file(tmp_path, monkeypatch):
    from handgrad.fsutil import atomic_write_bytes

    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old contents")
    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        atomic_write_bytes(path, b"new contents that never land")
    assert path.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]
