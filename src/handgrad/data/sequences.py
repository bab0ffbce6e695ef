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

import math
import os
from numbers import Integral, Real
from typing import Iterator, NamedTuple

import numpy

from .. import backend
from .preprocess import to_float

__all__ = ["REBER_SYMBOLS", "ReberSet", "reber_graph", "reber_next_symbols", "reber_successor_sets",
           "is_reber_string", "reber_string", "embedded_reber_string", "reber_strings", "encode_reber",
           "embedded_reber", "reber_accuracy", "adding_problem", "adding_baseline", "ADDING_BASELINE_MSE",
           "ADDING_BASELINE_HALVED_MSE", "sequential_images", "CharCorpus", "sample_text",
           "DEFAULT_CORPUS_PATH"]

#: The Reber alphabet; a symbol's index is its position here (B=0, T=1, P=2, S=3, X=4, V=5, E=6).
REBER_SYMBOLS = "BTPSXVE"
_SYM_INDEX = {s: i for i, s in enumerate(REBER_SYMBOLS)}

#: MSE of always predicting 1.0 on the adding problem: Var(X₁ + X₂) for X ~ U[0, 1].
ADDING_BASELINE_MSE = 1.0 / 6.0
#: The same baseline for handgrad's halved ``MeanSquaredError`` (½ Σ (a − y)²).
ADDING_BASELINE_HALVED_MSE = 1.0 / 12.0

#: Where :meth:`CharCorpus.from_file` looks without a path (``apt-get install wamerican``).
DEFAULT_CORPUS_PATH = "/usr/share/dict/words"


