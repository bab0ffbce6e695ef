"""Helpers shared by the test modules (on the import path through ``pythonpath`` in
pyproject.toml)."""
from __future__ import annotations

import numpy as np

import handgrad as hg

#: relative tolerance of our results against PyTorch autograd, per dtype
TORCH_RTOL = {np.float64: 1e-10, np.float32: 1e-5}


def assert_gradcheck(obj, x, target=None, **kw):
    """``hg.gradcheck`` must pass (worst relative error < 1e-6); prints the table if not."""
    result = hg.gradcheck(obj, x, target, **kw)
    assert result.max_error < 1e-6, f"{obj!r}: gradcheck failed\n{result.table()}"
    return result


def assert_close_to_torch(ours, theirs, dtype, what, rtol=None):
    """Compare with a torch tensor (or array); entries that cancel to ~0 are compared on the
    scale of the whole array."""
    theirs = theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape ours {ours.shape} vs torch {theirs.shape}"
    assert ours.dtype == theirs.dtype == dtype, f"{what}: dtype ours {ours.dtype} vs torch {theirs.dtype}"
    rtol = TORCH_RTOL[dtype] if rtol is None else rtol
    atol = rtol * max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


def numeric_grad(f, arr, eps=1e-4):
    """Fourth-order central differences of the scalar f() w.r.t. every entry of ``arr`` (an
    independent reimplementation, so tests do not rely on ``hg.gradcheck`` alone)."""
    flat = arr.reshape(-1)
    assert np.shares_memory(flat, arr)
    out = np.empty(flat.size)
    for i in range(flat.size):
        orig = float(flat[i])
        vals = []
        for step in (2 * eps, eps, -eps, -2 * eps):
            flat[i] = orig + step
            vals.append(f())
        flat[i] = orig
        f2, f1, fm1, fm2 = vals
        out[i] = (8 * (f1 - fm1) - (f2 - fm2)) / (12 * eps)
    return out.reshape(arr.shape)


def rel_error(a, n, floor=1e-5):
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    return float((np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)).max())


def padded_batch(lengths, T, F, seed=0, dtype=np.float64):
    """Random (N, T, F) sequences whose steps from ``lengths[n]`` on are zero padding."""
    x = np.random.default_rng(seed).standard_normal((len(lengths), T, F)).astype(dtype)
    for n, L in enumerate(lengths):
        x[n, L:] = 0.0
    return x


def assert_same_on_contiguous_copy(layer, x, g, atol=1e-13):
    """Forward/backward on a non-contiguous ``x`` equal those on its contiguous copy."""
    y_nc = layer.forward(x, training=True)
    gx_nc = layer.backward(g)
    grads_nc = {k: v.copy() for k, v in layer.grads.items()}
    xc = np.ascontiguousarray(x)
    y_c = layer.forward(xc, training=True)
    gx_c = layer.backward(g)
    np.testing.assert_allclose(y_nc, y_c, rtol=1e-13, atol=atol)
    np.testing.assert_allclose(gx_nc, gx_c, rtol=1e-13, atol=atol)
    for k in grads_nc:
        np.testing.assert_allclose(grads_nc[k], layer.grads[k], rtol=1e-13, atol=atol)
