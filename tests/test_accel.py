"""handgrad.accel: the thread budget, parallel_for, the JIT switch; the fused optimizer updates
against their NumPy paths; fit's default number of workers."""
from __future__ import annotations

import contextlib
import platform
import sys
import threading

import numpy as np
import pytest

import handgrad as hg
from handgrad import accel, losses, optim, presets
from handgrad.training import step as step_mod


@pytest.fixture
def threads():
    """Restore the process-wide thread setting after a test changes it."""
    yield
    accel.set_num_threads(None)


@pytest.mark.parametrize("env, expected", [
    ({"HANDGRAD_NUM_THREADS": "3"}, 3),
    ({"OMP_NUM_THREADS": "5"}, 5),
    ({"OMP_NUM_THREADS": "4,2"}, 4),                       # one count per nesting level: the first
    ({"HANDGRAD_NUM_THREADS": "2", "OMP_NUM_THREADS": "7"}, 2),
])
def test_default_threads_reads_the_environment(monkeypatch, env, expected):
    monkeypatch.delenv("HANDGRAD_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert accel.default_threads() == expected


@pytest.mark.parametrize("bad", ["0", "-1", "many", ""])
def test_default_threads_ignores_unusable_values(monkeypatch, bad):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("HANDGRAD_NUM_THREADS", bad)
    import os

    assert accel.default_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_rejects_non_positive_ints(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        accel.set_num_threads(bad)


def test_limit_threads_caps_the_calling_thread_only(threads):
    accel.set_num_threads(4)
    seen = {}
    with accel.limit_threads(1):
        assert accel.num_threads() == 1
        t = threading.Thread(target=lambda: seen.setdefault("other", accel.num_threads()))
        t.start()
        t.join()
    assert seen["other"] == 4
    assert accel.num_threads() == 4


@pytest.mark.parametrize("n, k, grain", [(0, 2, 1), (1, 2, 1), (7, 3, 1), (100, 4, 10), (5, 4, 3), (128, 2, 1)])
def test_parallel_for_covers_each_index_once(threads, n, k, grain):
    accel.set_num_threads(k)
    hits = np.zeros(n, dtype=int)
    calls = []

    def fn(a, b):
        calls.append((a, b, accel.num_threads()))
        hits[a:b] += 1

    accel.parallel_for(n, fn, grain=grain)
    assert (hits == 1).all()
    parts = sorted((a, b) for a, b, _ in calls)
    assert parts == accel.split(n, len(parts)) if n else parts == []
    assert len(parts) <= max(1, min(k, n // grain))
    # a part never splits again: its own budget is one thread
    assert all(nt == 1 for *_, nt in calls) or len(calls) == 1


def test_parallel_for_raises_a_parts_error_after_all_parts_finish(threads):
    accel.set_num_threads(3)
    done = []

    def fn(a, b):
        if a > 0:
            raise ValueError(f"part {a}")
        done.append(a)

    with pytest.raises(ValueError, match="part"):
        accel.parallel_for(9, fn)
    assert done == [0]


def test_parallel_for_from_several_threads_at_once_covers_each_index_once(threads):
    # one caller holds the workers; another runs the same parts one after the other
    accel.set_num_threads(3)
    results, errors = {}, []

    def caller(name):
        try:
            for _ in range(50):
                hits = np.zeros(40, dtype=int)

                def fn(a, b):
                    hits[a:b] += 1
                accel.parallel_for(40, fn)
                assert (hits == 1).all()
            results[name] = True
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=caller, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors and len(results) == 3


def test_run_parts_returns_results_in_order_and_raises_after_all_finish(threads):
    accel.set_num_threads(3)
    assert accel.run_parts([]) == []
    assert accel.run_parts([lambda: 7]) == [7]
    seen = []

    def task(i):
        def f():
            seen.append((i, accel.num_threads()))  # every task runs with a budget of one thread
            return i * i
        return f
    assert accel.run_parts([task(i) for i in range(4)]) == [0, 1, 4, 9]
    assert sorted(seen) == [(i, 1) for i in range(4)]
    done = []

    def bad():
        raise ValueError("task failed")

    def slow():
        import time
        time.sleep(0.05)
        done.append(1)
    with pytest.raises(ValueError, match="task failed"):
        accel.run_parts([bad, slow, slow])
    assert done == [1, 1]


def test_parallel_for_workers_serve_again_after_an_error(threads):
    accel.set_num_threads(2)

    def bad(a, b):
        if a:
            raise KeyError("worker part")
    with pytest.raises(KeyError):
        accel.parallel_for(2, bad)
    hits = np.zeros(10, dtype=int)
    accel.parallel_for(10, lambda a, b: hits.__setitem__(slice(a, b), hits[a:b] + 1))
    assert (hits == 1).all()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork")
def test_parallel_for_in_a_forked_child(threads):
    import os

    accel.set_num_threads(2)
    accel.parallel_for(4, lambda a, b: None)  # the parent's workers exist
    pid = os.fork()
    if pid == 0:  # the child has no threads of the parent's: new workers serve it
        code = 1
        try:
            import signal
            signal.alarm(30)  # a hung child ends itself (SIGALRM), failing the test
            hits = np.zeros(8, dtype=int)
            accel.parallel_for(8, lambda a, b: hits.__setitem__(slice(a, b), 1))
            code = 0 if hits.all() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_parallel_for_gives_the_same_bits_for_any_thread_count(threads):
    x = np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32)
    outs = []
    for k in (1, 2, 3):
        accel.set_num_threads(k)
        y = np.empty_like(x)
        accel.parallel_for(64, lambda a, b: np.tanh(x[a:b], out=y[a:b]))
        outs.append(y)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_set_jit_and_use_jit():
    before = accel.jit_enabled()
    with accel.use_jit(False):
        assert not accel.jit_enabled()
    assert accel.jit_enabled() == before
    with pytest.raises(TypeError, match="set_jit"):
        accel.set_jit("yes")


def test_without_numba_the_numpy_paths_run_and_forcing_the_jit_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(accel, "_numba_module", lambda: None)
    assert not accel.jit_available() and not accel.jit_enabled()
    with pytest.raises(RuntimeError, match="handgrad\\[fast\\]"):
        accel.set_jit(True)
    model = presets.mlp(hidden=(4,))
    opt = optim.SGD(model, 0.1, momentum=0.9)
    opt.step()  # the NumPy path
    k = accel.Kernel(lambda a: a)
    with pytest.raises(RuntimeError, match="handgrad\\[fast\\]"):
        k(np.zeros(2))


OPTIMIZERS = {
    "sgd": lambda m: optim.SGD(m, 0.05),
    "sgd_decay": lambda m: optim.SGD(m, 0.05, weight_decay=1e-3),
    "momentum_decay": lambda m: optim.SGD(m, 0.05, momentum=0.9, weight_decay=5e-4),
    "nesterov": lambda m: optim.SGD(m, 0.05, momentum=0.9, nesterov=True),
    "adam": lambda m: optim.Adam(m, 2e-3),
    "adam_decay_clip": lambda m: optim.Adam(m, 2e-3, weight_decay=1e-3, clip_norm=1.0),
    "rmsprop": lambda m: optim.RMSprop(m, 1e-3, momentum=0.5, weight_decay=1e-4),
}


def _train_steps(make, dtype, jit):
    with accel.use_jit(jit):
        model = presets.mlp(hidden=(17, 5), dtype=dtype)
        opt = make(model)
        rng = np.random.default_rng(0)
        for _ in range(4):
            for layer in model.layers:
                for k, p in layer.params.items():
                    layer.grads[k] = rng.standard_normal(p.shape).astype(dtype)
            opt.step()
        return model.get_weights(), opt.state_dict()


@pytest.mark.skipif(not accel.jit_available(), reason="needs numba (in the test extra)")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_updates_give_the_numpy_paths_bits(name, dtype):
    w0, s0 = _train_steps(OPTIMIZERS[name], dtype, jit=False)
    w1, s1 = _train_steps(OPTIMIZERS[name], dtype, jit=True)
    for k in w0:
        assert np.array_equal(w0[k], w1[k]), k
    for key, slots in s0["state"].items():
        for slot, arr in slots.items():
            assert np.array_equal(arr, s1["state"][key][slot]), (key, slot)


@pytest.mark.skipif(not accel.jit_available(), reason="needs numba (in the test extra)")
def test_compiled_division_by_zero_is_numpys():
    """Kernels use NumPy's error model: Adam with eps = 0 on a zero gradient divides 0 by 0 and
    gives NaN on both paths (Python's model raised ZeroDivisionError, and kept the loop from
    vectorizing)."""
    out = {}
    for jit in (False, True):
        with accel.use_jit(jit):
            model = hg.Sequential([hg.layers.Dense(3, 2, rng=0)])
            opt = optim.Adam(model, lr=0.1, eps=0.0)
            model.layers[0].grads["W"][...] = 0.0
            model.layers[0].grads["b"][...] = [1.0, 0.0]
            with np.errstate(invalid="ignore"):
                opt.step()
            out[jit] = model.get_weights()
    for k in out[False]:
        np.testing.assert_array_equal(out[True][k], out[False][k])
    assert np.isnan(out[True]["0.W"]).all() and np.isnan(out[True]["0.b"][1]) and np.isfinite(out[True]["0.b"][0])


def test_fit_uses_every_core_by_default(threads):
    pytest.importorskip("threadpoolctl")
    accel.set_num_threads(3)
    model = hg.Sequential([hg.layers.Conv2D(1, 2, 3), hg.layers.ReLU(), hg.layers.Flatten(),
                           hg.layers.Dense(2 * 26 * 26, 10)])
    assert step_mod.auto_workers(model) == 3
    assert step_mod.auto_workers(model, processes=2) == 1
    with accel.limit_threads(2):
        assert step_mod.auto_workers(model) == 2
    stateful = presets.char_lm(vocab_size=5, hidden=4)
    assert step_mod.auto_workers(stateful) == 1

    class Recorder(hg.layers.Identity):  # a layer of the user's: replicas would not share its state
        pass

    assert step_mod.auto_workers(hg.Sequential([Recorder(), *model.layers])) == 1
    with step_mod.make_step(model, losses.SoftmaxCrossEntropy()) as step:
        assert type(step).__name__ == "DataParallel" and step.workers == 3
    mlp = presets.mlp(hidden=(8,))  # Dense-like layers only: BLAS threads the one batch's products
    assert step_mod.auto_workers(mlp) == 1
    with step_mod.make_step(mlp, losses.SoftmaxCrossEntropy()) as step:
        assert type(step).__name__ == "PlainStep"


def test_fit_default_is_reproducible_and_equals_explicit_workers(threads):
    pytest.importorskip("threadpoolctl")
    accel.set_num_threads(2)
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    x = hg.data.to_float(x)[:300]
    y = y[:300]
    runs = []
    for workers in (None, None, 2):
        model = hg.Sequential([hg.layers.Conv2D(1, 2, 3, rng=0), hg.layers.MaxPool2D(2), hg.layers.Flatten(),
                               hg.layers.Dropout(0.2), hg.layers.Dense(2 * 13 * 13, 10, rng=1)])
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.05, momentum=0.9), x.reshape(-1, 1, 28, 28), y, epochs=2,
               batch_size=64, progress_bar=False, workers=workers)
        runs.append(model.get_weights())
    for k in runs[0]:
        assert np.array_equal(runs[0][k], runs[1][k]) and np.array_equal(runs[0][k], runs[2][k]), k


def test_data_parallel_dropout_equals_one_piece(threads):
    """workers=k draws one piece's dropout masks (row views of the model's own streams), so the
    trained weights equal workers=1's up to the order of float additions."""
    pytest.importorskip("threadpoolctl")
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    x, y = hg.data.to_float(x)[:250], y[:250]
    weights = {}
    for workers in (1, 2, 3):
        model = presets.mlp(hidden=(32, 16), dropout=0.3, dtype="float64")
        hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.05, momentum=0.9), x, y, epochs=2,
               batch_size=50, progress_bar=False, workers=workers, seed=5)
        weights[workers] = model.get_weights()
        rngs = [layer.rng for layer in model.layers if layer.stochastic]
        assert all(getattr(r, "view", None) is None for r in rngs)   # no view left after fit
    for k in weights[1]:
        for w in (2, 3):
            np.testing.assert_allclose(weights[w][k], weights[1][k], rtol=1e-10, atol=1e-12, err_msg=f"{w}:{k}")


