"""Compiled loop nests (``accel.kernel``) for the convolution, pooling and ReLU layers.

Each kernel is one pass over memory doing what the NumPy path does in several: the layers call
them when :func:`handgrad.accel.jit_enabled` is True and the arrays are NumPy arrays, and keep
their NumPy code beside them for the other case (the tests compare the two). The kernels are
serial loops; arithmetic is IEEE in the order written (no fast-math), and nothing depends on
timing, so results are bit for bit the same from run to run.

Legend: N batch, C input channels, H×W input size, kH×kW window, sH×sW stride, pH×pW zero
padding, OH×OW output size, P = OH·OW, K = C·kH·kW, D output channels.
All arrays passed in are C-contiguous unless a parameter says otherwise.
"""
from __future__ import annotations

import numpy as np

from .. import accel


# -- ReLU (``003`` §1) ---------------------------------------------------------------------------
@accel.kernel
def relu_forward(x, y):
    """y = max(0, x) over flat arrays; as ``np.maximum(x, 0)``, NaN passes through and −0
    gives +0."""
    for i in range(x.shape[0]):
        v = x[i]
        y[i] = v if v > 0 or v != v else 0.0


@accel.kernel
def relu_forward_rows(x, y):
    """``relu_forward`` over the rows of 2-D arrays whose rows may be strided (a convolution's
    output is a view of full-width rows: ReLU reads it where it lies instead of copying it)."""
    for r in range(x.shape[0]):
        for i in range(x.shape[1]):
            v = x[r, i]
            y[r, i] = v if v > 0 or v != v else 0.0


@accel.kernel
def relu_backward(g, y, dx):
    """dx = g · (y > 0) over flat arrays (``003`` §2 statement (2) with σ' = 1[z > 0])."""
    for i in range(g.shape[0]):
        dx[i] = g[i] * (1.0 if y[i] > 0 else 0.0)


# -- max pooling (``001`` §3.3) ------------------------------------------------------------------
@accel.kernel
def maxpool_forward(x, kh, kw, sh, sw, y, idx):
    """y[m, p, q] = max of the window of x ``(M, H, W)`` (M = N·C maps) at (p·sH, q·sW), and
    idx its winner as the offset i·kW + j of the *first* maximum in row-major window order (a
    later equal value does not replace it). A window holding a NaN gives NaN and no winner
    (idx = kH·kW), as the NumPy path does."""
    m, oh, ow = y.shape
    none = kh * kw
    for a in range(m):
        for p in range(oh):
            r0 = p * sh
            for q in range(ow):
                c0 = q * sw
                best = x[a, r0, c0]
                o = 0
                nan = False
                for i in range(kh):
                    for j in range(kw):
                        v = x[a, r0 + i, c0 + j]
                        gt = v > best
                        best = v if gt else best
                        o = i * kw + j if gt else o
                        nan |= v != v
                if nan:  # NaN somewhere: the window gives NaN and no winner
                    o = none
                    for i in range(kh):
                        for j in range(kw):
                            v = x[a, r0 + i, c0 + j]
                            if v != v:
                                best = v
                y[a, p, q] = best
                idx[a, p, q] = o


@accel.kernel
def maxpool2x2_forward(x, sh, sw, y, idx):
    """:func:`maxpool_forward` for 2×2 windows, the four comparisons written out (a loop over a
    run-time window size compiles to code ~4× slower)."""
    m, oh, ow = y.shape
    for a in range(m):
        for p in range(oh):
            r0 = p * sh
            for q in range(ow):
                c0 = q * sw
                v0 = x[a, r0, c0]
                v1 = x[a, r0, c0 + 1]
                v2 = x[a, r0 + 1, c0]
                v3 = x[a, r0 + 1, c0 + 1]
                best = v0
                o = 0
                if v1 > best:
                    best = v1
                    o = 1
                if v2 > best:
                    best = v2
                    o = 2
                if v3 > best:
                    best = v3
                    o = 3
                t = v0 + v1 + v2 + v3
                if t != t:  # NaN somewhere (or inf − inf): look
                    for i in range(2):
                        for j in range(2):
                            v = x[a, r0 + i, c0 + j]
                            if v != v:
                                best = v
                                o = 4
                y[a, p, q] = best
                idx[a, p, q] = o


@accel.kernel
def maxpool_backward(g, idx, kh, kw, sh, sw, dx):
    """dx = 0, then dx[winner of window (p, q)] += g[m, p, q] over maps m: each error goes to
    the unit that won its window; a unit winning several overlapping windows receives their
    sum (in window order)."""
    m, oh, ow = g.shape
    none = kh * kw
    di = np.empty(none, np.int64)   # offset o → (i, j) without a division per element
    dj = np.empty(none, np.int64)
    for i in range(kh):
        for j in range(kw):
            di[i * kw + j] = i
            dj[i * kw + j] = j
    dx[...] = 0
    for a in range(m):
        for p in range(oh):
            for q in range(ow):
                o = idx[a, p, q]
                if o != none:
                    dx[a, p * sh + di[o], q * sw + dj[o]] += g[a, p, q]


