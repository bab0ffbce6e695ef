"""hg.save / hg.load of RBMs and stacks: bit-for-bit round trips, and hostile files rejected."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import handgrad as hg
from handgrad import rbm


def trained_like(V, H, dtype=np.float32, **kw):
    r = rbm.RBM(V, H, rng=0, dtype=dtype, **kw)
    g = np.random.default_rng(1)
    for k, p in r.params.items():
        r.params[k] = g.normal(size=p.shape).astype(dtype)
    return r


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_rbm_round_trips_bit_for_bit(tmp_path, dtype):
    r = trained_like(7, 4, dtype, hidden="gaussian")
    path = tmp_path / "r.safetensors"
    hg.save(r, path, metadata={"note": "x"})
    back = hg.load(path)
    assert isinstance(back, rbm.RBM) and back.get_config() == r.get_config()
    for k, p in r.params.items():
        assert back.params[k].dtype == dtype
        np.testing.assert_array_equal(back.params[k], p)
        assert back.grads[k].shape == p.shape and back.grads[k].flags.writeable
    v = (np.random.default_rng(0).random((3, 7)) < 0.5).astype(dtype)
    np.testing.assert_array_equal(back.free_energy(v), r.free_energy(v))
    assert hg.serialization.read_metadata(path) == {"note": "x"}
    hg.optim.SGD(back, 0.1).step()      # a loaded RBM trains: params are real, writable arrays


def test_a_stack_round_trips_and_unrolls_the_same(tmp_path):
    rbms = [trained_like(8, 6), trained_like(6, 3, visible="bernoulli", hidden="gaussian")]
    path = tmp_path / "stack.safetensors"
    hg.save(rbms, path)
    back = hg.load(path)
    assert isinstance(back, list) and [b.get_config() for b in back] == [r.get_config() for r in rbms]
    x = np.random.default_rng(0).random((4, 8)).astype(np.float32)
    np.testing.assert_array_equal(rbm.unroll(back).forward(x), rbm.unroll(rbms).forward(x))


def test_sequential_models_still_load(tmp_path):
    model = hg.Sequential([hg.layers.Dense(3, 2, rng=0), hg.layers.Sigmoid()])
    hg.save(model, tmp_path / "m.safetensors")
    back = hg.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.layers[0].params["W"], model.layers[0].params["W"])


def forge(path, arch, tensors):
    """A safetensors file written by hand with any architecture metadata."""
    header, blobs, off = {}, b"", 0
    for k, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": {np.float32: "F32", np.float64: "F64"}[a.dtype.type], "shape": list(a.shape),
                     "data_offsets": [off, off + len(raw)]}
        blobs += raw
        off += len(raw)
    header["__metadata__"] = {"handgrad": "1", "architecture": json.dumps(arch)}
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + blobs)
    return path


GOOD = {"n_visible": 3, "n_hidden": 2, "visible": "bernoulli", "hidden": "bernoulli", "dtype": "float32",
        "weight_std": 0.01}
TENSORS = {"rbms.0.W": np.zeros((2, 3), np.float32), "rbms.0.b_hidden": np.zeros(2, np.float32),
           "rbms.0.b_visible": np.zeros(3, np.float32)}


@pytest.mark.parametrize("arch,tensors,match", [
    ({"class": "RBM", "config": {**GOOD, "hidden": "relu"}}, TENSORS, "cannot rebuild"),
    ({"class": "RBM", "config": {**GOOD, "visible": "gaussian", "hidden": "gaussian"}}, TENSORS, "cannot rebuild"),
    ({"class": "RBM", "config": {**GOOD, "n_visible": 10**12}}, TENSORS, "shape"),      # allocates nothing
    ({"class": "RBM", "config": {**GOOD, "dtype": "object"}}, TENSORS, "cannot rebuild"),
    ({"class": "RBM", "config": {**GOOD, "__import__": "os"}}, TENSORS, "cannot rebuild"),
    ({"class": "RBM", "config": "rm -rf"}, TENSORS, "malformed"),
    ({"class": "RBMStack", "rbms": []}, TENSORS, "malformed"),
    ({"class": "RBMStack", "rbms": [GOOD, GOOD]}, TENSORS, "missing"),
    ({"class": "RBM", "config": GOOD}, {**TENSORS, "rbms.0.W": np.zeros((3, 2), np.float32)}, "shape"),
    ({"class": "RBM", "config": GOOD}, {**TENSORS, "rbms.1.W": np.zeros((3, 2), np.float32)}, "unexpected"),
])
def test_hostile_rbm_files_raise_value_error(tmp_path, arch, tensors, match):
    path = forge(tmp_path / "bad.safetensors", arch, tensors)
    with pytest.raises(ValueError, match=match):
        hg.load(path)


def test_truncated_rbm_file_raises_value_error(tmp_path):
    path = tmp_path / "r.safetensors"
    hg.save(trained_like(5, 3), path)
    data = path.read_bytes()
    for cut in (4, 40, len(data) - 7):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        with pytest.raises(ValueError):
            hg.load(tmp_path / "cut.safetensors")


def test_save_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="RBM"):
        hg.save([rbm.RBM(3, 2), "x"], tmp_path / "x.safetensors")
