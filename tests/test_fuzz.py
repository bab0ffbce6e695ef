"""Fuzzing the two file readers that take untrusted bytes: ``hg.load`` (safetensors model files
and training checkpoints) and the IDX reader (``handgrad.data.parse_idx`` / ``read_idx``, plain
and gzip).

Every outcome must be a loaded model / array or ``ValueError`` -- never another exception, never a
hang, never a large allocation, never pickle. CI runs a fixed-seed subset
(``derandomize=True, max_examples=300``); ``benchmarks/fuzz_formats.py`` runs 10,000 cases per
format.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import pickle
import resource
import shutil
import signal
import struct
import tempfile
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import handgrad as hg
from handgrad.training import checkpoint as ck
from handgrad import layers as L
from handgrad import losses, optim
from handgrad.data import parse_idx, read_idx, write_idx

FUZZ = settings(derandomize=True, max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


# ----------------------------------------------------------------------------------------
# harness: scratch files in RAM, a time limit per example, memory accounting
# ----------------------------------------------------------------------------------------
def _scratch_dir() -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="handgrad-fuzz-", dir=base)


SCRATCH = _scratch_dir()


@pytest.fixture(scope="module", autouse=True)
def _remove_scratch():
    yield
    shutil.rmtree(SCRATCH, ignore_errors=True)


def _write(name: str, data: bytes) -> str:
    path = os.path.join(SCRATCH, name)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float = 5.0):
    """Fail an example that runs longer than ``seconds`` (SIGALRM; main thread only)."""
    def alarm(signum, frame):
        raise Hang(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextlib.contextmanager
def bounded_memory(limit_bytes: int):
    """Peak Python/NumPy allocation (tracemalloc) inside the block stays under ``limit_bytes``,
    and the process's peak RSS (which also sees native allocations) does not jump by 256 MiB."""
    rss0 = _maxrss_bytes()
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < limit_bytes, f"peak allocation {peak} bytes >= {limit_bytes}"
    assert _maxrss_bytes() - rss0 < 256 * 2 ** 20, "peak RSS grew by more than 256 MiB"


def load_outcome(data: bytes, name: str = "model.safetensors") -> str:
    """Write ``data`` and ``hg.load`` it: 'loaded' or 'ValueError'; anything else propagates."""
    path = _write(name, data)
    with time_limit():
        try:
            model = hg.load(path)
        except ValueError:
            return "ValueError"
    assert isinstance(model, hg.Sequential)
    for layer in model.layers:  # a model that loads is a usable one
        assert layer.params.keys() == layer.grads.keys()
        for k, p in layer.params.items():
            assert p.dtype in (np.float32, np.float64)
            assert layer.grads[k].shape == p.shape
            assert p.flags.writeable
    return "loaded"


# ----------------------------------------------------------------------------------------
# valid files to start from
# ----------------------------------------------------------------------------------------
def _models():
    return {
        "mlp": hg.Sequential([L.Normalize(0.5, 2.0), L.Dense(6, 5, rng=0, bias_init="normal"), L.ReLU(),
                              L.Dropout(0.2), L.Dense(5, 3, rng=1), L.Softmax()]),
        "mlp64": hg.Sequential([L.Dense(4, 3, rng=0, dtype="float64"), L.Sigmoid(), L.Dense(3, 2, rng=1, dtype="float64")]),
        "conv": hg.Sequential([L.Conv2D(1, 2, 3, padding=1, rng=0), L.MaxPool2D(2), L.Conv2D(2, 2, (2, 1), stride=(1, 2), rng=1),
                               L.AvgPool2D(1), L.Flatten(), L.Dense(2, 3, rng=2)]),
        "lstm": hg.Sequential([L.LSTM(3, 4, peepholes=True, rng=0), L.RNN(4, 3, activation="sigmoid",
                                                                         return_sequences=False, rng=1),
                               L.Dense(3, 2, rng=2)]),
    }


MODELS = _models()


def _saved(model) -> bytes:
    path = os.path.join(SCRATCH, "valid.safetensors")
    hg.save(model, path)
    with open(path, "rb") as fh:
        return fh.read()


