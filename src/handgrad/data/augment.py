r"""Data expansion: random affine transforms (translation, rotation, scaling) of image batches.

``003`` §4 (improving feedforward networks) suggests reducing overfitting by *expanding the
data*: transform the input vectors in ways that mimic expected variations — for images,
translation, scaling and rotation should not change the class. :class:`RandomAffine` does
that on the fly for every training batch (``hg.fit(..., augment=RandomAffine())``);
:func:`affine_transform` is the deterministic core that applies explicitly given per-sample
parameters.

Coordinates
-----------
A pixel ``(row i, column j)`` has its centre at ``x = j`` (to the right) and ``y = i``
(downwards); the image centre is ``c = (c_x, c_y) = ((W − 1)/2, (H − 1)/2)``. With a rotation
angle θ (degrees, positive = counter-clockwise *as displayed*, i.e. with row 0 at the top), a
scale factor ``s > 0`` and a shift ``t = (dx, dy)`` in pixels (positive = right / down), the
forward map sends a source point ``p`` to

.. math::  p' = c + t + s\,R(θ)\,(p − c),\qquad
           R(θ) = \begin{pmatrix} \cos θ & \sin θ \\ −\sin θ & \cos θ \end{pmatrix}

(in ``(x, y)`` components; the minus sign sits in the lower row because ``y`` points down).
Resampling uses the **inverse map**: for every output pixel ``p'`` the source coordinate is

.. math::  p = c + \tfrac1s\,R(θ)^{\top}\,(p' − c − t),\quad\text{i.e.}\quad
           \begin{aligned} x &= c_x + \big(\cos θ\,u − \sin θ\,v\big)/s \\
                           y &= c_y + \big(\sin θ\,u + \cos θ\,v\big)/s \end{aligned}
           \quad\text{with } u = x' − c_x − dx,\; v = y' − c_y − dy.

Bilinear interpolation
----------------------
With ``x₀ = ⌊x⌋, y₀ = ⌊y⌋, f_x = x − x₀, f_y = y − y₀`` the output value is

.. math::  out(p') = (1−f_x)(1−f_y)\,I[y₀, x₀] + f_x(1−f_y)\,I[y₀, x₀+1]
                    + (1−f_x)f_y\,I[y₀+1, x₀] + f_x f_y\,I[y₀+1, x₀+1],

where ``I`` is the image extended by the constant ``fill`` outside its pixel grid. So an
output pixel whose source point lies more than one pixel outside the image is exactly
``fill``, and one whose source lies within a pixel of the border blends the border pixel
with ``fill`` linearly (the ``grid-constant`` convention of ``scipy.ndimage``; it is
continuous in the parameters and insensitive to round-off at the border, e.g. for 90°
rotations). Integer shifts, multiples of 90° about the centre (of a square image) and the
identity reproduce the input pixels exactly (up to round-off of ``cos``/``sin``).

Shapes
------
Inputs are ``(N, H·W)`` (flattened images, the MLP layout) or ``(N, C, H, W)`` (the
convolutional layout; every channel of a sample gets the same transform). The output has
the input's shape and dtype (float32 or float64). Everything is vectorized: the source
coordinates are ``(N, H, W)`` grids built by broadcasting the per-sample parameters
``(N, 1, 1)`` against the pixel indices, and the four neighbours are gathered with
``take`` on the flattened, ``fill``-padded batch (one ``(N, C, H·W)`` index array, offset by
``0, 1, W+2, W+3``) — no Python loop over samples, channels or pixels. A batch of 128 28×28
images takes about 1–3 ms on one CPU core. The array namespace comes from
:func:`handgrad.backend.array_module`, so the same code runs on CuPy arrays (random
parameters are drawn on the host from the NumPy generator and then moved to the device).
"""
from __future__ import annotations

import numpy

from .. import backend
from .._checks import check_bool, check_float_array, check_int, check_real

__all__ = ["RandomAffine", "RandomShift", "affine_transform"]


