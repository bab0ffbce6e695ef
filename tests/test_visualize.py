"""Pictures of convolutional networks: filters, feature maps, class maps, detections, the PNG
encoder, the ``visualize`` command, and handgrad without matplotlib."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import handgrad as hg
from handgrad import cli, presets
from handgrad import detection as D
from handgrad.apps import scenes as S
from handgrad import layers as L
from handgrad import visualize as V

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    return os.path.getsize(path) > 100 and open(path, "rb").read(8) == PNG


def png_size(path):
    import matplotlib.image

    return matplotlib.image.imread(path).shape[:2]


@pytest.fixture(scope="module")
def image():
    _, (xt, _) = hg.data.load_fashion_mnist_subset()
    return hg.data.to_float(xt[:1]).reshape(1, 1, 28, 28)


def test_plot_filters_of_a_model_and_of_a_layer(tmp_path):
    model = presets.lenet5()
    V.plot_filters(model, tmp_path / "first.png")
    assert is_png(tmp_path / "first.png")
    V.plot_filters(model.layers[4], tmp_path / "second.png")  # 16 filters × 6 input channels
    assert is_png(tmp_path / "second.png")
    h1, w1 = png_size(tmp_path / "first.png")
    h2, w2 = png_size(tmp_path / "second.png")
    assert h2 > 3 * h1  # one row per filter for a multi-channel layer, 8 per row for one channel


def test_feature_maps_are_the_conv_and_pool_outputs(image):
    model = presets.lenet5(dtype="float64")
    maps = V.feature_maps(model, image[0, 0])
    assert [(i, a.shape) for i, _, a in maps] == [(1, (6, 28, 28)), (3, (6, 14, 14)), (4, (16, 10, 10)),
                                                  (6, (16, 5, 5))]
    x = image.astype(np.float64)
    for i, layer in enumerate(model.layers[:7]):
        x = layer.forward(x)
        for j, _, a in maps:
            if j == i:
                np.testing.assert_array_equal(a, x[0])


def test_plot_feature_maps_writes_a_png(tmp_path, image):
    V.plot_feature_maps(presets.lenet5(), image, tmp_path / "maps.png")
    assert is_png(tmp_path / "maps.png")
    V.plot_feature_maps(presets.lenet5(), (image[0, 0] * 255).astype(np.uint8), tmp_path / "maps8.png")
    assert is_png(tmp_path / "maps8.png")


def test_models_without_conv_layers_are_refused(tmp_path, image):
    mlp = presets.mlp(hidden=(8,))
    with pytest.raises(ValueError, match="no Conv2D"):
        V.plot_filters(mlp, tmp_path / "f.png")
    with pytest.raises(ValueError, match="no Conv2D"):
        V.plot_feature_maps(mlp, image, tmp_path / "m.png")
    with pytest.raises(TypeError, match="Sequential model or a Conv2D"):
        V.plot_filters(L.Dense(2, 3), tmp_path / "f.png")
    with pytest.raises(ValueError, match="one image"):
        V.plot_feature_maps(presets.lenet5(), np.zeros((2, 1, 28, 28), np.float32), tmp_path / "m.png")
    assert not list(tmp_path.iterdir())


def test_missing_matplotlib_gives_a_clear_error(tmp_path, monkeypatch, image):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(ImportError, match=r"plot_filters needs matplotlib.*pip install"):
        V.plot_filters(presets.lenet5(), tmp_path / "f.png")
    with pytest.raises(ImportError, match="plot_feature_maps needs matplotlib"):
        V.plot_feature_maps(presets.lenet5(), image, tmp_path / "m.png")
    assert not list(tmp_path.iterdir())
    assert V.png_bytes(np.zeros((3, 4), np.uint8))[:8] == PNG  # the PNG encoder needs no matplotlib


def test_import_handgrad_without_matplotlib(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import handgrad as hg\n"
            "assert hg.visualize and hg.detection and hg.transfer\n"
            "from handgrad import cli, presets\n"
            "assert cli.main(['visualize', 'missing.safetensors']) == 2\n"
            "try:\n    hg.visualize.plot_filters(presets.lenet5(), 'x.png')\n"
            "except ImportError as e:\n    print('ImportError', e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "ImportError plot_filters needs matplotlib" in res.stdout
    assert "visualize needs matplotlib" in res.stderr


def test_a_failed_plot_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "filters.png"
    path.write_bytes(b"old")
    import matplotlib.figure

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        V.plot_filters(presets.lenet5(), path)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["filters.png"]


def test_png_bytes_round_trips_through_matplotlib(tmp_path):
    import matplotlib.image

    img = np.random.default_rng(0).integers(0, 256, (17, 23)).astype(np.uint8)
    (tmp_path / "a.png").write_bytes(V.png_bytes(img))
    back = matplotlib.image.imread(tmp_path / "a.png")
    np.testing.assert_array_equal(np.round(back * 255).astype(np.uint8), img)
    (tmp_path / "b.png").write_bytes(V.png_bytes(img / 255.0))
    np.testing.assert_array_equal(np.round(matplotlib.image.imread(tmp_path / "b.png") * 255), img)
    with pytest.raises(ValueError, match="grey image"):
        V.png_bytes(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        V.png_bytes(np.full((2, 2), np.nan))


def test_class_map_and_detection_pictures(tmp_path):
    fcn = D.to_fully_convolutional(presets.lenet5())
    scene = S.make_scenes(*hg.data.load_fashion_mnist_subset()[1], 1, seed=0)
    probs = D.class_map(fcn, scene.images[0])
    V.plot_class_map(probs, tmp_path / "map.png", image=scene.images[0], geometry=D.geometry(fcn),
                     class_names=hg.data.CLASSES)
    V.plot_class_map(np.concatenate([probs, probs[:1]]) / 2, tmp_path / "bg.png", background=10)
    det = D.detect(fcn, scene.images[0], threshold=0.0, top_k=3)
    V.plot_detections(scene.images[0], det, tmp_path / "det.png", class_names=hg.data.CLASSES,
                      truth=scene.boxes[0])
    empty = D.detect(fcn, scene.images[0], threshold=1.0)
    V.plot_detections(scene.images[0], empty, tmp_path / "none.png")
    for name in ("map.png", "bg.png", "det.png", "none.png"):
        assert is_png(tmp_path / name), name


def test_cli_visualize(tmp_path, capsys):
    meta = {"preset": "lenet5", "loss": "SoftmaxCrossEntropy", "input_shape": [1, 28, 28]}
    hg.save(presets.lenet5(), tmp_path / "cnn.safetensors", metadata=meta)
    out = tmp_path / "pictures"
    code = cli.main(["visualize", str(tmp_path / "cnn.safetensors"), "--out", str(out), "--index", "3"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert is_png(out / "filters.png") and is_png(out / "feature_maps.png")
    assert "subset test image 3" in stdout
    hg.save(presets.mlp(hidden=(8,)), tmp_path / "mlp.safetensors",
            metadata={"preset": "mlp", "loss": "SoftmaxCrossEntropy", "input_shape": [784]})
    code = cli.main(["visualize", str(tmp_path / "mlp.safetensors"), "--out", str(tmp_path / "x")])
    _, err = capsys.readouterr()
    assert code == 2 and "convolutional" in err
    code = cli.main(["visualize", str(tmp_path / "cnn.safetensors"), "--out", str(tmp_path / "y"), "--index", "5000"])
    _, err = capsys.readouterr()
    assert code == 2 and "--index" in err
