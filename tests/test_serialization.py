"""``hg.save`` / ``hg.load`` / ``hg.serialization.read_metadata``: round trips, atomicity, and hostile
or broken files (which must raise ``ValueError`` and never run code or unpickle)."""
from __future__ import annotations

import json
import os
import pickle
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import handgrad as hg
from handgrad import layers as L


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
# One factory per layer class: (layer, sample input shape without the batch axis). Layers of
# the public contract that this version may not ship yet are included so that they are
# covered as soon as they are registered.
def _factories():
    f = {
        "Dense": lambda: (L.Dense(6, 4, rng=3, bias_init="normal"), (6,)),
        "Sigmoid": lambda: (L.Sigmoid(), (5,)),
        "Tanh": lambda: (L.Tanh(), (5,)),
        "ReLU": lambda: (L.ReLU(), (5,)),
        "Identity": lambda: (L.Identity(), (5,)),
        "Softmax": lambda: (L.Softmax(), (5,)),
        "BinaryThreshold": lambda: (L.BinaryThreshold(theta=0.25), (5,)),
        "StochasticBinary": lambda: (L.StochasticBinary(), (5,)),
        "Dropout": lambda: (L.Dropout(p=0.3), (5,)),
        "Flatten": lambda: (L.Flatten(), (2, 3, 4)),
        "Normalize": lambda: (L.Normalize(mean=0.25, std=1.75), (5,)),
    }
    R = L.REGISTRY
    if "Conv2D" in R:
        f["Conv2D"] = lambda: (R["Conv2D"](2, 3, kernel_size=(3, 2), stride=(1, 2), padding=1, rng=1), (2, 6, 5))
    if "MaxPool2D" in R:
        f["MaxPool2D"] = lambda: (R["MaxPool2D"](2, stride=1), (2, 5, 5))
    if "AvgPool2D" in R:
        f["AvgPool2D"] = lambda: (R["AvgPool2D"]((2, 2)), (2, 4, 4))
    if "RNN" in R:
        f["RNN"] = lambda: (R["RNN"](3, 4, activation="sigmoid", return_sequences=False, rng=1), (5, 3))
    if "LSTM" in R:
        f["LSTM"] = lambda: (R["LSTM"](3, 4, peepholes=True, return_sequences=True, rng=1), (5, 3))
    return f


FACTORIES = _factories()
LAYER_NAMES = sorted(L.REGISTRY)


def build(name):
    if name in FACTORIES:
        return FACTORIES[name]()
    return L.REGISTRY[name](), (5,)  # a layer this file does not know yet: default config


def perturb_params(layer, dtype, seed=0):
    """Give every param random values of ``dtype`` (params may be replaced, per the contract)."""
    rng = np.random.default_rng(seed)
    for k, p in list(layer.params.items()):
        layer.params[k] = rng.standard_normal(p.shape).astype(dtype)
    layer.zero_grads()


def mixed_model(dtype="float32"):
    """A model that uses every layer type this version ships, with non-default configs."""
    m = hg.Sequential([
        L.Normalize(0.3, 2.0), L.Dense(6, 5, rng=1, bias_init="normal", dtype=dtype), L.Sigmoid(),
        L.Dropout(0.2), L.Dense(5, 5, rng=2, dtype=dtype), L.Tanh(), L.Identity(), L.ReLU(),
        L.BinaryThreshold(theta=0.1), L.StochasticBinary(), L.Flatten(),
        L.Dense(5, 4, rng=3, weight_init="xavier_uniform", dtype=dtype), L.Softmax(),
    ])
    m.layers[4].trainable = False
    return m


def assert_same_model(a, b):
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert type(la) is type(lb)
        assert la.get_config() == lb.get_config()
        assert la.trainable == lb.trainable
        assert la.params.keys() == lb.params.keys()
        assert la.grads.keys() == lb.grads.keys()
        for k in la.params:
            pa, pb = np.asarray(la.params[k]), np.asarray(lb.params[k])
            assert pa.dtype == pb.dtype, k
            assert pa.shape == pb.shape, k
            assert pa.tobytes() == pb.tobytes(), f"{type(la).__name__}.{k} not bit-identical"
            assert lb.grads[k].shape == pb.shape
            assert pb.flags.writeable, "loaded params must accept in-place optimizer updates"