@pytest.mark.parametrize("make, shape, parts", [
    (lambda: presets.mlp(hidden=(32,), dropout=0.3), (784,), 1),   # Dense-like layers: BLAS threads
    (lambda: presets.lenet5(), (1, 28, 28), 3),
    (lambda: presets.sequence_classifier("lstm", hidden=16), (28, 28), 3),
])
def test_predict_and_evaluate_split_over_threads_equal_one_piece(threads, make, shape, parts):
    pytest.importorskip("threadpoolctl")
    from handgrad import replicas

    model = make()
    x = np.random.default_rng(0).random((300, *shape), dtype=np.float32)
    y = np.arange(300) % 10
    accel.set_num_threads(1)
    one = model.predict(x, batch_size=256)
    ev1 = hg.evaluate(model, losses.SoftmaxCrossEntropy(), x, y, batch_size=256)
    accel.set_num_threads(3)
    assert replicas.Inference(model, 256, x).k == parts      # 256 rows: three parts of >= 64
    assert replicas.Inference(model, 100, x).k == 1          # too few rows to split
    many = model.predict(x, batch_size=256)
    ev3 = hg.evaluate(model, losses.SoftmaxCrossEntropy(), x, y, batch_size=256)
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6)
    assert ev3["accuracy"] == ev1["accuracy"] and ev3["loss"] == pytest.approx(ev1["loss"], rel=1e-6)
    assert np.array_equal(model.predict(x, batch_size=256), many)   # the same bits again