# ----------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------
def _int(value, where: str, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{where}: expected {name} to be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: expected {name} to be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(value, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: expected {name} to be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{where}: expected {name} to be finite, got {value!r}")
    return v


def _rng(rng, where: str) -> numpy.random.Generator:
    if isinstance(rng, numpy.random.Generator):
        return rng
    if isinstance(rng, Integral) and not isinstance(rng, bool):
        return numpy.random.default_rng(int(rng))
    raise TypeError(f"{where}: expected rng to be a numpy.random.Generator or an int seed, "
                    f"got {type(rng).__name__}")


def _float_dtype(dtype, where: str) -> numpy.dtype:
    try:
        numpy.dtype(dtype)
    except TypeError:  # numpy.dtype() itself fails on nonsense
        raise TypeError(f"{where}: expected dtype float32 or float64, got {dtype!r}") from None
    return backend.resolve_dtype(dtype, where)


# ----------------------------------------------------------------------------------------
# Reber grammar
# ----------------------------------------------------------------------------------------
class _Automaton:
    """A deterministic finite automaton over the Reber alphabet, as lookup tables.

    ``table[state, symbol]`` is the next state or −1; ``succ[state]`` is the multi-hot set of
    legal symbols; ``choices[state, k]`` the k-th legal symbol (−1 padded), ``n_choices[state]``
    how many. A state with no legal symbol is terminal (the string is complete).
    """

    def __init__(self, edges: dict[int, dict[str, int]], start: int = 0) -> None:
        n = 1 + max(max(edges), *(s for out in edges.values() for s in out.values()))
        self.edges = {k: dict(v) for k, v in edges.items()}
        self.start = start
        self.table = numpy.full((n, len(REBER_SYMBOLS)), -1, dtype=numpy.int64)
        for state, out in edges.items():
            for sym, nxt in out.items():
                self.table[state, _SYM_INDEX[sym]] = nxt
        self.succ = self.table >= 0
        self.n_choices = self.succ.sum(axis=1)
        self.choices = numpy.full((n, max(1, int(self.n_choices.max()))), -1, dtype=numpy.int64)
        for state in range(n):
            legal = numpy.flatnonzero(self.succ[state])
            self.choices[state, :legal.size] = legal
        self.min_length = self._min_length()

    def _min_length(self) -> int:
        dist = {self.start: 0}
        frontier = [self.start]
        while frontier:
            nxt = []
            for s in frontier:
                if self.n_choices[s] == 0:
                    return dist[s]
                for t in self.table[s][self.table[s] >= 0]:
                    if int(t) not in dist:
                        dist[int(t)] = dist[s] + 1
                        nxt.append(int(t))
            frontier = nxt
        raise AssertionError("automaton without an accepting state")  # pragma: no cover

    def walk(self, string: str) -> list[int] | None:
        """States after each prefix ``string[:t+1]`` (None if the string leaves the grammar)."""
        state, out = self.start, []
        for ch in string:
            k = _SYM_INDEX.get(ch)
            if k is None:
                return None
            state = int(self.table[state, k])
            if state < 0:
                return None
            out.append(state)
        return out


_REBER_EDGES = {0: {"B": 1}, 1: {"T": 2, "P": 3}, 2: {"S": 2, "X": 4}, 3: {"T": 3, "V": 5},
                4: {"X": 3, "S": 6}, 5: {"P": 4, "V": 6}, 6: {"E": 7}}


def _embedded_edges() -> dict[int, dict[str, int]]:
    # 0 -B-> 1 -T/P-> inner copy (states 2..8 for T, 9..15 for P); inner E -> 16 (T) / 17 (P);
    # 16 -T-> 18, 17 -P-> 18; 18 -E-> 19 (end).
    edges: dict[int, dict[str, int]] = {0: {"B": 1}, 1: {}}
    for branch, offset, after in (("T", 2, 16), ("P", 9, 17)):
        edges[1][branch] = offset
        for state, out in _REBER_EDGES.items():
            edges[offset + state] = {sym: (after if nxt == 7 else offset + nxt) for sym, nxt in out.items()}
        edges[after] = {branch: 18}
    edges[18] = {"E": 19}
    return edges


_REBER = _Automaton(_REBER_EDGES)
_EMBEDDED = _Automaton(_embedded_edges())


def _automaton(embedded) -> _Automaton:
    if not isinstance(embedded, bool):
        raise TypeError(f"Reber grammar: expected embedded to be a bool, got {embedded!r}")
    return _EMBEDDED if embedded else _REBER


def reber_graph(embedded: bool = False) -> dict[int, dict[str, int]]:
    """The transition graph ``{state: {symbol: next_state}}`` (start state 0).

    Plain Reber: states 0–7 as in the module docstring (7 = ended). Embedded: 0 -B-> 1, then
    ``T`` leads into a copy of the Reber automaton at states 2–8 and ``P`` into one at 9–15;
    their ``E`` leads to 16 (``T`` branch) or 17 (``P`` branch), which allow only the branch's
    own symbol, into 18, which allows only ``E``, into the end state 19. Terminal states
    (no legal successor) are not keys.
    """
    return {k: dict(v) for k, v in _automaton(embedded).edges.items()}


def reber_successor_sets(string: str, embedded: bool = False) -> list[frozenset[str]]:
    """The set of legal next symbols after each prefix ``string[:t+1]`` (t = 0 … len − 1); the
    set after a complete string is empty. Raises ``ValueError`` if ``string`` is not a prefix
    of a grammatical string."""
    where = "reber_successor_sets"
    if not isinstance(string, str):
        raise TypeError(f"{where}: expected a str of symbols from {REBER_SYMBOLS!r}, got {type(string).__name__}")
    g = _automaton(embedded)
    states = g.walk(string)
    if states is None:
        kind = "embedded Reber" if embedded else "Reber"
        raise ValueError(f"{where}: {string!r} is not a prefix of any {kind} string")
    return [frozenset(REBER_SYMBOLS[k] for k in numpy.flatnonzero(g.succ[s])) for s in states]


def reber_next_symbols(prefix: str, embedded: bool = False) -> frozenset[str]:
    """The set of symbols that may follow ``prefix`` (``{"B"}`` for the empty prefix, the empty
    set after a complete string). Raises ``ValueError`` for an ungrammatical prefix."""
    if not isinstance(prefix, str):
        raise TypeError(f"reber_next_symbols: expected a str of symbols from {REBER_SYMBOLS!r}, "
                        f"got {type(prefix).__name__}")
    if prefix == "":
        return frozenset("B")
    try:
        return reber_successor_sets(prefix, embedded)[-1]
    except ValueError:
        kind = "embedded Reber" if embedded else "Reber"
        raise ValueError(f"reber_next_symbols: {prefix!r} is not a prefix of any {kind} string") from None


def is_reber_string(string, embedded: bool = False) -> bool:
    """True when ``string`` is a complete grammatical (embedded) Reber string."""
    if not isinstance(string, str) or not string:
        return False
    g = _automaton(embedded)
    states = g.walk(string)
    return states is not None and g.n_choices[states[-1]] == 0


def _sample_codes(g: _Automaton, n: int, rng: numpy.random.Generator, max_length: int | None):
    """``n`` random strings of ``g`` as symbol indices: all strings are walked in parallel, one
    vectorized step per symbol; strings longer than ``max_length`` are drawn again."""
    rows: list[numpy.ndarray] = []
    lens: list[numpy.ndarray] = []
    pending = n
    while pending:
        state = numpy.full(pending, g.start, dtype=numpy.int64)
        alive = numpy.ones(pending, dtype=bool)
        lengths = numpy.zeros(pending, dtype=numpy.int64)
        cols = []
        while alive.any() and (max_length is None or len(cols) < max_length):
            k = g.n_choices[state]
            pick = (rng.random(pending) * numpy.maximum(k, 1)).astype(numpy.int64)
            sym = numpy.where(alive, g.choices[state, pick], -1)
            cols.append(sym)
            state = numpy.where(alive, g.table[state, numpy.maximum(sym, 0)], state)
            lengths += alive
            alive &= g.n_choices[state] > 0
        done = ~alive
        codes = numpy.stack(cols, axis=1)[done]
        rows.append(codes)
        lens.append(lengths[done])
        pending -= int(done.sum())
    width = max(r.shape[1] for r in rows)
    codes = numpy.concatenate([numpy.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=-1) for r in rows])
    lengths = numpy.concatenate(lens)
    width = int(lengths.max()) if n else 0
    return codes[:, :width], lengths


def _decode_rows(codes: numpy.ndarray, lengths: numpy.ndarray) -> list[str]:
    alphabet = numpy.array(list(REBER_SYMBOLS))
    return ["".join(alphabet[row[:m]]) for row, m in zip(codes, lengths)]


def reber_strings(n: int, rng, embedded: bool = False, max_length: int | None = None) -> list[str]:
    """``n`` random (embedded) Reber strings, each branch taken with probability ½.

    ``max_length``: strings longer than this are discarded and drawn again (the loops of the
    grammar make the length unbounded, geometric-tailed). It must allow at least the shortest
    string (5 for Reber, 9 for embedded Reber).
    """
    where = "reber_strings"
    n = _int(n, where, "n")
    gen = _rng(rng, where)
    g = _automaton(embedded)
    if max_length is not None:
        max_length = _int(max_length, where, "max_length", minimum=g.min_length)
    return _decode_rows(*_sample_codes(g, n, gen, max_length))


def reber_string(rng, max_length: int | None = None) -> str:
    """One random Reber string, e.g. ``'BTXSE'`` (see :func:`reber_strings`)."""
    return reber_strings(1, rng, embedded=False, max_length=max_length)[0]


def embedded_reber_string(rng, max_length: int | None = None) -> str:
    """One random embedded Reber string ``B a (Reber string) a E``, ``a`` ∈ {T, P}."""
    return reber_strings(1, rng, embedded=True, max_length=max_length)[0]


class ReberSet(NamedTuple):
    """A next-symbol prediction set (see the module docstring for the step layout).

    ``x`` ``(N, T, 7)`` one-hot inputs, zero vectors on padding; ``targets`` ``(N, T, 7)``
    multi-hot legal successor sets (empty after the final ``E`` and on padding); ``labels``
    ``(N, T)`` int64, the actual next symbol (−1 at the final ``E`` and on padding);
    ``lengths`` ``(N,)`` the string lengths (real steps); ``strings`` the strings themselves.
    """

    x: numpy.ndarray
    targets: numpy.ndarray
    labels: numpy.ndarray
    lengths: numpy.ndarray
    strings: list


def encode_reber(strings, embedded: bool = True, dtype=backend.DEFAULT_DTYPE) -> ReberSet:
    """Encode given (embedded) Reber strings as a :class:`ReberSet`; every string is checked
    against the grammar (``ValueError`` naming the first bad one)."""
    where = "encode_reber"
    if isinstance(strings, str) or not hasattr(strings, "__iter__"):
        raise TypeError(f"{where}: expected a sequence of strings, got {type(strings).__name__}")
    strings = list(strings)
    if not strings:
        raise ValueError(f"{where}: expected at least one string, got none")
    g = _automaton(embedded)
    dt = _float_dtype(dtype, where)
    kind = "embedded Reber" if embedded else "Reber"
    for i, s in enumerate(strings):
        if not isinstance(s, str):
            raise TypeError(f"{where}: expected complete {kind} strings, item {i} is a {type(s).__name__}")
    lengths = numpy.fromiter((len(s) for s in strings), dtype=numpy.int64, count=len(strings))
    n, T = len(strings), max(1, int(lengths.max()))
    cps = _codepoints("".join(strings))
    lut = numpy.full(128, -1, dtype=numpy.int64)
    lut[_codepoints(REBER_SYMBOLS)] = numpy.arange(len(REBER_SYMBOLS))
    sym = numpy.where(cps < 128, lut[numpy.minimum(cps, 127)], -1)
    # (row, column) of every real step, without a loop over characters
    row = numpy.repeat(numpy.arange(n), lengths)
    col = numpy.arange(cps.size) - numpy.repeat(numpy.cumsum(lengths) - lengths, lengths)
    codes = numpy.full((n, T), -1, dtype=numpy.int64)
    codes[row, col] = sym
    # automaton states after each prefix, one vectorized step per time step; this also checks
    # every string against the grammar (a symbol with no edge, or a string that stops early)
    states = numpy.full((n, T), -1, dtype=numpy.int64)
    state = numpy.full(n, g.start, dtype=numpy.int64)
    bad = lengths == 0
    for t in range(T):
        real = (t < lengths) & ~bad
        c = codes[:, t]
        nxt = numpy.where(c >= 0, g.table[state, numpy.maximum(c, 0)], -1)
        bad |= real & (nxt < 0)
        state = numpy.where(real & (nxt >= 0), nxt, state)
        states[:, t] = numpy.where(real, state, -1)
    bad |= g.n_choices[state] != 0
    if bad.any():
        i = int(numpy.flatnonzero(bad)[0])
        raise ValueError(f"{where}: expected complete {kind} strings, string {i} is {strings[i]!r}")
    x = numpy.zeros((n, T, len(REBER_SYMBOLS)), dtype=dt)
    x[row, col, sym] = 1
    targets = numpy.zeros((n, T, len(REBER_SYMBOLS)), dtype=dt)
    targets[row, col] = g.succ[states[row, col]]
    labels = numpy.full((n, T), -1, dtype=numpy.int64)
    labels[:, :-1] = codes[:, 1:]
    return ReberSet(x, targets, labels, lengths, strings)


def embedded_reber(n: int, rng, max_length: int | None = None, dtype=backend.DEFAULT_DTYPE) -> ReberSet:
    """A ready training set of ``n`` random embedded Reber strings for next-symbol prediction.

    Returns a :class:`ReberSet` ``(x, targets, labels, lengths, strings)``; train e.g.::

        data = hg.data.embedded_reber(4000, rng=0)
        model = hg.Sequential([layers.LSTM(7, 16, mask_value=0.0), layers.Dense(16, 7)])
        hg.fit(model, losses.BinaryCrossEntropy(), optim.Adam(model, 1e-2),
               data.x, data.targets, epochs=20, batch_size=32, metrics=())
        probs = 1 / (1 + numpy.exp(-model.predict(test.x)))
        hg.data.reber_accuracy(probs, test.targets, test.lengths)

    ``max_length`` caps the string length (longer strings are drawn again), hence ``T``.
    """
    where = "embedded_reber"
    n = _int(n, where, "n")
    gen = _rng(rng, where)
    _float_dtype(dtype, where)
    if max_length is not None:
        max_length = _int(max_length, where, "max_length", minimum=_EMBEDDED.min_length)
    return encode_reber(reber_strings(n, gen, embedded=True, max_length=max_length), embedded=True, dtype=dtype)


def reber_accuracy(pred_probs, targets, lengths, threshold: float = 0.5) -> tuple[float, float]:
    """The 1997 criterion: ``(fraction of strings fully correct, per-step accuracy)``.

    A step is correct when ``{j : pred_probs[n, t, j] > threshold}`` equals the legal successor
    set ``{j : targets[n, t, j] > 0.5}``; a string is correct when all its scored steps are.
    Scored steps: ``t < lengths[n]`` with a non-empty target set (the step after the final
    ``E`` has nothing to predict and is skipped). ``pred_probs`` are probabilities, e.g.
    ``sigmoid(model.predict(x))``; raw logits with ``threshold=0.0`` give the same sets.
    """
    where = "reber_accuracy"
    p = numpy.asarray(pred_probs)
    y = numpy.asarray(targets)
    m = numpy.asarray(lengths)
    if p.dtype.kind not in "fiu" or y.dtype.kind not in "fiub":
        raise TypeError(f"{where}: expected numeric pred_probs and targets, got dtypes {p.dtype} and {y.dtype}")
    if p.ndim != 3:
        raise ValueError(f"{where}: expected pred_probs of shape (N, T, K), got {p.shape}")
    if y.shape != p.shape:
        raise ValueError(f"{where}: expected targets of shape {p.shape} (as pred_probs), got {y.shape}")
    if m.dtype.kind not in "iu" or m.shape != (p.shape[0],):
        raise ValueError(f"{where}: expected integer lengths of shape ({p.shape[0]},), got {m.dtype} {m.shape}")
    if m.size and (m.min() < 1 or m.max() > p.shape[1]):
        raise ValueError(f"{where}: expected lengths in [1, {p.shape[1]}], got values in [{m.min()}, {m.max()}]")
    if not numpy.isfinite(p).all():
        raise ValueError(f"{where}: pred_probs contains NaN or Inf values")
    thr = _real(threshold, where, "threshold")
    want = y > 0.5
    step_ok = ((p > thr) == want).all(axis=2)                                  # (N, T)
    scored = (numpy.arange(p.shape[1]) < m[:, None]) & want.any(axis=2)
    if not scored.any():
        raise ValueError(f"{where}: no step to score (every real step has an empty target set)")
    string_ok = (step_ok | ~scored).all(axis=1)
    return float(string_ok.mean()), float(step_ok[scored].mean())


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
    n = _int(n, where, "n")
    T = _int(T, where, "T", minimum=2)
    gen = _rng(rng, where)
    dt = _float_dtype(dtype, where)
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
    dt = _float_dtype(dtype, where)
    h, w = (_int(v, where, "image_shape entries") for v in image_shape)
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


# ----------------------------------------------------------------------------------------
# character-level corpus
# ----------------------------------------------------------------------------------------
def _codepoints(text: str) -> numpy.ndarray:
    return numpy.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=numpy.uint32)