def craft(tensors, metadata=None, header_extra=None):
    """Hand-made safetensors bytes: ``tensors`` maps name -> (dtype string, shape, raw bytes)."""
    header, blobs, off = {}, [], 0
    for name, (dt, shape, raw) in tensors.items():
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    if header_extra:
        header.update(header_extra)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def dense_arch(*specs):
    return json.dumps({"class": "Sequential", "layers": list(specs)})


DENSE_3_2 = {"class": "Dense", "config": {"in_features": 3, "out_features": 2}}


def f32(shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape).astype("<f4")
    return ("F32", shape, a.tobytes())


def hg_meta(arch):
    return {"handgrad": "1", "architecture": arch}


def write(tmp_path, data, name="m.safetensors"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.fixture
def saved(tmp_path):
    model = mixed_model()
    path = tmp_path / "model.safetensors"
    hg.save(model, path, metadata={"note": "fixture"})
    return model, path, path.read_bytes()


# ----------------------------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", LAYER_NAMES)
def test_every_layer_type_round_trips(tmp_path, name, dtype):
    layer, in_shape = build(name)
    perturb_params(layer, dtype, seed=len(name))
    layer.trainable = name != "Dense"  # exercise the flag both ways
    model = hg.Sequential([layer])
    path = tmp_path / f"{name}.safetensors"
    hg.save(model, path)
    loaded = hg.load(path)
    assert_same_model(model, loaded)
    x = np.random.default_rng(0).standard_normal((3, *in_shape)).astype(dtype)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mixed_model_round_trip_bit_for_bit(tmp_path, dtype):
    model = mixed_model(dtype)
    path = tmp_path / "mixed.safetensors"
    hg.save(model, path)
    loaded = hg.load(path)
    assert_same_model(model, loaded)
    assert loaded.layers[4].trainable is False
    assert loaded.layers[3].p == 0.2
    assert loaded.layers[8].theta == 0.1
    assert (loaded.layers[0].mean, loaded.layers[0].std) == (0.3, 2.0)
    assert loaded.layers[11].weight_init == "xavier_uniform"
    assert loaded.dtype == np.dtype(dtype)
    x = np.random.default_rng(1).standard_normal((17, 6)).astype(dtype)
    a, b = model.predict(x), loaded.predict(x)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


def test_trained_model_round_trip_and_predictions(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 6)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    model = hg.Sequential([L.Dense(6, 8, rng=0), L.ReLU(), L.Dropout(0.5), L.Dense(8, 3, rng=1)])
    hg.fit(model, hg.losses.SoftmaxCrossEntropy(), hg.optim.Adam(model, 1e-2), x, y, epochs=2)
    hg.save(model, tmp_path / "t.safetensors")
    loaded = hg.load(tmp_path / "t.safetensors")
    assert_same_model(model, loaded)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    # the loaded model trains on (its grads exist and match params)
    hg.fit(loaded, hg.losses.SoftmaxCrossEntropy(), hg.optim.SGD(loaded, 0.01), x, y, epochs=1)


def test_special_float_values_survive(tmp_path):
    layer = L.Dense(3, 2, dtype="float64")
    layer.params["W"][...] = [[np.inf, -np.inf, -0.0], [np.nan, 5e-324, np.finfo(np.float64).max]]
    model = hg.Sequential([layer])
    hg.save(model, tmp_path / "s.safetensors")
    assert_same_model(model, hg.load(tmp_path / "s.safetensors"))


@pytest.mark.parametrize("filename", ["model.safetensors", "model", "weights.bin", "a.b.c"])
def test_exactly_one_file_at_exactly_the_path(tmp_path, filename):
    folder = tmp_path / "out"
    folder.mkdir()
    hg.save(mixed_model(), folder / filename)
    assert os.listdir(folder) == [filename]
    hg.save(mixed_model(), str(folder / filename))  # str path, overwrite
    assert os.listdir(folder) == [filename]
    assert isinstance(hg.load(str(folder / filename)), hg.Sequential)


def test_save_overwrites_previous_file(tmp_path):
    path = tmp_path / "m.safetensors"
    hg.save(hg.Sequential([L.Dense(3, 2, rng=0)]), path)
    m2 = hg.Sequential([L.Dense(4, 5, rng=1)])
    hg.save(m2, path)
    assert_same_model(m2, hg.load(path))


def test_model_without_parameters_round_trips(tmp_path):
    model = hg.Sequential([L.Normalize(1.0, 2.0), L.ReLU()])
    hg.save(model, tmp_path / "np.safetensors")
    loaded = hg.load(tmp_path / "np.safetensors")
    assert_same_model(model, loaded)


def test_metadata_round_trip(tmp_path):
    meta = {"preset": "mlp", "input_shape": [1, 28, 28], "nested": {"a": [1, 2.5, None, True]},
            "unicode": "Größe ✓", "lr": 0.05}
    path = tmp_path / "meta.safetensors"
    hg.save(mixed_model(), path, metadata=meta)
    assert hg.serialization.read_metadata(path) == meta
    assert isinstance(hg.load(path), hg.Sequential)


def test_metadata_defaults_to_empty(tmp_path):
    path = tmp_path / "nometa.safetensors"
    hg.save(mixed_model(), path)
    assert hg.serialization.read_metadata(path) == {}


def test_save_rejects_non_model(tmp_path):
    with pytest.raises(TypeError, match="save"):
        hg.save(L.Dense(2, 2), tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------
# atomic save
# ----------------------------------------------------------------------------------------
def _only_the_previous_file(tmp_path, path, previous):
    assert os.listdir(tmp_path) == [path.name], "temporary files left behind"
    assert path.read_bytes() == previous


def test_failing_write_midway_leaves_previous_file(saved, tmp_path, monkeypatch):
    _, path, previous = saved
    import handgrad.serialization as hio

    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()
            return False

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    monkeypatch.setattr(hio.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    bigger = hg.Sequential([L.Dense(50, 40, rng=9)])
    with pytest.raises(OSError):
        hg.save(bigger, path)
    monkeypatch.undo()
    _only_the_previous_file(tmp_path, path, previous)
    assert isinstance(hg.load(path), hg.Sequential)


def test_failing_fsync_leaves_previous_file(saved, tmp_path, monkeypatch):
    _, path, previous = saved

    def boom(fd):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        hg.save(hg.Sequential([L.Dense(7, 7)]), path)
    monkeypatch.undo()
    _only_the_previous_file(tmp_path, path, previous)


def test_failing_rename_leaves_previous_file(saved, tmp_path, monkeypatch):
    _, path, previous = saved

    def boom(src, dst):
        raise OSError(1, "rename failed")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        hg.save(hg.Sequential([L.Dense(7, 7)]), path)
    monkeypatch.undo()
    _only_the_previous_file(tmp_path, path, previous)


def test_keyboard_interrupt_during_save_leaves_previous_file(saved, tmp_path, monkeypatch):
    _, path, previous = saved

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        hg.save(hg.Sequential([L.Dense(7, 7)]), path)
    monkeypatch.undo()
    _only_the_previous_file(tmp_path, path, previous)


@pytest.mark.parametrize("bad_meta", [{"x": object()}, {"x": {1, 2}}, {"f": lambda: 0}])
def test_unserializable_metadata_leaves_previous_file(saved, tmp_path, bad_meta):
    _, path, previous = saved
    with pytest.raises((TypeError, ValueError)):
        hg.save(hg.Sequential([L.Dense(7, 7)]), path, metadata=bad_meta)
    _only_the_previous_file(tmp_path, path, previous)


def test_save_into_missing_folder_fails_cleanly(tmp_path):
    with pytest.raises(OSError):
        hg.save(mixed_model(), tmp_path / "missing" / "m.safetensors")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------
# malformed files
# ----------------------------------------------------------------------------------------
def test_empty_file(tmp_path):
    p = write(tmp_path, b"")
    with pytest.raises(ValueError):
        hg.load(p)
    with pytest.raises(ValueError):
        hg.serialization.read_metadata(p)


def test_truncated_files(saved, tmp_path):
    _, _, data = saved
    assert len(data) > 300
    lengths = list(range(0, len(data), 37)) + [len(data) - 1, 7, 8, 9]
    for n in lengths:
        p = write(tmp_path, data[:n], name="trunc.safetensors")
        with pytest.raises(ValueError):
            hg.load(p)


def test_file_with_trailing_garbage(saved, tmp_path):
    _, _, data = saved
    p = write(tmp_path, data + b"\x00garbage")
    with pytest.raises(ValueError):
        hg.load(p)


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4096))
    p = write(tmp_path, rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError):
        hg.load(p)


def test_random_bytes_behind_a_plausible_header_length(tmp_path):
    rng = np.random.default_rng(42)
    body = rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    p = write(tmp_path, struct.pack("<Q", 200) + body)
    with pytest.raises(ValueError):
        hg.load(p)


@pytest.mark.parametrize("n", [100, 2 ** 40, 2 ** 64 - 1])
def test_header_length_larger_than_file(tmp_path, n):
    p = write(tmp_path, struct.pack("<Q", n) + b'{"__metadata__": {}}')
    with pytest.raises(ValueError):
        hg.load(p)


@pytest.mark.parametrize("header", [b"not json", b"[1, 2, 3]", b"\xff\xfe\xfd", b'"string"', b"{"])
def test_malformed_header_json(tmp_path, header):
    p = write(tmp_path, struct.pack("<Q", len(header)) + header)
    with pytest.raises(ValueError):
        hg.load(p)


@pytest.mark.parametrize("unit", [b"[", b'{"a":'], ids=["arrays", "objects"])
def test_deeply_nested_header_json(tmp_path, unit):
    header = unit * 100_000
    p = write(tmp_path, struct.pack("<Q", len(header)) + header)
    with pytest.raises(ValueError):
        hg.load(p)


def test_deeply_nested_architecture_json(tmp_path):
    p = write(tmp_path, craft({}, hg_meta("[" * 100_000)))
    with pytest.raises(ValueError):
        hg.load(p)


def test_deeply_nested_user_metadata(tmp_path):
    meta = hg_meta(dense_arch(DENSE_3_2)) | {"user": "[" * 100_000}
    p = write(tmp_path, craft({"layers.0.W": f32((2, 3)), "layers.0.b": f32((2,))}, meta))
    with pytest.raises(ValueError):
        hg.serialization.read_metadata(p)


def test_valid_safetensors_without_handgrad_metadata(tmp_path):
    from safetensors.numpy import save as st_save

    data = st_save({"layers.0.W": np.zeros((2, 3), np.float32), "layers.0.b": np.zeros(2, np.float32)})
    p = write(tmp_path, data)
    with pytest.raises(ValueError):
        hg.load(p)
    with pytest.raises(ValueError):
        hg.serialization.read_metadata(p)
    # metadata present but not handgrad's
    p2 = write(tmp_path, st_save({"a": np.zeros(1, np.float32)}, metadata={"format": "pt"}), "b.st")
    with pytest.raises(ValueError):
        hg.load(p2)


def test_unsupported_format_version(tmp_path):
    meta = {"handgrad": "999", "architecture": dense_arch(DENSE_3_2)}
    p = write(tmp_path, craft({"layers.0.W": f32((2, 3)), "layers.0.b": f32((2,))}, meta))
    with pytest.raises(ValueError, match="version"):
        hg.load(p)


def test_crafted_valid_file_loads(tmp_path):
    """Sanity check of the ``craft`` helper the malformed cases below rely on."""
    p = write(tmp_path, craft({"layers.0.W": f32((2, 3)), "layers.0.b": f32((2,), 1)},
                              hg_meta(dense_arch(DENSE_3_2))))
    model = hg.load(p)
    assert model.layers[0].params["W"].shape == (2, 3)
    expect = np.frombuffer(f32((2, 3))[2], "<f4").reshape(2, 3)
    np.testing.assert_array_equal(model.layers[0].params["W"], expect)


@pytest.mark.parametrize("cls", ["EvilLayer", "Layer", "Sequential", "__import__", "os.system",
                                 "builtins.eval", "", None, 3])
def test_unknown_layer_class(tmp_path, cls):
    arch = dense_arch({"class": cls, "config": {}})
    p = write(tmp_path, craft({}, hg_meta(arch)))
    with pytest.raises(ValueError):
        hg.load(p)


@pytest.mark.parametrize("arch", [
    "not json at all",
    json.dumps([1, 2]),
    json.dumps({"class": "Functional", "layers": []}),
    json.dumps({"class": "Sequential"}),
    json.dumps({"class": "Sequential", "layers": "Dense"}),
    json.dumps({"class": "Sequential", "layers": ["Dense"]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dense", "config": [3, 2]}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dense", "config": None}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dense", "config": {"in_features": 3}}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dense",
                                                   "config": {"in_features": 3, "out_features": 2, "evil": 1}}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dense",
                                                   "config": {"in_features": -3, "out_features": 2}}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dense",
                                                   "config": {"in_features": "3", "out_features": 2}}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dense",
                                                   "config": {"in_features": 3, "out_features": 2,
                                                              "weight_init": "evil"}}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dropout", "config": {"p": 1.5}}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Dropout", "config": {"p": [0.5]}}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "Normalize", "config": {"std": 0}}]}),
    json.dumps({"class": "Sequential", "layers": [{"class": "BinaryThreshold", "config": {"theta": "x"}}]}),
])
def test_malformed_architecture(tmp_path, arch):
    p = write(tmp_path, craft({}, hg_meta(arch)))
    with pytest.raises(ValueError):
        hg.load(p)


