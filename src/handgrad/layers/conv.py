"""2-D convolution (cross-correlation, as in PyTorch and ``001`` eq. (25)).

Legend: N batch, C = C_in, D = C_out, H×W input, kH×kW kernel, OH×OW output,
K = C·kH·kW.
"""
from __future__ import annotations

from typing import Any

import threading

import numpy

from .. import accel, backend, init
from .._checks import check_float_array, check_positive_int
from ..kernels import (col2im, col2im_wide, flat_padded, im2col, out_size, pad, pair, sample_columns,
                       wide_columns)
from . import _conv_kernels as _ck
from .base import Layer, register


def _weight_grad(delta, cols, n: int):
    """δ X_colᵀ for δ ``(D, N·P)`` and X_col ``(K, N·P)``: a product over a very long inner
    dimension, which OpenBLAS handles poorly for skinny D×K. Measured on 2 cores: for small
    D·K (LeNet's first layer, 6×25) N per-sample products summed are ~4× faster; for larger
    D·K computing (X_col δᵀ)ᵀ is ~2× faster than δ X_colᵀ."""
    xp = backend.array_module(delta)
    d, k = delta.shape[0], cols.shape[0]
    if d * k < 1024:
        p = delta.shape[1] // n
        per_sample = xp.matmul(delta.reshape(d, n, p).transpose(1, 0, 2), cols.reshape(k, n, p).transpose(1, 2, 0))
        return per_sample.sum(axis=0)
    return (cols @ delta.T).T


# -- stride 1: blocks of samples ----------------------------------------------------------------
# The columns of a whole batch are large (LeNet's first layer: 25 × 128·28·32 floats, 11 MB), so
# writing them and reading them back runs at memory speed. Blocks of samples whose columns fit
# in cache (``block_bytes``) are built, multiplied and dropped one after the other, in parallel
# over ``accel.own_threads()`` threads with BLAS on one thread each; backward rebuilds each
# block's columns from the padded input the layer keeps (a fraction of their size). The blocks
# depend only on N, the layer's shape and the thread count, and the per-block weight-gradient
# sums are added in block order: the same bits run to run. Other array modules: one block.
block_bytes = 5 << 19  # 2.5 MB: 3 MB was as fast at batch 128 and held 1.8 MB more (two threads)
direct_input_grad_channels = 8  # D up to which the compiled forward and input gradient run (few channels)
direct_weight_grad_size = 1024  # D·K below which the compiled weight gradient runs (few weights)
_work: dict = {}  # Conv2D._scratch's buffers, by (name, thread, dtype, array module)


def _threads(xp, n: int, sample_bytes: int) -> int:
    """Threads for a pass over n samples: ``accel.own_threads()`` when the columns come to two
    blocks at least, else 1 (waking a thread and waiting for it costs 50–80 µs here, more than
    splitting a small batch saves: LeNet-5's step at batch 32 took 2.0 ms split, 1.6 ms not)."""
    if xp is not numpy or n * sample_bytes < 2 * block_bytes:
        return 1
    return max(1, min(accel.own_threads(), n))


