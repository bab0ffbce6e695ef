"""Sequence data sets: Reber grammar, adding problem, sequential images, character corpus."""
import numpy as np
import pytest

import handgrad as hg
from handgrad import layers
from handgrad.data import sequences as seq

SYMS = "BTPSXVE"
# the textbook Reber automaton, written out independently of the module under test
REBER = {0: {"B": 1}, 1: {"T": 2, "P": 3}, 2: {"S": 2, "X": 4}, 3: {"T": 3, "V": 5},
         4: {"X": 3, "S": 6}, 5: {"P": 4, "V": 6}, 6: {"E": 7}, 7: {}}


def reber_successors(s):
    """Legal-successor sets after each prefix of a plain Reber string (None if ungrammatical)."""
    state, out = 0, []
    for ch in s:
        if ch not in REBER[state]:
            return None
        state = REBER[state][ch]
        out.append(set(REBER[state]))
    return out if state == 7 else None


def embedded_successors(s):
    """The same for B a <reber> a E, built from the plain automaton."""
    if len(s) < 9 or s[0] != "B" or s[1] not in "TP" or s[-2] != s[1] or s[-1] != "E":
        return None
    inner = reber_successors(s[2:-2])
    if inner is None:
        return None
    return [{"T", "P"}, {"B"}] + inner[:-1] + [{s[1]}, {"E"}, set()]


def sets_of(multi_hot):
    return [set(SYMS[j] for j in np.flatnonzero(row)) for row in multi_hot]


# ---------------------------------------------------------------------------------- Reber
def test_reber_strings_are_grammatical_and_seeded():
    strings = seq.reber_strings(500, np.random.default_rng(0))
    assert all(reber_successors(s) is not None for s in strings)
    assert all(seq.is_reber_string(s) for s in strings)
    assert len(set(strings)) > 50  # actually random
    assert strings == seq.reber_strings(500, np.random.default_rng(0))
    assert seq.reber_strings(500, 0) == strings  # an int seed works too
    assert all(reber_successors(seq.reber_string(np.random.default_rng(k))) for k in range(20))


def test_embedded_strings_grammatical_and_second_matches_second_to_last():
    strings = seq.reber_strings(500, np.random.default_rng(1), embedded=True)
    for s in strings:
        assert embedded_successors(s) is not None, s
        assert s[1] == s[-2] and s[1] in "TP"
        assert seq.is_reber_string(s, embedded=True) and not seq.is_reber_string(s)
    assert {s[1] for s in strings} == {"T", "P"}
    assert embedded_successors(seq.embedded_reber_string(3)) is not None


def test_transition_graph_and_next_symbols():
    assert seq.reber_graph() == {k: v for k, v in REBER.items() if v}
    assert seq.reber_next_symbols("") == {"B"}
    assert seq.reber_next_symbols("BT") == {"S", "X"}
    assert seq.reber_next_symbols("BPV") == {"P", "V"}
    assert seq.reber_next_symbols("BTXSE") == set()
    assert seq.reber_next_symbols("BTBTXSE", embedded=True) == {"T"}
    assert seq.reber_next_symbols("BPBTXSE", embedded=True) == {"P"}
    assert seq.reber_next_symbols("BPBTXSEP", embedded=True) == {"E"}
    assert not seq.is_reber_string("BTXS") and not seq.is_reber_string("BTXXE") and not seq.is_reber_string("")
    assert not seq.is_reber_string("BTBTXSEPE", embedded=True)
    with pytest.raises(ValueError, match="reber_next_symbols.*'BTT'"):
        seq.reber_next_symbols("BTT")


def test_max_length_caps_strings():
    strings = seq.reber_strings(300, 2, embedded=True, max_length=12)
    assert max(map(len, strings)) <= 12 and all(embedded_successors(s) for s in strings)
    with pytest.raises(ValueError, match="reber_strings.*max_length.*>= 9"):
        seq.reber_strings(3, 0, embedded=True, max_length=8)


def test_embedded_reber_set_targets_padding_lengths():
    data = seq.embedded_reber(300, np.random.default_rng(2))
    n, T, V = data.x.shape
    assert (n, V) == (300, 7) and data.targets.shape == data.x.shape and data.x.dtype == np.float32
    assert data.labels.shape == (n, T) and data.labels.dtype == np.int64
    assert T == data.lengths.max() and list(data.lengths) == [len(s) for s in data.strings]
    for i, s in enumerate(data.strings):
        L = len(s)
        assert "".join(SYMS[j] for j in data.x[i, :L].argmax(1)) == s
        assert np.all(data.x[i, :L].sum(1) == 1)                      # real steps: one-hot
        assert np.all(data.x[i, L:] == 0) and np.all(data.targets[i, L:] == 0)  # padding: zeros
        assert sets_of(data.targets[i, :L]) == embedded_successors(s)
        assert "".join(SYMS[j] for j in data.labels[i, :L - 1]) == s[1:]
        assert np.all(data.labels[i, L - 1:] == -1)
    # every real step differs from the padding value, so mask_value=0.0 finds exactly the padding
    lstm = layers.LSTM(7, 3, mask_value=0.0, rng=0)
    mask = lstm._step_mask(data.x)[..., 0]
    assert np.array_equal(mask.sum(1).astype(int), data.lengths)
    assert seq.embedded_reber(300, 2).strings == data.strings


