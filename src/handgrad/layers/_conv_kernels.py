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
    """dx = g · (y > 0) over flat arrays (``003`` §2 statement (2) with σ' = 1[z > 0]).
    ``dx`` must not be ``g`` (the loop then runs unvectorized, 6× slower): use
    ``relu_backward_inplace``."""
    one, zero = g.dtype.type(1), g.dtype.type(0)
    for i in range(g.shape[0]):
        dx[i] = g[i] * (one if y[i] > zero else zero)


@accel.kernel
def relu_backward_inplace(g, y):
    """g ← g · (y > 0) over flat arrays: ``relu_backward`` writing into its gradient."""
    one, zero = g.dtype.type(1), g.dtype.type(0)
    for i in range(g.shape[0]):
        g[i] = g[i] * (one if y[i] > zero else zero)


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
def maxpool2x2s2_forward(x, y, idx):
    """:func:`maxpool2x2_forward` with stride 2 (LeNet's pooling) as selects instead of
    branches, so the loop over a row vectorizes (1.9× faster); returns whether a window's sum
    was NaN, in which case the caller runs ``maxpool2x2_forward`` for its NaN rule (the rare
    inputs holding a NaN or both infinities)."""
    m, oh, ow = y.shape
    bad = False
    for a in range(m):
        for p in range(oh):
            r0 = 2 * p
            for q in range(ow):
                c0 = 2 * q
                v0 = x[a, r0, c0]
                v1 = x[a, r0, c0 + 1]
                v2 = x[a, r0 + 1, c0]
                v3 = x[a, r0 + 1, c0 + 1]
                gt = v1 > v0                    # the first maximum in row-major order wins
                best = v1 if gt else v0
                o = 1 if gt else 0
                gt = v2 > best
                best = v2 if gt else best
                o = 2 if gt else o
                gt = v3 > best
                best = v3 if gt else best
                o = 3 if gt else o
                y[a, p, q] = best
                idx[a, p, q] = o
                t = (v0 + v1) + (v2 + v3)
                bad |= t != t
    return bad


@accel.kernel
def maxpool2x2s2_backward(g, idx, dx):
    """:func:`maxpool_backward` for 2×2 windows with stride 2: the windows are disjoint, so
    each error is stored at its winner (offset o = 2i + j) after one zeroing pass, with no
    read-modify-write (2× faster); a NaN window (o = 4) passes nothing."""
    m, oh, ow = g.shape
    dx[...] = 0
    for a in range(m):
        for p in range(oh):
            for q in range(ow):
                o = idx[a, p, q]
                if o < 4:
                    dx[a, 2 * p + (o >> 1), 2 * q + (o & 1)] = g[a, p, q]


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


# -- convolution: the input gradient (the full correlation of δ with the rotated kernel) --------
# _KW5: with 5-wide kernels (LeNet's) the three convolution kernels below add a kernel row's
# five taps to each output in one pass (one load and store of the output per five products
# instead of per product: 1.9× faster), in the same order as the tap-by-tap loops (j = 0 … 4
# within each (c, i)), so both give the same bits; other widths run tap by tap.
@accel.kernel
def conv_input_grad(delta, W, acc, wp):
    """For a block of m samples, with δ in the full-width layout ``(D, m, OH·Wp)`` (zero on the
    extra columns) and ``acc`` ``(m, C, L)`` zeroed by the caller, L ≥ (Hp + 1)·Wp when kW > 1
    (else Hp·Wp), adds::

        acc[n, c, r + i·Wp + j] += Σ_d Σ_(i, j) W[d, c, i, j] · δ[d, n, r]

    the gradient of the padded input, dC/dx̃ (``Conv2D``'s docstring): col2im(W_matᵀ δ) in
    one pass, without writing the K × m·OH·Wp product. Each (d, c, i, j) adds a scaled row of δ
    into the sample's image, which stays in L1 cache."""
    D, m, P = delta.shape
    C, kh, kw = W.shape[1], W.shape[2], W.shape[3]
    for n in range(m):
        for d in range(D):
            row = delta[d, n]
            for c in range(C):
                for i in range(kh):
                    if kw == 5 and P > 4:  # the five taps of a kernel row in one pass (see _KW5)
                        out = acc[n, c, i * wp:i * wp + P + 4]
                        w0, w1, w2, w3, w4 = W[d, c, i, 0], W[d, c, i, 1], W[d, c, i, 2], W[d, c, i, 3], W[d, c, i, 4]
                        for t in range(4):  # the first and last four outputs get fewer taps
                            for j in range(t + 1):
                                out[t] += W[d, c, i, j] * row[t - j]
                        for t in range(4, P):
                            out[t] = ((((out[t] + w0 * row[t]) + w1 * row[t - 1]) + w2 * row[t - 2])
                                      + w3 * row[t - 3]) + w4 * row[t - 4]
                        for t in range(P, P + 4):
                            for j in range(t - P + 1, 5):
                                out[t] += W[d, c, i, j] * row[t - j]
                        continue
                    for j in range(kw):
                        w = W[d, c, i, j]
                        out = acc[n, c, i * wp + j:i * wp + j + P]  # plain indices: the loop vectorizes
                        for r in range(P):
                            out[r] += w * row[r]


