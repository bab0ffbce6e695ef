"""Data expansion (``003`` §4): ``hg.data.RandomAffine`` and ``hg.data.affine_transform``."""
from __future__ import annotations

import time

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers as L
from handgrad import losses, optim
from handgrad.data import RandomAffine, RandomShift, affine_transform

DTYPES = [np.float32, np.float64]


def images(n=4, c=None, h=28, w=28, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    shape = (n, h, w) if c is None else (n, c, h, w)
    return rng.random(shape).astype(dtype)


def shifted(img, dx, dy, fill=0.0):
    """``img`` moved dx pixels right and dy down, vacated pixels = fill (np.roll + fill)."""
    out = np.roll(img, (dy, dx), axis=(-2, -1))
    if dy > 0:
        out[..., :dy, :] = fill
    elif dy < 0:
        out[..., dy:, :] = fill
    if dx > 0:
        out[..., :, :dx] = fill
    elif dx < 0:
        out[..., :, dx:] = fill
    return out


def blob(h=28, w=28, sigma=3.0):
    yy, xx = np.mgrid[:h, :w]
    return np.exp(-(((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2) / (2 * sigma ** 2)))


# ----------------------------------------------------------------------------------------
# exact geometry of affine_transform
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["flat", "nchw"])
def test_identity_returns_input_exactly(dtype, layout):
    x = images(5, c=2, dtype=dtype)
    x = x.reshape(5, -1)[:, :784] if layout == "flat" else x
    aug = RandomAffine(max_shift=0, max_rotation=0, scale=(1, 1))
    out = aug(x, np.random.default_rng(0))
    assert out.dtype == x.dtype and out.shape == x.shape and out is not x
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(affine_transform(x), x)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 1), (3, -2), (-5, 4), (-1, -1), (27, 0), (0, -30)])
def test_integer_shift_moves_pattern_exactly(dx, dy):
    x = images(3)
    out = affine_transform(x.reshape(3, -1), shift=(dx, dy)).reshape(3, 28, 28)
    np.testing.assert_allclose(out, shifted(x, dx, dy), rtol=0, atol=1e-12)


def test_integer_shift_fills_vacated_pixels_with_fill():
    x = images(2, c=1)
    out = affine_transform(x, shift=(2, -3), fill=-0.5)
    np.testing.assert_allclose(out, shifted(x, 2, -3, fill=-0.5), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("angle, k", [(90, 1), (-90, -1), (180, 2), (270, 3), (-270, 1), (360, 0)])
def test_right_angle_rotations_match_rot90(dtype, angle, k):
    """Positive angles rotate counter-clockwise as displayed (row 0 at the top), like np.rot90."""
    x = images(3, c=2, dtype=dtype)
    out = affine_transform(x, angle=angle)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, np.rot90(x, k, axes=(-2, -1)), rtol=0, atol=tol)


def test_half_turn_of_a_rectangular_image():
    x = images(2, c=1, h=12, w=20)
    out = affine_transform(x, angle=180, image_shape=(12, 20))
    np.testing.assert_allclose(out, x[..., ::-1, ::-1], rtol=0, atol=1e-12)


def test_scaling_a_centred_dot_by_two_gives_the_bilinear_tent():
    """A one-pixel dot at the centre of a 29x29 image, scaled by 2: out(d) = (1 - |dx|/2)(1 - |dy|/2)."""
    x = np.zeros((1, 1, 29, 29))
    x[0, 0, 14, 14] = 1.0
    out = affine_transform(x, scale=2.0, image_shape=(29, 29))[0, 0]
    expected = np.zeros((29, 29))
    expected[13:16, 13:16] = np.outer([0.5, 1.0, 0.5], [0.5, 1.0, 0.5])
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    assert out.sum() == pytest.approx(4.0)  # mass scales by s^2


def test_scaling_down_by_two_samples_every_other_pixel():
    x = images(2, c=1, h=29, w=29)
    out = affine_transform(x, scale=0.5, image_shape=(29, 29))
    # Output pixel 14 + k reads source pixel 14 + 2k: rows/cols 7..21 come from 0, 2, ..., 28.
    np.testing.assert_allclose(out[..., 7:22, 7:22], x[..., ::2, ::2], rtol=0, atol=1e-12)
    assert (out[..., :6, :] == 0).all() and (out[..., :, 23:] == 0).all()