@pytest.mark.parametrize("spec", [
    {"class": ["Dense"], "config": {}},
    {"class": {"name": "Dense"}, "config": {}},
])
def test_unhashable_layer_class_in_architecture(tmp_path, spec):
    p = write(tmp_path, craft({}, hg_meta(dense_arch(spec))))
    with pytest.raises(ValueError):
        hg.load(p)


@pytest.mark.parametrize("meta", [
    {"handgrad": "1"},
    {"handgrad": "1", "architecture": ""},
    {"architecture": dense_arch(DENSE_3_2)},
])
def test_missing_or_empty_architecture(tmp_path, meta):
    p = write(tmp_path, craft({"layers.0.W": f32((2, 3)), "layers.0.b": f32((2,))}, meta))
    with pytest.raises(ValueError):
        hg.load(p)


def test_metadata_that_is_not_string_map(tmp_path):
    for meta in ({"handgrad": "1", "architecture": json.loads(dense_arch(DENSE_3_2))}, ["x"], "x"):
        p = write(tmp_path, craft({}, meta))
        with pytest.raises(ValueError):
            hg.load(p)


def test_tensor_shape_mismatch(tmp_path):
    p = write(tmp_path, craft({"layers.0.W": f32((3, 2)), "layers.0.b": f32((2,))},
                              hg_meta(dense_arch(DENSE_3_2))))
    with pytest.raises(ValueError, match="shape"):
        hg.load(p)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float16, np.bool_, np.complex64])
