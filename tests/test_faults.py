"""Surviving faults during ``fit``: Ctrl-C / SIGTERM, divergence (NaN/Inf), and memory growth.

- Signals (``handle_signals=True``, the default): the first SIGINT or SIGTERM lets the current
  step finish, writes a checkpoint (with ``checkpoint_dir``) and raises ``TrainingInterrupted``
  (a ``KeyboardInterrupt``) whose message says how to resume; the process's own handlers are
  restored afterwards; a second SIGINT interrupts at once.
- ``on_nonfinite``: a step whose loss or gradient holds NaN/Inf is never applied. ``"raise"``
  raises ``TrainingDiverged`` naming epoch, batch and step and suggesting a lower learning rate;
  ``"stop"`` warns and returns the History; ``"skip"`` drops the batch (``skipped_steps``).
- A long run keeps a flat memory profile: nothing grows per step or per epoch beyond the
  History's few floats.
"""
from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pytest

import handgrad as hg
from handgrad.training import checkpoint as ck
from handgrad import layers as L
from handgrad import losses, optim
from handgrad.training import TrainingDiverged, TrainingInterrupted


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def blobs(n=96, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 3
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.standard_normal((n, features))
    return x.astype(np.float32), y.astype(np.int64)


def mlp(features=6, classes=3, hidden=12, extra=()):
    return hg.Sequential([L.Dense(features, hidden, rng=0), *extra, L.ReLU(), L.Dropout(0.2),
                          L.Dense(hidden, classes, rng=1)])


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


def all_finite(w: dict) -> bool:
    return all(np.isfinite(v).all() for v in w.values())


class Steps(hg.Callback):
    """Counts finished steps and keeps a copy of the weights after each (``on_batch_end``)."""

    def __init__(self):
        self.count, self.weights = 0, None

    def on_batch_end(self, batch, logs=None):
        self.count += 1
        self.weights = self.model.get_weights()


@pytest.fixture
def safe_sigterm():
    """A recording SIGTERM/SIGINT handler installed around the test: if fit failed to handle a
    signal the test process is not killed, and 'restored afterwards' can be checked against it."""
    got = []

    def handler(signum, frame):
        got.append(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    yield handler, got
    for s, h in old.items():
        signal.signal(s, h)


# ----------------------------------------------------------------------------------------
# (a) SIGINT / SIGTERM in a real training process
# ----------------------------------------------------------------------------------------
TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    import handgrad as hg
    from handgrad import layers as L, losses, optim

    ckdir, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    x, y = hg.data.to_float(x[:256]), y[:256]
    model = hg.Sequential([L.Dense(784, 16, rng=0), L.ReLU(), L.Dropout(0.2), L.Dense(16, 10, rng=1)])
    opt = optim.SGD(model, 0.05, momentum=0.9)
    pace = hg.LambdaCallback(on_batch_end=lambda b, logs: time.sleep(0.005))
    hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=2, batch_size=16, seed=5,
           callbacks=[pace], checkpoint_dir=ckdir, checkpoint_every=3,
           resume_from=ckdir if mode == "resume" else None, progress_bar=False)
    hg.save(model, out)
    print("finished")
""")


def _spawn(script, *args):
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def script_and_baseline(tmp_path_factory):
    d = tmp_path_factory.mktemp("signals")
    script = d / "train.py"
    script.write_text(TRAIN_SCRIPT)
    out = d / "baseline.safetensors"
    proc = _spawn(script, d / "baseline-ckpt", out, "fresh")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return script, hg.load(out).get_weights()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_in_subprocess_checkpoints_explains_resume_and_resume_completes(script_and_baseline, tmp_path, sig):
    script, baseline = script_and_baseline
    ckdir, out = tmp_path / "ckpt", tmp_path / "final.safetensors"
    proc = _spawn(script, ckdir, out, "fresh")
    deadline = time.monotonic() + 60
    while not (ckdir.is_dir() and ck.list_checkpoints(str(ckdir))):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode not in (0, None), "the interrupted run must not exit successfully"
    assert "finished" not in stdout and not out.exists()
    assert "TrainingInterrupted" in stderr
    assert f"resume_from={str(ckdir)!r}" in stderr, stderr  # says how to resume
    m = re.search(r"training interrupted at epoch (\d+), batch (\d+) \(step (\d+)\)", stderr)
    assert m, stderr
    step = int(m.group(3))
    newest = ck.list_checkpoints(str(ckdir))[-1]
    assert os.path.basename(newest) == f"ckpt-{step:010d}.safetensors"
    assert ck.load_checkpoint(newest)[2]["pos"]["step"] == step
    proc = _spawn(script, ckdir, out, "resume")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "finished" in stdout
    assert weights_equal(hg.load(out).get_weights(), baseline)


# ----------------------------------------------------------------------------------------
# (a) signals in-process
# ----------------------------------------------------------------------------------------
def _fit(model, x, y, ckdir=None, callbacks=(), resume=None, epochs=2, **kw):
    opt = optim.SGD(model, 0.05, momentum=0.9)
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=epochs, batch_size=12, seed=2,
                  callbacks=callbacks, checkpoint_dir=ckdir, resume_from=resume, progress_bar=False, **kw)
    return opt, hist


def _send_at(hook, k, sig=signal.SIGINT, times=1):
    calls = []

    def fn(*args):
        calls.append(args)
        if len(calls) == k + 1:
            for _ in range(times):
                os.kill(os.getpid(), sig)

    return hg.LambdaCallback(**{hook: fn})


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("hook", ["on_batch_begin", "on_batch_end"])
@pytest.mark.parametrize("k", [0, 4, 7, 9])  # 8 steps per epoch: first, middle, last of epoch 1, in epoch 2
def test_signal_in_process_finishes_step_and_checkpoints(safe_sigterm, tmp_path, sig, hook, k):
    handler, got = safe_sigterm
    x, y = blobs()
    model, steps = mlp(), Steps()
    ckdir = str(tmp_path / "ckpt")
    with pytest.raises(TrainingInterrupted) as info:
        _fit(model, x, y, ckdir, callbacks=[steps, _send_at(hook, k, sig)])
    exc = info.value
    assert isinstance(exc, KeyboardInterrupt)
    assert steps.count == k + 1, "the step in progress must finish, and no further one start"
    assert exc.checkpoint is not None and os.path.isfile(exc.checkpoint)
    assert os.path.basename(exc.checkpoint) == f"ckpt-{k + 1:010d}.safetensors"
    state = ck.load_checkpoint(exc.checkpoint)[2]
    assert state["pos"]["step"] == k + 1
    assert (state["pos"]["epoch"], state["pos"]["batch"]) == divmod(k + 1, 8) or \
        (state["pos"]["epoch"], state["pos"]["batch"]) == (k // 8, 8)
    tensors = ck.load_checkpoint(exc.checkpoint)[0]
    saved = {k.split(".", 1)[1]: v for k, v in tensors.items() if not k.startswith("optim.")}
    for name, p in model.parameters():  # the checkpoint holds the weights after that step
        assert saved[name].tobytes() == np.asarray(p).tobytes()
    assert f"resume_from={ckdir!r}" in str(exc)
    assert f"step {k + 1}" in str(exc)
    assert isinstance(exc.history, hg.History)
    # the process's handlers are back
    assert signal.getsignal(signal.SIGINT) is handler
    assert signal.getsignal(signal.SIGTERM) is handler
    assert got == []  # fit, not the outer handler, took the signal
    # and resuming gives the uninterrupted result
    ref = mlp()
    _, ref_hist = _fit(ref, x, y)
    resumed = mlp()
    _, hist = _fit(resumed, x, y, ckdir, resume=ckdir)
    assert weights_equal(resumed.get_weights(), ref.get_weights())
    assert hist.history == ref_hist.history


def test_default_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    x, y = blobs()
    _fit(mlp(), x, y)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with pytest.raises(TrainingInterrupted):
        _fit(mlp(), x, y, callbacks=[_send_at("on_batch_end", 2)])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with pytest.raises(RuntimeError):
        _fit(mlp(), x, y, callbacks=[hg.LambdaCallback(on_batch_end=lambda b, logs: (_ for _ in ()).throw(RuntimeError()))])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_signal_without_checkpoint_dir_says_none_was_written(safe_sigterm):
    x, y = blobs()
    with pytest.raises(TrainingInterrupted) as info:
        _fit(mlp(), x, y, callbacks=[_send_at("on_batch_end", 3)])
    assert info.value.checkpoint is None
    assert "no checkpoint" in str(info.value) and "checkpoint_dir" in str(info.value)


def test_second_sigint_interrupts_at_once(safe_sigterm, tmp_path):
    handler, _ = safe_sigterm
    x, y = blobs()
    steps = Steps()
    with pytest.raises(KeyboardInterrupt) as info:
        _fit(mlp(), x, y, str(tmp_path / "ckpt"), callbacks=[steps, _send_at("on_batch_begin", 2, times=2)])
    assert type(info.value) is KeyboardInterrupt  # not a graceful TrainingInterrupted
    assert steps.count == 2  # the step in progress did not finish
    assert signal.getsignal(signal.SIGINT) is handler


def test_handle_signals_false_leaves_ctrl_c_alone(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    assert before is signal.default_int_handler
    x, y = blobs()
    steps = Steps()
    with pytest.raises(KeyboardInterrupt) as info:
        _fit(mlp(), x, y, str(tmp_path / "ckpt"), callbacks=[steps, _send_at("on_batch_begin", 3)],
             handle_signals=False)
    assert type(info.value) is KeyboardInterrupt
    assert steps.count == 3
    assert signal.getsignal(signal.SIGINT) is before


def test_fit_in_a_worker_thread_installs_no_handlers():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    x, y = blobs()
    result = {}

    def work():
        try:
            result["hist"] = _fit(mlp(), x, y)[1]
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["exc"] = exc

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert "exc" not in result, result.get("exc")
    assert len(result["hist"].history["loss"]) == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_training_interrupted_is_not_swallowed_by_except_exception(safe_sigterm):
    x, y = blobs()
    with pytest.raises(TrainingInterrupted):
        try:
            _fit(mlp(), x, y, callbacks=[_send_at("on_batch_end", 1)])
        except Exception:  # noqa: BLE001 - what careless user code does
            pytest.fail("TrainingInterrupted must not be an Exception")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_the_final_epoch_end_is_not_lost(safe_sigterm, tmp_path, sig):
    # a SIGTERM from a job scheduler that arrives while fit validates or runs the callbacks of
    # the last epoch must still stop the program: fit may finish the epoch, but it must then
    # raise TrainingInterrupted instead of returning as if nothing had happened
    handler, got = safe_sigterm
    x, y = blobs()
    last = hg.LambdaCallback(on_epoch_end=lambda e, logs: os.kill(os.getpid(), sig) if e == 1 else None)
    with pytest.raises(TrainingInterrupted):
        _fit(mlp(), x, y, str(tmp_path / "ckpt"), callbacks=[last])
    assert got == []


# ----------------------------------------------------------------------------------------
# (b) divergence: NaN / Inf
# ----------------------------------------------------------------------------------------
class Poison(L.Layer):
    """Identity that returns NaN (or Inf) on chosen training forwards (1-based step numbers), or
    injects NaN into the gradient on chosen backwards. Not registered: test-only."""

    def __init__(self, steps=(), value=np.nan, grad_steps=()):
        super().__init__()
        self.steps, self.grad_steps, self.value, self.calls = set(steps), set(grad_steps), value, 0

    def _forward(self, x, training):
        if training:
            self.calls += 1
            if self.calls in self.steps:
                x = x.copy()
                x[0, 0] = self.value
        return x

    def _backward(self, grad_y, need_input_grad):
        if self.calls in self.grad_steps:
            grad_y = grad_y.copy()
            grad_y[0, 0] = np.nan
        return grad_y


def _regression(n=64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    t = (rng.standard_normal((n, 2)) * 1e3).astype(np.float32)  # large targets
    return x, t


def _diverging_fit(lr, steps, **kw):
    x, t = _regression()
    model = hg.Sequential([L.Dense(5, 8, rng=0), L.Tanh(), L.Dense(8, 2, rng=1)])
    with np.errstate(all="ignore"):
        return model, hg.fit(model, losses.MeanSquaredError(), optim.SGD(model, lr), x, t, epochs=3,
                             batch_size=16, callbacks=[steps], progress_bar=False, **kw)


def test_divergence_raises_training_diverged_naming_the_step():
    steps = Steps()
    with pytest.raises(TrainingDiverged) as info:
        _diverging_fit(1e6, steps)
    exc = info.value
    bad = steps.count + 1  # on_batch_end ran for every good step
    epoch, batch = divmod(bad - 1, 4)  # 4 steps per epoch
    msg = str(exc)
    assert f"epoch {epoch + 1}" in msg and f"batch {batch + 1}" in msg and f"step {bad}" in msg
    assert "lower learning rate" in msg
    assert re.search(r"NaN|nan|inf|Inf", msg)
    assert isinstance(exc.history, hg.History)
    assert not isinstance(exc, KeyboardInterrupt)


def test_weights_after_divergence_are_the_last_good_ones():
    steps = Steps()
    x, t = _regression()
    model = hg.Sequential([L.Dense(5, 8, rng=0), L.Tanh(), L.Dense(8, 2, rng=1)])
    with pytest.raises(TrainingDiverged):
        with np.errstate(all="ignore"):
            hg.fit(model, losses.MeanSquaredError(), optim.SGD(model, 1e6), x, t, epochs=3, batch_size=16,
                   callbacks=[steps], progress_bar=False)
    w = model.get_weights()
    assert steps.count >= 1
    assert all_finite(w)
    assert weights_equal(w, steps.weights)


def test_update_that_overflows_the_weights_is_not_kept():
    # lr = 1e38: the first update itself overflows float32 (loss and gradient were finite), so
    # the weights become Inf and the *next* loss is NaN. The guard promises "the weights stay the
    # last good ones": after TrainingDiverged they must be finite.
    steps = Steps()
    x, t = _regression()
    model = hg.Sequential([L.Dense(5, 8, rng=0), L.Tanh(), L.Dense(8, 2, rng=1)])
    with pytest.raises(TrainingDiverged):
        with np.errstate(all="ignore"):
            hg.fit(model, losses.MeanSquaredError(), optim.SGD(model, 1e38), x, t, epochs=3, batch_size=16,
                   callbacks=[steps], progress_bar=False)
    assert all_finite(model.get_weights()), "fit left non-finite weights after TrainingDiverged"


@pytest.mark.parametrize("value", [np.nan, np.inf])  # (-inf would be zeroed by the ReLU after it)
@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_injected_nonfinite_raises_and_no_update_is_applied(value, where):
    x, y = blobs()
    bad = 11  # epoch 2, batch 3 (8 steps per epoch)
    poison = Poison(steps=[bad] if where == "loss" else [], value=value,
                    grad_steps=[bad] if where == "gradient" else [])
    model = mlp(extra=[poison])
    opt = optim.Adam(model, 1e-2)
    steps = Steps()
    snap = {}
    grab = hg.LambdaCallback(on_batch_end=lambda b, logs: snap.update(opt={k: {s: a.copy() for s, a in v.items()}
                                                                          for k, v in opt.state.items()},
                                                                     steps=opt.steps))
    with pytest.raises(TrainingDiverged) as info, np.errstate(all="ignore"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=3, batch_size=12, callbacks=[steps, grab],
               progress_bar=False)
    msg = str(info.value)
    assert "epoch 2, batch 3 (step 11)" in msg
    assert ("gradient" in msg) if where == "gradient" else ("loss" in msg)
    assert steps.count == bad - 1
    assert weights_equal(model.get_weights(), steps.weights)
    assert opt.steps == snap["steps"] == bad - 1
    for key, slots in snap["opt"].items():  # Adam's moments were not touched by the bad step
        for slot, arr in slots.items():
            assert opt.state[key][slot].tobytes() == arr.tobytes()
    assert info.value.history.epoch == [0]


def test_on_nonfinite_stop_warns_and_returns_history():
    x, y = blobs()
    model = mlp(extra=[Poison(steps=[11])])
    steps = Steps()
    with pytest.warns(RuntimeWarning, match="lower learning rate"):
        hist = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, epochs=3, batch_size=12,
                      callbacks=[steps], on_nonfinite="stop", progress_bar=False)
    assert isinstance(hist, hg.History)
    assert steps.count == 10
    assert weights_equal(model.get_weights(), steps.weights)
    assert all_finite(model.get_weights())
    assert hist.epoch == [0, 1]  # epoch 2 ended early, after 2 good batches
    assert all(np.isfinite(v) for k in ("loss", "accuracy") for v in hist.history[k])


def test_on_nonfinite_stop_on_the_first_batch_of_an_epoch_logs_no_empty_epoch():
    x, y = blobs()
    model = mlp(extra=[Poison(steps=[9])])  # first batch of epoch 2
    with pytest.warns(RuntimeWarning):
        hist = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, epochs=3, batch_size=12,
                      on_nonfinite="stop", progress_bar=False)
    assert hist.epoch == [0]
    assert all(np.isfinite(v) for v in hist.history["loss"])


def test_on_nonfinite_skip_drops_bad_batches_and_goes_on():
    x, y = blobs()
    model = mlp(extra=[Poison(steps=[2, 3], grad_steps=[5])])
    opt = optim.SGD(model, 0.1, momentum=0.9)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # skipping is silent
        hist = hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=3, batch_size=12,
                      callbacks=[hg.LambdaCallback(on_batch_end=lambda b, logs: seen.append(logs["loss"]))],
                      on_nonfinite="skip", progress_bar=False)
    assert hist.epoch == [0, 1, 2]
    assert hist.history["skipped_steps"][0] == 3
    assert opt.steps == 24 - 3  # the three bad batches were not applied
    assert sum(not np.isfinite(v) for v in seen) == 2  # callbacks still see the bad losses
    assert all_finite(model.get_weights())
    assert all(np.isfinite(v) for v in hist.history["loss"])


def test_skipped_steps_log_is_aligned_with_the_epochs():
    # History lists are per epoch: history["skipped_steps"][e] must be epoch e's value, so the
    # list needs an entry for every epoch, also those before the first skipped batch
    x, y = blobs()
    model = mlp(extra=[Poison(steps=[11])])  # a bad batch in epoch 2 only
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, epochs=3, batch_size=12,
                  on_nonfinite="skip", progress_bar=False)
    assert len(hist.history["skipped_steps"]) == len(hist.history["loss"]) == 3


def test_terminate_on_nan_ends_a_skipping_run_at_the_first_bad_batch():
    x, y = blobs()
    model = mlp(extra=[Poison(steps=[11, 12])])
    opt = optim.SGD(model, 0.1)
    steps = Steps()
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=3, batch_size=12,
                  callbacks=[steps, hg.callbacks.TerminateOnNaN()], on_nonfinite="skip", progress_bar=False)
    assert opt.steps == 10  # nothing after the first bad batch
    assert steps.count == 11  # on_batch_end saw the bad batch (that is how TerminateOnNaN notices)
    assert model.stop_training
    assert hist.epoch == [0, 1]
    assert all_finite(model.get_weights())


def test_terminate_on_nan_ignores_finite_losses():
    cb = hg.callbacks.TerminateOnNaN()
    model = mlp()
    cb.set_model(model)
    model.stop_training = False
    for v in (0.0, 1e30, -3.0, None):
        cb.on_batch_end(0, {"loss": v} if v is not None else {})
    assert model.stop_training is False
    for v in (float("nan"), float("inf"), float("-inf")):
        model.stop_training = False
        cb.on_batch_end(0, {"loss": v})
        assert model.stop_training is True


@pytest.mark.parametrize("bad", ["ignore", "", None, "RAISE", 1])
def test_unknown_on_nonfinite_raises(bad):
    x, y = blobs()
    model = mlp()
    with pytest.raises(ValueError, match="on_nonfinite"):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, on_nonfinite=bad)


def test_divergence_with_checkpoints_keeps_only_good_checkpoints(tmp_path):
    x, y = blobs()
    model = mlp(extra=[Poison(steps=[11])])
    ckdir = str(tmp_path / "ckpt")
    with pytest.raises(TrainingDiverged):
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y, epochs=3, batch_size=12,
               checkpoint_dir=ckdir, checkpoint_every=1, progress_bar=False)
    files = ck.list_checkpoints(ckdir)
    assert os.path.basename(files[-1]) == "ckpt-0000000010.safetensors"
    for f in files:
        tensors = ck.load_checkpoint(f)[0]
        assert all(np.isfinite(a).all() for a in tensors.values())


# ----------------------------------------------------------------------------------------
# (c) memory soak (short): memory after epoch 25 within 5% of memory after epoch 5
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("checkpoints", [False, True], ids=["plain", "with-checkpoints"])
def test_memory_does_not_grow_over_epochs(tmp_path, checkpoints):
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    x, y = hg.data.to_float(x[:96]), y[:96]
    model = hg.Sequential([L.Dense(784, 16, rng=0), L.ReLU(), L.Dropout(0.3), L.Dense(16, 10, rng=1)])
    opt = optim.SGD(model, 0.05, momentum=0.9)
    traced = {}

    def measure(epoch, logs):
        if epoch in (4, 24):  # a full collection walks the whole test session's heap: only where measured
            gc.collect()
            traced[epoch] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x, y, epochs=30, batch_size=32,
               validation_split=0.25, callbacks=[hg.LambdaCallback(on_epoch_end=measure)],
               checkpoint_dir=str(tmp_path / "ckpt") if checkpoints else None, keep_checkpoints=2,
               progress_bar=False)
    finally:
        tracemalloc.stop()
    after5, after25 = traced[4], traced[24]
    # 5% plus 32 KiB for the History's 20 more epochs of floats
    assert after25 <= after5 * 1.05 + 32 * 1024, (after5, after25, traced)