@accel.kernel
def wide_delta(g, out):
    """A block's error for the wide products in one pass: ``out[d, s, p, q] = g[s, d, p, q]``
    for q < OW and 0 on the extra columns q ≥ OW of the full-width rows (``g`` (m, D, OH, OW),
    ``out`` (D, m, OH, Wp)); NumPy's transposed copy and zeroing took 1.6–1.7× as long (a
    thread's 64 samples of LeNet's first layer: 0.145 against 0.085 ms)."""
    m, d, oh, ow = g.shape
    wp = out.shape[3]
    zero = out.dtype.type(0)
    for j in range(d):
        for s in range(m):
            for p in range(oh):
                for q in range(ow):
                    out[j, s, p, q] = g[s, j, p, q]
                for q in range(ow, wp):
                    out[j, s, p, q] = zero


@accel.kernel
def pool_relu_wide_delta(g, idx, y, out):
    """The error of a convolution under a ReLU and a 2×2, stride-2 max-pool, straight into
    the block layout of :func:`wide_delta`: with ``g`` the pool's output gradient ``(m, D, PH,
    PW)``, ``idx`` its winners (offset o = 2i + j, 4: a NaN window), ``y`` the ReLU's output
    ``(m, D, OH, OW)`` and ``out`` ``(D, m, OH, Wp)``::

        out[d, s, 2p + i, 2q + j] = g[s, d, p, q] · 1[y > 0]   at the winner (i, j) of window (p, q)

    and 0 everywhere else, the extra columns included: the bits of ``maxpool2x2s2_backward``,
    ``relu_backward_inplace`` and ``wide_delta`` one after the other, without writing the two
    full-size gradients between them."""
    m, d, ph, pw = g.shape
    wp = out.shape[3]
    one, zero = out.dtype.type(1), out.dtype.type(0)
    for j in range(d):
        for s in range(m):
            out[j, s] = zero
            for p in range(ph):
                for q in range(pw):
                    o = idx[s, j, p, q]
                    if o < 4:
                        r, c = 2 * p + (o >> 1), 2 * q + (o & 1)
                        out[j, s, r, c] = g[s, j, p, q] * (one if y[s, j, r, c] > zero else zero)


