"""Detection by sliding a classifier over a larger image (``003`` §5): the fully convolutional
rewrite, its equivalence with the classifier on every window, scenes, boxes, non-maximum
suppression, evaluation and the ``detect``/``scenes``/``train-detector`` commands."""
from __future__ import annotations

import json

import numpy as np
import pytest

import handgrad as hg
from handgrad import cli, losses, optim, presets, transfer
from handgrad import detection as D
from handgrad.apps import scenes as S
from handgrad import layers as L


def valid_lenet(dtype=np.float64, seed=0):
    """LeNet without zero padding: 28 → conv5 24 → pool 12 → conv5 8 → pool 4 → 16·4·4."""
    return hg.Sequential([
        L.Normalize(presets.FASHION_MEAN, presets.FASHION_STD),
        L.Conv2D(1, 6, 5, rng=seed, dtype=dtype), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(6, 16, 5, rng=seed + 1, dtype=dtype), L.Tanh(), L.AvgPool2D(2),
        L.Flatten(),
        L.Dense(256, 32, bias_init="normal", rng=seed + 2, dtype=dtype), L.ReLU(), L.Dropout(0.3),
        L.Dense(32, 10, bias_init="normal", rng=seed + 3, dtype=dtype),
    ])


def images(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


# -- the fully convolutional network ---------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_fcn_matches_lenet5_on_28x28(dtype, tol):
    model = presets.lenet5(dtype=dtype, seed=3)
    for layer in model.layers:  # non-zero biases, so a misplaced bias would show
        if "b" in layer.params:
            layer.params["b"][...] = np.random.default_rng(1).standard_normal(layer.params["b"].shape) * 0.1
    fcn = D.to_fully_convolutional(model, (1, 28, 28))
    assert not any(isinstance(layer, (L.Flatten, L.Dense)) for layer in fcn.layers)
    x = images((5, 1, 28, 28), dtype)
    out = fcn.forward(x)
    assert out.shape == (5, 10, 1, 1) and out.dtype == dtype
    ref = model.forward(x)
    np.testing.assert_allclose(out[:, :, 0, 0], ref, rtol=0, atol=tol * max(1.0, np.abs(ref).max()))


def test_fcn_weights_are_the_dense_weights_in_flatten_order():
    model = presets.lenet5(dtype=np.float64)
    fcn = D.to_fully_convolutional(model, (1, 28, 28))
    convs = [layer for layer in fcn.layers if isinstance(layer, L.Conv2D)]
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    first, one, two = convs[2:]
    assert (first.in_channels, first.out_channels, first.kernel_size) == (16, 120, (5, 5))
    assert (one.kernel_size, two.kernel_size) == ((1, 1), (1, 1))
    W = dense[0].params["W"]
    for o, c, i, j in [(0, 0, 0, 0), (7, 3, 2, 4), (119, 15, 4, 4), (50, 9, 0, 3)]:
        assert first.params["W"][o, c, i, j] == W[o, c * 25 + i * 5 + j]
    np.testing.assert_array_equal(two.params["W"][:, :, 0, 0], dense[2].params["W"])
    # copies: changing the model afterwards does not change the fully convolutional network
    dense[0].params["W"] += 1.0
    assert first.params["W"][0, 0, 0, 0] != dense[0].params["W"][0, 0]


def test_fcn_map_equals_the_classifier_on_every_crop_without_padding():
    model = valid_lenet()
    fcn = D.to_fully_convolutional(model, (1, 28, 28))
    geom = D.geometry(fcn)
    assert geom.window == (28, 28) and geom.stride == (4, 4) and geom.offset == (0, 0)
    x = images((2, 1, 61, 70), seed=2)
    out = fcn.forward(x)
    assert out.shape == (2, 10, (61 - 28) // 4 + 1, (70 - 28) // 4 + 1)
    for n in range(2):
        for p in range(out.shape[2]):
            crops = np.stack([x[n, :, 4 * p:4 * p + 28, 4 * q:4 * q + 28] for q in range(out.shape[3])])
            np.testing.assert_allclose(out[n, :, p, :].T, model.forward(crops), rtol=0, atol=1e-12)
    np.testing.assert_allclose(D.sliding_window_logits(model, x[1]), out[1], rtol=0, atol=1e-12)


def test_fcn_with_padding_sees_each_window_with_its_real_context():
    """lenet5 pads its first convolution by 2. Inside a large image those 2 pixels around a
    window are the window's real surroundings (zeros of the normalized input only at the
    image border), so the map equals the classifier with an unpadded first convolution applied
    to every 32×32 window of the image padded by 2 with the value that normalizes to 0."""
    model = presets.lenet5(dtype=np.float64, seed=1)
    fcn = D.to_fully_convolutional(model, (1, 28, 28))
    assert D.geometry(fcn) == D.Geometry((28, 28), (4, 4), (32, 32), (-2, -2))
    x = images((1, 1, 44, 48), seed=4)
    out = fcn.forward(x)[0]
    ctx = transfer.clone(model)
    conv = ctx.layers[1]
    ctx.layers[1] = L.Conv2D(1, 6, 5, padding=0, dtype=np.float64)
    ctx.layers[1].params = {k: v.copy() for k, v in conv.params.items()}
    xp = np.pad(x[0, 0], 2, constant_values=presets.FASHION_MEAN)
    for p in range(out.shape[1]):
        for q in range(out.shape[2]):
            window = xp[None, None, 4 * p:4 * p + 32, 4 * q:4 * q + 32]
            np.testing.assert_allclose(out[:, p, q], ctx.forward(window)[0], rtol=0, atol=1e-12)
    # and differs from the zero-padded crop (the reason for the test above)
    crop = x[:, :, 4:32, 4:32]
    assert np.abs(model.forward(crop)[0] - out[:, 1, 1]).max() > 1e-6


def test_fcn_of_an_mlp_slides_with_stride_one():
    model = presets.mlp(hidden=(16,), dtype="float64")
    fcn = D.to_fully_convolutional(model, (1, 28, 28))
    assert D.geometry(fcn).stride == (1, 1)
    x = images((1, 1, 30, 29), seed=5)
    out = fcn.forward(x)
    assert out.shape == (1, 10, 3, 2)
    np.testing.assert_allclose(out[0, :, 2, 1], model.forward(x[:, :, 2:30, 1:29].reshape(1, -1))[0], atol=1e-12)


def test_to_fully_convolutional_errors():
    with pytest.raises(TypeError, match="Sequential"):
        D.to_fully_convolutional(L.Dense(3, 2), (1, 28, 28))
    with pytest.raises(ValueError, match="input_shape"):
        D.to_fully_convolutional(presets.lenet5(), (784,))
    with pytest.raises(ValueError, match="expects 400 inputs"):
        D.to_fully_convolutional(presets.lenet5(), (1, 32, 32))
    softmax = hg.Sequential([*presets.lenet5().layers, L.Softmax()])
    with pytest.raises(ValueError, match="Softmax"):
        D.to_fully_convolutional(softmax, (1, 28, 28))
    with pytest.raises(ValueError, match="no fully connected"):
        D.to_fully_convolutional(hg.Sequential([L.Conv2D(1, 2, 3), L.ReLU()]), (1, 28, 28))
    with pytest.raises(ValueError, match="geometry"):
        D.geometry(presets.lenet5())


# -- boxes, suppression, matching ------------------------------------------------------------------

def test_iou_by_hand():
    a = [[0, 0, 28, 28]]
    b = [[0, 0, 28, 28], [0, 14, 28, 28], [28, 0, 28, 28], [4, 4, 10, 10]]
    np.testing.assert_allclose(D.iou(a, b)[0], [1.0, 392 / (1568 - 392), 0.0, 100 / 784])


def test_nms_keeps_the_best_and_drops_its_overlaps():
    boxes = [[0, 0, 28, 28], [4, 0, 28, 28], [40, 40, 28, 28], [0, 20, 28, 28]]
    scores = [0.8, 0.9, 0.7, 0.6]
    np.testing.assert_array_equal(D.nms(boxes, scores, 0.3), [1, 2, 3])
    np.testing.assert_array_equal(D.nms(boxes, scores, 0.05), [1, 2])
    np.testing.assert_array_equal(D.nms(boxes, scores, 0.3, labels=[0, 1, 0, 0]), [1, 0, 2, 3])


def test_match_is_one_to_one_and_optionally_needs_the_class():
    truth, labels = [[0, 0, 28, 28], [50, 50, 28, 28]], [3, 7]
    det = [[2, 2, 28, 28], [0, 0, 28, 28], [52, 48, 28, 28], [90, 90, 28, 28]]
    np.testing.assert_array_equal(S.match(det, [3, 3, 1, 7], truth, labels), [0, 2])
    np.testing.assert_array_equal(S.match(det, [5, 3, 1, 7], truth, labels, use_class=True), [1, -1])
    np.testing.assert_array_equal(S.match(np.zeros((0, 4)), [], truth, labels), [-1, -1])


def synthetic_map(peaks, shape=(10, 8, 8), background=None):
    probs = np.full(shape, 0.01)
    if background is not None:
        probs[background] = 0.9
    for (p, q), c, s in peaks:
        probs[:, p, q] = (1 - s) / (shape[0] - 1)
        probs[c, p, q] = s
    return probs / probs.sum(axis=0)


def test_detections_from_a_known_map():
    geom = D.Geometry((28, 28), (4, 4), (32, 32), (-2, -2))
    probs = synthetic_map([((1, 1), 3, 0.97), ((1, 2), 3, 0.95), ((6, 6), 8, 0.92), ((6, 0), 1, 0.6)])
    det = D.detections_from_map(probs, geom, threshold=0.9, iou_threshold=0.3)
    assert det.rows() == [(4, 4, 28, 28, 3, pytest.approx(0.97)), (24, 24, 28, 28, 8, pytest.approx(0.92))]
    assert len(D.detections_from_map(probs, geom, threshold=0.5, iou_threshold=0.3)) == 3
    assert len(D.detections_from_map(probs, geom, threshold=0.5, top_k=1)) == 1
    assert len(D.detections_from_map(probs, geom, threshold=0.99)) == 0
    # with a background class: windows where it wins are dropped, the others scored without it
    probs = synthetic_map([((2, 2), 4, 0.8)], shape=(11, 8, 8), background=10)
    det = D.detections_from_map(probs, geom, threshold=0.5, background=10)
    assert det.rows() == [(8, 8, 28, 28, 4, pytest.approx(0.8))]
    assert len(D.detections_from_map(probs, geom, threshold=0.5)) > 1  # background would be "detected"
    with pytest.raises(ValueError, match="background"):
        D.detections_from_map(probs, geom, background=11)
    with pytest.raises(ValueError, match="threshold"):
        D.detections_from_map(probs, geom, threshold=1.5)
    with pytest.raises(ValueError, match="top_k"):
        D.detections_from_map(probs, geom, top_k=0)


def test_detect_and_class_map_shapes_and_errors():
    fcn = D.to_fully_convolutional(presets.lenet5(), (1, 28, 28))
    scene = images((60, 64), np.float32)
    probs = D.class_map(fcn, scene)
    assert probs.shape == (10, 9, 10)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-6)
    assert D.class_map(fcn, scene[None, None]).shape == (1, 10, 9, 10)
    pixels = np.round(scene * 255)
    np.testing.assert_allclose(D.class_map(fcn, pixels.astype(np.uint8)), D.class_map(fcn, pixels / 255), atol=1e-6)
    det = D.detect(fcn, scene, threshold=0.0, top_k=3)
    assert len(det) == 3 and det.boxes.shape == (3, 4) and (det.scores[:-1] >= det.scores[1:]).all()
    with pytest.raises(ValueError, match="smaller than the classifier's window"):
        D.detect(fcn, images((20, 40), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        D.detect(fcn, np.full((30, 30), np.nan, np.float32))
    with pytest.raises(ValueError, match="one image"):
        D.detect(fcn, scene[None, None])


# -- scenes ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def subset():
    return hg.data.load_fashion_mnist_subset()


def test_make_scenes_pastes_items_without_overlap(subset):
    (_, _), (xt, yt) = subset
    sc = S.make_scenes(xt, yt, 30, size=(80, 96), items=(2, 4), seed=3)
    assert sc.images.shape == (30, 1, 80, 96) and sc.images.dtype == np.float32
    counts = [len(b) for b in sc.boxes]
    assert min(counts) >= 2 and max(counts) <= 4 and len(set(counts)) > 1
    for img, boxes, labels, src in zip(*sc):
        assert (boxes[:, 2:] == 28).all() and (boxes[:, 0] + 28 <= 80).all() and (boxes[:, 1] + 28 <= 96).all()
        m = D.iou(boxes, boxes)
        assert np.allclose(m[~np.eye(len(boxes), dtype=bool)], 0.0)
        np.testing.assert_array_equal(labels, yt[src])
        covered = np.zeros((80, 96), bool)
        for (t, l_, h, w), i in zip(boxes, src):
            np.testing.assert_array_equal(img[0, t:t + h, l_:l_ + w], xt[i] / np.float32(255))
            covered[t:t + h, l_:l_ + w] = True
        assert not img[0][~covered].any()
    again = S.make_scenes(xt, yt, 30, size=(80, 96), seed=3)
    np.testing.assert_array_equal(again.images, sc.images)
    assert not np.array_equal(S.make_scenes(xt, yt, 30, size=(80, 96), seed=4).images, sc.images)
    floats = S.make_scenes(xt / 255.0, yt, 30, size=(80, 96), seed=3)
    np.testing.assert_allclose(floats.images, sc.images, atol=1e-7)


def test_make_scenes_errors(subset):
    (_, _), (xt, yt) = subset
    with pytest.raises(ValueError, match="cannot fit"):
        S.make_scenes(xt, yt, 2, size=(40, 40), items=(3, 3))
    with pytest.raises(ValueError, match="smaller than one item"):
        S.make_scenes(xt, yt, 2, size=(20, 40))
    with pytest.raises(ValueError, match="labels"):
        S.make_scenes(xt, yt[:-1], 2)
    with pytest.raises(ValueError, match="items"):
        S.make_scenes(xt, yt, 2, items=(3, 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.make_scenes(xt.astype(np.float32), yt, 2)


def test_detector_training_data(subset):
    (x, y), _ = subset
    xs, ys = S.detector_training_data(x[:200], y[:200], n_background=80, jitter=3, seed=1)
    assert xs.shape == (280, 1, 28, 28) and xs.dtype == np.float32
    np.testing.assert_array_equal(ys[:200], y[:200])
    assert (ys[200:] == 10).all()
    assert 0 <= xs.min() and xs.max() <= 1
    # positives are the items shifted by at most 3 pixels: every pixel comes from the item
    sums = xs[:200].sum(axis=(1, 2, 3))
    assert (sums <= x[:200].sum(axis=(1, 2)) / 255 + 1e-3).all() and (sums > 0).all()
    exact, _ = S.detector_training_data(x[:20], y[:20], n_background=0, jitter=0)
    np.testing.assert_array_equal(exact[:, 0], x[:20] / np.float32(255))
    again, _ = S.detector_training_data(x[:200], y[:200], n_background=80, jitter=3, seed=1)
    np.testing.assert_array_equal(again, xs)


# -- a trained detector ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def detector(subset):
    """lenet5 with a background class, one epoch on the subset's 6,000 (jittered) items and
    1,500 background windows."""
    (x, y), _ = subset
    xs, ys = S.detector_training_data(x, y, n_background=1500, seed=0)
    model = presets.lenet5(classes=11, seed=0)
    hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, 0.03, momentum=0.9), xs, ys, epochs=1, batch_size=32)
    return model


def test_evaluate_detection_with_a_trained_detector(subset, detector):
    """Measured on 40 subset test scenes (seeds 0–2 of the whole setup): recall 0.71–0.81
    (0.50–0.52 with the class), precision 0.68–0.82; ignoring the background class, recall
    falls to 0.08–0.13 (the classifier names an item in every empty window and suppression
    keeps the wrong windows). Bars leave margin."""
    _, (xt, yt) = subset
    fcn = D.to_fully_convolutional(detector, (1, 28, 28))
    scenes = S.make_scenes(xt, yt, 40, seed=0)
    res = S.evaluate_detection(fcn, scenes, threshold=0.5, iou_threshold=0.1, background=10)
    assert res["items"] == sum(len(b) for b in scenes.boxes) and res["scenes"] == 40
    assert res["found_class"] <= res["found"] <= res["items"] and res["found"] <= res["detections"]
    assert res["recall"] == res["found"] / res["items"] and res["precision"] == res["found"] / res["detections"]
    assert res["recall"] > 0.5 and res["precision"] > 0.45 and res["recall_class"] > 0.3, res
    assert len(res["per_class_recall"]) == 11 and np.isnan(res["per_class_recall"][10])
    plain = S.evaluate_detection(fcn, scenes, threshold=0.5, iou_threshold=0.1)
    assert plain["recall"] < res["recall"] - 0.3 and plain["precision"] < res["precision"] - 0.3
    # detect() on each scene gives the detections the batch evaluation counted
    total = 0
    for img, boxes, labels in zip(scenes.images, scenes.boxes, scenes.labels):
        det = D.detect(fcn, img, threshold=0.5, iou_threshold=0.1, background=10)
        assert 10 not in det.labels and (det.scores > 0.5).all()
        total += len(det)
    assert total == res["detections"]


# -- the command line ------------------------------------------------------------------------------

def run_cli(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def saved(tmp_path_factory, detector):
    folder = tmp_path_factory.mktemp("models")
    meta = {"preset": "lenet5", "loss": "SoftmaxCrossEntropy", "input_shape": [1, 28, 28]}
    hg.save(detector, folder / "detector.safetensors", metadata=meta)
    hg.save(presets.lenet5(seed=0), folder / "plain.safetensors", metadata=meta)
    hg.save(tiny_cnn(), folder / "tiny.safetensors", metadata=meta)
    return folder


def tiny_cnn(classes=10, seed=0):
    return hg.Sequential([
        L.Normalize(presets.FASHION_MEAN, presets.FASHION_STD),
        L.Conv2D(1, 2, 5, padding=2, rng=seed), L.ReLU(), L.MaxPool2D(4),
        L.Conv2D(2, 4, 3, rng=seed + 1), L.ReLU(), L.Flatten(),
        L.Dense(4 * 5 * 5, 8, rng=seed + 2), L.ReLU(), L.Dense(8, classes, rng=seed + 3),
    ])


def test_cli_scenes_writes_files_and_reports_the_found_rate(tmp_path, capsys, saved):
    out = tmp_path / "scenes"
    code, stdout, err = run_cli(["scenes", "--subset", "--out", out, "--n", 12, "--seed", 1,
                                 "--model", saved / "detector.safetensors"], capsys)
    assert code == 0, err
    meta = json.loads((out / "scenes.json").read_text())
    assert len(meta["scenes"]) == 12 and meta["box_format"] == "top, left, height, width"
    ref = S.make_scenes(*hg.data.load_fashion_mnist_subset()[1], 12, seed=1)
    for s, entry in enumerate(meta["scenes"]):
        img = np.load(out / entry["npy"], allow_pickle=False)
        np.testing.assert_array_equal(img, ref.images[s, 0])
        assert (out / entry["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert [it["box"] for it in entry["items"]] == ref.boxes[s].tolist()
        assert [it["label"] for it in entry["items"]] == ref.labels[s].tolist()
    res = S.evaluate_detection(D.to_fully_convolutional(hg.load(saved / "detector.safetensors")), ref,
                               threshold=0.5, iou_threshold=0.1, background=10)
    assert f"found {res['found']}/{res['items']} items" in stdout
    assert "class 10 = background" in stdout and "precision" in stdout


def test_cli_detect_on_npy_and_png(tmp_path, capsys, saved):
    sc = S.make_scenes(*hg.data.load_fashion_mnist_subset()[1], 1, seed=2)
    np.save(tmp_path / "scene.npy", sc.images[0, 0])
    from handgrad.apps.visualize import png_bytes

    (tmp_path / "scene.png").write_bytes(png_bytes(sc.images[0, 0]))
    fcn = D.to_fully_convolutional(hg.load(saved / "detector.safetensors"))
    expected = D.detect(fcn, sc.images[0, 0], threshold=0.5, iou_threshold=0.1, background=10)
    for name in ("scene.npy", "scene.png"):
        out = tmp_path / f"out-{name}"
        code, stdout, err = run_cli(["detect", saved / "detector.safetensors", tmp_path / name, "--out", out], capsys)
        assert code == 0, err
        for f in ("confidence.png", "detections.png"):
            assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        found = json.loads((out / "detections.json").read_text())["detections"]
        assert [d["box"] for d in found] == expected.boxes.tolist()
        assert [d["label"] for d in found] == expected.labels.tolist()
        assert f"{len(expected)} detection" in stdout
        for t, l_, h, w, c, s in expected.rows():
            assert f"{t:>4} {l_:>4} {h:>3} {w:>3}  {hg.data.CLASSES[c]:<12} {s:.3f}" in stdout
    code, stdout, _ = run_cli(["detect", saved / "plain.safetensors", tmp_path / "scene.npy", "--out",
                               tmp_path / "plain", "--threshold", 0.0, "--top-k", 2], capsys)
    assert code == 0 and "2 detections" in stdout and "background" not in stdout


def test_cli_detect_rejects_bad_images(tmp_path, capsys, saved):
    model = saved / "plain.safetensors"
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "big.npy", np.full((40, 40), 3.0))
    np.save(tmp_path / "small.npy", np.zeros((10, 10)))
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for name, msg in [("obj.npy", "not a readable .npy|pickle"), ("big.npy", r"\[0, 1\]"),
                      ("small.npy", "smaller than"), ("x.jpg", ".npy or .png"), ("bad.png", "PNG"),
                      ("missing.npy", "No such file|not a readable")]:
        code, _, err = run_cli(["detect", model, tmp_path / name, "--out", tmp_path / "o"], capsys)
        assert code == 2 and "handgrad: error" in err, (name, err)
        import re

        assert re.search(msg, err), (name, err)


def test_cli_train_detector(tmp_path, capsys, saved):
    out = tmp_path / "det"
    code, stdout, err = run_cli(["train-detector", saved / "tiny.safetensors", "--subset", "--epochs", 1,
                                 "--head-only", "--out", out], capsys)
    assert code == 0, err
    model = hg.load(out / "model.safetensors")
    assert model.layers[-1].out_features == 11
    assert [i for i, layer in enumerate(model.layers) if not layer.trainable] == list(range(len(model.layers) - 1))
    assert hg.serialization.read_metadata(out / "model.safetensors")["background"] == 10
    # head-only: every other parameter is the plain model's
    plain = hg.load(saved / "tiny.safetensors")
    assert len(plain.layers) == len(model.layers)
    for (name, p), (_, q) in zip(list(plain.parameters())[:-2], list(model.parameters())[:-2]):
        assert np.array_equal(p, q), name
    assert "test accuracy on centred items" in stdout and "epoch   1/1" in stdout
