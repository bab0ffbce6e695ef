"""Where the cores go: the thread count, the optional numba JIT, and work split over threads.

NumPy runs an element-wise operation on one core and makes one pass over memory per
operation; BLAS alone uses every core. This module gives the layers two tools against that:

- :func:`parallel_for` splits ``range(n)`` (rows of a batch, time steps, chunks of a flat
  parameter) into contiguous parts, one per thread, and runs ``fn(start, stop)`` on each in a
  persistent pool; NumPy releases the GIL inside its loops and numba kernels are compiled
  ``nogil``, so the parts truly run side by side. The parts depend only on ``n`` and the
  thread count, so results are bit for bit the same for a given thread count (and, for work
  without cross-part reductions, for every thread count). Calls from inside a part, or from a
  thread of ``fit(workers=k)``, run inline: nothing is oversubscribed.
- :func:`kernel` compiles a plain-Python loop nest with numba (the ``fast`` extra,
  ``pip install 'handgrad[fast]'``) so that several NumPy passes (an activation and its
  derivative mask, a pooling maximum and its winner, an LSTM step's gate arithmetic) become one
  pass over memory. Every kernel has a NumPy path beside it that computes the same equations;
  that path runs when numba is absent or the JIT is switched off (``HANDGRAD_JIT=0`` or
  :func:`set_jit`), and the tests compare the two.

Threads: ``HANDGRAD_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the cores this process may
run on (``os.sched_getaffinity``); :func:`set_num_threads` overrides them, and also sets the
BLAS thread count when ``threadpoolctl`` is installed.
"""
from __future__ import annotations

import contextlib
import os
import threading
import types
from typing import Callable

__all__ = ["default_threads", "num_threads", "set_num_threads", "limit_threads", "parallel_for", "run_parts", "split",
           "blas_available", "blas_limit", "tune_malloc", "malloc_settings",
           "jit_available", "jit_enabled", "set_jit", "use_jit", "kernel", "inline"]


# -- threads ---------------------------------------------------------------------------------
def _parse_threads(value: str | None) -> int | None:
    if not value:
        return None
    head = value.split(",")[0].strip()   # OMP_NUM_THREADS may list one count per nesting level
    try:
        n = int(head)
    except ValueError:
        return None
    return n if n >= 1 else None


def default_threads() -> int:
    """``HANDGRAD_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the usable cores."""
    for var in ("HANDGRAD_NUM_THREADS", "OMP_NUM_THREADS"):
        n = _parse_threads(os.environ.get(var))
        if n is not None:
            return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_threads: int | None = None          # set_num_threads; None: default_threads()
_local = threading.local()           # .limit: a per-thread cap (pool workers, fit's worker threads)


def num_threads() -> int:
    """How many threads handgrad's own work may use in the calling thread."""
    n = _threads if _threads is not None else default_threads()
    limit = getattr(_local, "limit", None)
    return n if limit is None else min(n, limit)


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads for handgrad's element-wise work (and BLAS, when ``threadpoolctl`` is
    installed); ``None`` goes back to :func:`default_threads`."""
    global _threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"set_num_threads: expected a positive int or None, got {n!r}")
    _threads = n
    ctl = _blas_controller()
    if ctl is not None:
        ctl.limit(limits=num_threads(), user_api="blas")


@contextlib.contextmanager
def limit_threads(n: int):
    """Inside, the calling thread's handgrad work uses at most ``n`` threads (``fit``'s
    data-parallel workers run with 1, so their layers never start threads of their own)."""
    old = getattr(_local, "limit", None)
    _local.limit = n if old is None else min(old, n)
    try:
        yield
    finally:
        _local.limit = old


_controller = None


def _blas_controller():
    """A cached ``threadpoolctl.ThreadpoolController`` (None without threadpoolctl): entering a
    limit through it costs microseconds, scanning the loaded libraries again costs ~0.5 ms."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - optional
        except ImportError:
            return None
        _controller = ThreadpoolController()
    return _controller


def blas_available() -> bool:
    """Whether BLAS's thread count can be set (``threadpoolctl`` is installed)."""
    return _blas_controller() is not None


