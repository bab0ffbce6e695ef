"""Losses: finite-difference gradients, values against the written-out per-sample costs
(mean over N, and over T for (N, T, C) outputs), stability, dtypes and bad input."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from helpers import assert_gradcheck

import handgrad as hg
from handgrad import losses

DTYPES = [np.float32, np.float64]
# (N, C) and (N, T, C) outputs, batch 1, width 1, odd widths
SHAPES = [(1, 1), (1, 4), (5, 1), (4, 3), (6, 7), (1, 1, 3), (2, 3, 5), (3, 1, 4)]
CLASS_SHAPES = [s for s in SHAPES if s[-1] > 1]


def rng_(seed=0):
    return np.random.default_rng(seed)


def logits(shape, dtype=np.float64, seed=0, scale=2.0):
    return (scale * rng_(seed).standard_normal(shape)).astype(dtype)


def labels(shape, seed=1):
    return rng_(seed).integers(0, shape[-1], size=shape[:-1])


def one_hot(lab, k, dtype=np.float64):
    return np.eye(k, dtype=dtype)[lab]


def soft_targets(shape, dtype=np.float64, seed=2):
    e = np.exp(rng_(seed).standard_normal(shape))
    return (e / e.sum(axis=-1, keepdims=True)).astype(dtype)


def probabilities(shape, dtype=np.float64, seed=3):
    """Rows on the simplex, every entry >= 0.5/C: finite differences with step 2e-4 stay
    accurate (ln a has large higher derivatives near 0)."""
    e = np.exp(rng_(seed).standard_normal(shape))
    return (0.5 * e / e.sum(axis=-1, keepdims=True) + 0.5 / shape[-1]).astype(dtype)


def count(shape):
    return shape[0] * (shape[1] if len(shape) == 3 else 1)


def np_sigmoid(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


def np_log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


# -- finite differences ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(5,)], ids=str)
def test_gradcheck_mse(shape, dtype):
    assert_gradcheck(losses.MeanSquaredError(), logits(shape, dtype),
                     logits(shape, dtype, seed=7), max_entries=None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(5,)], ids=str)
def test_gradcheck_bce_from_logits(shape, dtype):
    y = rng_(4).random(shape).astype(dtype)  # soft targets in [0, 1]
    assert_gradcheck(losses.BinaryCrossEntropy(from_logits=True), logits(shape, dtype), y,
                     max_entries=None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(5,)], ids=str)
def test_gradcheck_bce_on_probabilities(shape, dtype):
    a = rng_(5).uniform(0.05, 0.95, size=shape).astype(dtype)
    y = (rng_(6).random(shape) < 0.5).astype(dtype)
    assert_gradcheck(losses.BinaryCrossEntropy(from_logits=False), a, y, max_entries=None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["labels", "one-hot", "soft"])
def test_gradcheck_softmax_cross_entropy(kind, shape, dtype):
    lab = labels(shape)
    target = {"labels": lab, "one-hot": one_hot(lab, shape[-1], dtype),
              "soft": soft_targets(shape, dtype)}[kind]
    assert_gradcheck(losses.SoftmaxCrossEntropy(), logits(shape, dtype), target, max_entries=None)


def test_gradcheck_softmax_cross_entropy_unnormalized_soft_targets():
    # Σ_j y_j ≠ 1: the gradient is softmax(z)·Σy − y
    shape = (4, 5)
    y = rng_(8).random(shape)
    assert_gradcheck(losses.SoftmaxCrossEntropy(), logits(shape), y, max_entries=None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["labels", "one-hot", "soft"])
def test_gradcheck_negative_log_likelihood(kind, shape, dtype):
    lab = labels(shape)
    target = {"labels": lab, "one-hot": one_hot(lab, shape[-1], dtype),
              "soft": soft_targets(shape, dtype)}[kind]
    assert_gradcheck(losses.NegativeLogLikelihood(), probabilities(shape, dtype), target,
                     max_entries=None)


NONCONTIG = {
    "sliced": lambda a: a[::2, 1::2],
    "transposed": lambda a: a.T,
}


@pytest.mark.parametrize("view", ["sliced", "transposed"])
@pytest.mark.parametrize("name", ["mse", "bce", "sce-labels", "sce-soft", "nll"])
def test_non_contiguous_output(name, view):
    base = logits((8, 10)) if view == "sliced" else logits((5, 4))
    out = NONCONTIG[view](base)
    assert not out.flags.c_contiguous
    shape = out.shape
    loss, target = {
        "mse": (losses.MeanSquaredError(), logits(shape, seed=9)),
        "bce": (losses.BinaryCrossEntropy(), rng_(3).random(shape)),
        "sce-labels": (losses.SoftmaxCrossEntropy(), labels(shape)),
        "sce-soft": (losses.SoftmaxCrossEntropy(), soft_targets(shape)),
        "nll": (losses.NegativeLogLikelihood(), soft_targets(shape)),
    }[name]
    if name == "nll":
        out = NONCONTIG[view](probabilities(base.shape))
    v_nc = loss.forward(out, target)
    g_nc = loss.backward().copy()
    v_c = loss.forward(np.ascontiguousarray(out), target)
    g_c = loss.backward()
    assert v_nc == pytest.approx(v_c, rel=1e-14)
    np.testing.assert_allclose(g_nc, g_c, rtol=1e-13, atol=1e-16)
    if view == "sliced":
        assert_gradcheck(loss, out, target, max_entries=None)


def test_gradcheck_transposed_output():
    """A Fortran-ordered (transposed) output must be perturbed like any other."""
    out = logits((5, 4)).T
    assert_gradcheck(losses.MeanSquaredError(), out, logits((4, 5), seed=3), max_entries=None)


def test_gradcheck_large_output_with_max_entries():
    shape = (64, 50)
    assert_gradcheck(losses.SoftmaxCrossEntropy(), logits(shape), labels(shape), max_entries=60)


# -- values: the per-sample costs of the contract, averaged over N (and T) ----------------------

@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_mse_value_and_gradient(shape):
    a, y = logits(shape), logits(shape, seed=1)
    loss = losses.MeanSquaredError()
    v = loss.forward(a, y)
    assert isinstance(v, float)
    assert v == pytest.approx(0.5 * ((a - y) ** 2).sum() / count(shape), rel=1e-13)
    np.testing.assert_allclose(loss.backward(), (a - y) / count(shape), rtol=1e-13)


def test_mse_one_dimensional_output_is_mean_over_samples():
    a, y = np.array([1.0, 2.0, 4.0]), np.array([0.0, 0.0, 0.0])
    loss = losses.MeanSquaredError()
    assert loss.forward(a, y) == pytest.approx(0.5 * (1 + 4 + 16) / 3)
    np.testing.assert_allclose(loss.backward(), a / 3)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bce_logits_value_and_gradient(shape):
    z, y = logits(shape), rng_(1).random(shape)
    a = np_sigmoid(z)
    expected = -(y * np.log(a) + (1 - y) * np.log1p(-a)).sum() / count(shape)
    loss = losses.BinaryCrossEntropy()
    assert loss.from_logits is True
    assert loss.forward(z, y) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), (a - y) / count(shape), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bce_probabilities_value_and_gradient(shape):
    a, y = rng_(0).uniform(0.01, 0.99, size=shape), rng_(1).random(shape)
    loss = losses.BinaryCrossEntropy(from_logits=False)
    expected = -(y * np.log(a) + (1 - y) * np.log(1 - a)).sum() / count(shape)
    assert loss.forward(a, y) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), (a - y) / (a * (1 - a)) / count(shape), rtol=1e-12)


@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
def test_softmax_cross_entropy_value_and_gradient(shape):
    z = logits(shape)
    lab = labels(shape)
    y = one_hot(lab, shape[-1])
    logp = np_log_softmax(z)
    expected = -(y * logp).sum() / count(shape)
    grad = (np.exp(logp) - y) / count(shape)
    for target in (lab, y):
        loss = losses.SoftmaxCrossEntropy()
        assert loss.forward(z, target) == pytest.approx(expected, rel=1e-12)
        np.testing.assert_allclose(loss.backward(), grad, rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
def test_nll_value_and_gradient(shape):
    a = probabilities(shape)
    lab = labels(shape)
    y = one_hot(lab, shape[-1])
    expected = -(y * np.log(a)).sum() / count(shape)
    for target in (lab, y):
        loss = losses.NegativeLogLikelihood()
        assert loss.forward(a, target) == pytest.approx(expected, rel=1e-12)
        np.testing.assert_allclose(loss.backward(), -y / a / count(shape), rtol=1e-12)


@pytest.mark.parametrize("make", [losses.MeanSquaredError, losses.BinaryCrossEntropy,
                                  losses.SoftmaxCrossEntropy, losses.NegativeLogLikelihood])
def test_sequence_output_is_mean_over_samples_and_steps(make):
    n, t, c = 3, 4, 5
    out = probabilities((n, t, c)) if make is losses.NegativeLogLikelihood else logits((n, t, c))
    y = soft_targets((n, t, c))
    seq, flat = make(), make()
    v_seq = seq.forward(out, y)
    v_flat = flat.forward(out.reshape(n * t, c), y.reshape(n * t, c))
    assert v_seq == pytest.approx(v_flat, rel=1e-13)
    np.testing.assert_allclose(seq.backward(), flat.backward().reshape(n, t, c), rtol=1e-13)


def test_sequence_integer_labels():
    n, t, c = 2, 3, 4
    z, lab = logits((n, t, c)), labels((n, t, c))
    a, b = losses.SoftmaxCrossEntropy(), losses.SoftmaxCrossEntropy()
    assert a.forward(z, lab) == pytest.approx(b.forward(z.reshape(-1, c), lab.reshape(-1)), rel=1e-13)
    np.testing.assert_allclose(a.backward(), b.backward().reshape(n, t, c), rtol=1e-13)


def test_labels_and_one_hot_agree_for_bce_and_mse():
    z = logits((4, 3))
    lab = np.array([0, 2, 1, 2])
    for make in (losses.BinaryCrossEntropy, losses.MeanSquaredError):
        a, b = make(), make()
        assert a.forward(z, lab) == pytest.approx(b.forward(z, one_hot(lab, 3)), rel=1e-14)
        np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [losses.MeanSquaredError, losses.BinaryCrossEntropy,
                                  lambda: losses.BinaryCrossEntropy(from_logits=False),
                                  losses.SoftmaxCrossEntropy, losses.NegativeLogLikelihood],
                         ids=["mse", "bce", "bce-probs", "sce", "nll"])
def test_gradient_dtype_follows_output(make, dtype):
    out = probabilities((4, 3), dtype)
    for target in (one_hot(np.array([0, 1, 2, 1]), 3, np.float64),   # float64 target
                   one_hot(np.array([0, 1, 2, 1]), 3, np.float32),   # float32 target
                   np.array([0, 1, 2, 1])):                           # labels
        loss = make()
        v = loss.forward(out, target)
        assert type(v) is float and np.isfinite(v)
        g = loss.backward()
        assert g.dtype == dtype and g.shape == out.shape


def test_backward_returns_gradient_of_the_last_forward():
    loss = losses.MeanSquaredError()
    loss.forward(np.ones((2, 2)), np.zeros((2, 2)))
    g1 = loss.backward().copy()
    np.testing.assert_array_equal(loss.backward(), g1)  # twice: the same
    loss.forward(np.full((4, 2), 3.0), np.zeros((4, 2)))
    np.testing.assert_allclose(loss.backward(), np.full((4, 2), 3.0 / 4))


def test_forward_does_not_modify_its_arguments():
    z, y = logits((4, 3)), soft_targets((4, 3))
    z0, y0 = z.copy(), y.copy()
    for loss in (losses.MeanSquaredError(), losses.BinaryCrossEntropy(),
                 losses.SoftmaxCrossEntropy()):
        loss.forward(z, y)
        loss.backward()
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(y, y0)


# -- numerical stability -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]], dtype)
    lab = np.array([1, 1, 0])
    loss = losses.SoftmaxCrossEntropy()
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        v = loss.forward(z, lab)
        g = loss.backward()
    assert np.isfinite(v) and np.isfinite(g).all()
    # analytic limits: row 0 loses 2e4, row 1 ln 2, row 2 ln 2
    assert v == pytest.approx((2e4 + 2 * np.log(2)) / 3, rel=1e-6)
    expected = np.array([[1, -1, 0], [0, -0.5, 0.5], [-0.5, 0.5, 0]]) / 3
    np.testing.assert_allclose(g, expected, atol=1e-7)
    assert g.dtype == dtype
    # with one-hot targets: same
    loss2 = losses.SoftmaxCrossEntropy()
    assert loss2.forward(z, one_hot(lab, 3, dtype)) == pytest.approx(v, rel=1e-6)
    np.testing.assert_allclose(loss2.backward(), expected, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_from_logits_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 1e4, -1e4]], dtype)
    y = np.array([[1.0, 0.0, 0.0, 1.0]], dtype)
    loss = losses.BinaryCrossEntropy(from_logits=True)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        v = loss.forward(z, y)
        g = loss.backward()
    assert np.isfinite(v) and np.isfinite(g).all()
    assert v == pytest.approx(2e4, rel=1e-6)  # two right (cost 0), two wrong (cost 1e4 each)
    np.testing.assert_allclose(g, [[0.0, 0.0, 1.0, -1.0]], atol=1e-7)
    assert g.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_probabilities_at_zero_and_one_is_finite(dtype):
    a = np.array([[0.0, 1.0, 0.0, 1.0]], dtype)
    y = np.array([[0.0, 1.0, 1.0, 0.0]], dtype)
    loss = losses.BinaryCrossEntropy(from_logits=False)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        v = loss.forward(a, y)
        g = loss.backward()
    assert np.isfinite(v) and v > 0 and np.isfinite(g).all()
    assert g[0, 2] < 0 < g[0, 3]


@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_zero_probability_is_finite(dtype):
    a = np.array([[0.0, 1.0], [0.5, 0.5]], dtype)
    loss = losses.NegativeLogLikelihood()
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        v = loss.forward(a, np.array([0, 1]))
        g = loss.backward()
    assert np.isfinite(v) and v > 0 and np.isfinite(g).all()


# -- bad input -----------------------------------------------------------------------------------

ALL = {
    "MeanSquaredError": losses.MeanSquaredError,
    "BinaryCrossEntropy": losses.BinaryCrossEntropy,
    "SoftmaxCrossEntropy": losses.SoftmaxCrossEntropy,
    "NegativeLogLikelihood": losses.NegativeLogLikelihood,
}


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("target_shape", [(32, 1), (10,), (1, 10), (32, 10, 1), (10, 32), (31, 10)],
                         ids=str)
def test_float_target_shape_mismatch_is_value_error(name, target_shape):
    out = probabilities((32, 10))
    pattern = f"{name}.*{re.escape(str((32, 10)))}.*{re.escape(str(target_shape))}"
    with pytest.raises(ValueError, match=pattern):
        ALL[name]().forward(out, np.zeros(target_shape))


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("label_shape", [(32, 1), (10,), (31,), (32, 10)], ids=str)
def test_integer_label_shape_mismatch_is_value_error(name, label_shape):
    out = probabilities((32, 10))
    with pytest.raises(ValueError, match=name):
        ALL[name]().forward(out, np.zeros(label_shape, np.int64))


@pytest.mark.parametrize("name,bad", [
    (name, bad) for name in ("SoftmaxCrossEntropy", "NegativeLogLikelihood", "BinaryCrossEntropy")
    for bad in (10, -1, -2, 100)
    if not (name == "SoftmaxCrossEntropy" and bad == -1)  # -1 is its ignore_index: tested below
])
def test_labels_out_of_range_are_value_errors(name, bad):
    out = probabilities((4, 10))
    lab = np.array([0, 3, bad, 9])
    with pytest.raises(ValueError, match=rf"{name}.*\[0, 9\]"):
        ALL[name]().forward(out, lab)


def test_ignore_index_can_be_disabled():
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.*\[0, 9\]"):
        losses.SoftmaxCrossEntropy(ignore_index=None).forward(logits((4, 10)), np.array([0, 3, -1, 9]))


@pytest.mark.parametrize("dtype", [np.float64])
def test_ignore_index_leaves_steps_out_of_cost_and_gradient(dtype):
    """Padded steps (label -1) add no cost and no gradient; the mean runs over the others."""
    out = logits((2, 5, 4)).astype(dtype)
    lab = np.random.default_rng(3).integers(0, 4, (2, 5))
    lab[0, 3:] = -1
    loss = losses.SoftmaxCrossEntropy()
    value = loss.forward(out, lab)
    grad = loss.backward()
    assert np.all(grad[0, 3:] == 0)
    keep = lab >= 0
    ref = losses.SoftmaxCrossEntropy().forward(out[keep][None], lab[keep][None])
    assert value == pytest.approx(ref, rel=1e-12)
    assert hg.gradcheck(losses.SoftmaxCrossEntropy(), out, lab).max_error < 1e-6


def test_sequence_labels_out_of_range():
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy"):
        losses.SoftmaxCrossEntropy().forward(logits((2, 3, 4)), np.full((2, 3), 4))


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_targets_are_value_errors(name, bad):
    y = soft_targets((4, 3))
    y[1, 2] = bad
    with pytest.raises(ValueError, match=name):
        ALL[name]().forward(probabilities((4, 3)), y)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("bad_output", [np.zeros((2, 3), np.int64), [[0.1, 0.9]], 0.5,
                                        np.zeros((2, 3), np.float16)],
                         ids=["int", "list", "scalar", "float16"])
def test_non_float_output_is_type_error(name, bad_output):
    with pytest.raises(TypeError, match=name):
        ALL[name]().forward(bad_output, np.zeros((2, 3)))


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("bad_target", [[0, 1], "abc", np.zeros((2, 3), bool), np.zeros((2, 3), complex)],
                         ids=["list", "str", "bool", "complex"])
def test_bad_target_type_is_type_error(name, bad_target):
    with pytest.raises(TypeError, match=name):
        ALL[name]().forward(probabilities((2, 3)), bad_target)


@pytest.mark.parametrize("name", sorted(ALL))
def test_wrong_rank_output_is_value_error(name):
    with pytest.raises(ValueError, match=name):
        ALL[name]().forward(np.zeros((2, 3, 4, 5)), np.zeros((2, 3, 4, 5)))


@pytest.mark.parametrize("name", ["SoftmaxCrossEntropy", "NegativeLogLikelihood"])
def test_class_losses_need_a_class_axis(name):
    with pytest.raises(ValueError, match=name):
        ALL[name]().forward(np.full(4, 0.5), np.full(4, 0.5))


@pytest.mark.parametrize("bad", [1.5, -0.5])
def test_bce_targets_outside_unit_interval(bad):
    y = np.full((2, 2), 0.5)
    y[0, 0] = bad
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy.*\[0, 1\]"):
        losses.BinaryCrossEntropy().forward(np.zeros((2, 2)), y)


def test_bce_from_logits_must_be_bool():
    with pytest.raises(TypeError, match="BinaryCrossEntropy"):
        losses.BinaryCrossEntropy(from_logits="yes")


def test_nll_negative_probabilities_are_value_error():
    with pytest.raises(ValueError, match="NegativeLogLikelihood"):
        losses.NegativeLogLikelihood().forward(np.array([[-0.1, 1.1]]), np.array([1]))


@pytest.mark.parametrize("name", sorted(ALL))
def test_backward_before_forward_is_runtime_error(name):
    with pytest.raises(RuntimeError, match=rf"{name}.*backward"):
        ALL[name]().backward()


def test_gradcheck_of_a_loss_needs_a_target():
    with pytest.raises(ValueError, match="gradcheck"):
        hg.gradcheck(losses.MeanSquaredError(), np.ones((2, 2)))


def test_get_by_name_and_alias():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("SoftmaxCrossEntropy"), losses.SoftmaxCrossEntropy)
    with pytest.raises(ValueError, match="losses.get"):
        losses.get("hinge")


@pytest.mark.skipif(not hg.accel.jit_available(), reason="numba is not installed")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CLASS_SHAPES + [(128, 10)], ids=str)
@pytest.mark.parametrize("label_dtype", [np.int64, np.uint8, np.int32])
def test_softmax_cross_entropy_compiled_labels_match_numpy(shape, dtype, label_dtype):
    """The one-pass compiled cost and gradient for integer labels (``_xent_labels_kernel``)
    against the NumPy lines: a few ulp apart (one e^x per element instead of e^{ln softmax}),
    ignored steps included."""
    z = logits(shape, dtype, seed=3, scale=6.0)
    lab = labels(shape, seed=4)
    if len(shape) == 3 and signed(label_dtype):
        lab[0, 0] = -1
    lab = lab.astype(label_dtype)
    loss = losses.SoftmaxCrossEntropy()
    got_v = loss.forward(z, lab)
    got_g = loss.backward()
    with hg.accel.use_jit(False):
        want_v = loss.forward(z, lab)
        want_g = loss.backward()
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert got_g.dtype == dtype and got_g.shape == z.shape
    assert got_v == pytest.approx(want_v, rel=tol, abs=tol)
    np.testing.assert_allclose(got_g, want_g, rtol=tol, atol=tol / 10)


def signed(label_dtype) -> bool:
    return np.dtype(label_dtype).kind == "i"


@pytest.mark.skipif(not hg.accel.jit_available(), reason="numba is not installed")
def test_softmax_cross_entropy_compiled_nonfinite_logits_propagate():
    """NaN or +inf in a row's logits gives a NaN cost and NaN gradient in that row, as the NumPy
    lines do (fit's guard then skips the update)."""
    z = np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0], [np.inf, 0.0, 0.0]], np.float32)
    loss = losses.SoftmaxCrossEntropy()
    with np.errstate(invalid="ignore"):
        v = loss.forward(z, np.array([0, 1, 2]))
        g = loss.backward()
        with hg.accel.use_jit(False):
            v2 = loss.forward(z, np.array([0, 1, 2]))
            g2 = loss.backward()
    assert np.isnan(v) and np.isnan(v2)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(g2))
    assert np.isfinite(g[1]).all()