def test_inference_is_not_split_for_a_users_layer_or_a_given_initial_state(threads):
    pytest.importorskip("threadpoolctl")
    from handgrad import replicas

    accel.set_num_threads(2)

    class Mine(hg.layers.Identity):
        pass

    x = np.zeros((512, 784), dtype=np.float32)
    assert replicas.Inference(hg.Sequential([Mine(), *presets.mlp(hidden=(4,)).layers]), 512, x).k == 1
    lstm = presets.sequence_classifier("lstm", hidden=4)
    assert replicas.Inference(lstm, 512, np.zeros((512, 28, 28), np.float32)).k == 2
    lstm.layers[1].initial_state = (np.zeros((512, 4), np.float32), np.zeros((512, 4), np.float32))
    assert replicas.Inference(lstm, 512, np.zeros((512, 28, 28), np.float32)).k == 1
    # only Dense-like layers (and the Elman RNN): one piece, the products on every BLAS thread
    assert replicas.Inference(presets.mlp(hidden=(4,)), 512, x).k == 1
    assert replicas.Inference(presets.sequence_classifier("rnn", hidden=4), 512,
                              np.zeros((512, 28, 28), np.float32)).k == 1


# -- idle BLAS threads that spin beside handgrad's ---------------------------------------------
def _import_env(code: str, **env) -> str:
    import os
    import subprocess
    import sys

    full = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "HANDGRAD_BLAS_TIMEOUT")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