# ----------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------
def _image_shape(value, where: str) -> tuple[int, int]:
    try:
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError
        return check_int(value[0], where, "H", minimum=1), check_int(value[1], where, "W", minimum=1)
    except ValueError:  # IntegerTypeError included: one message for the pair
        raise ValueError(f"{where}: expected image_shape to be a pair of positive integers (H, W), "
                         f"got {value!r}") from None


def _scale_range(value, where: str) -> tuple[float, float]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"{where}: expected scale to be a pair (low, high) with 0 < low <= high, got {value!r}")
    lo, hi = (check_real(v, where, "scale bounds") for v in value)
    if not (0 < lo <= hi):
        raise ValueError(f"{where}: expected scale to be a pair (low, high) with 0 < low <= high, got {value!r}")
    return lo, hi


def _as_images(x, image_shape, where: str):
    """Validate ``x`` and return it viewed as ``(N, C, H, W)``."""
    check_float_array(x, where, ndim=(2, 4))
    h, w = image_shape
    if x.ndim == 2:
        if x.shape[1] != h * w:
            raise ValueError(f"{where}: expected flattened images of width H*W = {h}*{w} = {h * w} "
                             f"(image_shape={image_shape}), got shape {tuple(x.shape)}")
        return x.reshape(x.shape[0], 1, h, w)
    if tuple(x.shape[2:]) != (h, w):
        raise ValueError(f"{where}: expected images of shape (N, C, {h}, {w}) (image_shape={image_shape}), "
                         f"got shape {tuple(x.shape)}")
    return x