@accel.kernel
def conv_weight_grad(delta, flat, a, wp, kh, kw, out):
    """For a block of m samples a:a+m, with δ in the full-width layout ``(D, m, OH·Wp)`` (zero
    on the extra columns) and ``flat`` the padded input ``(N, C, L)`` (``kernels.flat_padded``),
    writes into ``out`` ``(D, C·kH·kW)``::

        out[d, (c·kH + i)·kW + j] = Σ_n Σ_r δ[d, n, r] · flat[a + n, c, r + i·Wp + j]

    the kernel gradient dW_mat = Σ_n δ_n X_col,nᵀ of the block (``Conv2D``'s docstring) without
    building the columns. Each (d, c, i) keeps kW accumulators of OH·Wp values that stay in L1
    cache while every sample's δ row is multiplied into them (element-wise, so the loop
    vectorizes without reassociating), then sums each accumulator in float64 as four running
    sums over r mod 4, (s0 + s1) + (s2 + s3), rounded once to the output's dtype: the same bits
    run to run, within float rounding of the product's."""
    D, m, R = delta.shape
    C = flat.shape[1]
    acc = np.empty((kw, R), dtype=out.dtype)
    zero = out.dtype.type(0.0)
    for d in range(D):
        for c in range(C):
            for i in range(kh):
                acc[:, :] = zero
                base = i * wp
                for n in range(m):
                    row = delta[d, n]
                    if kw == 5:  # the five taps of a kernel row in one pass over the row
                        src = flat[a + n, c, base:base + R + 4]
                        a0, a1, a2, a3, a4 = acc[0], acc[1], acc[2], acc[3], acc[4]
                        for r in range(R):
                            v = row[r]
                            a0[r] += v * src[r]
                            a1[r] += v * src[r + 1]
                            a2[r] += v * src[r + 2]
                            a3[r] += v * src[r + 3]
                            a4[r] += v * src[r + 4]
                        continue
                    for j in range(kw):
                        src = flat[a + n, c, base + j:base + j + R]
                        aj = acc[j]
                        for r in range(R):
                            aj[r] += row[r] * src[r]
                for j in range(kw):  # in float64, four running sums (r mod 4) added at the end
                    aj = acc[j]
                    s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0
                    for r in range(0, R - 3, 4):
                        s0 += aj[r]
                        s1 += aj[r + 1]
                        s2 += aj[r + 2]
                        s3 += aj[r + 3]
                    for r in range(R - R % 4, R):
                        s0 += aj[r]
                    out[d, (c * kh + i) * kw + j] = (s0 + s1) + (s2 + s3)


@accel.kernel
def col2im_rows(dcols, acc, wp):
    """``kernels.col2im_wide`` for a block of m samples in one pass: ``dcols`` ``(C, kH, kW, m,
    OH·Wp)`` (W_matᵀ δ, rows (c, i, j)), ``acc`` ``(m, C, L)`` zeroed, as in ``conv_input_grad``,
    adds::

        acc[n, c, r + i·Wp + j] += Σ_(i, j) dcols[c, i, j, n, r]

    NumPy makes kH·kW passes over the whole block's image; here each sample's image stays in
    L1 cache while its kH·kW rows are added."""
    C, kh, kw, m, P = dcols.shape
    for n in range(m):
        for c in range(C):
            for i in range(kh):
                if kw == 5 and P > 4:  # the five rows of a kernel row in one pass (see _KW5)
                    out = acc[n, c, i * wp:i * wp + P + 4]
                    s0, s1, s2, s3, s4 = dcols[c, i, 0, n], dcols[c, i, 1, n], dcols[c, i, 2, n], dcols[c, i, 3, n], \
                        dcols[c, i, 4, n]
                    for t in range(4):
                        for j in range(t + 1):
                            out[t] += dcols[c, i, j, n, t - j]
                    for t in range(4, P):
                        out[t] = ((((out[t] + s0[t]) + s1[t - 1]) + s2[t - 2]) + s3[t - 3]) + s4[t - 4]
                    for t in range(P, P + 4):
                        for j in range(t - P + 1, 5):
                            out[t] += dcols[c, i, j, n, t - j]
                    continue
                for j in range(kw):
                    out = acc[n, c, i * wp + j:i * wp + j + P]
                    src = dcols[c, i, j, n]
                    for r in range(P):
                        out[r] += src[r]