VALID = {name: _saved(m) for name, m in MODELS.items()}
NAMES = sorted(VALID)


def _header_len(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


def test_valid_files_load():
    for name, data in VALID.items():
        assert load_outcome(data) == "loaded", name


# ----------------------------------------------------------------------------------------
# hg.load: mutated, truncated, bit-flipped, spliced files
# ----------------------------------------------------------------------------------------
MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 2 ** 20), st.integers(0, 7)), min_size=1, max_size=8),
              st.booleans()),
    st.tuples(st.just("overwrite"), st.integers(0, 2 ** 20), st.binary(min_size=1, max_size=16), st.booleans()),
    st.tuples(st.just("insert"), st.integers(0, 2 ** 20), st.binary(min_size=1, max_size=16), st.booleans()),
    st.tuples(st.just("delete"), st.integers(0, 2 ** 20), st.integers(1, 64), st.booleans()),
    st.tuples(st.just("digit"), st.integers(0, 2 ** 20), st.sampled_from(b"0123456789-.e"), st.just(True)),
)


def mutate(data: bytes, mutation) -> bytes:
    """Apply one mutation; the last flag confines it to the JSON header (where structure lives)."""
    kind, *args, in_header = mutation
    if len(data) < 8:
        return data + bytes(args[-1]) if kind in ("overwrite", "insert") else data
    span = max(1, min(_header_len(data), len(data)) if in_header else len(data))
    b = bytearray(data)
    if kind == "flip":
        for pos, bit in args[0]:
            b[pos % span] ^= 1 << bit
    elif kind == "overwrite":
        pos = args[0] % span
        b[pos:pos + len(args[1])] = args[1]
    elif kind == "insert":
        pos = args[0] % span
        b[pos:pos] = args[1]
    elif kind == "delete":
        pos = args[0] % span
        del b[pos:pos + args[1]]
    elif kind == "digit":
        digits = [i for i in range(8, span) if chr(b[i]).isdigit()]
        if digits:
            b[digits[args[0] % len(digits)]] = args[1]
    return bytes(b)