def test_transform_order_is_scale_and_rotate_about_centre_then_shift():
    """A dot at offset (+4, 0) from the centre of a 29x29 image, rotated 90°, scaled 0.5 and shifted
    (dx, dy) = (3, -2), lands at centre + shift + 0.5 * R(90°)(4, 0) = (14 + 3, 14 - 2 - 2)."""
    x = np.zeros((1, 29 * 29))
    x[0, 14 * 29 + 18] = 1.0                                    # row 14, column 18
    out = affine_transform(x, angle=90, scale=0.5, shift=(3, -2), image_shape=(29, 29)).reshape(29, 29)
    row, col = np.unravel_index(np.argmax(out), out.shape)
    assert (row, col) == (10, 17)
    assert out[row, col] == pytest.approx(1.0)   # the output pixel maps exactly onto the dot
    assert out.sum() == pytest.approx(1.0)        # and no other output pixel sees it


@pytest.mark.parametrize("fill", [0.0, 0.7])
def test_matches_scipy_grid_constant_bilinear(fill):
    ndi = pytest.importorskip("scipy.ndimage")
    x = images(6, c=2)
    aug = RandomAffine(max_shift=4, max_rotation=180, scale=(0.5, 2.0), fill=fill)
    angle, scale, shift = aug.draw(6, np.random.default_rng(3))
    out = affine_transform(x, angle, scale, shift, fill=fill)
    c = np.array([13.5, 13.5])
    for i in range(6):
        t = np.deg2rad(angle[i])
        m = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) / scale[i]  # (row, col) order
        offset = c - m @ (c + shift[i, ::-1])
        for ch in range(2):
            ref = ndi.affine_transform(x[i, ch], m, offset=offset, order=1, mode="grid-constant", cval=fill)
            np.testing.assert_allclose(out[i, ch], ref, rtol=0, atol=1e-12)


def test_far_away_sources_read_fill_exactly():
    x = images(2, c=1)
    np.testing.assert_array_equal(affine_transform(x, shift=(40, 0), fill=0.25), np.full_like(x, 0.25))
    np.testing.assert_array_equal(affine_transform(x, scale=0.01, fill=0.0)[..., :10, :], 0.0)


# ----------------------------------------------------------------------------------------
# RandomAffine: randomness, layouts, dtypes
# ----------------------------------------------------------------------------------------
def test_call_equals_affine_transform_of_drawn_parameters():
    x = images(16, c=1, dtype=np.float32)
    aug = RandomAffine(max_shift=3, max_rotation=30, scale=(0.8, 1.2), fill=0.1)
    params = aug.draw(16, np.random.default_rng(7))
    np.testing.assert_array_equal(aug(x, np.random.default_rng(7)), affine_transform(x, *params, fill=0.1))


def test_draw_stays_in_range_and_covers_it():
    aug = RandomAffine(max_shift=2.5, max_rotation=15, scale=(0.8, 1.25))
    angle, scale, shift = aug.draw(20000, np.random.default_rng(0))
    assert angle.shape == scale.shape == (20000,) and shift.shape == (20000, 2)
    assert -15 <= angle.min() < -14.9 and 14.9 < angle.max() <= 15
    assert 0.8 <= scale.min() < 0.81 and 1.24 < scale.max() <= 1.25
    assert (np.abs(shift) <= 2.5).all() and (shift.min(0) < -2.49).all() and (shift.max(0) > 2.49).all()
    assert abs(shift.mean()) < 0.05 and abs(angle.mean()) < 0.3


