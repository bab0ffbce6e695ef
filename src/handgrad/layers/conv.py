"""2-D convolution (cross-correlation, as in PyTorch and ``001`` eq. (25)).

Legend: N batch, C = C_in, D = C_out, H×W input, kH×kW kernel, OH×OW output,
K = C·kH·kW.
"""
from __future__ import annotations

from typing import Any

from .. import backend, init
from .._checks import check_float_array, check_positive_int
from ..kernels import col2im, col2im_wide, im2col, im2col_wide, out_size, pad, pair
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


@register
class Conv2D(Layer):
    r"""Multi-channel 2-D cross-correlation with stride and zero padding.

    Forward (``001`` eqs. (25)–(26); ``003`` §5; ``000`` eq. (12) written as correlation)::

        y[n, d, p, q] = b[d] + Σ_c Σ_i Σ_j W[d, c, i, j] · x̃[n, c, p·sH + i, q·sW + j]

    with x̃ the input zero-padded by ``padding``. Computed as im2col: every receptive field is
    unrolled into a column of X_col ``(N, K, OH·OW)`` and y_n = W_mat X_col,n with
    W_mat = W.reshape(D, K). With stride 1 the columns span full padded rows and fold the batch
    in (``kernels.im2col_wide``, X_col ``(K, N·OH·Wp)``): the layer is one matrix product, and
    im2col/col2im move contiguous runs; the extra columns are dropped and carry no error. Other
    strides use one product per sample.

    Backward, with δ = dC/dy ``(N, D, OH, OW)``:

    - bias (``001`` eq. (31); ``000`` eq. (21)): dC/db[d] = Σ_{n,p,q} δ[n, d, p, q];
    - kernel (``001`` eq. (30); ``000`` eqs. (20), (46)): the correlation of the input with δ,
      dC/dW[d, c, i, j] = Σ_{n,p,q} δ[n, d, p, q] x̃[n, c, p·sH + i, q·sW + j], i.e.
      dW_mat = Σ_n δ_n X_col,nᵀ;
    - input (none of the notes derives it; see ``docs/errata.md``): the full convolution of δ
      with the kernel rotated by 180°,
      dC/dx̃[n, c, u, v] = Σ_{d,i,j} W[d, c, i, j] δ[n, d, (u − i)/sH, (v − j)/sW] over the
      integer quotients, computed as col2im(W_matᵀ δ_n) and then cropped by the padding.

    Untied biases (``004`` eq. (10)): with ``untied_bias=(OH, OW)`` the bias is ``b`` ``(D, OH, OW)``,
    one per output position, y[n, d, p, q] gets b[d, p, q] and dC/db[d, p, q] = Σ_n δ[n, d, p, q].

    Input ``(N, C, H, W)``; output ``(N, D, OH, OW)``, OH = ⌊(H + 2pH − kH)/sH⌋ + 1.
    Params: ``W`` ``(D, C, kH, kW)`` drawn by ``weight_init`` with fan-in C·kH·kW (default
    N(0, 1/fan_in), ``003`` §4); ``b`` ``(D,)`` zeros.
    """

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
        check_float_array(x, str(self), ndim=4)
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

    def _forward(self, x, training: bool):
        xp = backend.array_module(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        W, b = self.params["W"], self.params["b"]
        xpad = pad(x, ph, pw)
        n, d = x.shape[0], self.out_channels
        oh, ow = out_size(xpad.shape[2], kh, sh), out_size(xpad.shape[3], kw, sw)
        wide = (sh, sw) == (1, 1)
        if wide:  # one product for the whole batch: (D, K)(K, N·OH·Wp)
            cols = im2col_wide(xpad, kh, kw)
            y = W.reshape(d, -1) @ cols
            if self.untied_bias is None:
                y += b[:, None]
            out = y.reshape(d, n, oh, xpad.shape[3])[..., :ow].transpose(1, 0, 2, 3)
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

    def _backward(self, grad_y, need_input_grad: bool):
        xp = backend.array_module(grad_y)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        n, d, oh, ow = grad_y.shape
        W = self.params["W"]
        wide = (sh, sw) == (1, 1)
        Wm = W.reshape(d, -1)
        if wide:
            # δ laid out (D, N·OH·Wp), zero on the extra columns of the full-width rows
            wp = self._xpad_shape[3]
            delta = xp.zeros((d, n, oh, wp), dtype=grad_y.dtype)
            delta[..., :ow] = grad_y.transpose(1, 0, 2, 3)
            delta = delta.reshape(d, -1)
            if self.trainable:  # a frozen layer passes the error on but computes no parameter gradient
                self.grads["b"] = delta.sum(axis=1) if self.untied_bias is None else grad_y.sum(axis=0)
                self.grads["W"] = _weight_grad(delta, self._cols, n).reshape(W.shape)
            if not need_input_grad:
                return None
            dx = col2im_wide(Wm.T @ delta, self._xpad_shape, kh, kw)
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