def test_reber_accuracy_oracle_and_crucial_step():
    data = seq.embedded_reber(50, 3)
    assert seq.reber_accuracy(data.targets, data.targets, data.lengths) == (1.0, 1.0)
    # probabilities near the decision boundary, and logits with threshold 0
    assert seq.reber_accuracy(0.25 + 0.5 * data.targets, data.targets, data.lengths)[0] == 1.0
    assert seq.reber_accuracy(data.targets * 8 - 4, data.targets, data.lengths, threshold=0.0)[0] == 1.0
    wrong = data.targets.copy()
    rows = np.arange(50)
    crucial = data.lengths - 3                                     # input: the inner E
    assert np.all(wrong[rows, crucial].sum(1) == 1)
    wrong[rows[:10], crucial[:10]] = wrong[rows[:10], crucial[:10]][:, [0, 2, 1, 3, 4, 5, 6]]  # swap T and P
    string_acc, step_acc = seq.reber_accuracy(wrong, data.targets, data.lengths)
    assert string_acc == pytest.approx(0.8)
    scored = (data.lengths - 1).sum()                              # the step after the final E is not scored
    assert step_acc == pytest.approx(1 - 10 / scored)
    # predicting both T and P (the uninformed answer) is wrong too
    both = data.targets.copy()
    both[0, crucial[0], 1:3] = 1
    assert seq.reber_accuracy(both, data.targets, data.lengths)[0] == pytest.approx(49 / 50)


def test_reber_bad_arguments():
    data = seq.embedded_reber(4, 0)
    with pytest.raises(ValueError, match=r"reber_accuracy: expected targets of shape \(4, \d+, 7\)"):
        seq.reber_accuracy(data.targets, data.targets[:, :-1], data.lengths)
    with pytest.raises(ValueError, match="reber_accuracy: expected lengths in"):
        seq.reber_accuracy(data.targets, data.targets, data.lengths + 100)
    with pytest.raises(ValueError, match="reber_accuracy.*NaN"):
        seq.reber_accuracy(data.targets * np.nan, data.targets, data.lengths)
    with pytest.raises(ValueError, match="encode_reber: expected complete embedded Reber strings, string 1 is 'BTXSE'"):
        seq.encode_reber(["BTBTXSETE", "BTXSE"])
    with pytest.raises(ValueError, match="encode_reber.*string 0 is 'BTBTXSETQ'"):
        seq.encode_reber(["BTBTXSETQ"])
    with pytest.raises(TypeError, match="embedded_reber: expected rng"):
        seq.embedded_reber(3, "seed")
    with pytest.raises(ValueError, match="embedded_reber: expected n to be an integer >= 1, got 0"):
        seq.embedded_reber(0, 0)
    plain = seq.encode_reber(["BTXSE", "BPVVE"], embedded=False)
    assert sets_of(plain.targets[1]) == reber_successors("BPVVE")


# --------------------------------------------------------------------------- adding problem
def test_adding_problem_markers_targets_baseline():
    x, y = seq.adding_problem(20000, 30, np.random.default_rng(4))
    assert x.shape == (20000, 30, 2) and y.shape == (20000, 1) and x.dtype == y.dtype == np.float32
    marks = x[..., 1]
    assert set(np.unique(marks)) == {0.0, 1.0}
    assert np.all(marks.sum(1) == 2)
    assert np.all(marks[:, :15].sum(1) == 1) and np.all(marks[:, 15:].sum(1) == 1)
    assert x[..., 0].min() >= 0 and x[..., 0].max() < 1
    np.testing.assert_array_equal(y[:, 0], (x[..., 0] * marks).sum(1))
    base = seq.adding_baseline(y)
    assert base["mse"] == pytest.approx(1 / 6, abs=0.005) == seq.ADDING_BASELINE_MSE
    assert base["halved_mse"] == pytest.approx(1 / 12, abs=0.003) == seq.ADDING_BASELINE_HALVED_MSE
    loss = hg.losses.MeanSquaredError().forward(np.ones_like(y), y)
    assert loss == pytest.approx(base["halved_mse"], rel=1e-5)     # our MSE is the halved one
    # marker positions are spread over both halves; odd T splits at T // 2
    assert len(np.unique(marks[:, :15].argmax(1))) == 15
    x5, _ = seq.adding_problem(500, 5, 0, dtype=np.float64)
    assert x5.dtype == np.float64 and np.all(x5[:, :2, 1].sum(1) == 1) and np.all(x5[:, 2:, 1].sum(1) == 1)
    x2, y2 = seq.adding_problem(20000, 30, np.random.default_rng(4))
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    with pytest.raises(ValueError, match="adding_problem: expected T to be an integer >= 2, got 1"):
        seq.adding_problem(3, 1, 0)