def test_same_seed_same_output_different_seed_different_output():
    x = images(8, dtype=np.float32).reshape(8, -1)
    aug = RandomAffine()
    a = aug(x, np.random.default_rng(42))
    b = aug(x, np.random.default_rng(42))
    c = aug(x, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(aug(x, 42), a)   # an int seed works like default_rng(seed)


def test_generator_advances_and_each_sample_gets_its_own_transform():
    x = np.repeat(images(1, dtype=np.float32).reshape(1, -1), 6, axis=0)
    aug = RandomAffine()
    rng = np.random.default_rng(0)
    first, second = aug(x, rng), aug(x, rng)
    assert not np.allclose(first, second)
    assert len({out.tobytes() for out in first}) == 6  # identical inputs, six different outputs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 784), (5, 1, 28, 28), (5, 3, 28, 28), (0, 784), (1, 2, 28, 28)])
def test_shape_and_dtype_preserved_and_input_untouched(dtype, shape):
    x = np.random.default_rng(0).random(shape).astype(dtype)
    before = x.copy()
    out = RandomAffine()(x, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(x, before)
    assert np.isfinite(out).all()


def test_non_contiguous_input():
    x = images(6, c=2)[:, ::-1][::2]  # negative strides, every other sample
    aug = RandomAffine()
    np.testing.assert_array_equal(aug(x, 5), aug(np.ascontiguousarray(x), 5))


def test_all_channels_of_a_sample_share_the_transform_and_layouts_agree():
    base = images(4, dtype=np.float32)                                      # (4, 28, 28)
    x = np.stack([base, 2 * base, -base], axis=1)                           # (4, 3, 28, 28)
    aug = RandomAffine(max_shift=3, max_rotation=20)
    out = aug(x, np.random.default_rng(9))
    flat = aug(base.reshape(4, -1), np.random.default_rng(9)).reshape(4, 28, 28)
    np.testing.assert_allclose(out[:, 0], flat, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], 2 * flat, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[:, 2], -flat, rtol=0, atol=1e-6)


def test_mass_roughly_preserved_for_small_transforms():
    x = np.repeat(blob()[None, None], 64, axis=0)
    mass = x[0, 0].sum()
    out = RandomAffine(max_shift=2, max_rotation=10, scale=(1, 1))(x, np.random.default_rng(0))
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), mass, rtol=0.02)
    # With scaling, the mass scales by s^2 (the Jacobian of the forward map).
    for s in (0.9, 1.1):
        out = affine_transform(x[:1], angle=7, scale=s, shift=(1.5, -0.5))
        assert out.sum() == pytest.approx(s * s * mass, rel=0.02)


def test_random_shift_is_a_pure_translation():
    aug = RandomShift(3)
    angle, scale, shift = aug.draw(100, np.random.default_rng(0))
    assert (angle == 0).all() and (scale == 1).all() and np.abs(shift).max() > 2.5
    assert repr(aug) == "RandomShift(max_shift=3, image_shape=(28, 28), fill=0)"
    x = blob()[None, None]
    out = aug(x, 0)
    assert out.sum() == pytest.approx(x.sum(), rel=0.01)


def test_repr_shows_parameters_and_round_trips():
    aug = RandomAffine(max_shift=1.5, max_rotation=12, scale=(0.8, 1.2), image_shape=(32, 30), fill=-1)
    text = repr(aug)
    assert text == "RandomAffine(max_shift=1.5, max_rotation=12, scale=(0.8, 1.2), image_shape=(32, 30), fill=-1)"
    assert repr(eval(text, {"RandomAffine": RandomAffine})) == text
    assert repr(RandomAffine()) == ("RandomAffine(max_shift=2, max_rotation=10, scale=(0.9, 1.1), "
                                   "image_shape=(28, 28), fill=0)")
    assert hg.data.RandomAffine is RandomAffine and "RandomAffine" in hg.data.__all__


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"max_shift": -1}, ValueError, "max_shift >= 0"),
    ({"max_shift": float("nan")}, ValueError, "max_shift to be finite"),
    ({"max_shift": "2"}, TypeError, "max_shift to be a real number"),
    ({"max_rotation": -5}, ValueError, "max_rotation >= 0"),
    ({"max_rotation": 200}, ValueError, r"max_rotation in \[0, 180\]"),
    ({"max_rotation": True}, TypeError, "max_rotation to be a real number"),
    ({"scale": (1.1, 0.9)}, ValueError, "0 < low <= high"),
    ({"scale": (0.0, 1.0)}, ValueError, "0 < low <= high"),
    ({"scale": (-1.0, 1.0)}, ValueError, "0 < low <= high"),
    ({"scale": 1.0}, ValueError, r"pair \(low, high\)"),
    ({"scale": (0.9, 1.0, 1.1)}, ValueError, r"pair \(low, high\)"),
    ({"scale": (0.9, float("inf"))}, ValueError, "finite"),
    ({"image_shape": (28,)}, ValueError, "image_shape to be a pair of positive integers"),
    ({"image_shape": (28, 0)}, ValueError, "image_shape to be a pair of positive integers"),
    ({"image_shape": (28.0, 28.0)}, ValueError, "image_shape to be a pair of positive integers"),
    ({"fill": None}, TypeError, "fill to be a real number"),
    ({"fill": float("inf")}, ValueError, "fill to be finite"),
])
def test_bad_arguments_raise(kwargs, exc, match):
    with pytest.raises(exc, match=match) as info:
        RandomAffine(**kwargs)
    assert str(info.value).startswith("RandomAffine:")


