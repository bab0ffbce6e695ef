"""Shared machinery of the benchmark suite (issue "fast by default"): handgrad and PyTorch on
the same model, data and thread count, in one process, runs interleaved so both see the same
machine state, medians of the repeats, markdown tables on stdout.

Sections (``--sections``; every script takes the same options):

- ``training``: seconds per epoch of (a) the plain contract-level loop a user writes
  (``forward(training=True)``, ``loss.forward``, ``backward(loss.backward())``, ``step()`` over
  shuffled batches) and (b) ``hg.fit(..., epochs=1, batch_size=B)`` with default arguments,
  each against PyTorch's equivalent loop, at every ``--batches`` size;
- ``predict``: samples/s of ``model.predict(x, batch_size=B)`` against ``torch.no_grad``
  ``model(x)`` at every ``--predict-batches`` size;
- ``memory``: peak RSS growth of one training epoch, each framework in a fresh child process
  (the peak of one process cannot be split between two libraries);
- ``floor``: the GEMM-bound floor of an epoch: the float32 products of one training step
  (forward and backward, no input gradient of the first layer), each timed with NumPy at its
  own shape, summed over the epoch's steps; handgrad's times as multiples of it.

``bench_sklearn.py`` adds the ``sklearn`` section (``MLPClassifier``) and ``bench_autoencoder.py``
the ``pretraining`` section (RBMs); ``bench_all.py`` runs every section.

Models are ``Spec`` objects defined by ``bench_mlp.py``, ``bench_lenet.py``, ``bench_rnn.py``,
``bench_lstm.py`` and ``bench_autoencoder.py`` (``SPECS`` in each); handgrad's side uses the
public API only (presets, layers, losses, optim, ``hg.fit``, ``model.predict``).
"""
from __future__ import annotations

import os
import sys

# The protocol: OpenBLAS's kernel-selection variables unset (they pick slower
# kernels). They are read when NumPy loads OpenBLAS, so re-run the interpreter without them.
SLOW_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(v in os.environ for v in SLOW_ENV):
    if "numpy" not in sys.modules:
        print(f"harness: re-running without {', '.join(v for v in SLOW_ENV if v in os.environ)}", file=sys.stderr)
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
                  {k: v for k, v in os.environ.items() if k not in SLOW_ENV})
    print("harness: warning: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set (NumPy already loaded); "
          "run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`", file=sys.stderr)

import argparse  # noqa: E402
import datetime  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Callable  # noqa: E402

import handgrad as hg  # noqa: E402  - before NumPy, as a script that starts with it (OpenBLAS's thread timeout)
import numpy as np  # noqa: E402
from handgrad import accel, optim, presets  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_MODULES = ("bench_mlp", "bench_lenet", "bench_rnn", "bench_lstm", "bench_autoencoder")
SECTIONS = ("training", "predict", "memory", "floor")


# -- models -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gemm:
    """One matrix product ``(m×k) @ (k×n)`` of a training step, ``count`` times per step;
    ``ta``/``tb``: that operand is the transpose of a C-ordered array (as in ``g.T @ x``)."""
    label: str
    m: int
    k: int
    n: int
    ta: bool = False
    tb: bool = False
    count: int = 1

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n * self.count


@dataclass
class Spec:
    """A benchmarked model: handgrad's and PyTorch's builds of the same network and recipe."""
    name: str                                    # short row label, also --models
    title: str                                   # one line describing it
    data: str                                    # 'flat' (N, 784), 'image' (N, 1, 28, 28), 'rows' (N, 28, 28)
    build: Callable                              # () -> handgrad Sequential
    loss: Callable                               # () -> handgrad Loss
    torch_build: Callable                        # (torch) -> torch.nn.Module
    recipe: dict                                 # optimizer, lr, momentum, weight_decay, clip_norm
    products: Callable[[int], list[Gemm]]        # batch size -> the GEMMs of one training step
    target: str = "labels"                       # 'labels' (cross-entropy) or 'input' (autoencoder, BCE)


def preset_recipe(name: str, **override) -> dict:
    """The optimizer settings of a handgrad preset (``presets.get(name).defaults``)."""
    d = dict(presets.get(name).defaults)
    keys = ("optimizer", "lr", "momentum", "weight_decay", "clip_norm")
    return {k: d.get(k) for k in keys} | override


