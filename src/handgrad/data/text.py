"""Character-level corpora for language models: encoding, windows, truncated-BPTT streams and
sampling (see ``sequences``)."""
from __future__ import annotations

import os
from typing import Iterator

import numpy

from .. import backend
from .._checks import check_int, check_real
from ._seqcheck import as_generator, codepoints, float_dtype

#: Where :meth:`CharCorpus.from_file` looks without a path (``apt-get install wamerican``).
DEFAULT_CORPUS_PATH = "/usr/share/dict/words"


# ----------------------------------------------------------------------------------------
# character-level corpus
# ----------------------------------------------------------------------------------------
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
        cps = codepoints(text)
        if vocab is None:
            self._cp = numpy.unique(cps)
        else:
            if isinstance(vocab, str):
                vocab = list(vocab)
            vocab = list(vocab)
            if not vocab or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
                raise ValueError(f"{where}: expected vocab to be a non-empty sequence of single characters")
            self._cp = numpy.unique(codepoints("".join(vocab)))
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
            max_chars = check_int(max_chars, where, "max_chars", minimum=2)
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
        return self._encode_cps(codepoints(text), "CharCorpus.encode")

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
        dt = float_dtype(dtype, "CharCorpus.one_hot")
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
        seq_len = check_int(seq_len, where, "seq_len", minimum=1)
        stride = seq_len if stride is None else check_int(stride, where, "stride", minimum=1)
        dt = float_dtype(dtype, where)
        gen = None if rng is None else as_generator(rng, where)
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
        batch_size = check_int(batch_size, where, "batch_size", minimum=1)
        seq_len = check_int(seq_len, where, "seq_len", minimum=1)
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
        dt = float_dtype(dtype, where)
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
    length = check_int(length, where, "length", minimum=0)
    temperature = check_real(temperature, where, "temperature")
    if temperature < 0:
        raise ValueError(f"{where}: expected temperature >= 0, got {temperature!r}")
    gen = numpy.random.default_rng(0) if rng is None else as_generator(rng, where)
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

