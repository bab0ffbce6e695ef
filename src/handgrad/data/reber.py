"""The Reber grammar and the embedded Reber task of Hochreiter & Schmidhuber (1997), section 5,
experiment 1: next-symbol prediction scored by the all-steps criterion (see ``sequences``)."""
from __future__ import annotations

from typing import NamedTuple

import numpy

from .. import backend
from .._checks import check_bool, check_int, check_real
from ._seqcheck import as_generator, codepoints, float_dtype

REBER_SYMBOLS = "BTPSXVE"
_SYM_INDEX = {s: i for i, s in enumerate(REBER_SYMBOLS)}


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
    return _EMBEDDED if check_bool(embedded, "Reber grammar", "embedded") else _REBER


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
    n = check_int(n, where, "n", minimum=1)
    gen = as_generator(rng, where)
    g = _automaton(embedded)
    if max_length is not None:
        max_length = check_int(max_length, where, "max_length", minimum=g.min_length)
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
    dt = float_dtype(dtype, where)
    kind = "embedded Reber" if embedded else "Reber"
    for i, s in enumerate(strings):
        if not isinstance(s, str):
            raise TypeError(f"{where}: expected complete {kind} strings, item {i} is a {type(s).__name__}")
    lengths = numpy.fromiter((len(s) for s in strings), dtype=numpy.int64, count=len(strings))
    n, T = len(strings), max(1, int(lengths.max()))
    cps = codepoints("".join(strings))
    lut = numpy.full(128, -1, dtype=numpy.int64)
    lut[codepoints(REBER_SYMBOLS)] = numpy.arange(len(REBER_SYMBOLS))
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
    n = check_int(n, where, "n", minimum=1)
    gen = as_generator(rng, where)
    float_dtype(dtype, where)
    if max_length is not None:
        max_length = check_int(max_length, where, "max_length", minimum=_EMBEDDED.min_length)
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
    thr = check_real(threshold, where, "threshold")
    want = y > 0.5
    step_ok = ((p > thr) == want).all(axis=2)                                  # (N, T)
    scored = (numpy.arange(p.shape[1]) < m[:, None]) & want.any(axis=2)
    if not scored.any():
        raise ValueError(f"{where}: no step to score (every real step has an empty target set)")
    string_ok = (step_ok | ~scored).all(axis=1)
    return float(string_ok.mean()), float(step_ok[scored].mean())