@FUZZ
@given(name=st.sampled_from(NAMES), mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
def test_load_mutated_model_files(name, mutations):
    data = VALID[name]
    for m in mutations:
        data = mutate(data, m)
    load_outcome(data)


@FUZZ
@given(name=st.sampled_from(NAMES), cut=st.integers(0, 2 ** 20))
def test_load_truncated_model_files(name, cut):
    data = VALID[name]
    assert load_outcome(data[:cut % len(data)]) == "ValueError"


@FUZZ
@given(a=st.sampled_from(NAMES), b=st.sampled_from(NAMES), i=st.integers(0, 2 ** 20), j=st.integers(0, 2 ** 20))
def test_load_spliced_model_files(a, b, i, j):
    da, db = VALID[a], VALID[b]
    load_outcome(da[:i % (len(da) + 1)] + db[j % (len(db) + 1):])


@FUZZ
@given(name=st.sampled_from(NAMES), pos=st.integers(0, 2 ** 20), bit=st.integers(0, 7))
def test_single_bit_flip_in_the_tensor_data_still_loads_or_raises(name, pos, bit):
    data = bytearray(VALID[name])
    start = _header_len(data)
    data[start + pos % (len(data) - start)] ^= 1 << bit
    load_outcome(bytes(data))  # the data region has no checksum: loading is allowed


# ----------------------------------------------------------------------------------------
# hg.load: forged headers and architectures
# ----------------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16)
DTYPES = st.sampled_from(["F32", "F64", "F16", "BF16", "I8", "I16", "I32", "I64", "U8", "U64", "BOOL",
                          "F8_E4M3", "F8_E5M2", "f32", "", "F32 ", "C64"]) | st.text(max_size=5)
DIMS = st.one_of(st.integers(0, 6), st.sampled_from([2 ** 31, 2 ** 32, 2 ** 62, 2 ** 63, 2 ** 64 - 1, 10 ** 6]),
                 st.integers(-3, -1), st.integers(0, 2 ** 64 + 5))
OFFSETS = st.lists(st.one_of(st.integers(0, 96), st.sampled_from([2 ** 32, 2 ** 63, 2 ** 64 - 1, 2 ** 64]),
                             st.integers(-2, -1)), min_size=0, max_size=3)
TENSOR_ENTRY = st.one_of(
    st.fixed_dictionaries({"dtype": DTYPES, "shape": st.lists(DIMS, max_size=5), "data_offsets": OFFSETS}),
    st.fixed_dictionaries({"dtype": DTYPES, "shape": st.lists(DIMS, max_size=5), "data_offsets": OFFSETS},
                          optional={"extra": JSON_VALUES}),
    JSON_VALUES,
)
SIZES = st.one_of(st.integers(1, 6), st.sampled_from([10 ** 6, 10 ** 9, 2 ** 31, 2 ** 40, 10 ** 18, 10 ** 30]),
                  st.integers(-2, 0), st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans())
LAYER_SPECS = st.one_of(
    st.builds(lambda a, b: {"class": "Dense", "config": {"in_features": a, "out_features": b}}, SIZES, SIZES),
    st.builds(lambda a, b, k, s, p: {"class": "Conv2D", "config": {"in_channels": a, "out_channels": b, "kernel_size": k,
                                                                      "stride": s, "padding": p}},
              SIZES, SIZES, SIZES | st.lists(SIZES, max_size=3), SIZES, SIZES),
    st.builds(lambda a, b, p: {"class": "LSTM", "config": {"input_size": a, "hidden_size": b, "peepholes": p}},
              SIZES, SIZES, st.booleans() | JSON_VALUES),
    st.builds(lambda a, b, act: {"class": "RNN", "config": {"input_size": a, "hidden_size": b, "activation": act}},
              SIZES, SIZES, st.sampled_from(["tanh", "sigmoid", "relu"]) | JSON_VALUES),
    st.builds(lambda c, cfg: {"class": c, "config": cfg},
              st.sampled_from(sorted(L.REGISTRY) + ["Layer", "Sequential", "__import__", "os.system", "eval"]),
              st.dictionaries(st.sampled_from(["p", "theta", "mean", "std", "kernel_size", "stride", "dtype", "rng",
                                               "weight_init", "bias_init", "return_sequences", "mask_value",
                                               "forget_bias", "unknown"]), JSON_VALUES, max_size=4)),
    JSON_VALUES,
)
ARCHITECTURES = st.one_of(
    st.builds(lambda layers: {"class": "Sequential", "layers": layers}, st.lists(LAYER_SPECS, max_size=4)),
    JSON_VALUES,
)


def craft(header: dict, tail: bytes = b"", raw_header: bytes | None = None) -> bytes:
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + tail


@FUZZ
@given(tensors=st.dictionaries(st.sampled_from(["layers.0.W", "layers.0.b", "layers.1.W", "x", ""]) | st.text(max_size=6),
                               TENSOR_ENTRY, max_size=4),
       arch=ARCHITECTURES | st.just({"class": "Sequential", "layers": [
           {"class": "Dense", "config": {"in_features": 3, "out_features": 2}}]}),
       meta_extra=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=2),
       version=st.sampled_from(["1", "1", "2", 1, None]),
       tail=st.binary(max_size=96))
def test_load_forged_headers(tensors, arch, meta_extra, version, tail):
    meta = {"handgrad": version, "architecture": json.dumps(arch), **meta_extra}
    header = {**tensors, "__metadata__": meta}
    with bounded_memory(4 * 2 ** 20):
        load_outcome(craft(header, tail))


@FUZZ
@given(arch=ARCHITECTURES, tensors=st.booleans(), huge_claim=st.booleans())
def test_load_forged_architectures_never_allocate(arch, tensors, huge_claim):
    header = {"__metadata__": {"handgrad": "1", "architecture": json.dumps(arch)}}
    tail = b""
    if tensors:  # tensors named as the architecture's first layer would want them
        shape = [10 ** 6, 10 ** 6] if huge_claim else [2, 3]
        nbytes = 4 * 10 ** 12 if huge_claim else 24
        header["layers.0.W"] = {"dtype": "F32", "shape": shape, "data_offsets": [0, nbytes]}
        tail = bytes(24)
    with bounded_memory(2 * 2 ** 20):
        load_outcome(craft(header, tail))