def test_wrong_dtype_tensor(tmp_path, dtype):
    from safetensors.numpy import save as st_save

    W = np.ones((2, 3), dtype=dtype)
    data = st_save({"layers.0.W": W, "layers.0.b": np.zeros(2, np.float32)},
                   metadata=hg_meta(dense_arch(DENSE_3_2)))
    p = write(tmp_path, data)
    with pytest.raises(ValueError):
        hg.load(p)


@pytest.mark.parametrize("dt,itemsize", [("BF16", 2), ("F8_E4M3", 1), ("F8_E5M2", 1)])
def test_dtype_numpy_cannot_represent(tmp_path, dt, itemsize):
    # a well-formed safetensors tensor in a float format NumPy has no dtype for
    raw = b"\x00" * (6 * itemsize)
    p = write(tmp_path, craft({"layers.0.W": (dt, (2, 3), raw), "layers.0.b": f32((2,))},
                              hg_meta(dense_arch(DENSE_3_2))))
    with pytest.raises(ValueError):
        hg.load(p)


def test_missing_tensor(tmp_path):
    p = write(tmp_path, craft({"layers.0.W": f32((2, 3))}, hg_meta(dense_arch(DENSE_3_2))))
    with pytest.raises(ValueError, match="missing"):
        hg.load(p)