def _blocks(xp, n: int, sample_bytes: int) -> list[tuple[int, int]]:
    if xp is not numpy:
        return [(0, n)]
    threads = _threads(xp, n, sample_bytes)
    per_thread = -(-n * sample_bytes // (threads * block_bytes))  # blocks per thread, ≥ 1
    return accel.split(n, min(n, threads * max(1, per_thread)))


def _run_blocks(xp, n: int, sample_bytes: int, blocks, part) -> None:
    """``part(i, j)`` over block indices, the blocks of one thread after another."""
    threads = _threads(xp, n, sample_bytes)
    if len(blocks) == 1 or threads == 1:
        part(0, len(blocks))  # BLAS may use its threads for each block's products
        return
    with accel.blas_limit(1):
        accel.parallel_for(len(blocks), part, parts=threads)


@register
class Conv2D(Layer):
    r"""Multi-channel 2-D cross-correlation with stride and zero padding.

    Forward (``001`` eqs. (25)–(26); ``003`` §5; ``000`` eq. (12) written as correlation)::

        y[n, d, p, q] = b[d] + Σ_c Σ_i Σ_j W[d, c, i, j] · x̃[n, c, p·sH + i, q·sW + j]

    with x̃ the input zero-padded by ``padding``. Computed as im2col: every receptive field is
    unrolled into a column of X_col ``(N, K, OH·OW)`` and y_n = W_mat X_col,n with
    W_mat = W.reshape(D, K). With stride 1 the columns span full padded rows
    (``kernels.sample_columns``/``wide_columns``): im2col/col2im move contiguous runs, and the
    extra columns are dropped and carry no error. They are built for blocks of samples that fit
    in cache, multiplied and dropped (on several threads where ``accel.own_threads()`` allows),
    and rebuilt in backward from the padded input the layer keeps (see ``_blocks``). With the
    JIT and few output channels (``direct_input_grad_channels``) each sample's output rows are
    summed directly in one compiled pass instead (``_conv_kernels.conv_forward_rows``). Other
    strides use one product per sample.

    Backward, with δ = dC/dy ``(N, D, OH, OW)``:

    - bias (``001`` eq. (31); ``000`` eq. (21)): dC/db[d] = Σ_{n,p,q} δ[n, d, p, q];
    - kernel (``001`` eq. (30); ``000`` eqs. (20), (46)): the correlation of the input with δ,
      dC/dW[d, c, i, j] = Σ_{n,p,q} δ[n, d, p, q] x̃[n, c, p·sH + i, q·sW + j], i.e.
      dW_mat = Σ_n δ_n X_col,nᵀ (with the JIT, stride 1 and fewer than
      ``direct_weight_grad_size`` kernel weights D·K, in one compiled pass that never builds the
      columns: ``_conv_kernels.conv_weight_grad``);
    - input (none of the notes derives it; see ``docs/errata.md``): the full convolution of δ
      with the kernel rotated by 180°,
      dC/dx̃[n, c, u, v] = Σ_{d,i,j} W[d, c, i, j] δ[n, d, (u − i)/sH, (v − j)/sW] over the
      integer quotients, computed as col2im(W_matᵀ δ_n) and then cropped by the padding (with
      the JIT, stride 1 and at most ``direct_input_grad_channels`` output channels, in one
      compiled pass that never writes the product: ``_conv_kernels.conv_input_grad``).

    Untied biases (``004`` eq. (10)): with ``untied_bias=(OH, OW)`` the bias is ``b`` ``(D, OH, OW)``,
    one per output position, y[n, d, p, q] gets b[d, p, q] and dC/db[d, p, q] = Σ_n δ[n, d, p, q].

    Input ``(N, C, H, W)``; output ``(N, D, OH, OW)``, OH = ⌊(H + 2pH − kH)/sH⌋ + 1.
    Params: ``W`` ``(D, C, kH, kW)`` drawn by ``weight_init`` with fan-in C·kH·kW (default
    N(0, 1/fan_in), ``003`` §4); ``b`` ``(D,)`` zeros.
    """

    _cache = ("_cols", "_xpad_shape")

    splits_well = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, *,
                 untied_bias=None, weight_init: str = "normal_fan_in", bias_init: str = "zeros", rng=None,
                 dtype=backend.DEFAULT_DTYPE) -> None:
        super().__init__()
        where = f"Conv2D({in_channels!r}→{out_channels!r})"
        self.in_channels = check_positive_int(in_channels, where, "in_channels")
        self.out_channels = check_positive_int(out_channels, where, "out_channels")
        self.kernel_size = pair(kernel_size, "kernel_size", where)
        self.stride = pair(stride, "stride", where)
        self.padding = pair(padding, "padding", where, minimum=0)
        self.weight_init, self.bias_init = weight_init, bias_init
        kh, kw = self.kernel_size
        fan_in, fan_out = in_channels * kh * kw, out_channels * kh * kw
        dt = backend.resolve_dtype(dtype, where)
        gen = backend.make_rng(rng)
        xp = backend.default_xp()
        W = init.weights(weight_init, (out_channels, in_channels, kh, kw), fan_in, fan_out, gen, dt, where)
        # untied_bias=(OH, OW): one bias per output position (``004`` eq. (10)) instead of one per
        # output channel; the layer then only accepts inputs giving that output size
        self.untied_bias = None if untied_bias is None else pair(untied_bias, "untied_bias", where)
        b_shape = (out_channels,) if self.untied_bias is None else (out_channels, *self.untied_bias)
        b = init.bias(bias_init, b_shape, gen, dt, where)
        self.params = {"W": backend.asarray(W, xp=xp), "b": backend.asarray(b, xp=xp)}
        self.zero_grads()

    def __repr__(self) -> str:
        kh, kw = self.kernel_size
        extra = ""
        if self.stride != (1, 1):
            extra += f", stride={self.stride[0] if self.stride[0] == self.stride[1] else self.stride}"
        if self.padding != (0, 0):
            extra += f", padding={self.padding[0] if self.padding[0] == self.padding[1] else self.padding}"
        return f"Conv2D({self.in_channels}→{self.out_channels}, {kh}×{kw}{extra})"

    def _check_input(self, x) -> None:
        check_float_array(x, self, ndim=4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self}: expected input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            raise ValueError(f"{self}: input {tuple(x.shape)} (padded by {self.padding}) is smaller "
                             f"than the kernel {self.kernel_size}")
        if self.untied_bias is not None:
            out = self.output_shape(tuple(x.shape[1:]))[1:]
            if out != self.untied_bias:
                raise ValueError(f"{self}: untied biases are for outputs of size {self.untied_bias}; input "
                                 f"{tuple(x.shape)} gives {out}")

    def fuses_relu(self, x) -> bool:
        """Whether :meth:`forward_relu` computes this layer and a ReLU above it in one pass for
        ``x``: NumPy float32/float64 input, the JIT on, stride 1, one bias per channel."""
        return (isinstance(x, numpy.ndarray) and x.dtype in (numpy.float32, numpy.float64) and x.ndim == 4
                and self.stride == (1, 1) and self.untied_bias is None and accel.jit_enabled())

    def forward_relu_pool(self, x, relu, pool, training: bool = False):
        """:meth:`forward_relu` followed by ``pool.forward`` (a ``MaxPool2D``), the pool run on
        each block of the ReLU's output while it is in cache (``Sequential`` calls it where
        :meth:`fuses_relu_pool`). The three layers keep what their own forwards would, with
        the same bits."""
        n, (d, oh, ow) = x.shape[0], self.output_shape(tuple(x.shape[1:]))
        _, ph, pw = pool.output_shape((d, oh, ow))
        yp = numpy.empty((n, d, ph, pw), dtype=x.dtype)
        idx = numpy.empty((n, d, ph, pw), dtype=numpy.uint8 if pool.kernel_size[0] * pool.kernel_size[1] < 255
                          else numpy.int32)

        def after(a: int, z: int, yc) -> None:  # block a:z of the ReLU's output is done
            pool._forward_maps(yc[a:z].reshape(-1, oh, ow), yp[a:z].reshape(-1, ph, pw),
                               idx[a:z].reshape(-1, ph, pw))

        y = self.forward_relu(x, relu, training, after=after)
        if training:
            pool._forget()
            pool._winners, pool._in_shape, pool._out_shape = idx, y.shape, yp.shape
        return yp

    def fuses_relu_pool(self, x, pool) -> bool:
        """Whether :meth:`forward_relu_pool` serves ``x`` and this ``pool``: :meth:`fuses_relu`,
        and the output large enough for the pool's window."""
        if not self.fuses_relu(x) or x.shape[1] != self.in_channels:
            return False
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            return False
        _, oh, ow = self.output_shape(tuple(x.shape[1:]))
        return oh >= pool.kernel_size[0] and ow >= pool.kernel_size[1]

    def forward_relu(self, x, relu, training: bool = False, after=None):
        """``relu.forward(self.forward(x, training), training)`` with the ReLU applied where
        each block's output is made (``Sequential`` calls it for a ``Conv2D`` followed by a
        ``ReLU`` when :meth:`fuses_relu`): the convolution's output is never written out and
        read back (LeNet-5's forward at batch 128: 0.13 ms of 3 ms faster, the same bits). Both
        layers keep what their own forward would (the ReLU its output), so each layer's
        ``backward`` is valid afterwards, as after the two calls."""
        self._check_input(x)
        if training:
            self._forget()
            relu._forget()
        y = self._forward(x, training, relu=True, after=after)
        if training:
            self._out_shape = y.shape
            relu._y, relu._out_shape = y, y.shape
        return y

    def _forward(self, x, training: bool, relu: bool = False, after=None):
        xp = backend.array_module(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        W, b = self.params["W"], self.params["b"]
        xpad = pad(x, ph, pw)
        n, d = x.shape[0], self.out_channels
        oh, ow = out_size(xpad.shape[2], kh, sh), out_size(xpad.shape[3], kw, sw)
        wide = (sh, sw) == (1, 1)
        if wide:  # per block of samples: (D, K)(K, OH·Wp) products straight into NCHW order
            flat, wp = flat_padded(xpad, kw), xpad.shape[3]
            sample_bytes = self.in_channels * kh * kw * oh * wp * x.dtype.itemsize
            blocks = _blocks(xp, n, sample_bytes)
            y = xp.empty((n, d, oh * wp), dtype=x.dtype) if not relu else None
            Wm, bias = W.reshape(d, -1), (b[:, None] if self.untied_bias is None else None)

            direct = (xp is numpy and accel.jit_enabled() and x.dtype in (numpy.float32, numpy.float64)
                      and d <= direct_input_grad_channels)
            if direct:  # few output channels: one compiled pass per sample (_ck.conv_forward_rows)
                Wc = xp.ascontiguousarray(W, dtype=x.dtype)
                bc = b.astype(x.dtype, copy=False) if bias is not None else numpy.empty(0, dtype=x.dtype)

            if relu:  # the output of the ReLU above, compact; y holds one block (or sample) at a time
                yc, y = xp.empty((n, d, oh, ow), dtype=x.dtype), None
                bvec = b.astype(x.dtype, copy=False)
            else:
                yc = numpy.empty((0, 0, 0, 0), dtype=x.dtype)

            def part(i, j):
                for a, z in blocks[i:j]:
                    if direct:
                        out = y if not relu else self._scratch("row", (1, d, oh * wp), x.dtype, xp)
                        _ck.conv_forward_rows(flat, Wc, bc, out, a, z, wp, yc)
                        if after is not None:  # (forward_relu_pool: the pool of this block)
                            after(a, z, yc)
                        continue
                    cols = self._scratch("cols", (z - a, Wm.shape[1], oh * wp), x.dtype, xp)
                    cols = sample_columns(flat, a, z, wp, kh, kw, out=cols)
                    if relu:  # bias and ReLU on the block's product while it is in cache
                        yw = xp.matmul(Wm, cols, out=self._scratch("yblock", (z - a, d, oh * wp), x.dtype, xp))
                        _ck.bias_relu_compact(yw, bvec, yc[a:z])
                        if after is not None:
                            after(a, z, yc)
                        continue
                    xp.matmul(Wm, cols, out=y[a:z])
                    if bias is not None:
                        y[a:z] += bias

            _run_blocks(xp, n, sample_bytes, blocks, part)
            out, cols = (yc if relu else y.reshape(n, d, oh, wp)[..., :ow]), flat
        else:     # one product per sample: (D, K)(K, OH·OW)
            cols = im2col(xpad, kh, kw, sh, sw)
            y = xp.matmul(W.reshape(d, -1), cols)
            if self.untied_bias is None:
                y += b[:, None]
            out = y.reshape(n, d, oh, ow)
        if self.untied_bias is not None:
            out = out + b
        if training:
            self._cols, self._xpad_shape = cols, xpad.shape
        return out

    def _scratch(self, name: str, shape, dtype, xp):
        """A work buffer of ``shape`` kept between calls, so the blocks' columns and errors do
        not fault in fresh pages at every step. One per name and thread, shared by every
        convolution (they never run at once in one thread; nothing in it outlives a call)."""
        key = (name, threading.get_ident(), numpy.dtype(dtype).str, xp.__name__)
        size = 1
        for s in shape:
            size *= s
        buf = _work.get(key)
        if buf is None or buf.size < size:
            buf = _work[key] = xp.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def backward_through(self, grad_p, relu, pool, need_input_grad: bool = True):
        """``self.backward(relu.backward(pool.backward(grad_p)))`` for the ``ReLU`` and 2×2,
        stride-2 ``MaxPool2D`` above this layer, after their training forwards, in one pass
        (``Sequential.backward`` calls it where :meth:`backs_through`): the pool's winners and
        the ReLU's mask turn the pool's output gradient straight into this layer's block error
        (``_conv_kernels.pool_relu_wide_delta``), with the bits of the three calls; the two
        full-size gradients between them are never written."""
        return self._backward(grad_p, need_input_grad, through=(relu._y, pool._winners))

    def backs_through(self, grad_p, relu, pool) -> bool:
        """Whether :meth:`backward_through` serves ``grad_p`` for this ``relu`` and ``pool``:
        a stride-1 layer after a training forward on NumPy float32/float64 with the JIT on, a
        C-ordered ReLU output of this layer's output shape, and a compiled 2×2, stride-2
        max-pool of it whose output ``grad_p`` matches."""
        y, win = relu._y, getattr(pool, "_winners", None)
        return (isinstance(grad_p, numpy.ndarray) and grad_p.dtype in (numpy.float32, numpy.float64)
                and accel.jit_enabled() and self.stride == (1, 1) and self.untied_bias is None
                and self._out_shape is not None and isinstance(y, numpy.ndarray) and y.dtype == grad_p.dtype
                and y.flags.c_contiguous and tuple(y.shape) == tuple(self._out_shape)
                and relu._out_shape is not None and tuple(relu._out_shape) == tuple(y.shape)
                and pool.kernel_size == (2, 2) and pool.stride == (2, 2) and isinstance(win, numpy.ndarray)
                and win.dtype == numpy.uint8 and tuple(pool._in_shape) == tuple(y.shape)
                and pool._out_shape is not None and tuple(grad_p.shape) == tuple(pool._out_shape) == win.shape)

    def _backward(self, grad_y, need_input_grad: bool, through=None):
        xp = backend.array_module(grad_y)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if through is not None:  # grad_y is the gradient of the max-pool above the ReLU above
            relu_y, winners = through
            g_pool, grad_y = xp.ascontiguousarray(grad_y), relu_y  # grad_y: only its shape and dtype serve
        n, d, oh, ow = grad_y.shape
        W = self.params["W"]
        wide = (sh, sw) == (1, 1)
        Wm = W.reshape(d, -1)
        if wide:
            # per block of samples a:z: δ laid out (D, m·OH·Wp), zero on the extra columns of the
            # full-width rows; the columns are rebuilt from the kept padded input (in cache)
            flat, (_, c, hp, wp) = self._cols, self._xpad_shape
            sample_bytes = c * kh * kw * oh * wp * grad_y.dtype.itemsize
            blocks = _blocks(xp, n, sample_bytes)
            part_W = xp.empty((len(blocks), d, c * kh * kw), dtype=grad_y.dtype)
            part_b = xp.empty((len(blocks), d), dtype=grad_y.dtype)
            # the input gradient cropped by the padding as each block is done: a C-ordered array
            # (a view of the padded one made the next layer's pass run row by row: LeNet-5's
            # Normalize backward took 0.09 ms on it)
            h, w = hp - 2 * ph, wp - 2 * pw
            dxp = xp.empty((n, c, h, w), dtype=grad_y.dtype) if need_input_grad else None
            WmT = xp.ascontiguousarray(Wm.T)
            # the compiled input gradient does D·K·OH·Wp multiply-adds per sample against the
            # product's K·OH·Wp writes and col2im's K passes: it wins for few output channels
            # (LeNet's first layer, D = 6: 4× faster; its second, D = 16: 1.7× slower, 2 cores)
            fused = xp is numpy and accel.jit_enabled() and grad_y.dtype in (numpy.float32, numpy.float64)
            jit = fused and d <= direct_input_grad_channels
            # few kernel weights (LeNet's first layer, 6 × 25): the compiled weight gradient (its
            # backward 2.3 against 3.0 ms with the columns and per-sample products at batch 128,
            # one AVX2 core); with more (its second, 16 × 150) the product is 3.5× faster
            direct_W = fused and d * WmT.shape[0] < direct_weight_grad_size
            if jit:
                W = xp.ascontiguousarray(W, dtype=grad_y.dtype)

            def part(i, j):
                for q in range(i, j):
                    a, z = blocks[q]
                    m, dtype, k = z - a, grad_y.dtype, WmT.shape[0]
                    delta = self._scratch("delta", (d, m, oh, wp), dtype, xp)
                    if through is not None:  # the pool's and the ReLU's backward in the same pass
                        _ck.pool_relu_wide_delta(g_pool[a:z], winners[a:z], relu_y[a:z], delta)
                    elif fused:  # the transposed copy and the zeros in one pass
                        _ck.wide_delta(grad_y[a:z], delta)
                    else:
                        delta[..., ow:] = 0
                        delta[..., :ow] = grad_y[a:z].transpose(1, 0, 2, 3)
                    delta = delta.reshape(d, -1)
                    if self.trainable and direct_W:
                        delta.sum(axis=1, out=part_b[q])
                        _ck.conv_weight_grad(delta.reshape(d, m, oh * wp), flat, a, wp, kh, kw, part_W[q])
                    elif self.trainable:
                        delta.sum(axis=1, out=part_b[q])
                        cols = self._scratch("cols", (k, m * oh * wp), dtype, xp)
                        part_W[q] = _weight_grad(delta, wide_columns(flat, a, z, wp, kh, kw, out=cols), m)
                    if need_input_grad and jit:  # col2im(W_matᵀ δ) in one compiled pass
                        acc = self._scratch("dx", (m, c, (hp + 1) * wp), dtype, xp)
                        acc.fill(0)
                        _ck.conv_input_grad(delta.reshape(d, m, oh * wp), W, acc, wp)
                        dxp[a:z] = acc[:, :, :hp * wp].reshape(m, c, hp, wp)[:, :, ph:ph + h, pw:pw + w]
                    elif need_input_grad:
                        # the columns are spent: their buffer takes W_matᵀ δ
                        dcols = xp.matmul(WmT, delta, out=self._scratch("cols", (k, m * oh * wp), dtype, xp))
                        if fused:
                            acc = self._scratch("dx", (m, c, (hp + 1) * wp), dtype, xp)
                            acc.fill(0)
                            _ck.col2im_rows(dcols.reshape(c, kh, kw, m, oh * wp), acc, wp)
                            dxp[a:z] = acc[:, :, :hp * wp].reshape(m, c, hp, wp)[:, :, ph:ph + h, pw:pw + w]
                        else:
                            acc = self._scratch("dx", (c, m, hp * wp + (wp if kw > 1 else 0)), dtype, xp)
                            dxp[a:z] = col2im_wide(dcols, (m, c, hp, wp), kh, kw, out=acc)[:, :, ph:ph + h, pw:pw + w]

            _run_blocks(xp, n, sample_bytes, blocks, part)
            if self.trainable:  # a frozen layer passes the error on but computes no parameter gradient
                self.grads["b"] = part_b.sum(axis=0) if self.untied_bias is None else grad_y.sum(axis=0)
                self.grads["W"] = part_W.sum(axis=0).reshape(W.shape)
            if not need_input_grad:
                return None
            return dxp
        else:
            delta = grad_y.reshape(n, d, oh * ow)                 # (N, D, OH·OW)
            if self.trainable:
                self.grads["b"] = delta.sum(axis=(0, 2)) if self.untied_bias is None else grad_y.sum(axis=0)
                # Σ_n δ_n X_col,nᵀ: one small product per sample, then the sum over the batch
                self.grads["W"] = xp.matmul(delta, self._cols.transpose(0, 2, 1)).sum(axis=0).reshape(W.shape)
            if not need_input_grad:
                return None
            dx = col2im(xp.matmul(Wm.T, delta), self._xpad_shape, kh, kw, sh, sw)
        if ph or pw:
            dx = dx[:, :, ph:dx.shape[2] - ph, pw:dx.shape[3] - pw]
        return dx

    def output_shape(self, input_shape):
        _, h, w = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (self.out_channels, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw))

    def get_config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "weight_init": self.weight_init, "bias_init": self.bias_init,
                **({"untied_bias": list(self.untied_bias)} if self.untied_bias is not None else {})}