@accel.kernel
def conv_forward_rows(flat, W, b, y, a, z, wp, yc):
    """Samples a:z of a stride-1 convolution in the full-width layout, for few output
    channels: with ``flat`` the padded input ``(N, C, L)`` (``kernels.flat_padded``)::

        y[n, d, r] = b[d] + Σ_c Σ_(i, j) W[d, c, i, j] · flat[n, c, r + i·Wp + j]

    into ``y`` ``(N, D, OH·Wp)`` (``Conv2D``'s forward; the extra columns are dropped by the
    caller). ``b`` ``(D,)``, or ``(0,)`` for no bias. Each output row stays in L1 cache while
    its C·kH·kW scaled input rows are added, instead of unrolling the block's columns.

    With ``yc`` ``(N, D, OH, OW)`` (not empty) the ReLU that follows is fused: ``y`` is one
    sample's scratch ``(1, D, OH·Wp)`` and each finished row goes to ``yc`` as max(0, y) (the
    bits of ``relu_forward``), so the full-width output is never written to memory."""
    D, C, kh, kw = W.shape
    P = y.shape[2]
    zero = y.dtype.type(0.0)
    fused = yc.shape[0] > 0
    oh, ow = yc.shape[2], yc.shape[3]
    for n in range(a, z):
        for d in range(D):
            out = y[0 if fused else n, d]
            bd = b[d] if b.shape[0] > 0 else zero
            for r in range(P):
                out[r] = bd
            for c in range(C):
                for i in range(kh):
                    if kw == 5:  # the five taps of a kernel row in one pass (see _KW5)
                        src = flat[n, c, i * wp:i * wp + P + 4]
                        w0, w1, w2, w3, w4 = W[d, c, i, 0], W[d, c, i, 1], W[d, c, i, 2], W[d, c, i, 3], W[d, c, i, 4]
                        for r in range(P):
                            out[r] = ((((out[r] + w0 * src[r]) + w1 * src[r + 1]) + w2 * src[r + 2])
                                      + w3 * src[r + 3]) + w4 * src[r + 4]
                        continue
                    for j in range(kw):
                        w = W[d, c, i, j]
                        src = flat[n, c, i * wp + j:i * wp + j + P]
                        for r in range(P):
                            out[r] += w * src[r]
            if fused:
                for p in range(oh):
                    for q in range(ow):
                        v = out[p * wp + q]
                        yc[n, d, p, q] = v if v > 0 or v != v else zero


@accel.kernel
def bias_relu_compact(yw, b, yc):
    """yc = max(0, yw + b) on the kept columns of a block's full-width output ``yw``
    ``(m, D, OH·Wp)`` (``b`` ``(D,)`` or ``(0,)``; ``yc`` ``(m, D, OH, OW)``): a convolution's
    bias and the ReLU that follows in one pass over the block while it is in cache, with the
    bits of the bias add and ``relu_forward`` one after the other."""
    m, D, oh, ow = yc.shape
    wp = yw.shape[2] // oh
    zero = yc.dtype.type(0.0)
    for s in range(m):
        for d in range(D):
            bd = b[d] if b.shape[0] > 0 else zero
            for p in range(oh):
                for q in range(ow):
                    v = yw[s, d, p * wp + q] + bd
                    yc[s, d, p, q] = v if v > 0 or v != v else zero


# -- Dropout (``003`` §4, inverted) ------------------------------------------------------------
@accel.kernel
def dropout_forward(x, u, keep, mask, y):
    """mask = (u < keep) / keep and y = x ⊙ mask over flat arrays, in one pass; the same bits
    as NumPy's ``(u < keep).astype(dtype)``, ``*= 1 / keep``, ``x * mask`` (the scale is cast
    to the arrays' dtype first, as NumPy casts it)."""
    scale = mask.dtype.type(1.0 / keep)
    keep_t = u.dtype.type(keep)
    zero = mask.dtype.type(0.0)
    for i in range(x.shape[0]):
        m = scale if u[i] < keep_t else zero
        mask[i] = m
        y[i] = x[i] * m


@accel.kernel
def dropout_forward_bits(x, r, keep, mask, y):
    """``dropout_forward`` of float32 arrays from 32-bit draws ``r``: u = (r >> 8)·2⁻²⁴ in the
    loop (``Dropout``'s docstring), never written out."""
    scale = mask.dtype.type(1.0 / keep)
    keep_t = np.float32(keep)
    ulp = np.float32(2.0 ** -24)
    zero = mask.dtype.type(0.0)
    for i in range(x.shape[0]):
        m = scale if np.float32(r[i] >> 8) * ulp < keep_t else zero
        mask[i] = m
        y[i] = x[i] * m