def test_unexpected_extra_tensor(tmp_path):
    p = write(tmp_path, craft({"layers.0.W": f32((2, 3)), "layers.0.b": f32((2,)),
                               "layers.1.W": f32((2, 2))}, hg_meta(dense_arch(DENSE_3_2))))
    with pytest.raises(ValueError):
        hg.load(p)


def test_tensor_offsets_out_of_bounds(tmp_path):
    W = f32((2, 3))
    data = craft({"layers.0.W": ("F32", (2, 3), W[2][:8]), "layers.0.b": f32((2,))},
                 hg_meta(dense_arch(DENSE_3_2)))
    p = write(tmp_path, data)
    with pytest.raises(ValueError):
        hg.load(p)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ValueError):
        hg.load(tmp_path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        hg.load(tmp_path / "nope.safetensors")


def test_read_metadata_malformed_user_metadata(tmp_path):
    for user in ("{not json", "[1, 2]", "3"):
        meta = hg_meta(dense_arch(DENSE_3_2)) | {"user": user}
        p = write(tmp_path, craft({"layers.0.W": f32((2, 3)), "layers.0.b": f32((2,))}, meta))
        with pytest.raises(ValueError):
            hg.serialization.read_metadata(p)


def test_loader_never_unpickles(saved, tmp_path, monkeypatch):
    model, path, _ = saved

    def forbidden(*a, **k):
        raise AssertionError("pickle used while loading")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    loaded = hg.load(path)
    assert_same_model(model, loaded)
    assert hg.serialization.read_metadata(path) == {"note": "fixture"}
    # a file holding a pickle (the classic exploit) is simply not a model file
    evil = pickle.dumps(os.system)  # never loaded; only its bytes are used
    with pytest.raises(ValueError):
        hg.load(write(tmp_path, evil, "evil.pkl"))


def test_file_is_not_a_pickle_or_npz(saved):
    _, _, data = saved
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header["__metadata__"]
    assert meta["handgrad"] == "1"
    arch = json.loads(meta["architecture"])
    assert arch["class"] == "Sequential"
    assert [lyr["class"] for lyr in arch["layers"]][:3] == ["Normalize", "Dense", "Sigmoid"]
    assert header["layers.1.W"]["dtype"] == "F32"
    assert b"\x80\x04" not in data[:2] and not data.startswith(b"PK")


# ----------------------------------------------------------------------------------------
# fuzzing: any mutation gives a model or ValueError, never another exception
# ----------------------------------------------------------------------------------------
def _fuzz_base():
    model = hg.Sequential([L.Normalize(0.5, 2.0), L.Dense(3, 2, rng=0), L.Dropout(0.25), L.ReLU(),
                           L.BinaryThreshold(0.5), L.Dense(2, 2, rng=1, dtype="float64")])
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "fuzz.safetensors")
        hg.save(model, p, metadata={"k": [1, 2]})
        with open(p, "rb") as fh:
            return fh.read()


FUZZ_BASE = _fuzz_base()
# bias mutations towards the header (JSON) where parsing decisions are made
_HEADER_END = 8 + struct.unpack("<Q", FUZZ_BASE[:8])[0]


@settings(derandomize=True, max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.integers(0, _HEADER_END - 1), st.integers(0, len(FUZZ_BASE) - 1)),
                          st.integers(0, 255)), min_size=1, max_size=4),
       st.one_of(st.none(), st.integers(0, len(FUZZ_BASE))))
def test_mutated_files_give_model_or_value_error(tmp_path_factory, mutations, cut):
    data = bytearray(FUZZ_BASE)
    for pos, byte in mutations:
        data[pos] = byte
    if cut is not None:
        data = data[:cut]
    p = tmp_path_factory.mktemp("fuzz") / "m.safetensors"
    p.write_bytes(bytes(data))
    try:
        model = hg.load(p)
    except ValueError:
        return
    assert isinstance(model, hg.Sequential)
    for layer in model.layers:
        for k, v in layer.params.items():
            assert v.dtype in (np.float32, np.float64)
            assert layer.grads[k].shape == v.shape