class CharCorpus:
    """A text for next-character prediction, with its vocabulary.

    ``chars``: the sorted unique characters (``vocab`` overrides, e.g. to reuse a trained
    model's vocabulary on another text); ``vocab_size``; ``data``: the text as int64 indices.
    ``encode``/``decode`` convert between text and indices (vectorized through the UTF-32
    code points, no loop over characters).
    """

    def __init__(self, text: str, vocab=None) -> None:
        where = "CharCorpus"
        if not isinstance(text, str):
            raise TypeError(f"{where}: expected text to be a str, got {type(text).__name__}")
        if len(text) < 2:
            raise ValueError(f"{where}: expected a text of at least 2 characters, got {len(text)}")
        cps = _codepoints(text)
        if vocab is None:
            self._cp = numpy.unique(cps)
        else:
            if isinstance(vocab, str):
                vocab = list(vocab)
            vocab = list(vocab)
            if not vocab or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
                raise ValueError(f"{where}: expected vocab to be a non-empty sequence of single characters")
            self._cp = numpy.unique(_codepoints("".join(vocab)))
        self.chars = tuple(chr(int(c)) for c in self._cp)
        self.char_to_index = {c: i for i, c in enumerate(self.chars)}
        self.text = text
        self.data = self._encode_cps(cps, where)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None, max_chars: int | None = None,
                  encoding: str = "utf-8") -> "CharCorpus":
        """Read a text file (default :data:`DEFAULT_CORPUS_PATH`, ``/usr/share/dict/words``);
        ``max_chars`` keeps only its first characters. A missing file raises
        ``FileNotFoundError`` (for the default: install it with ``apt-get install wamerican``)."""
        where = "CharCorpus.from_file"
        if max_chars is not None:
            max_chars = _int(max_chars, where, "max_chars", minimum=2)
        p = DEFAULT_CORPUS_PATH if path is None else os.fspath(path)
        if not os.path.isfile(p):
            hint = (" (the default corpus: install it with `apt-get install wamerican`, or pass a path)"
                    if p == DEFAULT_CORPUS_PATH else "")
            raise FileNotFoundError(f"{where}: no text file at {p!r}{hint}")
        with open(p, encoding=encoding) as fh:
            text = fh.read(-1 if max_chars is None else max_chars)
        return cls(text)

    def __repr__(self) -> str:
        return f"CharCorpus({len(self.data)} characters, vocabulary of {self.vocab_size})"

    def __len__(self) -> int:
        return int(self.data.size)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    # -- encoding -------------------------------------------------------------------------
    def _encode_cps(self, cps: numpy.ndarray, where: str) -> numpy.ndarray:
        idx = numpy.searchsorted(self._cp, cps)
        idx_c = numpy.minimum(idx, self._cp.size - 1)
        bad = self._cp[idx_c] != cps
        if bad.any():
            unknown = sorted({chr(int(c)) for c in numpy.unique(cps[bad])[:10]})
            raise ValueError(f"{where}: characters outside the vocabulary of {self.vocab_size}: "
                             f"{''.join(unknown)!r}")
        return idx_c.astype(numpy.int64)

    def encode(self, text: str) -> numpy.ndarray:
        """Text → int64 indices ``(len(text),)``; unknown characters raise ``ValueError``."""
        if not isinstance(text, str):
            raise TypeError(f"CharCorpus.encode: expected a str, got {type(text).__name__}")
        return self._encode_cps(_codepoints(text), "CharCorpus.encode")

    def decode(self, codes) -> str:
        """Indices (any shape, read in C order) → text."""
        c = numpy.asarray(codes)
        if c.dtype.kind not in "iu":
            raise TypeError(f"CharCorpus.decode: expected integer indices, got dtype {c.dtype}")
        if c.size and (c.min() < 0 or c.max() >= self.vocab_size):
            raise ValueError(f"CharCorpus.decode: expected indices in [0, {self.vocab_size - 1}], "
                             f"got values in [{c.min()}, {c.max()}]")
        return self._cp[c.ravel()].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    def one_hot(self, codes, dtype=backend.DEFAULT_DTYPE) -> numpy.ndarray:
        """Indices of any shape ``S`` → one-hot ``S + (vocab_size,)``."""
        c = numpy.asarray(codes)
        if c.dtype.kind not in "iu":
            raise TypeError(f"CharCorpus.one_hot: expected integer indices, got dtype {c.dtype}")
        if c.size and (c.min() < 0 or c.max() >= self.vocab_size):
            raise ValueError(f"CharCorpus.one_hot: expected indices in [0, {self.vocab_size - 1}], "
                             f"got values in [{c.min()}, {c.max()}]")
        dt = _float_dtype(dtype, "CharCorpus.one_hot")
        out = numpy.zeros((c.size, self.vocab_size), dtype=dt)
        out[numpy.arange(c.size), c.ravel()] = 1
        return out.reshape(c.shape + (self.vocab_size,))

    # -- training data --------------------------------------------------------------------
    def windows(self, seq_len: int, rng=None, stride: int | None = None,
                dtype=backend.DEFAULT_DTYPE) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Fixed windows for next-character prediction: ``(x, y)`` with ``x`` ``(N, seq_len, V)``
        one-hot inputs and ``y`` ``(N, seq_len)`` int64 labels, ``y[n, t]`` the character after
        ``x[n, t]`` (``y[n, :-1]`` are the inputs of ``x[n, 1:]``). Windows start every
        ``stride`` characters (default ``seq_len``: non-overlapping). With ``rng`` (a generator
        or seed) the first window starts at a random offset in ``[0, stride)`` and the windows
        come in random order; without it, in text order from offset 0. Train with
        ``losses.SoftmaxCrossEntropy()`` on ``(N, T, V)`` logits. Memory: N·seq_len·V·itemsize
        bytes — use ``max_chars`` or a larger stride for big texts.
        """
        where = "CharCorpus.windows"
        seq_len = _int(seq_len, where, "seq_len")
        stride = seq_len if stride is None else _int(stride, where, "stride")
        dt = _float_dtype(dtype, where)
        gen = None if rng is None else _rng(rng, where)
        if seq_len + 1 > self.data.size:
            raise ValueError(f"{where}: seq_len + 1 = {seq_len + 1} exceeds the corpus length {self.data.size}")
        offset = int(gen.integers(0, stride)) if gen is not None else 0
        if offset + seq_len + 1 > self.data.size:
            offset = 0
        view = numpy.lib.stride_tricks.sliding_window_view(self.data[offset:], seq_len + 1)[::stride]
        if gen is not None:
            view = view[gen.permutation(view.shape[0])]
        return self.one_hot(view[:, :-1], dt), numpy.ascontiguousarray(view[:, 1:])

    def num_chunks(self, batch_size: int, seq_len: int) -> int:
        """How many chunks :meth:`batches_for_truncated_bptt` yields."""
        where = "CharCorpus.batches_for_truncated_bptt"
        batch_size = _int(batch_size, where, "batch_size")
        seq_len = _int(seq_len, where, "seq_len")
        return ((self.data.size - 1) // batch_size) // seq_len

    def batches_for_truncated_bptt(self, batch_size: int, seq_len: int,
                                   dtype=backend.DEFAULT_DTYPE) -> Iterator[tuple[numpy.ndarray, numpy.ndarray]]:
        """Consecutive chunks of ``batch_size`` parallel streams, for truncated BPTT.

        The text (less its last character, which is only a target) is cut into ``batch_size``
        equal streams of L = (len − 1) // batch_size characters: stream b is
        ``data[b·L : (b+1)·L]``. Chunk k yields ``x`` ``(batch_size, seq_len, V)`` one-hot —
        row b holds characters ``[k·seq_len, (k+1)·seq_len)`` of stream b — and ``y``
        ``(batch_size, seq_len)`` int64, the next characters. Row b of chunk k+1 continues row
        b of chunk k exactly, so a ``stateful=True`` layer carries its state across chunks
        (gradients stop at the chunk boundary). ``L // seq_len`` chunks (:meth:`num_chunks`);
        the remainder is dropped. Call ``layer.reset_state()`` before every pass::

            lstm.reset_state()
            for x, y in corpus.batches_for_truncated_bptt(32, 64):
                out = model.forward(x, training=True)
                loss.forward(out, y)
                model.backward(loss.backward(), input_grad=False)
                opt.step()
        """
        where = "CharCorpus.batches_for_truncated_bptt"
        n_chunks = self.num_chunks(batch_size, seq_len)
        dt = _float_dtype(dtype, where)
        if n_chunks == 0:
            raise ValueError(f"{where}: a corpus of {self.data.size} characters cannot fill {batch_size} streams "
                             f"of at least seq_len + 1 = {seq_len + 1} characters (need {batch_size * seq_len + 1})")
        L = (self.data.size - 1) // batch_size
        inputs = self.data[:batch_size * L].reshape(batch_size, L)
        targets = self.data[1:batch_size * L + 1].reshape(batch_size, L)

        def chunks():
            for k in range(n_chunks):
                s = slice(k * seq_len, (k + 1) * seq_len)
                yield self.one_hot(inputs[:, s], dt), numpy.ascontiguousarray(targets[:, s])

        return chunks()


def _softmax_sample(logits: numpy.ndarray, temperature: float, gen: numpy.random.Generator) -> int:
    if temperature == 0.0:
        return int(numpy.argmax(logits))
    z = logits / temperature
    z -= z.max()
    cdf = numpy.cumsum(numpy.exp(z))
    return int(min(numpy.searchsorted(cdf, gen.random() * cdf[-1], side="right"), logits.size - 1))


def sample_text(model, corpus: CharCorpus, seed_text: str, length: int, temperature: float = 1.0,
                rng=None) -> str:
    """Generate ``length`` characters after ``seed_text`` (returned without the seed).

    ``model`` maps one-hot ``(1, T, V)`` input to logits ``(1, T, V)`` (e.g. ``LSTM(V, H)`` →
    ``Dense(H, V)``) or ``(1, V)`` (last step only). Each next character is drawn from
    softmax(logits / temperature) of the last step (``temperature=0`` takes the argmax; lower
    is more conservative, higher more random), with the generator ``rng`` (generator or seed;
    None = seed 0): the same generator state gives the same text.

    If every recurrent layer of ``model`` is ``stateful=True``, the seed is fed once and then
    one character per step (the layers carry the state); otherwise the whole text so far is
    fed at every step (O(length²), fine for short samples). Stateful layers are reset before
    and after sampling (so training with another batch size can continue).
    """
    where = "sample_text"
    if not hasattr(model, "forward"):
        raise TypeError(f"{where}: expected a handgrad model with a forward method, got {type(model).__name__}")
    if not isinstance(corpus, CharCorpus):
        raise TypeError(f"{where}: expected corpus to be a CharCorpus, got {type(corpus).__name__}")
    if not isinstance(seed_text, str) or not seed_text:
        raise ValueError(f"{where}: expected seed_text to be a non-empty str, got {seed_text!r}")
    length = _int(length, where, "length", minimum=0)
    temperature = _real(temperature, where, "temperature")
    if temperature < 0:
        raise ValueError(f"{where}: expected temperature >= 0, got {temperature!r}")
    gen = numpy.random.default_rng(0) if rng is None else _rng(rng, where)
    codes = list(corpus.encode(seed_text).tolist())
    layers = list(getattr(model, "layers", [model]))
    recurrent = [layer for layer in layers if hasattr(layer, "reset_state")]
    incremental = bool(recurrent) and all(getattr(layer, "stateful", False) for layer in recurrent)
    dtype = getattr(model, "dtype", numpy.dtype(backend.DEFAULT_DTYPE))
    xp = getattr(model, "xp", numpy)

    def reset():
        for layer in recurrent:
            layer.reset_state()

    def last_logits(codes_in):
        x = backend.asarray(corpus.one_hot(numpy.asarray(codes_in, dtype=numpy.int64)[None, :], dtype), xp=xp)
        out = numpy.asarray(backend.to_numpy(model.forward(x, training=False)), dtype=numpy.float64)
        if out.ndim not in (2, 3) or out.shape[0] != 1 or out.shape[-1] != corpus.vocab_size:
            raise ValueError(f"{where}: expected the model to output logits of shape (1, T, {corpus.vocab_size}) "
                             f"or (1, {corpus.vocab_size}), got {out.shape}")
        z = out[0, -1] if out.ndim == 3 else out[0]
        if not numpy.isfinite(z).all():
            raise ValueError(f"{where}: the model produced NaN or Inf logits")
        return z

    out: list[int] = []
    reset()
    try:
        feed = codes
        for _ in range(length):
            if not incremental:
                reset()
                feed = codes + out
            c = _softmax_sample(last_logits(feed), temperature, gen)
            out.append(c)
            feed = [c]
    finally:
        reset()
    return corpus.decode(numpy.asarray(out, dtype=numpy.int64))