# -------------------------------------------------------------------------- sequential images
def test_sequential_images():
    imgs = np.random.default_rng(5).integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    out = seq.sequential_images(imgs)
    assert out.shape == (6, 28, 28) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    np.testing.assert_allclose(out, imgs / 255, rtol=1e-6)
    np.testing.assert_array_equal(seq.sequential_images(imgs.reshape(6, 784)), out)
    np.testing.assert_array_equal(seq.sequential_images(imgs[:, None]), out)
    np.testing.assert_array_equal(out[2, 5], imgs[2, 5] / np.float32(255))  # step 5 = row 5
    assert seq.sequential_images(out, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match=r"sequential_images: expected images of shape .*got \(6, 100\)"):
        seq.sequential_images(np.zeros((6, 100), np.uint8))
    with pytest.raises(TypeError, match="sequential_images: expected uint8 or float images, got dtype int64"):
        seq.sequential_images(imgs.astype(np.int64))
    with pytest.raises(ValueError, match="sequential_images.*NaN"):
        seq.sequential_images(np.full((1, 28, 28), np.nan))


# ---------------------------------------------------------------------------- char corpus
TEXT = "the quick brown fox jumps over the lazy dog.\nÄrger über Öl — ça va?\n" * 8


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "text.txt"
    p.write_text(TEXT, encoding="utf-8")
    return seq.CharCorpus.from_file(p)


def test_corpus_vocab_and_round_trip(corpus, tmp_path):
    assert corpus.chars == tuple(sorted(set(TEXT))) and corpus.vocab_size == len(set(TEXT))
    assert corpus.decode(corpus.data) == TEXT and len(corpus) == len(TEXT)
    codes = corpus.encode("Öl über the fox")
    assert codes.dtype == np.int64 and corpus.decode(codes) == "Öl über the fox"
    assert [corpus.chars[c] for c in codes] == list("Öl über the fox")
    short = seq.CharCorpus.from_file(tmp_path / "text.txt", max_chars=10)
    assert short.text == TEXT[:10]
    with pytest.raises(ValueError, match="CharCorpus.encode: characters outside the vocabulary.*'Z'"):
        corpus.encode("Zebra")
    with pytest.raises(ValueError, match=r"CharCorpus.decode: expected indices in \[0, "):
        corpus.decode([0, 999])
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        seq.CharCorpus.from_file(tmp_path / "nope.txt")
    with pytest.raises(TypeError, match="CharCorpus: expected text to be a str"):
        seq.CharCorpus(b"bytes")


def test_default_corpus_hint(monkeypatch, tmp_path):
    import handgrad.data.text as text  # where CharCorpus.from_file reads its default

    monkeypatch.setattr(text, "DEFAULT_CORPUS_PATH", str(tmp_path / "words"))
    with pytest.raises(FileNotFoundError, match="apt-get install wamerican"):
        seq.CharCorpus.from_file()
    (tmp_path / "words").write_text("apple\nbanana\n")
    assert seq.CharCorpus.from_file().text == "apple\nbanana\n"


def test_windows_targets_are_shifted_inputs(corpus):
    x, y = corpus.windows(16)
    n = (len(TEXT) - 1 - 16) // 16 + 1
    assert x.shape == (n, 16, corpus.vocab_size) and x.dtype == np.float32 and y.shape == (n, 16)
    assert np.all(x.sum(-1) == 1)
    codes = x.argmax(-1)
    np.testing.assert_array_equal(y[:, :-1], codes[:, 1:])
    for i in range(n):                                                 # against the text itself
        assert corpus.decode(codes[i]) == TEXT[16 * i:16 * i + 16]
        assert corpus.decode(y[i]) == TEXT[16 * i + 1:16 * i + 17]
    xo, yo = corpus.windows(10, stride=3)
    assert xo.shape[0] == (len(TEXT) - 11) // 3 + 1
    np.testing.assert_array_equal(xo[1].argmax(-1), corpus.data[3:13])
    xs, ys = corpus.windows(16, rng=np.random.default_rng(6))
    xs2, ys2 = corpus.windows(16, rng=np.random.default_rng(6))
    assert np.array_equal(xs, xs2) and np.array_equal(ys, ys2)
    np.testing.assert_array_equal(ys[:, :-1], xs.argmax(-1)[:, 1:])
    with pytest.raises(ValueError, match="CharCorpus.windows: seq_len \\+ 1 = 10001 exceeds"):
        corpus.windows(10000)
    with pytest.raises(ValueError, match="CharCorpus.windows: expected stride to be an integer >= 1, got 0"):
        corpus.windows(5, stride=0)


