r"""Sequence data sets for the recurrent layers: the (embedded) Reber grammar, the adding
problem, Fashion-MNIST read row by row, and a character-level text corpus.

Every array is batch-first, ``(N, T, F)``, as the ``RNN`` and ``LSTM`` layers expect, and every
random draw goes through an explicit generator (a ``numpy.random.Generator`` or an int seed),
so the same seed gives the same data.

Reber grammar (Reber 1967; Hochreiter & Schmidhuber 1997, "Long short-term memory", §5,
experiment 1)
-----------------------------------------------------------------------------------------
Alphabet ``B T P S X V E`` (indices 0–6, :data:`REBER_SYMBOLS`). The finite automaton
(state → symbol → state; every choice has probability ½)::

    0 --B--> 1
    1 --T--> 2    1 --P--> 3
    2 --S--> 2    2 --X--> 4
    3 --T--> 3    3 --V--> 5
    4 --X--> 3    4 --S--> 6
    5 --P--> 4    5 --V--> 6
    6 --E--> 7    (7: the string has ended, nothing may follow)

e.g. ``BTXSE``, ``BPVVE``, ``BTSSXXTVVE``. The *embedded* Reber grammar wraps a Reber string
as ``B + a + (Reber string) + a + E`` with ``a`` = ``T`` or ``P`` (probability ½ each), e.g.
``BTBPVVETE``. Predicting the second-to-last symbol ``a`` requires remembering the second
symbol across the whole inner string: the long time lag that defeats plain RNNs.

Task layout (:func:`embedded_reber`, :func:`encode_reber`): for a string s of length L,
step t (0 ≤ t < L) gets the input one-hot(s[t]) and the target *the set of legal next symbols*
after the prefix s[:t+1], multi-hot (the standard next-symbol prediction task; train with
``losses.BinaryCrossEntropy()`` on logits). The last real step feeds the final ``E`` and its
target is the empty set (nothing follows ``E``). Strings are padded at the end with zero
vectors up to the longest one, so ``mask_value=0.0`` in ``RNN``/``LSTM`` marks padding (no
real step is all-zero: every real input is a one-hot vector); the padded steps have all-zero
targets too. This layout is deliberate: the masked layers carry their state unchanged through
padding, so every padded step repeats the output of the step after ``E`` — whose target is the
same empty set — and the (unmasked) binary cross-entropy on the padded steps never contradicts
the real steps. The integer ``labels`` (the actual next symbol, ``-1`` after ``E`` and on
padding) suit ``losses.SoftmaxCrossEntropy()``, which ignores ``-1``.

:func:`reber_accuracy` implements the 1997 criterion: a string counts as correct when at every
real step the set of symbols whose predicted probability exceeds ``threshold`` equals the set
of legal next symbols — in particular at the crucial step ``L − 3`` (input: the inner ``E``;
target: the second symbol, seen long ago). The step after the final ``E`` (empty target set:
the string is over) is not scored, as in the paper.

Adding problem (Hochreiter & Schmidhuber 1997, experiment 4)
------------------------------------------------------------
See :func:`adding_problem`. We use the later standard formulation (Le, Jaitly & Hinton 2015;
Arjovsky, Shah & Bengio 2016): values uniform in [0, 1] (the 1997 paper draws them from
[−1, 1] and rescales the target), one marker uniformly in the first half and one in the second
half, target the plain sum. Always predicting 1.0 gives MSE = Var(X₁ + X₂) = 2·(1/12) = 1/6 ≈
0.167 (:data:`ADDING_BASELINE_MSE`); handgrad's ``MeanSquaredError`` is the halved one, so its
baseline is 1/12 ≈ 0.083 (:data:`ADDING_BASELINE_HALVED_MSE`). A model has learned something
only once it beats these.

Sequential images
-----------------
:func:`sequential_images`: each 28×28 image becomes 28 time steps of 28 features (its rows,
top to bottom), ``(N, 28, 28)`` floats in [0, 1].

Character-level corpus
----------------------
:class:`CharCorpus` and :func:`sample_text`: next-character prediction on a text (default
``/usr/share/dict/words``, from ``apt-get install wamerican``), with fixed windows for
``hg.fit`` and parallel streams for truncated BPTT with ``stateful=True`` layers.
"""
from __future__ import annotations

import numpy

from .. import backend
from .._checks import check_int
from ._seqcheck import as_generator, float_dtype
from .preprocess import to_float
from .reber import (  # noqa: F401
    REBER_SYMBOLS,
    ReberSet,
    embedded_reber,
    embedded_reber_string,
    encode_reber,
    is_reber_string,
    reber_accuracy,
    reber_graph,
    reber_next_symbols,
    reber_string,
    reber_strings,
    reber_successor_sets,
)
from .text import DEFAULT_CORPUS_PATH, CharCorpus, sample_text  # noqa: F401