@pytest.mark.parametrize("spec", [
    {"class": "Dense", "config": {"in_features": 10 ** 6, "out_features": 10 ** 6}},
    {"class": "Dense", "config": {"in_features": 10 ** 30, "out_features": 10 ** 30}},
    {"class": "Conv2D", "config": {"in_channels": 10 ** 5, "out_channels": 10 ** 5, "kernel_size": [1000, 1000]}},
    {"class": "LSTM", "config": {"input_size": 10 ** 6, "hidden_size": 10 ** 6, "peepholes": True}},
    {"class": "RNN", "config": {"input_size": 10 ** 7, "hidden_size": 10 ** 7}},
], ids=["Dense(1e6,1e6)", "Dense(1e30,1e30)", "Conv2D-huge", "LSTM-huge", "RNN-huge"])
@pytest.mark.parametrize("claim", ["no tensors", "tensors claim the full shape", "tensors small"])
def test_huge_forged_architecture_raises_without_allocating(spec, claim):
    header = {"__metadata__": {"handgrad": "1",
                               "architecture": json.dumps({"class": "Sequential", "layers": [spec] * 3})}}
    tail = b""
    if claim == "tensors claim the full shape":
        header["layers.0.W"] = {"dtype": "F32", "shape": [10 ** 6, 10 ** 6], "data_offsets": [0, 4 * 10 ** 12]}
        header["layers.0.b"] = {"dtype": "F32", "shape": [10 ** 6], "data_offsets": [4 * 10 ** 12, 4 * 10 ** 12 + 4 * 10 ** 6]}
    elif claim == "tensors small":
        header["layers.0.W"] = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
        header["layers.0.b"] = {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}
        tail = bytes(24)
    with bounded_memory(2 ** 20):
        assert load_outcome(craft(header, tail)) == "ValueError"


@pytest.mark.parametrize("where", ["header", "architecture", "config", "metadata value"])
def test_deeply_nested_json_raises_value_error(where):
    deep = "[" * 200_000 + "]" * 200_000
    if where == "header":
        data = craft({}, raw_header=deep.encode())
    elif where == "architecture":
        data = craft({"__metadata__": {"handgrad": "1", "architecture": deep}})
    elif where == "config":
        data = craft({"__metadata__": {"handgrad": "1", "architecture":
                                       '{"class": "Sequential", "layers": [{"class": "Dense", "config": ' + deep + "}]}"}})
    else:
        data = craft({}, raw_header=('{"__metadata__": {"handgrad": "1", "architecture": ' + deep + "}}").encode())
    with bounded_memory(64 * 2 ** 20):
        assert load_outcome(data) == "ValueError"


@pytest.mark.parametrize("raw", [
    b"", b"\x00", b"\x00" * 8, b"\xff" * 8 + b"{}", struct.pack("<Q", 2) + b"{}",
    struct.pack("<Q", 2 ** 63) + b"{}", struct.pack("<Q", 100 * 2 ** 20 + 1) + b"{}",
    struct.pack("<Q", 4) + b"null", struct.pack("<Q", 2) + b"[]", struct.pack("<Q", 1) + b"1" * 5000,
    struct.pack("<Q", 5000) + b"1" * 5000,  # a 5000-digit JSON number (Python's int-digits limit)
    b"PK\x03\x04" + b"\x00" * 60,  # a zip (what numpy.savez / torch.save write)
    b"\x93NUMPY\x01\x00" + b"\x00" * 60,  # a .npy
    pickle.dumps({"a": 1}),
])
def test_non_model_bytes_raise_value_error(raw):
    assert load_outcome(raw) == "ValueError"


def test_directory_raises_value_error(tmp_path):
    with pytest.raises(ValueError):
        hg.load(tmp_path)


# ----------------------------------------------------------------------------------------
# never pickle
# ----------------------------------------------------------------------------------------
class _Boom:
    executed = False

    def __reduce__(self):
        return (_mark_executed, ())


def _mark_executed():
    _Boom.executed = True
    return "pwned"