def _per_sample(value, n: int, where: str, name: str, width: int | None = None):
    """A float64 NumPy array of shape ``(n,)`` (or ``(n, width)``) from a scalar/pair or per-sample array."""
    want = (n,) if width is None else (n, width)
    try:
        if isinstance(value, bool):
            raise TypeError
        a = numpy.asarray(backend.to_numpy(value), dtype=numpy.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected {name} to be numeric, got {type(value).__name__}") from None
    single = () if width is None else (width,)
    if a.shape == single:
        a = numpy.broadcast_to(a, want)
    if a.shape != want:
        scalar = "a number" if width is None else "a pair (dx, dy)"
        raise ValueError(f"{where}: expected {name} to be {scalar} or an array of shape {want}, got shape {a.shape}")
    if not numpy.isfinite(a).all():
        raise ValueError(f"{where}: {name} contains NaN or Inf values")
    return a


# ----------------------------------------------------------------------------------------
# the deterministic core
# ----------------------------------------------------------------------------------------
def affine_transform(x, angle=0.0, scale=1.0, shift=(0.0, 0.0), image_shape=(28, 28), fill: float = 0.0):
    """Rotate, scale and shift every image of a batch about its centre (bilinear, inverse map).

    ``x``: ``(N, H·W)`` or ``(N, C, H, W)``, float32/float64. ``angle``: degrees,
    counter-clockwise as displayed, a number or shape ``(N,)``. ``scale``: factor ``> 0``
    (``2`` doubles the size of the content), a number or ``(N,)``. ``shift``: ``(dx, dy)``
    pixels (right, down), a pair or ``(N, 2)``. ``image_shape``: ``(H, W)``, needed to unflatten
    ``(N, H·W)`` inputs and checked against ``(N, C, H, W)`` ones. Source points outside the
    image read ``fill``. Returns a new array of ``x``'s shape and dtype. See the module
    docstring for the math (``003`` §4, data expansion).
    """
    where = "affine_transform"
    image_shape = _image_shape(image_shape, where)
    fill = check_real(fill, where, "fill")
    imgs = _as_images(x, image_shape, where)
    n = imgs.shape[0]
    angle = _per_sample(angle, n, where, "angle")
    scale = _per_sample(scale, n, where, "scale")
    shift = _per_sample(shift, n, where, "shift", width=2)
    if (scale <= 0).any():
        raise ValueError(f"{where}: expected every scale > 0, got min {scale.min():g}")
    return _warp(x, imgs, angle, scale, shift, fill)


def _warp(x, imgs, angle, scale, shift, fill):
    """The vectorized resampling; arguments already validated (``imgs`` is ``(N, C, H, W)``)."""
    xp = backend.array_module(x)
    n, c, h, w = imgs.shape
    if n == 0 or c == 0:
        return x.copy()
    dtype = x.dtype
    theta = numpy.deg2rad(angle)
    # Per-sample parameters as (N, 1, 1) so they broadcast against the (H, W) pixel grid.
    cos_s = backend.asarray((numpy.cos(theta) / scale).reshape(n, 1, 1), xp=xp)
    sin_s = backend.asarray((numpy.sin(theta) / scale).reshape(n, 1, 1), xp=xp)
    dx = backend.asarray(shift[:, 0].reshape(n, 1, 1), xp=xp)
    dy = backend.asarray(shift[:, 1].reshape(n, 1, 1), xp=xp)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0

    # Inverse map in float64: output pixel (y', x') -> source point (y, x), as (N, H, W) grids
    # built from an (N, 1, W) and an (N, H, 1) part. Coordinates are shifted by +1 into the
    # image padded with one pixel of `fill` on every side (padded index = image index + 1).
    u = xp.arange(w, dtype=numpy.float64).reshape(1, 1, w) - cx - dx     # x' − c_x − dx, (N, 1, W)
    v = xp.arange(h, dtype=numpy.float64).reshape(1, h, 1) - cy - dy     # y' − c_y − dy, (N, H, 1)
    sx = xp.subtract((cx + 1.0) + cos_s * u, sin_s * v)                  # (N, H, W)
    sy = xp.add((cy + 1.0) + cos_s * v, sin_s * u)
    # Clamp into [0, W+1] x [0, H+1] (padded coordinates): every point at or beyond the first
    # padding pixel reads `fill`, so clamping changes no value. Then x0 = floor (= truncation,
    # as sx >= 0), limited so that x0 + 1 stays inside the padded image, and fx = sx − x0.
    xp.clip(sx, 0.0, w + 1.0, out=sx)
    xp.clip(sy, 0.0, h + 1.0, out=sy)
    x0 = sx.astype(numpy.int32)
    y0 = sy.astype(numpy.int32)
    xp.minimum(x0, w, out=x0)
    xp.minimum(y0, h, out=y0)
    sx -= x0
    sy -= y0
    fx = sx.astype(dtype, copy=False).reshape(n, 1, h * w)
    fy = sy.astype(dtype, copy=False).reshape(n, 1, h * w)

    wp = w + 2
    padded = xp.full((n, c, h + 2, wp), fill, dtype=dtype)
    padded[:, :, 1:-1, 1:-1] = imgs
    flat = padded.reshape(-1)
    # Flat index of the top-left neighbour I[y0, x0] for every (sample, channel, pixel); the
    # other three neighbours are the same indices into `flat` offset by 1, wp and wp + 1.
    y0 *= wp
    y0 += x0
    plane = (xp.arange(n * c, dtype=numpy.int64) * ((h + 2) * wp)).reshape(n, c, 1)
    idx = y0.reshape(n, 1, h * w) + plane                                  # (N, C, H·W)

    # Bilinear blend, in place: top = I00 + fx (I01 − I00), bottom = I10 + fx (I11 − I10),
    # out = top + fy (bottom − top) — the four weights of the module docstring.
    kw = {"mode": "clip"} if xp is numpy else {}  # indices are in range; "clip" skips NumPy's buffered check
    top = xp.take(flat, idx, **kw)
    tmp = xp.take(flat[1:], idx, **kw)
    tmp -= top
    tmp *= fx
    top += tmp
    bottom = xp.take(flat[wp:], idx, **kw)
    xp.take(flat[wp + 1:], idx, out=tmp, **kw)
    tmp -= bottom
    tmp *= fx
    bottom += tmp
    bottom -= top
    bottom *= fy
    top += bottom
    return top.reshape(x.shape)


# ----------------------------------------------------------------------------------------
# the random augmentation
# ----------------------------------------------------------------------------------------
class RandomAffine:
    """Random translation, rotation and scaling of every image of a batch (``003`` §4).

    Per sample: shift ``dx, dy ~ U[−max_shift, max_shift]`` pixels, angle
    ``θ ~ U[−max_rotation, max_rotation]`` degrees, scale ``s ~ U[scale[0], scale[1]]``; the
    image is resampled about its centre with bilinear interpolation by the inverse affine map
    (see :func:`affine_transform` and the module docstring); source points outside the image
    read ``fill`` (``0.0``: black background for pixels scaled to ``[0, 1]``).

    Call it as ``aug(x, rng)`` with ``x`` of shape ``(N, H·W)`` or ``(N, C, H, W)``
    (float32/float64) and a ``numpy.random.Generator`` (or an int seed); it returns a new
    array of the same shape and dtype, and the same generator state gives the same output.
    Each call draws exactly ``4·N`` uniforms, whatever the parameters (``5·N`` with ``flip``). Use
    it as ``hg.fit(..., augment=RandomAffine())``.

    ``flip=True`` also mirrors each image left–right with probability ½ (after the affine map):
    natural for clothes, whose left and right halves look alike.
    """

    def __init__(self, max_shift: float = 2.0, max_rotation: float = 10.0, scale=(0.9, 1.1),
                 image_shape=(28, 28), fill: float = 0.0, flip: bool = False) -> None:
        where = type(self).__name__
        self.flip = check_bool(flip, where, "flip")
        self.max_shift = check_real(max_shift, where, "max_shift", minimum=0.0)
        self.max_rotation = check_real(max_rotation, where, "max_rotation", minimum=0.0)
        if self.max_rotation > 180:
            raise ValueError(f"{where}: expected max_rotation in [0, 180] degrees, got {max_rotation!r}")
        self.scale = _scale_range(scale, where)
        self.image_shape = _image_shape(image_shape, where)
        self.fill = check_real(fill, where, "fill")

    def draw(self, n: int, rng):
        """The random parameters of ``n`` samples: ``angle (n,)`` degrees, ``scale (n,)``, ``shift (n, 2)``."""
        where = type(self).__name__
        n = check_int(n, where, "the number of samples", minimum=0)
        if rng is None:
            raise TypeError(f"{where}: expected rng to be a numpy.random.Generator or an int seed, got None")
        try:
            rng = backend.make_rng(rng)
        except TypeError:
            raise TypeError(f"{where}: expected rng to be a numpy.random.Generator or an int seed, "
                            f"got {type(rng).__name__}") from None
        r = rng.random((int(n), 4))
        angle = (2.0 * r[:, 0] - 1.0) * self.max_rotation
        lo, hi = self.scale
        scale = lo + (hi - lo) * r[:, 1]
        shift = (2.0 * r[:, 2:] - 1.0) * self.max_shift
        return angle, scale, shift

    def __call__(self, x, rng):
        where = type(self).__name__
        imgs = _as_images(x, self.image_shape, where)
        if self.flip and isinstance(rng, (int, numpy.integer)) and not isinstance(rng, bool):
            rng = numpy.random.default_rng(int(rng))  # one generator for both draws
        angle, scale, shift = self.draw(imgs.shape[0], rng)
        out = _warp(x, imgs, angle, scale, shift, self.fill)
        if self.flip and imgs.shape[0]:
            xp = backend.array_module(out)
            mirror = backend.asarray(rng.random(imgs.shape[0]) < 0.5, xp=xp)
            view = out.reshape(out.shape[0], -1, *self.image_shape)
            view[mirror] = view[mirror][..., ::-1]
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(max_shift={self.max_shift:g}, max_rotation={self.max_rotation:g}, "
                f"scale=({self.scale[0]:g}, {self.scale[1]:g}), image_shape={self.image_shape}, fill={self.fill:g}"
                + (", flip=True)" if self.flip else ")"))


class RandomShift(RandomAffine):
    """Random translation only: :class:`RandomAffine` with no rotation and unit scale."""

    def __init__(self, max_shift: float = 2.0, image_shape=(28, 28), fill: float = 0.0) -> None:
        super().__init__(max_shift=max_shift, max_rotation=0.0, scale=(1.0, 1.0),
                         image_shape=image_shape, fill=fill)

    def __repr__(self) -> str:
        return (f"RandomShift(max_shift={self.max_shift:g}, image_shape={self.image_shape}, "
                f"fill={self.fill:g})")
