"""Shared test setup."""
from __future__ import annotations

import contextlib

import handgrad  # noqa: F401 - first, as a user's script would: it sets OpenBLAS's thread timeout before NumPy loads
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    """Run the suite with single-threaded BLAS (and torch): the tests do many small products,
    for which thread start-up costs more than it saves, and on a busy CPU multithreaded
    OpenBLAS spin-waits and runs several times slower. Only the speed depends on it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    try:
        import torch
    except ImportError:
        torch = None
    threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    with threadpool_limits(limits=1) if threadpool_limits else contextlib.nullcontext():
        yield
    if torch is not None:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _thread_settings_restored():
    """Whatever a test does with ``accel.set_num_threads`` (which also sets BLAS's threads),
    the next one starts from the defaults and the suite's single BLAS thread: results that
    depend on float rounding (a detector trained for one epoch) must not depend on the order
    the tests ran in."""
    yield
    from handgrad import accel

    accel.set_num_threads(None)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=1)