def handgrad_optimizer(model, recipe: dict):
    kw = {"weight_decay": recipe.get("weight_decay") or 0.0, "clip_norm": recipe.get("clip_norm")}
    if recipe["optimizer"] == "sgd":
        return optim.SGD(model, recipe["lr"], momentum=recipe.get("momentum") or 0.0, **kw)
    if recipe["optimizer"] == "adam":
        return optim.Adam(model, recipe["lr"], **kw)
    raise ValueError(f"unknown optimizer {recipe['optimizer']!r}")


def torch_optimizer(torch, module, recipe: dict):
    """The same update in PyTorch; weight decay on weights only, as handgrad's (biases excluded)."""
    wd = recipe.get("weight_decay") or 0.0
    named = list(module.named_parameters())
    groups = [{"params": [p for n, p in named if "bias" not in n], "weight_decay": wd},
              {"params": [p for n, p in named if "bias" in n], "weight_decay": 0.0}]
    if recipe["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=recipe["lr"], momentum=recipe.get("momentum") or 0.0)
    return torch.optim.Adam(groups, lr=recipe["lr"])


def torch_normalize(torch):
    """PyTorch twin of handgrad's ``Normalize(FASHION_MEAN, FASHION_STD)`` first layer."""
    class Normalize(torch.nn.Module):
        def forward(self, x):
            return (x - presets.FASHION_MEAN) / presets.FASHION_STD
    return Normalize()


def dense_products(rows: int, fin: int, fout: int, input_grad: bool = True, label: str = "") -> list[Gemm]:
    """Dense ``y = x Wᵀ`` with ``W`` (fout, fin): forward, ``dW = δᵀx``, ``dx = δW``."""
    label = label or f"dense {fin}→{fout}"
    out = [Gemm(f"{label} fwd", rows, fin, fout, tb=True), Gemm(f"{label} dW", fout, rows, fin, ta=True)]
    return out + ([Gemm(f"{label} dx", rows, fout, fin)] if input_grad else [])


def conv_products(cols: int, k: int, d: int, input_grad: bool = True, label: str = "conv") -> list[Gemm]:
    """Convolution as im2col products: ``W (d×k) @ cols (k×cols)``, ``dW = δ colsᵀ``, ``dcols = Wᵀδ``."""
    out = [Gemm(f"{label} fwd", d, k, cols), Gemm(f"{label} dW", d, cols, k, tb=True)]
    return out + ([Gemm(f"{label} dcols", k, d, cols, ta=True)] if input_grad else [])


def recurrent_products(n: int, steps: int, fin: int, hidden: int, gates: int, label: str) -> list[Gemm]:
    """A recurrent layer that is the first trainable layer: the input projection of all steps in
    one product, the recurrent product at every step after the first (h₀ = 0), their weight
    gradients over all steps, and the error through W_hh at every step but the first."""
    g = gates * hidden
    return [Gemm(f"{label} x·W_ihᵀ", steps * n, fin, g, tb=True),
            Gemm(f"{label} h·W_hhᵀ", n, hidden, g, tb=True, count=steps - 1),
            Gemm(f"{label} dW_ih", g, steps * n, fin, ta=True),
            Gemm(f"{label} dW_hh", g, (steps - 1) * n, hidden, ta=True),
            Gemm(f"{label} δ·W_hh", n, g, hidden, count=steps - 1)]


@functools.cache
def all_specs() -> tuple[Spec, ...]:
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    return tuple(s for mod in SPEC_MODULES for s in importlib.import_module(mod).SPECS)


def find_spec(name: str) -> Spec:
    for s in all_specs():
        if s.name == name:
            return s
    raise SystemExit(f"unknown model {name!r}; expected one of {[s.name for s in all_specs()]}")


# -- data -------------------------------------------------------------------------------------
@functools.cache
def _images(subset: bool):
    (x, y), _ = hg.data.load_fashion_mnist_subset() if subset else hg.data.load_fashion_mnist()
    return x, y


def load_data(kind: str, subset: bool, samples: int):
    """Pixels in [0, 1] (the presets standardize with their own Normalize layer), float32;
    int64 labels. ``samples`` > 0 keeps the first ``samples`` images."""
    x, y = _images(subset)
    if samples:
        x, y = x[:samples], y[:samples]
    x = hg.data.to_float(x, dtype=np.float32, flatten=kind == "flat")
    if kind == "image":
        x = x.reshape(-1, 1, 28, 28)
    return np.ascontiguousarray(x), y.astype(np.int64)


def targets(spec: Spec, x, y):
    return x if spec.target == "input" else y


# -- the machine --------------------------------------------------------------------------------
def blas_info() -> dict:
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return blas[0] if blas else {"num_threads": os.cpu_count()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "absent"


def header(title: str, torch, commands: list[str]) -> str:
    b = blas_info()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    lines = [
        f"## {title}",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {_cpu_model()} ({platform.machine()}), {os.cpu_count()} cores ({usable} usable), "
        f"Python {platform.python_version()}",
        f"- numpy {np.__version__}, BLAS {b.get('internal_api', '?')} {b.get('version', '')} "
        f"({b.get('architecture', '?')}, {b.get('num_threads')} threads); torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); numba {_version('numba')}; scikit-learn {_version('sklearn')}",
        f"- handgrad {hg.__version__}: JIT {'on' if accel.jit_enabled() else 'off'} "
        f"(`handgrad.accel.jit_enabled()`), `accel.num_threads()` = {accel.num_threads()}; "
        + ", ".join(f"{v} {'unset' if v not in os.environ else '= ' + os.environ[v]}" for v in SLOW_ENV)
        + f"; OPENBLAS_THREAD_TIMEOUT = {os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset')} "
        f"(idle BLAS threads spin long: {accel.blas_threads_spin()}; handgrad's own threads in layers: "
        f"{accel.own_threads()})",
        f"- load average (1, 5, 15 min) at the start: {load_average()}" + busy_warning(),
        "- command" + ("s" if len(commands) > 1 else "") + ": " + "; ".join(f"`{c}`" for c in commands),
    ]
    return "\n".join(lines)


def load_average() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def busy_warning() -> str:
    """On a machine busy with other work, multi-threaded BLAS and PyTorch calls wait for
    descheduled threads (whole scheduler ticks): such timings are not speed measurements."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return ""
    cores = os.cpu_count() or 1
    return (f" — **busy machine (load {load:.1f} on {cores} cores): the times below are not speed "
            "measurements; rerun on a quiet machine**") if load > 0.3 * cores else ""


def command_line(argv: list[str] | None = None) -> str:
    argv = sys.argv if argv is None else argv
    script = os.path.relpath(os.path.abspath(argv[0]), os.path.dirname(HERE))
    return "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python " + shlex.join([script, *argv[1:]])


def table(columns: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    return "\n".join(out + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "–"


# -- runners: one epoch each ----------------------------------------------------------------------
def handgrad_loop_epoch(model, loss, opt, x, t, batch: int, seed: int) -> float:
    """The plain contract-level loop a user writes, over shuffled batches."""
    start = time.perf_counter()
    perm = np.random.default_rng(seed).permutation(x.shape[0])
    for s in range(0, x.shape[0], batch):
        idx = perm[s:s + batch]
        out = model.forward(x[idx], training=True)
        loss.forward(out, t[idx])
        model.backward(loss.backward())
        opt.step()
    return time.perf_counter() - start


FIT_KW: dict = {}  # {"workers": k} only with --workers k; otherwise fit's defaults


def handgrad_fit_epoch(model, loss, opt, x, t, batch: int, seed: int) -> float:
    """``hg.fit`` with default arguments (the progress bar off: it never shows when piped)."""
    start = time.perf_counter()
    hg.fit(model, loss, opt, x, t, epochs=1, batch_size=batch, progress_bar=False, **FIT_KW)
    return time.perf_counter() - start


def torch_loss(torch, spec: Spec):
    if spec.target == "input":  # per-sample sum over pixels, mean over the batch: handgrad's BCE
        return lambda out, y: torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="sum") / out.shape[0]
    return torch.nn.CrossEntropyLoss()


def torch_epoch(torch, model, lossf, opt, clip, xt, tt, batch: int, seed: int) -> float:
    model.train()
    params = [p for p in model.parameters()]
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    perm = torch.randperm(xt.shape[0], generator=g)
    for s in range(0, xt.shape[0], batch):
        idx = perm[s:s + batch]
        loss = lossf(model(xt[idx]), tt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        loss.item()  # handgrad's loss.forward returns the batch loss as a float too
    return time.perf_counter() - start


class Runners:
    """Fresh models of one spec and the three epoch runners: handgrad loop, handgrad fit, torch."""

    def __init__(self, spec: Spec, torch, x, t):
        self.spec, self.x, self.t = spec, x, t
        self.hl = self._handgrad()
        self.hf = self._handgrad()
        if torch is not None:
            tm = spec.torch_build(torch)
            self.tm = (tm, torch_loss(torch, spec), torch_optimizer(torch, tm, spec.recipe), spec.recipe.get("clip_norm"))
            self.xt, self.tt = torch.from_numpy(x), torch.from_numpy(t)
        self.torch = torch

    def _handgrad(self):
        m = self.spec.build()
        return m, self.spec.loss(), handgrad_optimizer(m, self.spec.recipe)

    def loop(self, batch, seed, n=None):
        return handgrad_loop_epoch(*self.hl, self.x[:n], self.t[:n], batch, seed)

    def fit(self, batch, seed, n=None):
        return handgrad_fit_epoch(*self.hf, self.x[:n], self.t[:n], batch, seed)

    def pytorch(self, batch, seed, n=None):
        return torch_epoch(self.torch, *self.tm, self.xt[:n], self.tt[:n], batch, seed)


def interleaved(runs: dict[str, Callable[[int], float]], repeats: int) -> dict[str, list[float]]:
    """Every runner once per repeat, in turn; the lists of seconds."""
    times = {k: [] for k in runs}
    for r in range(repeats):
        for k, run in runs.items():
            times[k].append(run(r))
    return times


def warm_up(runner, batch):
    """Two steps first: compiled kernels load, thread pools and buffers exist."""
    runner(batch, 100, n=2 * batch)


# -- sections ---------------------------------------------------------------------------------------
def training_section(ctx, specs) -> str:
    rows, notes = [], []
    for spec in specs:
        x, y = ctx.data(spec)
        t = targets(spec, x, y)
        for b in ctx.batches:
            r = Runners(spec, ctx.torch, x, t)
            for f in (r.loop, r.fit, r.pytorch):
                warm_up(f, b)
            times = interleaved({"loop": lambda i: r.loop(b, i), "fit": lambda i: r.fit(b, i),
                                 "torch": lambda i: r.pytorch(b, i),
                                 "floor": lambda i: epoch_floor(spec, x.shape[0], b)}, ctx.repeats)
            med = {k: statistics.median(v) for k, v in times.items()}
            ctx.results[(spec.name, b)] = med
            rows.append([spec.name, b, med["loop"], med["fit"], med["torch"], ratio(med["loop"], med["torch"]),
                         ratio(med["fit"], med["torch"])])
            notes.append(f"{spec.name} b{b}: " + ", ".join(f"{k} {[round(v, 3) for v in vs]}" for k, vs in times.items()))
            print(f"[training] {notes[-1]}", file=sys.stderr, flush=True)
    fit_args = ", ".join(f"{k}={v}" for k, v in FIT_KW.items()) or "default arguments"
    text = [f"### Training: seconds per epoch ({ctx.samples_note}; median of {ctx.repeats})", "",
            table(["model", "batch", "handgrad loop", "handgrad fit", "PyTorch", "loop / PyTorch", "fit / PyTorch"],
                  rows), "",
            f"loop: `forward(training=True)`, `loss.forward`, `backward(loss.backward())`, `step()` over shuffled "
            f"batches; fit: `hg.fit(model, loss, opt, x, y, epochs=1, batch_size=B, progress_bar=False)`, "
            f"{fit_args}; PyTorch: the same model, loss, optimizer and batches, `loss.item()` every step. "
            "Ratios > 1: handgrad slower.", "", "<details><summary>all repeats (s)</summary>", "",
            *[f"- {n}" for n in notes], "", "</details>"]
    return "\n".join(text)


def predict_section(ctx, specs) -> str:
    torch = ctx.torch
    rows = []
    for spec in specs:
        x, _ = ctx.data(spec)
        hm, tm = spec.build(), spec.torch_build(torch)
        tm.eval()
        for b in ctx.predict_batches:
            n = min(x.shape[0], 256 * b)
            xs, xt = x[:n], torch.from_numpy(x[:n])

            def h(_):
                s = time.perf_counter()
                hm.predict(xs, batch_size=b)
                return time.perf_counter() - s

            def t(_):
                s = time.perf_counter()
                with torch.no_grad():
                    np.concatenate([tm(xt[i:i + b]).numpy() for i in range(0, n, b)])
                return time.perf_counter() - s

            h(0), t(0)
            times = interleaved({"h": h, "t": t}, ctx.repeats)
            sh, st = n / statistics.median(times["h"]), n / statistics.median(times["t"])
            rows.append([spec.name, b, n, f"{sh:,.0f}", f"{st:,.0f}", ratio(st, sh)])
            print(f"[predict] {spec.name} b{b}: {rows[-1][3:]}", file=sys.stderr, flush=True)
    return "\n".join([f"### Inference throughput: samples/s (median of {ctx.repeats})", "",
                      table(["model", "batch", "samples timed", "handgrad `predict`", "PyTorch `no_grad`",
                             "time ratio handgrad / PyTorch"], rows), "",
                      "handgrad: `model.predict(x, batch_size=B)` (NumPy in, NumPy out); PyTorch: "
                      "`model.eval()`, under `torch.no_grad()` `model(x[i:i+B]).numpy()` per batch, concatenated."])


def child_args(ctx, spec: Spec, mode: str) -> list[str]:
    args = [sys.executable, os.path.join(HERE, "harness.py"), "--child", spec.name, mode,
            "--batch", str(ctx.memory_batch), "--samples", str(ctx.samples)]
    if ctx.subset:
        args.append("--subset")
    if "workers" in FIT_KW:
        args += ["--workers", str(FIT_KW["workers"])]
    return args


def memory_child(ctx, spec: Spec, mode: str) -> dict:
    out = subprocess.run(child_args(ctx, spec, mode), capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"memory child {spec.name} {mode} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_section(ctx, specs) -> str:
    rows = []
    # Three children at a time: a peak RSS does not depend on what else runs (their imports,
    # about 3 s for handgrad and 6 s for torch, dominate the wall time).
    with ThreadPoolExecutor(3) as pool:
        jobs = {(s.name, m): pool.submit(memory_child, ctx, s, m) for s in specs for m in ("loop", "fit", "torch")}
    for spec in specs:
        mb = {m: jobs[(spec.name, m)].result() for m in ("loop", "fit", "torch")}
        rows.append([spec.name, mb["loop"]["training_mb"], mb["fit"]["training_mb"], mb["torch"]["training_mb"],
                     ratio(mb["loop"]["training_mb"], mb["torch"]["training_mb"]),
                     ratio(mb["fit"]["training_mb"], mb["torch"]["training_mb"]),
                     f"{mb['loop']['peak_rss_mb']:.0f} / {mb['fit']['peak_rss_mb']:.0f} / {mb['torch']['peak_rss_mb']:.0f}"])
        print(f"[memory] {spec.name}: {rows[-1][1:4]}", file=sys.stderr, flush=True)
    return "\n".join([f"### Peak memory of one training epoch: MB above the loaded data and model "
                      f"(batch {ctx.memory_batch}, {ctx.samples_note})", "",
                      table(["model", "handgrad loop", "handgrad fit", "PyTorch", "loop / PyTorch", "fit / PyTorch",
                             "peak RSS loop / fit / PyTorch (MB)"], rows), "",
                      "Each in a fresh process (the handgrad ones never import torch): data loaded, a warm-up "
                      "step of another instance on 2 samples (compiled kernels and thread pools load), the "
                      "model built, then the peak RSS (`VmHWM`) is reset and one epoch of the fresh model runs; "
                      "the table gives the peak minus the RSS before the epoch."])


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def child_main(argv: list[str]) -> None:
    """In a child: build one spec, warm up, reset the peak RSS, run one epoch, print JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "MODE"))
    ap.add_argument("--batch", type=int)
    ap.add_argument("--samples", type=int)
    ap.add_argument("--subset", action="store_true")
    ap.add_argument("--workers", type=int)
    a = ap.parse_args(argv)
    if a.workers:
        FIT_KW["workers"] = a.workers
    spec, mode = find_spec(a.child[0]), a.child[1]
    torch = None
    if mode == "torch":
        import torch
        torch.set_num_threads(blas_info()["num_threads"])
    x, y = load_data(spec.data, a.subset, a.samples)
    t = targets(spec, x, y)
    # Compiled kernels, thread pools and allocators warm on another instance and 2 samples, so
    # that the measured epoch's buffers (allocated during it) count and the warm-up's barely do.
    w = Runners(spec, torch, x[:2], t[:2])
    getattr(w, mode if mode != "torch" else "pytorch")(2, 100)
    del w
    r = Runners(spec, torch, x, t)
    run = {"loop": r.loop, "fit": r.fit, "torch": r.pytorch}[mode]
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # Linux: reset VmHWM to the current RSS
        fh.write("5")
    run(a.batch, 0)
    peak = _status_kb("VmHWM")
    print(json.dumps({"peak_rss_mb": peak / 1024, "training_mb": (peak - base) / 1024}))