@pytest.fixture
def no_pickle(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the loader called pickle / numpy.load")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    real_np_load = np.load

    def np_load(*args, **kwargs):
        if kwargs.get("allow_pickle"):
            raise AssertionError("numpy.load(allow_pickle=True) called")
        raise AssertionError("numpy.load called")

    monkeypatch.setattr(np, "load", np_load)
    yield
    monkeypatch.setattr(np, "load", real_np_load)


def test_loader_never_unpickles(no_pickle):
    for name, data in VALID.items():
        assert load_outcome(data) == "loaded", name
        for i in range(0, len(data), max(1, len(data) // 40)):
            load_outcome(mutate(data, ("flip", [(i, 3)], False)))


def test_pickle_payload_is_not_executed():
    blob = pickle.dumps(_Boom())
    _Boom.executed = False
    # as the whole file, as the header, as a metadata value, as a "tensor"
    candidates = [
        blob,
        craft({}, raw_header=blob),
        craft({"__metadata__": {"handgrad": "1", "architecture": blob.decode("latin-1")}}),
        craft({"__metadata__": {"handgrad": "1", "architecture": json.dumps({"class": "Sequential", "layers": []})},
               "layers.0.W": {"dtype": "F32", "shape": [len(blob) // 4], "data_offsets": [0, len(blob) // 4 * 4]}},
              blob),
    ]
    for data in candidates:
        assert load_outcome(data) == "ValueError"
    assert not _Boom.executed


def test_checkpoint_loading_never_unpickles(no_pickle, tmp_path):
    x = np.random.default_rng(0).standard_normal((24, 4)).astype(np.float32)
    y = np.arange(24) % 3
    model = hg.Sequential([L.Dense(4, 3, rng=0)])
    ckdir = str(tmp_path / "ckpt")
    hg.fit(model, losses.SoftmaxCrossEntropy(), optim.Adam(model, 0.01), x, y, epochs=1, batch_size=8,
           checkpoint_dir=ckdir, checkpoint_every=1)
    model2 = hg.Sequential([L.Dense(4, 3, rng=0)])
    hg.fit(model2, losses.SoftmaxCrossEntropy(), optim.Adam(model2, 0.01), x, y, epochs=1, batch_size=8,
           resume_from=ckdir)
    ck.load_checkpoint(ck.latest(ckdir))


# ----------------------------------------------------------------------------------------
# training checkpoints: damaged files must resume or raise ValueError
# ----------------------------------------------------------------------------------------
_CK_X = np.random.default_rng(1).standard_normal((24, 4)).astype(np.float32)
_CK_Y = np.arange(24) % 3


def _ck_model():
    return hg.Sequential([L.Dense(4, 5, rng=0), L.ReLU(), L.Dropout(0.25), L.Dense(5, 3, rng=1)])


def _ck_fit(model, **kw):
    return hg.fit(model, losses.SoftmaxCrossEntropy(), optim.Adam(model, 0.01), _CK_X, _CK_Y, epochs=2, batch_size=8,
                  seed=3, progress_bar=False, **kw)


def _valid_checkpoint() -> bytes:
    d = tempfile.mkdtemp(dir=SCRATCH)
    calls = []

    def crash(b, logs):
        calls.append(b)
        if len(calls) == 4:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        _ck_fit(_ck_model(), checkpoint_dir=d, checkpoint_every=2, callbacks=[hg.LambdaCallback(on_batch_end=crash)])
    with open(ck.latest(d), "rb") as fh:
        return fh.read()


VALID_CHECKPOINT = _valid_checkpoint()


def resume_outcome(data: bytes) -> str:
    d = os.path.join(SCRATCH, "resume")  # resuming writes nothing (no checkpoint_dir): one folder will do
    os.makedirs(d, exist_ok=True)
    _write(os.path.join(d, "ckpt-0000000003.safetensors"), data)
    with time_limit():
        try:
            _ck_fit(_ck_model(), resume_from=d)
        except ValueError:
            return "ValueError"
    return "resumed"


def test_valid_checkpoint_resumes():
    assert resume_outcome(VALID_CHECKPOINT) == "resumed"


@FUZZ
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=2))
def test_resume_from_mutated_checkpoint(mutations):
    data = VALID_CHECKPOINT
    for m in mutations:
        data = mutate(data, m)
    resume_outcome(data)


@FUZZ
@given(pos=st.integers(0, 2 ** 20), bit=st.integers(0, 6))
def test_resume_from_checkpoint_with_a_flipped_bit_in_its_run_state(pos, bit):
    # a flipped bit inside the JSON run state, with the file's framing kept valid: the kind of
    # damage that safetensors cannot notice
    n = struct.unpack("<Q", VALID_CHECKPOINT[:8])[0]
    header = json.loads(VALID_CHECKPOINT[8:8 + n])
    state = bytearray(header["__metadata__"]["state"].encode())
    state[pos % len(state)] ^= 1 << bit
    try:
        header["__metadata__"]["state"] = state.decode("utf-8")
    except UnicodeDecodeError:
        return
    h = json.dumps(header).encode()
    resume_outcome(struct.pack("<Q", len(h)) + h + VALID_CHECKPOINT[8 + n:])


# ----------------------------------------------------------------------------------------
# IDX: parse_idx and read_idx
# ----------------------------------------------------------------------------------------
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
             0x0E: np.dtype(">f8")}


def idx_outcome(data: bytes) -> str:
    with time_limit():
        try:
            arr = parse_idx(data)
        except ValueError:
            return "ValueError"
    # a parsed array is exactly what the header declares
    code, ndim = data[2], data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    assert arr.shape == shape
    assert arr.dtype == np.dtype(IDX_TYPES[code]).newbyteorder("=")
    assert arr.dtype.isnative
    assert arr.nbytes == len(data) - 4 - 4 * ndim
    assert arr.flags.writeable and arr.flags.c_contiguous
    return "array"


def read_idx_outcome(data: bytes, gz: bool) -> str:
    path = _write("data.idx.gz" if gz else "data.idx", data)
    with time_limit():
        try:
            arr = read_idx(path)
        except ValueError:
            return "ValueError"
    assert isinstance(arr, np.ndarray) and arr.dtype.isnative
    return "array"


def _idx(arr) -> bytes:
    path = os.path.join(SCRATCH, "valid.idx")
    write_idx(path, arr, compress=False)
    with open(path, "rb") as fh:
        return fh.read()


_rng = np.random.default_rng(0)
VALID_IDX = [
    _idx(_rng.integers(0, 256, (3, 4, 5)).astype(np.uint8)),
    _idx(_rng.integers(-128, 128, (7,)).astype(np.int8)),
    _idx(_rng.integers(-999, 999, (2, 3)).astype(np.int16)),
    _idx(_rng.integers(-999, 999, (4,)).astype(np.int32)),
    _idx(_rng.standard_normal((2, 1, 3)).astype(np.float32)),
    _idx(_rng.standard_normal((1, 2, 1, 2)).astype(np.float64)),
    _idx(np.zeros((0, 28, 28), np.uint8)),
]
VALID_IDX_GZ = [gzip.compress(d, mtime=0) for d in VALID_IDX]


@FUZZ
@given(code=st.sampled_from(sorted(IDX_TYPES)) | st.integers(0, 255),
       dims=st.lists(st.integers(0, 6) | st.sampled_from([2 ** 31, 2 ** 32 - 1, 2 ** 16, 10 ** 9]) | st.integers(0, 2 ** 32 - 1),
                     max_size=8),
       ndim_override=st.none() | st.integers(0, 255),
       magic=st.sampled_from([b"\x00\x00"]) | st.binary(min_size=2, max_size=2),
       payload=st.binary(max_size=256), exact=st.booleans())
def test_parse_idx_forged_headers(code, dims, ndim_override, magic, payload, exact):
    ndim = len(dims) if ndim_override is None else ndim_override
    header = magic + bytes([code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
    if exact and code in IDX_TYPES:  # sometimes make the payload as long as declared (when small)
        count = int(np.prod(dims, dtype=object)) if dims else 0
        need = count * np.dtype(IDX_TYPES[code]).itemsize
        if need <= 4096:
            payload = (payload * (need // max(1, len(payload)) + 1))[:need] if payload else bytes(need)
    data = header + payload
    with bounded_memory(4 * len(data) + 2 ** 20):
        idx_outcome(data)


@FUZZ
@given(i=st.integers(0, len(VALID_IDX) - 1), cut=st.integers(0, 2 ** 20))
def test_parse_idx_truncated_raises(i, cut):
    data = VALID_IDX[i]
    assert idx_outcome(data[:cut % len(data)]) == "ValueError"


@FUZZ
@given(i=st.integers(0, len(VALID_IDX) - 1), mutations=st.lists(MUTATIONS, min_size=1, max_size=3), gz=st.booleans())
def test_read_idx_mutated_files(i, mutations, gz):
    data = VALID_IDX[i]
    for kind, *args, _ in mutations:  # (the "header" flag is meaningless here: mutate anywhere)
        data = _mutate_anywhere(data, (kind, *args))
    if gz:
        data = gzip.compress(data, mtime=0)
    read_idx_outcome(data, gz)
    if not gz:
        idx_outcome(data)


def _mutate_anywhere(data: bytes, mutation) -> bytes:
    if not data:
        return data
    kind, *args = mutation
    b = bytearray(data)
    if kind == "flip":
        for pos, bit in args[0]:
            b[pos % len(b)] ^= 1 << bit
    elif kind == "overwrite":
        pos = args[0] % len(b)
        b[pos:pos + len(args[1])] = args[1]
    elif kind == "insert":
        pos = args[0] % len(b)
        b[pos:pos] = args[1]
    elif kind == "delete":
        pos = args[0] % len(b)
        del b[pos:pos + args[1]]
    elif kind == "digit":
        b[args[0] % len(b)] = args[1]
    return bytes(b)


@FUZZ
@given(i=st.integers(0, len(VALID_IDX_GZ) - 1), mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
def test_read_idx_corrupt_gzip(i, mutations):
    data = VALID_IDX_GZ[i]
    for kind, *args, _ in mutations:
        data = _mutate_anywhere(data, (kind, *args))
    if not data.startswith(b"\x1f\x8b"):
        data = b"\x1f\x8b" + data[2:]  # keep it looking like gzip so the gzip path is exercised
    read_idx_outcome(data, gz=True)


@FUZZ
@given(i=st.integers(0, len(VALID_IDX_GZ) - 1), cut=st.integers(0, 2 ** 20))
def test_read_idx_truncated_gzip_raises(i, cut):
    data = VALID_IDX_GZ[i]
    assert read_idx_outcome(data[:max(2, cut % len(data))], gz=True) == "ValueError"


@pytest.mark.parametrize("dims", [(2 ** 32 - 1,) * 3, (2 ** 31, 2 ** 31), (10 ** 9, 784), (1,) * 255, (0,) * 255])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_huge_declared_dimensions(dims, gz):
    data = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(100)
    if gz:
        data = gzip.compress(data)
    # (gzip data is decompressed in 4 MiB chunks: that buffer is the floor of the peak)
    with bounded_memory(16 * 2 ** 20):
        assert read_idx_outcome(data, gz) == "ValueError"


@pytest.mark.parametrize("raw", [
    b"\x1f\x8b", b"\x1f\x8b\x08", b"\x1f\x8b\x08\x00" + b"\x00" * 6,  # header only
    b"\x1f\x8b\x08\xff" + b"\x00" * 30,  # every flag set, nothing behind them
    gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab") + b"trailing garbage",
    gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")[:-8],  # no CRC / size trailer
    gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")[:-4] + b"\xff\xff\xff\xff",  # wrong size
    b"\x1f\x8b\x08\x00" + b"\x00" * 6 + zlib.compress(b"xyz")[2:],  # zlib body without the deflate framing
])
def test_read_idx_broken_gzip_raises(raw):
    assert read_idx_outcome(raw, gz=True) == "ValueError"


def test_read_idx_multi_member_gzip_is_concatenated():
    body = b"\x00\x00\x08\x01\x00\x00\x00\x04abcd"
    data = gzip.compress(body[:6]) + gzip.compress(body[6:])  # two members: valid gzip
    assert read_idx_outcome(data, gz=True) == "array"
