r"""
Detection by sliding the classifier
===================================

``003`` §5: the convolution and pooling layers of a classifier trained on 28×28 images apply
unchanged to a larger image, and every 5×5 window of their (larger) output is what the fully
connected layers would see for one 28×28 window of the input. Rewriting the fully connected
layers as convolutions slides the whole classifier at once: the first
:math:`\text{Dense}(C h w \to m)` becomes a :math:`\text{Conv2D}(C \to m, h \times w)` with
:math:`W_{\text{conv}} = W_{\text{dense}}.\text{reshape}(m, C, h, w)` and each later
:math:`\text{Dense}(a \to b)` a :math:`1\times1` convolution. Position :math:`(p, q)` of the
resulting *class map* scores the window whose top-left corner is :math:`(ps, qs)`, with
:math:`s` the product of the strides below (4 for LeNet-5):

.. math::

   H' = \left\lfloor \frac{H - 28}{s} \right\rfloor + 1, \qquad
   P(\text{class } k \text{ at } (p, q)) = \operatorname{softmax}_k\big(\text{map}_{\cdot, p, q}\big).

- **Code**: :source:`handgrad.apps.detection.to_fully_convolutional`,
  :source:`handgrad.apps.detection.detect` (threshold and non-maximum suppression),
  :source:`handgrad.apps.scenes.make_scenes`.
- **Proof**: below, the class map equals the classifier applied window by window
  (``sliding_window_logits``, one forward per crop) — exactly for a network without padding;
  ``tests/test_detection.py`` checks both cases and the detection metrics.
- **Errata**: none for ``003`` §5; the "precisely the same class map" of the notes holds
  exactly only without zero padding (see the module's documentation).
"""

# %%
# A classifier without padding, trained briefly
# ---------------------------------------------
import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np

import handgrad as hg
from handgrad import layers, losses, optim
from handgrad.apps import detection, scenes

(x_train, y_train), (x_test, y_test) = hg.data.load_fashion_mnist_subset()
xf = hg.data.to_float(x_train).reshape(-1, 1, 28, 28)
model = hg.Sequential([
    layers.Conv2D(1, 6, 5, rng=0), layers.ReLU(), layers.MaxPool2D(2),    # 28 → 24 → 12
    layers.Conv2D(6, 16, 5, rng=1), layers.ReLU(), layers.MaxPool2D(2),   # 12 → 8 → 4
    layers.Flatten(), layers.Dense(16 * 4 * 4, 64, rng=2), layers.ReLU(), layers.Dense(64, 10, rng=3),
])
hg.fit(model, losses.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.02, momentum=0.9), xf, y_train,
       epochs=2, batch_size=32, seed=0, progress_bar=False)
fcn = detection.to_fully_convolutional(model, (1, 28, 28))
print(fcn.summary())

# %%
# Class map = the classifier on every window
# ------------------------------------------
world = scenes.make_scenes(x_test, y_test, n_scenes=4, size=(72, 72), items=(2, 3), seed=0)
scene = world.images[:1]
class_map = fcn.forward(scene)
by_window = detection.sliding_window_logits(model, scene[0], window=(28, 28), stride=(4, 4))
print("class map", class_map.shape, "windows", by_window.shape)
print(f"max |class map − window by window| = {np.abs(class_map[0] - by_window).max():.2e}")

# %%
# Detections on synthetic scenes
# ------------------------------
# Threshold the softmax of the map, then greedy non-maximum suppression. This classifier has
# no "background" class (see ``scenes.detector_training_data`` for the fix), so some empty or
# half-item windows are named confidently too.
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), constrained_layout=True)
for ax, img, boxes, labels in zip(axes, world.images, world.boxes, world.labels):
    det = detection.detect(fcn, img, threshold=0.95, top_k=4)
    ax.imshow(img[0], cmap="gray")
    for (t, l, h, w), k in zip(boxes, labels):
        ax.add_patch(patches.Rectangle((l, t), w, h, fill=False, ec="lime", lw=1.5))
    for t, l, h, w, k, s in det.rows():
        ax.add_patch(patches.Rectangle((l, t), w, h, fill=False, ec="red", ls="--", lw=1.2))
        ax.text(l, t - 1, f"{hg.data.CLASSES[k]} {s:.2f}", color="red", fontsize=7)
    ax.set(xticks=[], yticks=[], title="true (green), detected (red)")
plt.show()
# %%
# Recall and precision at IoU ≥ 0.5 over 20 more scenes:
scores = scenes.evaluate_detection(fcn, scenes.make_scenes(x_test, y_test, n_scenes=20, size=(72, 72), seed=1),
                                   threshold=0.95)
for key in ("items", "detections", "recall", "recall_class", "precision", "precision_class"):
    print(f"{key:>15}: {scores[key]:.3f}" if isinstance(scores[key], float) else f"{key:>15}: {scores[key]}")