__all__ = ["REBER_SYMBOLS", "ReberSet", "reber_graph", "reber_next_symbols", "reber_successor_sets",
           "is_reber_string", "reber_string", "embedded_reber_string", "reber_strings", "encode_reber",
           "embedded_reber", "reber_accuracy", "adding_problem", "adding_baseline", "ADDING_BASELINE_MSE",
           "ADDING_BASELINE_HALVED_MSE", "sequential_images", "CharCorpus", "sample_text",
           "DEFAULT_CORPUS_PATH"]

#: MSE of always predicting 1.0 on the adding problem: Var(X₁ + X₂) for X ~ U[0, 1].
ADDING_BASELINE_MSE = 1.0 / 6.0
#: The same baseline for handgrad's halved ``MeanSquaredError`` (½ Σ (a − y)²).
ADDING_BASELINE_HALVED_MSE = 1.0 / 12.0


# ----------------------------------------------------------------------------------------
# adding problem
# ----------------------------------------------------------------------------------------
def adding_problem(n: int, T: int, rng, dtype=backend.DEFAULT_DTYPE) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The adding problem: ``x`` ``(n, T, 2)``, ``y`` ``(n, 1)``.

    Channel 0 holds values uniform in [0, 1); channel 1 is a marker, 1 at exactly two steps —
    one drawn uniformly from the first half ``[0, T//2)`` and one from the second half
    ``[T//2, T)`` — and 0 elsewhere. The target is the sum of the two marked values (computed
    in ``dtype`` from the values in ``x``, so it equals ``(x[..., 0] * x[..., 1]).sum(1)``).

    This is the standard later formulation (Le, Jaitly & Hinton 2015; Arjovsky, Shah & Bengio
    2016); Hochreiter & Schmidhuber 1997 (experiment 4) drew values from [−1, 1], put the first
    marker among the first ten steps and used the target 0.5 + (X₁ + X₂)/4. Predicting the
    constant 1.0 gives MSE 1/6 (:data:`ADDING_BASELINE_MSE`), i.e. 1/12 for handgrad's halved
    ``MeanSquaredError`` (:data:`ADDING_BASELINE_HALVED_MSE`); see :func:`adding_baseline`.
    Use ``return_sequences=False`` in the recurrent layer and a ``Dense(H, 1)`` on top.
    """
    where = "adding_problem"
    n = check_int(n, where, "n", minimum=1)
    T = check_int(T, where, "T", minimum=2)
    gen = as_generator(rng, where)
    dt = float_dtype(dtype, where)
    values = gen.random((n, T)).astype(dt)
    first = gen.integers(0, T // 2, size=n)
    second = gen.integers(T // 2, T, size=n)
    x = numpy.zeros((n, T, 2), dtype=dt)
    x[..., 0] = values
    rows = numpy.arange(n)
    x[rows, first, 1] = 1
    x[rows, second, 1] = 1
    y = (values[rows, first] + values[rows, second]).astype(dt)[:, None]
    return x, y


def adding_baseline(y) -> dict[str, float]:
    """The error of always predicting 1.0 on adding-problem targets ``y``: ``{"mse": mean of
    (1 − y)², "halved_mse": half of it (handgrad's MeanSquaredError)}``; on a large sample
    ≈ 1/6 and ≈ 1/12."""
    t = numpy.asarray(y, dtype=numpy.float64)
    if t.size == 0:
        raise ValueError("adding_baseline: expected a non-empty target array, got shape " + str(t.shape))
    mse = float(((t - 1.0) ** 2).mean())
    return {"mse": mse, "halved_mse": 0.5 * mse}


# ----------------------------------------------------------------------------------------
# sequential images
# ----------------------------------------------------------------------------------------
def sequential_images(x, dtype=backend.DEFAULT_DTYPE, image_shape: tuple[int, int] = (28, 28)) -> numpy.ndarray:
    """Images as sequences of rows: ``(N, H, W)`` floats, H time steps of W features.

    Accepts uint8 images (scaled to [0, 1] by :func:`handgrad.data.to_float`) or floats, as
    ``(N, H, W)``, ``(N, 1, H, W)`` or flattened ``(N, H·W)`` (then ``image_shape``, default
    28×28 for Fashion-MNIST, gives H and W). Row-by-row Fashion-MNIST is ``(N, 28, 28)``.
    """
    where = "sequential_images"
    a = numpy.asarray(x)
    if a.dtype.kind not in "uf" or (a.dtype.kind == "u" and a.dtype != numpy.uint8):
        raise TypeError(f"{where}: expected uint8 or float images, got dtype {a.dtype}")
    dt = float_dtype(dtype, where)
    h, w = (check_int(v, where, "image_shape entries", minimum=1) for v in image_shape)
    if a.ndim == 2 and a.shape[1] == h * w:
        a = a.reshape(a.shape[0], h, w)
    elif a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim != 3:
        raise ValueError(f"{where}: expected images of shape (N, H, W), (N, 1, H, W) or (N, {h * w}), "
                         f"got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{where}: expected at least one image, got shape {a.shape}")
    if a.dtype.kind == "f" and not numpy.isfinite(a).all():
        raise ValueError(f"{where}: images contain NaN or Inf values")
    return numpy.ascontiguousarray(to_float(a, dtype=dt, flatten=False))