# -- the GEMM floor ---------------------------------------------------------------------------------
def gemm_seconds(m: int, k: int, n: int, ta: bool, tb: bool, rounds: int = 3) -> float:
    """Median seconds of one float32 ``np.matmul`` of that shape and layout (output preallocated)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    a, b = (a.T if ta else a), (b.T if tb else b)
    out = np.empty((m, n), np.float32)
    s = time.perf_counter()
    np.matmul(a, b, out=out)
    reps = max(1, int(0.005 / max(time.perf_counter() - s, 1e-7)))
    per = []
    for _ in range(rounds):
        s = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=out)
        per.append((time.perf_counter() - s) / reps)
    return statistics.median(per)


def epoch_floor(spec: Spec, samples: int, batch: int) -> float:
    """Seconds of the epoch's GEMMs alone: the full batches and the last, shorter one, each
    product timed now (so that, run between the epochs, it sees the same machine state)."""
    seen: dict = {}

    def step(b):
        total = 0.0
        for g in spec.products(b):
            key = (g.m, g.k, g.n, g.ta, g.tb)
            if key not in seen:
                seen[key] = gemm_seconds(*key)
            total += g.count * seen[key]
        return total

    full, rest = divmod(samples, batch)
    return full * step(batch) + (step(rest) if rest else 0.0)


def flops_per_sample(spec: Spec, batch: int = 128) -> float:
    return sum(g.flops for g in spec.products(batch)) / batch


def floor_section(ctx, specs) -> str:
    peak_n = 2048
    peak = 2.0 * peak_n ** 3 / gemm_seconds(peak_n, peak_n, peak_n, False, False)
    rows = []
    for spec in specs:
        x, y = ctx.data(spec)
        n = x.shape[0]
        for b in ctx.batches:
            if (spec.name, b) not in ctx.results:  # training section not run: time handgrad alone
                r = Runners(spec, None, x, targets(spec, x, y))
                warm_up(r.loop, b), warm_up(r.fit, b)
                times = interleaved({"loop": lambda i: r.loop(b, i), "fit": lambda i: r.fit(b, i),
                                     "floor": lambda i: epoch_floor(spec, n, b)}, ctx.repeats)
                ctx.results[(spec.name, b)] = {k: statistics.median(v) for k, v in times.items()}
            med = ctx.results[(spec.name, b)]
            fl = med["floor"]
            fps = flops_per_sample(spec, b)
            rows.append([spec.name, b, f"{fps / 1e6:.2f}", f"{fps * n / fl / 1e9:.1f}", fl, med["loop"],
                         f"{med['loop'] / fl:.2f}×", med["fit"], f"{med['fit'] / fl:.2f}×", f"{fps * n / peak:.3f}"])
            print(f"[floor] {spec.name} b{b}: floor {fl:.3f} s", file=sys.stderr, flush=True)
    return "\n".join([f"### GEMM-bound floor of one epoch ({ctx.samples_note})", "",
                      f"This machine's float32 GEMM peak (NumPy, {peak_n}×{peak_n}×{peak_n}): "
                      f"**{peak / 1e9:.1f} GFLOP/s**.", "",
                      table(["model", "batch", "MFLOP/sample", "GEMM GFLOP/s at its shapes", "floor s/epoch",
                             "handgrad loop s", "loop × floor", "handgrad fit s", "fit × floor",
                             "s/epoch at peak rate"], rows), "",
                      "FLOPs: the float32 products of one training step (forward, weight gradients, input "
                      "gradients except the first trainable layer's; convolutions as im2col products, recurrent "
                      "layers per step), 2 per multiply-add. Floor: each product timed with `np.matmul` at its "
                      "own shape and layout, summed over the epoch's steps; timed between the epochs it is compared "
                      "with (median over the repeats), as the machine is shared. "
                      "The issue's target: the MLP epoch within 1.6× of its floor."])


# -- the command line --------------------------------------------------------------------------------
class Context:
    """Options and state shared by the sections of one run."""

    def __init__(self, args, torch):
        self.torch = torch
        self.repeats, self.subset = args.repeats, args.subset
        self.samples = args.samples if args.samples is not None else (2000 if args.subset else 10000)
        self.batches = [args.batch] if args.batch else [int(b) for b in args.batches.split(",")]
        self.predict_batches = [int(b) for b in args.predict_batches.split(",")]
        self.memory_batch = args.memory_batch
        self.results: dict = {}
        n = self.data_size()
        self.samples_note = f"{n:,} {'subset ' if args.subset else ''}training images per epoch"

    def data_size(self) -> int:
        n = _images(self.subset)[0].shape[0]
        return min(n, self.samples) if self.samples else n

    def data(self, spec: Spec):
        return _cached_data(spec.data, self.subset, self.samples)


@functools.cache
def _cached_data(kind, subset, samples):
    return load_data(kind, subset, samples)


def parser(doc: str, sections=SECTIONS) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; medians reported (default 3)")
    ap.add_argument("--batches", default="32,128,512", help="training batch sizes (default 32,128,512)")
    ap.add_argument("--predict-batches", default="1,1024", help="inference batch sizes (default 1,1024)")
    ap.add_argument("--memory-batch", type=int, default=128, help="batch size of the memory epoch (default 128)")
    ap.add_argument("--samples", type=int, default=None,
                    help="training images per epoch (default 10000, with --subset 2000; 0: all)")
    ap.add_argument("--subset", action="store_true",
                    help="the shipped 6000-image subset, 2000 images per epoch unless --samples (a smoke run)")
    ap.add_argument("--models", default="", help="comma-separated model names (default: all of this script)")
    ap.add_argument("--sections", default=",".join(sections), help=f"comma-separated, of {','.join(sections)}")
    ap.add_argument("--workers", type=int, default=0,
                    help="override: pass fit(workers=K) (default, or 0: not passed, fit's default)")
    ap.add_argument("--batch", type=int, help="one training batch size (the same as --batches B)")
    ap.add_argument("--no-memory", action="store_true", help="leave out the memory section")
    return ap


def section_list(args) -> list[str]:
    sections = args.sections.split(",")
    return [s for s in sections if s != "memory"] if args.no_memory else sections


def setup(args):
    """Apply the shared options; import torch with the BLAS thread count; the Context."""
    if args.workers:
        FIT_KW["workers"] = args.workers
    import torch

    torch.set_num_threads(blas_info()["num_threads"])
    return Context(args, torch)


def pick(specs, names: str):
    if not names:
        return list(specs)
    wanted = names.split(",")
    return [find_spec(n) for n in wanted]


SECTION_FUNCS = {"training": training_section, "predict": predict_section, "memory": memory_section,
                 "floor": floor_section}


def run_sections(ctx, specs, sections) -> list[str]:
    for name in sections:
        if name not in SECTION_FUNCS:
            raise SystemExit(f"unknown section {name!r}; expected one of {sorted(SECTION_FUNCS)}")
    out, start = [], time.perf_counter()
    for name in sections:
        s = time.perf_counter()
        text = SECTION_FUNCS[name](ctx, specs)
        print(text + "\n", flush=True)
        print(f"[{name}] section done in {time.perf_counter() - s:.0f} s", file=sys.stderr, flush=True)
        out.append(text)
    print(f"_Run took {time.perf_counter() - start:.0f} s; load average at the end: {load_average()}._", flush=True)
    return out


def main(doc: str, title: str, specs, sections=SECTIONS) -> None:
    """A model script's command line: its specs through the chosen sections, as markdown."""
    args = parser(doc, sections).parse_args()
    ctx = setup(args)
    print(header(title, ctx.torch, [command_line()]) + "\n", flush=True)
    run_sections(ctx, pick(specs, args.models), section_list(args))


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    import harness as _h  # one copy of this module: the specs refer to it by that name

    _h.child_main(sys.argv[1:])