SHOW = "import os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"


def test_import_before_numpy_shortens_openblas_spin():
    assert _import_env("import handgrad; " + SHOW) == "20"
    code = "import handgrad; from handgrad import accel; print(accel.blas_threads_spin())"
    assert _import_env(code) == "False"  # the bundled OpenBLAS read it when NumPy loaded


def test_import_after_numpy_or_a_user_choice_leaves_it_alone():
    assert _import_env("import numpy, handgrad; " + SHOW) == "None"
    assert _import_env("import handgrad; " + SHOW, OPENBLAS_THREAD_TIMEOUT="25") == "25"
    assert _import_env("import handgrad; " + SHOW, HANDGRAD_BLAS_TIMEOUT="0") == "None"
    code = "import numpy, handgrad; from handgrad import accel; print(accel.blas_threads_spin())"
    assert _import_env(code) == "True"


GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
SETTINGS = "import handgrad; from handgrad import accel; print(accel.malloc_settings())"


@pytest.mark.skipif(not GLIBC, reason="malloc's thresholds are glibc's")
def test_import_tunes_glibc_malloc():
    assert _import_env(SETTINGS) == str({"mmap_threshold": 32 << 20, "trim_threshold": 256 << 20})
    assert accel.malloc_settings() == {"mmap_threshold": accel.MMAP_THRESHOLD, "trim_threshold": accel.TRIM_THRESHOLD}