# -- convolution as im2col + one matrix product (``001`` eqs. (25)–(26), (30)–(31)) ----------------
@accel.kernel
def im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    """X_col ``(K, N·P)``: row (c, i, j), column n·P + p·OW + q holds the zero-padded input
    x̃[n, c, p·sH + i, q·sW + j], read straight from the unpadded x ``(N, C, H, W)`` (the
    padding is written as zeros, never materialized)."""
    n, c, h, w = x.shape
    P = oh * ow
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                row = (ch * kh + i) * kw + j
                # the q for which column q·sW + j − pW lies inside [0, W)
                q_lo = 0
                while q_lo < ow and q_lo * sw + j - pw < 0:
                    q_lo += 1
                q_hi = ow
                while q_hi > q_lo and (q_hi - 1) * sw + j - pw >= w:
                    q_hi -= 1
                for a in range(n):
                    base = a * P
                    for p in range(oh):
                        u = p * sh + i - ph
                        start = base + p * ow
                        if u < 0 or u >= h:
                            for q in range(ow):
                                cols[row, start + q] = 0
                            continue
                        for q in range(q_lo):
                            cols[row, start + q] = 0
                        v0 = j - pw
                        if sw == 1:  # a contiguous run
                            cols[row, start + q_lo:start + q_hi] = x[a, ch, u, q_lo + v0:q_hi + v0]
                        else:
                            for q in range(q_lo, q_hi):
                                cols[row, start + q] = x[a, ch, u, q * sw + v0]
                        for q in range(q_hi, ow):
                            cols[row, start + q] = 0


@accel.kernel
def col2im(dcols, kh, kw, sh, sw, ph, pw, oh, ow, dx):
    """Adjoint of :func:`im2col`: dx = 0, then dx[n, c, p·sH + i − pH, q·sW + j − pW] +=
    dcols[(c, i, j), n·P + p·OW + q] over the positions inside the unpadded dx ``(N, C, H, W)``
    (the full convolution of δ with the 180°-rotated kernel, cropped by the padding). Each
    pixel sums its terms in (i, j) order, as ``kernels.col2im`` does."""
    n, c, h, w = dx.shape
    P = oh * ow
    dx[...] = 0
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                row = (ch * kh + i) * kw + j
                q_lo = 0
                while q_lo < ow and q_lo * sw + j - pw < 0:
                    q_lo += 1
                q_hi = ow
                while q_hi > q_lo and (q_hi - 1) * sw + j - pw >= w:
                    q_hi -= 1
                v0 = j - pw
                for a in range(n):
                    base = a * P
                    for p in range(oh):
                        u = p * sh + i - ph
                        if u < 0 or u >= h:
                            continue
                        start = base + p * ow
                        if sw == 1:
                            dx[a, ch, u, q_lo + v0:q_hi + v0] += dcols[row, start + q_lo:start + q_hi]
                        else:
                            for q in range(q_lo, q_hi):
                                dx[a, ch, u, q * sw + v0] += dcols[row, start + q]


@accel.kernel
def gemm_to_nchw(y, bias, out):
    """out[n, d, p] = y[d, n·P + p] + bias[d, p]: the product W_mat X_col ``(D, N·P)`` laid out
    as the layer's output ``(N, D, P)`` with the bias added in the same pass (``bias`` may be a
    broadcast view, stride 0 along p, for one bias per channel)."""
    n, d, P = out.shape
    for dd in range(d):
        for a in range(n):
            base = a * P
            for p in range(P):
                out[a, dd, p] = y[dd, base + p] + bias[dd, p]


@accel.kernel
def nchw_to_gemm(g, delta, db):
    """δ ``(N, D, P)`` → ``(D, N·P)`` (the layout of the weight-gradient product) and, in the
    same pass, db[d] = Σ_{n,p} δ[n, d, p] (``001`` eq. (31)), summed in float64 and in (n, p)
    order."""
    n, d, P = g.shape
    for dd in range(d):
        s = 0.0
        for a in range(n):
            base = a * P
            for p in range(P):
                v = g[a, dd, p]
                delta[dd, base + p] = v
                s += v
        db[dd] = s


@accel.kernel
def nchw_to_gemm_nosum(g, delta):
    """δ ``(N, D, P)`` → ``(D, N·P)`` only (untied biases are summed over n by NumPy)."""
    n, d, P = g.shape
    for dd in range(d):
        for a in range(n):
            base = a * P
            for p in range(P):
                delta[dd, base + p] = g[a, dd, p]