_spin = None  # cached result of blas_threads_spin()

# OpenBLAS spins idle threads for 2^timeout cycles; up to 2^22 (~1.5 ms) they are asleep before
# handgrad's own threads start their next part in earnest.
SHORT_SPIN = 22


def blas_threads_spin() -> bool:
    """Whether the BLAS library's idle threads busy-wait long after each product (OpenBLAS
    without a short ``OPENBLAS_THREAD_TIMEOUT``, or a BLAS whose behaviour is not known), so
    that threads handgrad starts right after a product would share cores with them. Layers split
    their own work over threads only when this is False or BLAS runs one thread
    (:func:`own_threads`)."""
    global _spin
    if _spin is None:
        _spin = _query_spin()
    return _spin


def _query_spin() -> bool:
    ctl = _blas_controller()
    if ctl is None:
        return True
    libs = [lib for lib in ctl.lib_controllers if lib.user_api == "blas"]
    if not libs or any(lib.internal_api != "openblas" for lib in libs):
        return True
    try:
        import ctypes  # noqa: PLC0415

        for lib in libs:
            timeout = getattr(ctypes.CDLL(lib.filepath), "openblas_thread_timeout")
            timeout.restype = ctypes.c_int
            value = timeout()
            if not 1 <= value <= SHORT_SPIN:
                return True
    except (OSError, AttributeError):  # an OpenBLAS without the query: assume the default spin
        return True
    return False


def own_threads() -> int:
    """How many threads a layer may split its own work over here: :func:`num_threads`, or 1
    where BLAS threads would spin beside them (:func:`blas_threads_spin`) unless BLAS is held
    to one thread anyway."""
    n = num_threads()
    if n > 1 and blas_threads_spin():
        ctl = _blas_controller()
        blas = [lib.num_threads for lib in ctl.lib_controllers if lib.user_api == "blas"] if ctl else []
        if not blas or max(blas) > 1:
            return 1
    return n


@contextlib.contextmanager
def blas_limit(n: int):
    """Inside, BLAS uses at most ``n`` threads (process-wide: for regions where handgrad's own
    threads each run their products); without ``threadpoolctl`` nothing changes."""
    ctl = _blas_controller()
    if ctl is None:
        yield
        return
    with ctl.limit(limits=n, user_api="blas"):
        yield


# -- the allocator ---------------------------------------------------------------------------
# glibc's malloc hands arrays above its mmap threshold (128 KiB, raised to the size of each such
# array freed, up to 32 MiB) fresh pages, and gives the free top of its heap back to the system
# once it exceeds twice that. A training step frees its last pass's arrays and allocates the
# next pass's of the same sizes, so every step met its arrays' pages again as page faults, each
# one the kernel's (measured on a 2-core VM: 1,500-1,800 faults a LeNet-5 step at batch 128,
# 2-3 ms of 10; LSTM, 1,000-1,500). A fixed threshold keeps those arrays on the heap and a high
# trim threshold keeps the heap's freed top mapped for the next step.
MMAP_THRESHOLD = 32 << 20   # glibc's own upper bound for its dynamic threshold (64-bit)
TRIM_THRESHOLD = 256 << 20  # free heap kept mapped, at most (a LeNet-5 step at batch 128 holds ~20 MB)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters, <malloc.h>
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_malloc: dict | None = None  # what tune_malloc set, None: nothing