def test_truncated_bptt_streams_continue_across_chunks(corpus):
    B, T = 4, 7
    chunks = list(corpus.batches_for_truncated_bptt(B, T))
    L = (len(TEXT) - 1) // B
    assert len(chunks) == L // T == corpus.num_chunks(B, T)
    for x, y in chunks:
        assert x.shape == (B, T, corpus.vocab_size) and y.shape == (B, T) and y.dtype == np.int64
    xs = np.concatenate([x.argmax(-1) for x, _ in chunks], axis=1)    # (B, chunks·T)
    ys = np.concatenate([y for _, y in chunks], axis=1)
    for b in range(B):                                                 # each row is one seamless stream
        assert corpus.decode(xs[b]) == TEXT[b * L:b * L + xs.shape[1]]
        assert corpus.decode(ys[b]) == TEXT[b * L + 1:b * L + 1 + xs.shape[1]]
    # a stateful LSTM fed chunk by chunk equals one pass over the whole streams
    lstm = layers.LSTM(corpus.vocab_size, 5, stateful=True, rng=0, dtype=np.float64)
    pieces = [lstm.forward(x.astype(np.float64)) for x, _ in chunks]
    whole = layers.LSTM(corpus.vocab_size, 5, rng=0, dtype=np.float64).forward(
        np.concatenate([x for x, _ in chunks], axis=1).astype(np.float64))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-12)
    with pytest.raises(ValueError, match="CharCorpus.batches_for_truncated_bptt: a corpus of"):
        corpus.batches_for_truncated_bptt(len(TEXT), 5)


def _tiny_model(V, stateful=False):
    return hg.Sequential([layers.LSTM(V, 8, stateful=stateful, rng=0), layers.Dense(8, V, rng=1)])


def test_sample_text(corpus):
    V = corpus.vocab_size
    model = _tiny_model(V)
    text = seq.sample_text(model, corpus, "the ", 25, rng=np.random.default_rng(7))
    assert isinstance(text, str) and len(text) == 25 and set(text) <= set(corpus.chars)
    assert text == seq.sample_text(model, corpus, "the ", 25, rng=np.random.default_rng(7))
    assert text != seq.sample_text(model, corpus, "the ", 25, rng=np.random.default_rng(8))
    # a stateful model fed one character at a time samples exactly the same text
    assert seq.sample_text(_tiny_model(V, stateful=True), corpus, "the ", 25, rng=np.random.default_rng(7)) == text
    greedy = seq.sample_text(model, corpus, "the ", 10, temperature=0, rng=0)
    assert greedy == seq.sample_text(model, corpus, "the ", 10, temperature=0, rng=1)
    assert seq.sample_text(model, corpus, "t", 0) == ""
    # the first character follows softmax(logits / temperature) of the seed's last step
    logits = model.forward(corpus.one_hot(corpus.encode("the "))[None])[0, -1].astype(np.float64)
    p = np.exp(logits / 0.5 - (logits / 0.5).max())
    p /= p.sum()
    firsts = [seq.sample_text(model, corpus, "the ", 1, temperature=0.5, rng=k) for k in range(400)]
    freq = np.array([firsts.count(c) for c in corpus.chars]) / 400
    assert np.abs(freq - p).max() < 0.08
    with pytest.raises(ValueError, match="sample_text: expected temperature >= 0"):
        seq.sample_text(model, corpus, "the", 5, temperature=-1)
    with pytest.raises(ValueError, match="CharCorpus.encode: characters outside the vocabulary"):
        seq.sample_text(model, corpus, "xyzZ", 5)
    with pytest.raises(ValueError, match="sample_text: expected seed_text to be a non-empty str"):
        seq.sample_text(model, corpus, "", 5)
    with pytest.raises(ValueError, match=r"sample_text: expected the model to output logits of shape \(1, T, "):
        seq.sample_text(hg.Sequential([layers.LSTM(V, 4, rng=0), layers.Dense(4, V + 1, rng=0)]), corpus, "the", 2)


def test_public_names():
    for name in seq.__all__:
        assert getattr(hg.data, name) is getattr(seq, name)