@pytest.mark.parametrize("env", [{"HANDGRAD_MALLOC": "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                 {"MALLOC_MMAP_THRESHOLD_": "131072"}, {"MALLOC_TOP_PAD_": "0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"},
                                 {"LD_PRELOAD": "libjemalloc-does-not-exist.so"}])
def test_a_users_malloc_settings_are_left_alone(env):
    assert _import_env(SETTINGS, **env) == "None"


FAULTS = """
import resource, numpy as np, handgrad
def step():  # five 3 MB arrays made and freed together, as a training step's passes are
    arrays = [np.empty(3 << 20, np.uint8) for _ in range(5)]
    for a in arrays:
        a.fill(1)
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not GLIBC, reason="malloc's thresholds are glibc's")
def test_tuned_malloc_reuses_a_steps_freed_arrays_without_page_faults():
    # 10 steps of 15 MB: 38,400 pages if each step met fresh ones (glibc's defaults trim the
    # freed top of the heap, 15 MB, beyond twice the largest array freed)
    assert int(_import_env(FAULTS)) < 500
    assert int(_import_env(FAULTS, HANDGRAD_MALLOC="0")) > 10_000


@pytest.mark.parametrize("spin, blas_one, expected", [(False, False, 3), (True, True, 3), (True, False, 1)])
def test_own_threads(monkeypatch, spin, blas_one, expected):
    if not accel.blas_available():
        pytest.skip("threadpoolctl is not installed")
    monkeypatch.setattr(accel, "_spin", spin)
    accel.set_num_threads(3)
    try:
        with accel.blas_limit(1) if blas_one else contextlib.nullcontext():
            assert accel.own_threads() == expected
        with accel.limit_threads(1):
            assert accel.own_threads() == 1
    finally:
        accel.set_num_threads(None)


def test_unknown_blas_counts_as_spinning(monkeypatch):
    monkeypatch.setattr(accel, "_controller", None)
    monkeypatch.setattr(accel, "_blas_controller", lambda: None)
    assert accel._query_spin() is True


def test_auto_workers_keep_enough_rows_each(threads):
    pytest.importorskip("threadpoolctl")
    accel.set_num_threads(4)
    conv = hg.Sequential([hg.layers.Conv2D(1, 2, 3), hg.layers.Flatten(), hg.layers.Dense(2 * 26 * 26, 10)])
    lstm = hg.Sequential([hg.layers.LSTM(28, 8, return_sequences=False), hg.layers.Dense(8, 10)])
    assert step_mod.auto_workers(conv, rows=128) == 4
    assert step_mod.auto_workers(conv, rows=64) == 2        # 32 rows each at least
    assert step_mod.auto_workers(conv, rows=8) == 1
    assert step_mod.auto_workers(lstm, rows=512) == 4
    assert step_mod.auto_workers(lstm, rows=128) == 2       # the LSTM needs 64 rows per worker
    assert step_mod.auto_workers(lstm, rows=32) == 1
    assert step_mod.auto_workers(lstm) == 4                 # rows unknown: the whole budget