def tune_malloc() -> dict | None:
    """Set glibc malloc's mmap threshold to :data:`MMAP_THRESHOLD` and its trim threshold to
    :data:`TRIM_THRESHOLD` (process-wide, for the allocations that follow), so that arrays up
    to 32 MiB freed by one training step are reused by the next without page faults. ``import
    handgrad`` calls it. Nothing is changed, and None is returned, where the C library is not
    glibc, where ``HANDGRAD_MALLOC=0``, where the environment already tunes malloc (the
    ``MALLOC_*_`` variables, ``glibc.malloc`` in ``GLIBC_TUNABLES``) or preloads another
    allocator (``LD_PRELOAD``); otherwise the settings as a dict (:func:`malloc_settings`)."""
    global _malloc
    env = os.environ
    if (env.get("HANDGRAD_MALLOC", "").strip() == "0" or any(v in env for v in _MALLOC_ENV)
            or "glibc.malloc." in env.get("GLIBC_TUNABLES", "") or "malloc" in env.get("LD_PRELOAD", "")):
        return None
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has no tunable thresholds)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return None  # pragma: no cover - glibc rejects only out-of-range values
    _malloc = {"mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
    return dict(_malloc)


def malloc_settings() -> dict | None:
    """The malloc thresholds :func:`tune_malloc` set in this process, or None where it set none."""
    return None if _malloc is None else dict(_malloc)


class _Worker:
    """A persistent thread that runs one task at a time, handed over through two locks: the
    caller releases ``go``, the thread releases ``done``. Two lock hand-offs, 15-20 µs on the
    2-core VM, against 65-70 µs for a ``ThreadPoolExecutor`` task (its future, queue and
    condition variable): :func:`parallel_for` is called a few times per training step."""

    def __init__(self) -> None:
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.task: Callable[[], None] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="handgrad-worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        _local.limit = 1  # a part never splits again
        while True:
            self.go.acquire()
            task = self.task
            if task is None:  # closed
                return
            try:
                task()
            except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
                self.error = exc
            self.task = None
            self.done.release()

    def start(self, task: Callable[[], None]) -> None:
        self.task, self.error = task, None
        self.go.release()

    def wait(self) -> BaseException | None:
        self.done.acquire()
        return self.error


_workers: list[_Worker] = []
_pool_lock = threading.Lock()  # held by the one parallel_for that uses the workers


def _get_workers(k: int) -> list[_Worker]:
    while len(_workers) < k:
        _workers.append(_Worker())
    return _workers[:k]


def _forget_pool() -> None:  # a forked child inherits no threads
    global _workers, _pool_lock
    _workers, _pool_lock = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` as ``parts`` contiguous ``(start, stop)`` pieces of near-equal size."""
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


def parallel_for(n: int, fn: Callable[[int, int], None], *, grain: int = 1, parts: int | None = None) -> None:
    """Run ``fn(start, stop)`` over contiguous parts of ``range(n)`` (:func:`split`), one per
    thread, each part at least ``grain`` long (fewer threads when ``n`` is small; inline when one
    is enough), or exactly ``parts`` parts when given (capped by ``num_threads()``).
    ``fn`` must write disjoint outputs for disjoint ranges; an exception in any part is raised
    here after every part has finished."""
    k = min(num_threads(), n // max(1, grain) if parts is None else min(parts, n))
    if k <= 1:
        if n > 0:
            fn(0, n)
        return
    parts = split(n, k)
    run_parts([lambda a=a, b=b: fn(a, b) for a, b in parts])


def run_parts(tasks: list) -> list:
    """Call every task of ``tasks`` once, side by side: the last in this thread, the others on
    the persistent workers, every one of them with a budget of one thread
    (:func:`limit_threads`); returns their results in order. When another thread holds the
    workers, the tasks run here one after the other (the same work, the same bits). An
    exception in any task is raised after every task has finished."""
    results: list = [None] * len(tasks)

    def call(i: int):
        def task() -> None:
            results[i] = tasks[i]()
        return task

    if len(tasks) <= 1 or not _pool_lock.acquire(blocking=False):
        with limit_threads(1):
            for i in range(len(tasks)):
                call(i)()
        return results
    try:
        workers = _get_workers(len(tasks) - 1)
        for i, w in enumerate(workers):
            w.start(call(i))
        error = None
        try:
            with limit_threads(1):
                call(len(tasks) - 1)()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other tasks
            error = exc
        for w in workers:  # every task finishes before anything is raised
            failed = w.wait()
            error = error or failed
    finally:
        _pool_lock.release()
    if error is not None:
        raise error
    return results


# -- the optional JIT ------------------------------------------------------------------------
def _jit_setting_from_env() -> bool | None:
    value = os.environ.get("HANDGRAD_JIT", "auto").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    return None  # auto: when numba imports


_jit_setting = _jit_setting_from_env()
_numba = None
_numba_checked = False


def _numba_module():
    global _numba, _numba_checked
    if not _numba_checked:
        _numba_checked = True
        try:
            import numba  # noqa: PLC0415 - optional dependency
        except ImportError:
            _numba = None
        else:
            _numba = numba
    return _numba


def jit_available() -> bool:
    """True when numba imports (the ``fast`` extra)."""
    return _numba_module() is not None


def jit_enabled() -> bool:
    """Whether layers use their compiled kernels now."""
    if _jit_setting is False:
        return False
    if _jit_setting is True and not jit_available():
        raise RuntimeError("handgrad: HANDGRAD_JIT=1 needs numba; install it with `pip install 'handgrad[fast]'`")
    return jit_available()


def set_jit(flag: bool | None) -> None:
    """``True``: always use the compiled kernels (an error without numba); ``False``: the
    NumPy paths only; ``None``: compiled when numba is installed (the default)."""
    global _jit_setting
    if flag is not None and not isinstance(flag, bool):
        raise TypeError(f"set_jit: expected True, False or None, got {flag!r}")
    if flag is True and not jit_available():
        raise RuntimeError("set_jit: the compiled kernels need numba; install it with `pip install 'handgrad[fast]'`")
    _jit_setting = flag


@contextlib.contextmanager
def use_jit(flag: bool | None):
    """Inside, :func:`set_jit` ``(flag)``; the previous setting afterwards (tests compare the
    two paths with it)."""
    global _jit_setting
    old = _jit_setting
    set_jit(flag)
    try:
        yield
    finally:
        _jit_setting = old


class Kernel:
    """A loop nest compiled by numba on its first call (``nogil``, cached on disk, no
    fast-math: IEEE arithmetic in the order written; NumPy's error model, so a division by
    zero gives inf or NaN as NumPy's does instead of raising, and loops that divide still
    vectorize: Adam's update ran 8× slower under Python's). ``py`` is the uncompiled
    function."""

    def __init__(self, fn: Callable) -> None:
        self.py = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self._compiled = None

    def __call__(self, *args):
        if self._compiled is None:
            numba = _numba_module()
            if numba is None:
                raise RuntimeError(f"{self.__name__}: compiled kernels need numba (`pip install 'handgrad[fast]'`)")
            self._compiled = self._compile(numba)
        return self._compiled(*args)

    def _compile(self, numba):
        """``py`` compiled, with each :class:`Inline` function it calls by a global name
        replaced by that function's compiled form (inlined into the loop, which then vectorizes)."""
        fn = self.py
        helpers = {k: v.compiled(numba) for k, v in fn.__globals__.items() if isinstance(v, Inline)}
        if helpers:
            fn = types.FunctionType(fn.__code__, {**fn.__globals__, **helpers}, fn.__name__, fn.__defaults__,
                                    fn.__closure__)
            fn.__qualname__, fn.__doc__ = self.py.__qualname__, self.py.__doc__
        return numba.njit(nogil=True, cache=True, fastmath=False, boundscheck=False, error_model="numpy")(fn)


class Inline(Kernel):
    """A scalar function that kernels call (``@accel.inline``): plain Python when called
    itself or from a kernel's ``py``, compiled and inlined (numba ``inline="always"``) into a
    compiled kernel (:meth:`Kernel._compile`)."""

    def __call__(self, *args):
        return self.py(*args)

    def compiled(self, numba):
        if self._compiled is None:
            self._compiled = numba.njit(inline="always", nogil=True, fastmath=False, boundscheck=False,
                                        error_model="numpy")(self.py)
        return self._compiled


def kernel(fn: Callable) -> Kernel:
    """Decorator: ``fn`` becomes a :class:`Kernel` (compiled lazily, only if it is called)."""
    return Kernel(fn)


def inline(fn: Callable) -> Inline:
    """Decorator: ``fn`` becomes an :class:`Inline` scalar function for kernels to call."""
    return Inline(fn)
