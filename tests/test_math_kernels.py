"""The compiled float32 σ and softplus (``_math_kernels.py``) against float64 references and
against the NumPy formulas of ``functional`` that they replace: the ulp bounds of the module
docstring on a dense grid, the flush below −87, NaN and ±inf, every shape and layout
``functional`` passes on, and the dispatch (float32 NumPy arrays with the JIT on only)."""
from __future__ import annotations

import numpy as np
import pytest

from handgrad import _math_kernels as M
from handgrad import accel
from handgrad import functional as F

needs_numba = pytest.mark.skipif(not accel.jit_available(), reason="the compiled kernels need numba")
GRID = np.linspace(-87, 87, 348_001, dtype=np.float32)   # 5e-4 apart, tiny values included below
SPECIAL = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-45, 86.99, -86.99, 87.0, -87.0, -87.01, 87.01, 100.0,
                    -100.0, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan], np.float32)


def reference(z, softplus):
    z = z.astype(np.float64)
    if softplus:
        return np.logaddexp(0.0, z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def ulps(got, want):
    return np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)


@needs_numba
@pytest.mark.parametrize("softplus, bound", [(False, 2.5), (True, 3.0)], ids=["sigmoid", "softplus"])
def test_within_the_documented_ulps_on_a_dense_grid(softplus, bound):
    z = np.concatenate([GRID, np.float32(10.0) ** -np.arange(1, 38, dtype=np.float32)])
    z = np.concatenate([z, -z])
    out = np.empty_like(z)
    M.logistic_float32(z, out, softplus)
    assert ulps(out, reference(z, softplus)).max() <= bound


@needs_numba
@pytest.mark.parametrize("softplus", [False, True], ids=["sigmoid", "softplus"])
def test_special_values_and_the_flush_below_minus_87(softplus):
    out = np.empty_like(SPECIAL)
    M.logistic_float32(SPECIAL, out, softplus)
    def at(v):
        return out[np.flatnonzero(SPECIAL == np.float32(v))[0]]

    assert np.isnan(out[-1])
    assert at(-87.01) == 0 and at(-100.0) == 0 and at(-3.4e38) == 0 and at(-np.inf) == 0
    assert at(-87.0) > 0                                       # the last value not flushed
    if softplus:
        assert at(np.inf) == np.inf and at(3.4e38) == np.float32(3.4e38) and at(100.0) == 100
        assert at(0.0) == np.float32(np.log(2)) and at(1e-30) == np.float32(np.log(2))
    else:
        assert at(np.inf) == 1 and at(100.0) == 1 and at(0.0) == 0.5 and at(-0.0) == 0.5
    finite = np.isfinite(SPECIAL) & (SPECIAL >= -87) & (np.abs(SPECIAL) < 1e38)
    assert ulps(out[finite], reference(SPECIAL[finite], softplus)).max() <= 3


@needs_numba
@pytest.mark.parametrize("softplus", [False, True], ids=["sigmoid", "softplus"])
def test_compiled_equals_the_python_kernel_bit_for_bit(softplus):
    z = np.random.default_rng(0).standard_normal(5000).astype(np.float32) * 20   # two chunks and a tail
    a, b = np.empty_like(z), np.empty_like(z)
    M.logistic_float32(z, a, softplus)
    M.logistic_float32.py(z, b, softplus)
    assert np.array_equal(a, b)
    M.logistic_float32(z, z, softplus)                         # in place: the same values
    assert np.array_equal(z, a)


@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=needs_numba)], ids=["numpy", "jit"])
@pytest.mark.parametrize("fn", [F.sigmoid, F.softplus], ids=["sigmoid", "softplus"])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 5), (2, 3, 4)])
def test_functional_agrees_with_the_reference_in_every_shape_and_layout(fn, shape, jit):
    rng = np.random.default_rng(1)
    z = (rng.standard_normal(shape) * 10).astype(np.float32)
    views = [z, z.T, np.asfortranarray(z)] + ([z[..., ::2]] if z.ndim else [])
    with accel.use_jit(jit):
        for v in views:
            got = fn(v)
            assert got.shape == v.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, reference(v, fn is F.softplus), rtol=5e-7, atol=0)
        z64 = z.astype(np.float64)
        np.testing.assert_allclose(fn(z64), reference(z64, fn is F.softplus), rtol=1e-15, atol=0)


@needs_numba
def test_float64_and_the_jit_off_keep_the_numpy_formulas(monkeypatch):
    calls = []
    real = M.logistic_float32
    monkeypatch.setattr(M, "logistic_float32", lambda *a: calls.append(a) or real(*a))
    z = np.linspace(-5, 5, 11)
    F.sigmoid(z)
    F.softplus(z)
    with accel.use_jit(False):
        F.sigmoid(z.astype(np.float32))
    assert calls == []
    F.sigmoid(z.astype(np.float32))
    assert len(calls) == 1


@needs_numba
def test_tanh_within_4e7_everywhere_and_its_special_values():
    z = np.concatenate([np.linspace(-12, 12, 480_001, dtype=np.float32), SPECIAL])
    out = np.empty_like(z)
    M.tanh_float32(z, out)
    want = np.tanh(z.astype(np.float64))
    finite = ~np.isnan(z)
    assert np.abs(out[finite] - want[finite]).max() <= 4e-7
    small = finite & (np.abs(z) < 0.5) & (z != 0)
    assert (np.abs(out[small] - want[small]) / np.abs(want[small])).max() <= 2.5e-7
    assert np.isnan(out[-1]) and out[-3] == 1 and out[-2] == -1 and np.all(np.abs(out[finite]) <= 1)
    py = np.empty_like(z[:3000])
    M.tanh_float32.py(z[:3000], py)                             # the Python kernel: the same bits
    assert np.array_equal(py, out[:3000])


@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=needs_numba)], ids=["numpy", "jit"])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 5), (2, 3, 4)])
def test_functional_tanh_in_every_shape_and_layout(shape, jit):
    z = (np.random.default_rng(2).standard_normal(shape) * 3).astype(np.float32)
    with accel.use_jit(jit):
        for v in [z, z.T, np.asfortranarray(z)] + ([z[..., ::2]] if z.ndim else []):
            got = F.tanh(v)
            assert got.shape == v.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, np.tanh(v.astype(np.float64)), rtol=0, atol=4e-7)
        z64 = z.astype(np.float64)
        assert np.array_equal(F.tanh(z64), np.tanh(z64))      # float64: NumPy's, exactly
