"""``handgrad.data``: the IDX format, the Fashion-MNIST loaders and preprocessing."""
from __future__ import annotations

import gzip
import os
import tracemalloc

import numpy as np
import pytest

import handgrad as hg
from handgrad import data
from handgrad.data import fashion


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def idx_bytes(code, shape, payload):
    return bytes([0, 0, code, len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape) + payload


def write_fake_fashion(folder, n_train, n_test, gz=True, fill=0):
    """Four tiny IDX files: images (n, 28, 28) uint8 filled with ``fill``, labels 0..9."""
    os.makedirs(folder, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = np.full((n, 28, 28), fill, dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        data.write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), imgs)
        data.write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labels)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $HANDGRAD_DATA and a system folder that does not exist."""
    monkeypatch.delenv("HANDGRAD_DATA", raising=False)
    monkeypatch.setattr(fashion, "SYSTEM_DIR", str(tmp_path / "no-such-system-dir"))
    return tmp_path


@pytest.fixture(scope="module")
def subset():
    return data.load_fashion_mnist_subset()


# ----------------------------------------------------------------------------------------
# IDX round trips
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5), (1, 1, 1, 2)])
def test_idx_round_trip(tmp_path, dtype, suffix, shape):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        a = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    data.write_idx(path, a)
    b = data.read_idx(path)
    assert b.dtype == np.dtype(dtype)
    assert b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == [path.name]


def test_idx_header_layout(tmp_path):
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    data.write_idx(tmp_path / "plain", a)
    raw = (tmp_path / "plain").read_bytes()
    # magic: 0, 0, type 0x0C (int32), 2 dims; sizes big-endian; data big-endian
    assert raw[:4] == bytes([0, 0, 0x0C, 2])
    assert raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert raw[12:] == a.astype(">i4").tobytes()
    assert len(raw) == 12 + 6 * 4


def test_idx_gz_is_compressed_and_detected_by_content(tmp_path):
    a = np.zeros((50, 28, 28), np.uint8)
    data.write_idx(tmp_path / "x.gz", a)
    raw = (tmp_path / "x.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert len(raw) < a.nbytes // 10
    # explicit compress flag on a name without .gz; reading sniffs the content
    data.write_idx(tmp_path / "y.idx", a, compress=True)
    assert (tmp_path / "y.idx").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(data.read_idx(tmp_path / "y.idx"), a)
    # and the reverse: plain bytes in a file named .gz
    data.write_idx(tmp_path / "z.gz", a, compress=False)
    assert (tmp_path / "z.gz").read_bytes()[:3] == b"\x00\x00\x08"
    np.testing.assert_array_equal(data.read_idx(tmp_path / "z.gz"), a)


def test_parse_idx_reads_bytes():
    raw = idx_bytes(0x0D, (2,), np.array([1.5, -2.0], ">f4").tobytes())
    np.testing.assert_array_equal(data.parse_idx(raw), np.array([1.5, -2.0], np.float32))


def test_write_idx_rejects_unsupported(tmp_path):
    with pytest.raises(TypeError, match="write_idx"):
        data.write_idx(tmp_path / "b", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="write_idx"):
        data.write_idx(tmp_path / "c", np.array(5, np.uint8))
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------
# malformed IDX
# ----------------------------------------------------------------------------------------
MALFORMED = {
    "empty": b"",
    "too-short": b"\x00\x00",
    "bad-magic-first": idx_bytes(0x08, (2,), b"\x01\x02").replace(b"\x00", b"\x01", 1),
    "bad-magic-second": b"\x00\x07\x08\x01" + (2).to_bytes(4, "big") + b"\x01\x02",
    "unknown-type-0x0a": idx_bytes(0x0A, (2,), b"\x01\x02"),
    "unknown-type-0xff": idx_bytes(0xFF, (2,), b"\x01\x02"),
    "zero-dims": bytes([0, 0, 0x08, 0]),
    "dims-beyond-file": bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big"),
    "truncated-data": idx_bytes(0x08, (3, 4), bytes(11)),
    "truncated-int32": idx_bytes(0x0C, (3,), bytes(11)),
    "extra-data": idx_bytes(0x08, (3,), bytes(4)),
    "huge-shape": idx_bytes(0x08, (2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1), bytes(10)),
    "huge-float64": idx_bytes(0x0E, (60000, 60000, 60000), bytes(64)),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("gz", [False, True])
def test_malformed_idx_raises_value_error(tmp_path, name, gz):
    raw = MALFORMED[name]
    if gz:
        raw = gzip.compress(raw)
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match="read_idx"):
        data.read_idx(path)
    with pytest.raises(ValueError):
        data.parse_idx(MALFORMED[name])


@pytest.mark.parametrize("gz", [False, True])
def test_huge_declared_shape_does_not_allocate(tmp_path, gz):
    raw = idx_bytes(0x0E, (100_000, 100_000, 1000), bytes(80))
    path = tmp_path / "huge"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            data.read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2 ** 20, f"peak allocation {peak} bytes for a {len(raw)}-byte file"


def test_reading_a_small_gz_file_allocates_little(tmp_path):
    a = np.arange(100, dtype=np.uint8)
    data.write_idx(tmp_path / "small.gz", a)
    tracemalloc.start()
    try:
        b = data.read_idx(tmp_path / "small.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(a, b)
    assert peak < 5 * 2 ** 20, f"peak allocation {peak} bytes to read 100 bytes of data"


def test_corrupt_gzip_raises_value_error(tmp_path):
    good = gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))))
    for raw in (b"\x1f\x8b" + b"garbage" * 5, good[: len(good) // 2], good[:-4] + b"\x00\x00\x00\x00"):
        path = tmp_path / "c.gz"
        path.write_bytes(raw)
        with pytest.raises(ValueError, match="read_idx"):
            data.read_idx(path)


# ----------------------------------------------------------------------------------------
# Fashion-MNIST search order
# ----------------------------------------------------------------------------------------
def test_loader_uses_given_folder_first(isolated, monkeypatch):
    given, env, system = isolated / "given", isolated / "env", isolated / "system"
    write_fake_fashion(given, 2, 1)
    write_fake_fashion(env, 3, 2)
    write_fake_fashion(system, 4, 3)
    monkeypatch.setenv("HANDGRAD_DATA", str(env))
    monkeypatch.setattr(fashion, "SYSTEM_DIR", str(system))
    (x, y), (xt, yt) = data.load_fashion_mnist(given)
    assert x.shape == (2, 28, 28) and xt.shape == (1, 28, 28)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1])
    # also through data.load and with a str path
    (x2, _), _ = data.load("fashion-mnist", str(given))
    assert x2.shape[0] == 2


def test_loader_falls_back_to_env_then_system(isolated, monkeypatch):
    env, system = isolated / "env", isolated / "system"
    write_fake_fashion(env, 3, 2, gz=False)
    write_fake_fashion(system, 4, 3)
    monkeypatch.setattr(fashion, "SYSTEM_DIR", str(system))
    # no env: system folder
    (x, _), (xt, _) = data.load_fashion_mnist()
    assert (x.shape[0], xt.shape[0]) == (4, 3)
    # env set: it wins over the system folder
    monkeypatch.setenv("HANDGRAD_DATA", str(env))
    (x, _), (xt, _) = data.load_fashion_mnist()
    assert (x.shape[0], xt.shape[0]) == (3, 2)
    # a given folder without the files is skipped
    empty = isolated / "empty"
    empty.mkdir()
    (x, _), _ = data.load_fashion_mnist(empty)
    assert x.shape[0] == 3


def test_env_subfolder_fashion_mnist_is_searched_first(isolated, monkeypatch):
    env = isolated / "env"
    write_fake_fashion(env, 3, 2)
    write_fake_fashion(env / "fashion-mnist", 5, 1)
    monkeypatch.setenv("HANDGRAD_DATA", str(env))
    (x, _), _ = data.load_fashion_mnist()
    assert x.shape[0] == 5


def test_folder_with_only_some_files_is_skipped(isolated, monkeypatch):
    partial, env = isolated / "partial", isolated / "env"
    write_fake_fashion(partial, 2, 2)
    os.unlink(partial / "t10k-labels-idx1-ubyte.gz")
    write_fake_fashion(env, 3, 2)
    monkeypatch.setenv("HANDGRAD_DATA", str(env))
    (x, _), _ = data.load_fashion_mnist(partial)
    assert x.shape[0] == 3


def test_loader_reads_pixels_and_labels(isolated):
    folder = isolated / "px"
    write_fake_fashion(folder, 12, 3, fill=200)
    (x, y), (xt, yt) = data.load_fashion_mnist(folder)
    assert (x == 200).all()
    np.testing.assert_array_equal(y, np.arange(12) % 10)
    np.testing.assert_array_equal(yt, [0, 1, 2])


def test_nothing_found_lists_every_folder(isolated, monkeypatch):
    given, env = isolated / "given-missing", isolated / "env-missing"
    monkeypatch.setenv("HANDGRAD_DATA", str(env))
    with pytest.raises(FileNotFoundError) as info:
        data.load_fashion_mnist(given)
    msg = str(info.value)
    for folder in (given, env, env / "fashion-mnist", isolated / "no-such-system-dir"):
        assert str(folder) in msg
    assert "train-images-idx3-ubyte" in msg
    assert "load_fashion_mnist_subset" in msg


def test_nothing_found_without_env(isolated):
    with pytest.raises(FileNotFoundError) as info:
        data.load_fashion_mnist()
    assert str(isolated / "no-such-system-dir") in str(info.value)


def test_mismatched_images_and_labels_raise(isolated):
    folder = isolated / "mismatch"
    write_fake_fashion(folder, 4, 2)
    data.write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="load_fashion_mnist"):
        data.load_fashion_mnist(folder)


def test_labels_above_nine_raise(isolated):
    folder = isolated / "badlabels"
    write_fake_fashion(folder, 4, 2)
    data.write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([3, 10], np.uint8))
    with pytest.raises(ValueError, match="labels"):
        data.load_fashion_mnist(folder)


def test_data_load_unknown_name():
    with pytest.raises(ValueError, match="data.load"):
        data.load("mnist-digits")


# ----------------------------------------------------------------------------------------
# the shipped subset
# ----------------------------------------------------------------------------------------
def test_shipped_subset_shapes_and_balance(subset):
    (x, y), (xt, yt) = subset
    assert x.shape == (6000, 28, 28) and xt.shape == (1000, 28, 28)
    assert x.dtype == np.uint8 and xt.dtype == np.uint8
    assert y.shape == (6000,) and yt.shape == (1000,)
    assert y.dtype == np.int64 and yt.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [600] * 10)
    np.testing.assert_array_equal(np.bincount(yt, minlength=10), [100] * 10)
    # real images, not blank: pixels use the whole range and the mean is Fashion-MNIST-like
    assert x.min() == 0 and x.max() == 255
    assert 0.2 < x.mean() / 255 < 0.4
    assert len(data.CLASSES) == 10


def test_shipped_subset_train_and_test_are_different_images(subset):
    (x, _), (xt, _) = subset
    train = {img.tobytes() for img in x}
    overlap = sum(img.tobytes() in train for img in xt)
    assert overlap <= 10  # Fashion-MNIST itself holds a few duplicates


def test_subset_via_data_load(subset):
    (x, y), _ = data.load("fashion-mnist-subset")
    np.testing.assert_array_equal(x, subset[0][0])
    np.testing.assert_array_equal(y, subset[0][1])


# ----------------------------------------------------------------------------------------
# preprocessing
# ----------------------------------------------------------------------------------------
def test_to_float_scales_and_flattens():
    imgs = np.array([[[0, 255], [51, 102]], [[255, 255], [0, 0]]], dtype=np.uint8)
    x = data.to_float(imgs)
    assert x.dtype == np.float32
    assert x.shape == (2, 4)
    np.testing.assert_allclose(x[0], [0.0, 1.0, 0.2, 0.4], rtol=1e-6)
    x2 = data.to_float(imgs, flatten=False)
    assert x2.shape == (2, 2, 2)
    x3 = data.to_float(imgs, dtype=np.float64)
    assert x3.dtype == np.float64 and x3.max() == 1.0


@pytest.mark.parametrize("dtype", ["float64", np.dtype(np.float64), np.float64], ids=["str", "dtype", "type"])
def test_to_float_accepts_any_dtype_spelling(dtype):
    # like Dense(dtype=...) and numpy itself: a name, a dtype object or a scalar type
    imgs = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    x = data.to_float(imgs, dtype=dtype)
    assert x.dtype == np.float64
    np.testing.assert_allclose(x, [[0.0, 1.0, 0.2, 0.4]])


def test_to_float_keeps_float_values():
    x = np.array([[0.5, 2.0]], dtype=np.float64)
    out = data.to_float(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.5, 2.0]])


def test_standardize_uses_training_statistics():
    rng = np.random.default_rng(0)
    xtr = rng.normal(5.0, 3.0, (500, 4)).astype(np.float32)
    xte = rng.normal(5.0, 3.0, (100, 4)).astype(np.float32)
    a, b = data.standardize(xtr, xte)
    assert a.dtype == np.float32 and b.dtype == np.float32
    assert abs(float(a.mean())) < 1e-5
    assert float(a.std()) == pytest.approx(1.0, rel=1e-4)
    mu, sd = xtr.astype(np.float64).mean(), xtr.astype(np.float64).std()
    np.testing.assert_allclose(b, (xte - mu) / sd, rtol=1e-5, atol=1e-5)
    # a single array in, a single array out
    single = data.standardize(xtr)
    assert isinstance(single, np.ndarray)
    np.testing.assert_array_equal(single, a)


def test_standardizer_per_feature():
    rng = np.random.default_rng(1)
    x = rng.normal([0.0, 10.0, -5.0], [1.0, 4.0, 0.5], (400, 3))
    s = data.Standardizer(per_feature=True).fit(x)
    z = s.transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-6)
    assert z.dtype == np.float64
    st_ = s.state()
    assert st_["per_feature"] is True and len(st_["mean"]) == 3 and len(st_["std"]) == 3
    # global standardizer: one pair of numbers
    g = data.Standardizer().fit(x)
    assert np.ndim(g.mean) == 0
    np.testing.assert_allclose(g.fit_transform(x).mean(), 0.0, atol=1e-9)


def test_standardizer_constant_feature_does_not_divide_by_zero():
    x = np.ones((10, 2))
    z = data.Standardizer(per_feature=True).fit_transform(x)
    assert np.isfinite(z).all()


def test_standardizer_uint8_input_gives_float32():
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    z = data.Standardizer().fit_transform(x)
    assert z.dtype == np.float32


def test_standardizer_transform_before_fit():
    with pytest.raises(RuntimeError, match="fit"):
        data.Standardizer().transform(np.ones((2, 2)))


def test_one_hot():
    y = np.array([2, 0, 1, 2])
    oh = data.one_hot(y, 3)
    assert oh.dtype == np.float32
    np.testing.assert_array_equal(oh, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    seq = data.one_hot(np.array([[0, 1], [1, 1]], dtype=np.uint8), 2, dtype=np.float64)
    assert seq.shape == (2, 2, 2) and seq.dtype == np.float64
    np.testing.assert_array_equal(seq.argmax(-1), [[0, 1], [1, 1]])
    assert data.one_hot(np.array([], dtype=np.int64), 4).shape == (0, 4)


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [0, 1, 7]])
def test_one_hot_out_of_range(labels):
    with pytest.raises(ValueError, match="one_hot") as info:
        data.one_hot(np.array(labels), 3)
    assert "[0, 2]" in str(info.value)


def test_one_hot_rejects_float_labels():
    with pytest.raises(TypeError, match="one_hot"):
        data.one_hot(np.array([0.0, 1.0]), 2)


def test_train_val_split_stratified_seeded_disjoint():
    labels = np.repeat(np.arange(4), [40, 20, 60, 80])
    x = np.arange(labels.size)  # x holds each sample's index: alignment is checkable
    (xtr, ytr), (xv, yv) = data.train_val_split(x, labels, val_fraction=0.25, seed=3)
    assert set(xtr).isdisjoint(set(xv))
    assert sorted(np.concatenate([xtr, xv])) == list(range(labels.size))
    np.testing.assert_array_equal(ytr, labels[xtr])
    np.testing.assert_array_equal(yv, labels[xv])
    np.testing.assert_array_equal(np.bincount(yv, minlength=4), [10, 5, 15, 20])
    np.testing.assert_array_equal(np.bincount(ytr, minlength=4), [30, 15, 45, 60])
    (xtr2, _), (xv2, _) = data.train_val_split(x, labels, val_fraction=0.25, seed=3)
    np.testing.assert_array_equal(xv, xv2)
    np.testing.assert_array_equal(xtr, xtr2)
    (_, _), (xv3, _) = data.train_val_split(x, labels, val_fraction=0.25, seed=4)
    assert set(xv3) != set(xv)


def test_train_val_split_on_subset_is_balanced(subset):
    (x, y), _ = subset
    (xtr, ytr), (xv, yv) = data.train_val_split(x, y, val_fraction=0.1, seed=0)
    assert xv.shape == (600, 28, 28) and xtr.shape == (5400, 28, 28)
    np.testing.assert_array_equal(np.bincount(yv, minlength=10), [60] * 10)


def test_train_val_split_unstratified():
    x = np.arange(50)
    y = np.linspace(0, 1, 50)  # regression targets: no classes to stratify by
    (xtr, ytr), (xv, yv) = data.train_val_split(x, y, val_fraction=0.2, seed=0)
    assert len(xv) == 10 and len(xtr) == 40
    assert set(xtr).isdisjoint(xv)
    np.testing.assert_array_equal(yv, y[xv])


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.2, 1.5])
def test_train_val_split_bad_fraction(frac):
    with pytest.raises(ValueError, match="train_val_split"):
        data.train_val_split(np.arange(10), np.arange(10) % 2, val_fraction=frac)


def test_train_val_split_length_mismatch():
    with pytest.raises(ValueError, match="train_val_split"):
        data.train_val_split(np.arange(10), np.arange(9) % 2)


def test_hg_data_is_the_same_module():
    assert hg.data is data