@pytest.mark.parametrize("x, exc, match", [
    (np.zeros((4, 783), np.float32), ValueError, r"width H\*W = 28\*28 = 784.*got shape \(4, 783\)"),
    (np.zeros((4, 28, 28), np.float32), ValueError, r"2-D or 4-D, got shape \(4, 28, 28\)"),
    (np.zeros(784, np.float32), ValueError, "2-D or 4-D"),
    (np.zeros((4, 1, 28, 27), np.float32), ValueError, r"\(N, C, 28, 28\).*got shape \(4, 1, 28, 27\)"),
    (np.zeros((4, 784), np.uint8), TypeError, "float32 or float64, got uint8"),
    (np.zeros((4, 784), np.float16), TypeError, "float32 or float64, got float16"),
    (np.zeros((4, 784), np.int64), TypeError, "float32 or float64, got int64"),
    ([[0.0] * 784], TypeError, "to be an array, got list"),
])
def test_bad_inputs_raise(x, exc, match):
    with pytest.raises(exc, match=match) as info:
        RandomAffine()(x, np.random.default_rng(0))
    assert str(info.value).startswith("RandomAffine:")


@pytest.mark.parametrize("rng", [None, "seed", 1.5, np.random.RandomState(0)])
def test_bad_rng_raises(rng):
    with pytest.raises(TypeError, match="RandomAffine: expected rng to be a numpy.random.Generator"):
        RandomAffine()(np.zeros((2, 784), np.float32), rng)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"angle": np.zeros(3)}, ValueError, r"angle to be a number or an array of shape \(2,\)"),
    ({"scale": 0.0}, ValueError, "every scale > 0"),
    ({"scale": [1.0, -2.0]}, ValueError, "every scale > 0"),
    ({"shift": (1.0, 2.0, 3.0)}, ValueError, r"shift to be a pair \(dx, dy\) or an array of shape \(2, 2\)"),
    ({"angle": float("nan")}, ValueError, "angle contains NaN"),
    ({"angle": "ten"}, TypeError, "angle to be numeric"),
    ({"image_shape": (27, 29)}, ValueError, "affine_transform: expected flattened images of width"),
])
def test_affine_transform_bad_parameters_raise(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        affine_transform(np.zeros((2, 784)), **kwargs)


# ----------------------------------------------------------------------------------------
# speed and training
# ----------------------------------------------------------------------------------------
def test_a_batch_of_128_is_quick():
    """Sanity only (no timing assertion): a 128-image batch takes a few milliseconds."""
    x = images(128, dtype=np.float32).reshape(128, -1)
    aug, rng = RandomAffine(), np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(5):
        out = aug(x, rng)
    per_batch = (time.perf_counter() - t0) / 5
    assert out.shape == x.shape
    print(f"RandomAffine: {per_batch * 1e3:.2f} ms per batch of 128")


def _fit_subset(augment, seed=0, n=600):
    (x, y), _ = hg.data.load_fashion_mnist_subset()
    x = hg.data.to_float(x[:n])
    model = hg.Sequential([L.Dense(784, 16, rng=1), L.ReLU(), L.Dense(16, 10, rng=2)])
    hist = hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.1), x, y[:n], epochs=1,
                  batch_size=64, seed=seed, augment=augment, progress_bar=False)
    return model, hist


def test_fit_with_random_affine_runs_and_is_deterministic():
    m1, h1 = _fit_subset(RandomAffine())
    m2, h2 = _fit_subset(RandomAffine())
    m3, h3 = _fit_subset(None)
    m4, h4 = _fit_subset(RandomAffine(), seed=1)
    assert np.isfinite(h1.history["loss"]).all()
    assert h1.history == h2.history
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The augmentation is really applied (different from no augmentation and from another seed).
    assert h1.history["loss"] != h3.history["loss"]
    assert h1.history["loss"] != h4.history["loss"]


def test_flip_mirrors_about_half_the_images_left_right():
    aug = RandomAffine(max_shift=0, max_rotation=0, scale=(1, 1), image_shape=(4, 4), flip=True)
    x = np.tile(np.arange(16, dtype=np.float32), (400, 1))
    out = aug(x, np.random.default_rng(0)).reshape(-1, 4, 4)
    mirrored = np.all(out == x.reshape(-1, 4, 4)[..., ::-1], axis=(1, 2))
    kept = np.all(out == x.reshape(-1, 4, 4), axis=(1, 2))
    assert np.all(mirrored | kept) and 150 < mirrored.sum() < 250
    again = aug(x, np.random.default_rng(0)).reshape(-1, 4, 4)
    assert np.array_equal(out, again)
    assert "flip=True" in repr(aug)
    with pytest.raises(TypeError, match="RandomAffine.*flip"):
        RandomAffine(flip="yes")
