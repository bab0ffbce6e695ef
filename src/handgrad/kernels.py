"""Stateless convolution and pooling kernels (im2col/col2im and pooling windows).

Legend: N batch, C input channels, H×W input size, kH×kW kernel, sH×sW stride, OH×OW output
size, K = C·kH·kW the length of one unrolled receptive field.

Windows are strided *views* (no copy) of the padded input, built with ``as_strided`` from the
array's own namespace, so the same code serves NumPy and CuPy. The only Python loops are over
the kH·kW kernel offsets (never over samples, channels or pixels): each iteration handles a
whole ``(N, C, OH, OW)`` slab.
"""
from __future__ import annotations

from . import backend
from ._checks import check_int


def pair(value, name: str, where: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints → a pair, each ≥ ``minimum``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        a, b = value
    elif isinstance(value, (tuple, list)):
        raise ValueError(f"{where}: expected {name} to be an int or a pair, got {value!r}")
    else:
        a = b = value
    return (check_int(a, where, name, minimum=minimum), check_int(b, where, name, minimum=minimum))


def out_size(size: int, k: int, s: int, p: int = 0) -> int:
    """⌊(size + 2p − k)/s⌋ + 1 (``001`` §3: valid cross-correlation with stride)."""
    return (size + 2 * p - k) // s + 1


def pad(x, ph: int, pw: int):
    if ph == 0 and pw == 0:
        return x
    xp = backend.array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def windows(x, kh: int, kw: int, sh: int, sw: int):
    """View ``(N, C, OH, OW, kH, kW)`` of the kH×kW windows of ``x`` ``(N, C, H, W)``."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    oh, ow = out_size(h, kh, sh), out_size(w, kw, sw)
    s0, s1, s2, s3 = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, c, oh, ow, kh, kw), strides=(s0, s1, s2 * sh, s3 * sw, s2, s3), writeable=False)


def im2col(x, kh: int, kw: int, sh: int, sw: int):
    """``(N, C, H, W)`` → ``(N, K, OH·OW)``: column j of sample n is the unrolled receptive field
    of output position j, ordered (c, i, j) like ``W.reshape(C_out, K)``."""
    win = windows(x, kh, kw, sh, sw)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def col2im(cols, shape, kh: int, kw: int, sh: int, sw: int):
    """Adjoint of ``im2col``: scatter-add ``(N, K, OH·OW)`` back onto an ``(N, C, H, W)`` image.

    Each input pixel receives the sum over every window (and kernel offset) that covers it —
    the full convolution of δ with the kernel rotated by 180° (the input gradient of a
    convolution layer),
    computed as one slab addition per kernel offset.
    """
    xp = backend.array_module(cols)
    n, c, h, w = shape
    oh, ow = out_size(h, kh, sh), out_size(w, kw, sw)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    out = xp.zeros(shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += cols[:, :, i, j]
    return out


def offset_slices(x, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int):
    """Yield ``(o, view)`` for each kernel offset o = i·kW + j: the ``(N, C, OH, OW)`` view of
    ``x`` holding, for every window, its element at offset (i, j)."""
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


# -- stride-1 "wide row" variant ---------------------------------------------------------------
# For stride 1 an output row can be computed over the full padded width Wp instead of OW: then
# output position r = p·Wp + q reads input r + i·Wp + j for kernel offset (i, j), so every
# offset is a *contiguous* shift of the flattened image. im2col and col2im become kH·kW copies
# or additions of long contiguous runs, much faster than 2-D strided slabs. The Wp − OW extra
# columns per row are discarded in forward and carry zero error in backward, so they change
# nothing in the gradients (they add zero to unused places).

def _flat_padded(x, kw: int):
    """``(N, C, H, W)`` → ``(N, C, (H + 1)·W)`` with a zero row appended when kW > 1, so the
    last offset's run of OH·W elements stays inside the array."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    if kw > 1:
        x = xp.concatenate([x, xp.zeros((n, c, 1, w), dtype=x.dtype)], axis=2)
    return xp.ascontiguousarray(x).reshape(n, c, -1)


def im2col_wide(x, kh: int, kw: int):
    """Stride-1 im2col over full-width rows, batch folded into the columns:
    ``(N, C, H, W)`` → ``(K, N·OH·W)``, so a whole layer is one matrix product W_mat X_col."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    oh = h - kh + 1
    flat = _flat_padded(x, kw)
    s0, s1, s2 = flat.strides
    view = xp.lib.stride_tricks.as_strided(
        flat, shape=(c, kh, kw, n, oh * w), strides=(s1, w * s2, s2, s0, s2), writeable=False)
    return view.reshape(c * kh * kw, n * oh * w)


def flat_padded(x, kw: int):
    """The padded input of a stride-1 layer as the flat ``(N, C, (H + 1)·W)`` array that
    :func:`wide_columns` and :func:`sample_columns` read (see :func:`im2col_wide`)."""
    return _flat_padded(x, kw)


def wide_columns(flat, a: int, b: int, w: int, kh: int, kw: int, out=None):
    """``im2col_wide`` of samples a:b of an input already in ``flat_padded`` form (image width
    ``w``): ``(K, (b − a)·OH·W)``, batch folded into the columns (written into ``out`` of that
    shape when given)."""
    xp = backend.array_module(flat)
    n, c, length = flat.shape
    run = (length // w - (1 if kw > 1 else 0) - kh + 1) * w
    s0, s1, s2 = flat.strides
    view = xp.lib.stride_tricks.as_strided(
        flat[a:b], shape=(c, kh, kw, b - a, run), strides=(s1, w * s2, s2, s0, s2), writeable=False)
    if out is None:
        return view.reshape(c * kh * kw, (b - a) * run)
    xp.copyto(out.reshape(view.shape), view)
    return out


def sample_columns(flat, a: int, b: int, w: int, kh: int, kw: int, out=None):
    """The same columns one sample at a time, ``(b − a, K, OH·W)``: ``W_mat @ cols`` is then
    the ``(b − a, D, OH·W)`` output in NCHW order (full-width rows); into ``out`` when given."""
    xp = backend.array_module(flat)
    n, c, length = flat.shape
    run = (length // w - (1 if kw > 1 else 0) - kh + 1) * w
    s0, s1, s2 = flat.strides
    view = xp.lib.stride_tricks.as_strided(
        flat[a:b], shape=(b - a, c, kh, kw, run), strides=(s0, s1, w * s2, s2, s2), writeable=False)
    if out is None:
        return view.reshape(b - a, c * kh * kw, run)
    xp.copyto(out.reshape(view.shape), view)
    return out


def col2im_wide(cols, shape, kh: int, kw: int, out=None):
    """Adjoint of ``im2col_wide``: ``(K, N·OH·W)`` → ``(N, C, H, W)`` (a transposed view of a
    ``(C, N, H, W)`` buffer) by kH·kW additions of contiguous runs — the full convolution of δ
    with the 180°-rotated kernel. ``out``: a ``(C, N, H·W + W)`` buffer to sum into (``H·W``
    when kW = 1), zeroed here."""
    xp = backend.array_module(cols)
    n, c, h, w = shape
    oh = h - kh + 1
    run = oh * w
    extra = w if kw > 1 else 0
    if out is None:
        out = xp.zeros((c, n, h * w + extra), dtype=cols.dtype)
    else:
        out.fill(0)
    cols = cols.reshape(c, kh, kw, n, run)
    for i in range(kh):
        for j in range(kw):
            start = i * w + j
            out[:, :, start:start + run] += cols[:, i, j]
    return out[:, :, :h * w].reshape(c, n, h, w).transpose(1, 0, 2, 3)
