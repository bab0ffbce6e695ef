r"""
Reuse of trained layers
=======================

``003`` §5 ends with transfer learning: the parameters of a convolutional network trained on
one task, "up to its last fully connected layer", are a good starting point for another
classification task — the early layers learned a representation (edges, textures, parts), so
only the classifier on top has to be learned again. With the network split as
:math:`f = h_{\theta_h} \circ g_{\theta_g}`, training on task B keeps :math:`\theta_g` fixed
and minimizes over the new head only:

.. math::

   \theta_h^\star = \arg\min_{\theta_h} \frac1n \sum_{(\mathbf x, y) \in \mathcal D_B}
   c\big(h_{\theta_h}(g_{\theta_g}(\mathbf x)), y\big),
   \qquad \frac{\partial C}{\partial \theta_g} \text{ is never needed.}

- **Code**: :source:`handgrad.apps.transfer.replace_head`,
  :source:`handgrad.apps.transfer.freeze` (frozen layers compute no parameter gradient, and
  ``Sequential.backward`` stops below the first trainable layer).
- **Proof**: below, the frozen layers are bit-for-bit unchanged by training and the transferred
  model passes the gradient check; ``tests/test_transfer.py`` covers freezing, cloning and
  the optimizers skipping frozen layers.
- **Errata**: none concern ``003`` §5.
"""

# %%
# Task A: classes 0–4; task B: classes 5–9 with only 20 images per class
# ----------------------------------------------------------------------
import numpy as np

import handgrad as hg
from handgrad import losses, optim, presets
from handgrad.apps import transfer

(x_train, y_train), (x_test, y_test) = hg.data.load_fashion_mnist_subset()
x_train = hg.data.to_float(x_train).reshape(-1, 1, 28, 28)
x_test = hg.data.to_float(x_test).reshape(-1, 1, 28, 28)
a_train, a_test = y_train < 5, y_test < 5
xa, ya = x_train[a_train], y_train[a_train]
b_idx = np.concatenate([np.flatnonzero(y_train == k)[:20] for k in range(5, 10)])
xb, yb = x_train[b_idx], y_train[b_idx] - 5
xb_test, yb_test = x_test[~a_test], y_test[~a_test] - 5
print(f"task A: {len(xa)} images of {[hg.data.CLASSES[k] for k in range(5)]}")
print(f"task B: {len(xb)} images of {[hg.data.CLASSES[k] for k in range(5, 10)]}")

loss = losses.SoftmaxCrossEntropy()
model_a = presets.lenet5(classes=5, seed=0)
hg.fit(model_a, loss, optim.SGD(model_a, lr=0.02, momentum=0.9), xa, ya, epochs=2, batch_size=32,
       seed=0, progress_bar=False)
print(f"task A test accuracy: {hg.evaluate(model_a, loss, x_test[a_test], y_test[a_test])['accuracy']:.3f}")

# %%
# Task B: from scratch against reused layers
# ------------------------------------------
# Three ways to learn task B from its 100 images, same optimizer and epochs: a fresh
# LeNet-5; task A's layers frozen under a new head; and the same, then every layer fine-tuned
# with a smaller learning rate. The numbers are those of this build's run.
scratch = presets.lenet5(classes=5, seed=1)
reused = transfer.freeze(transfer.replace_head(model_a, 5, rng=1), but_last=1)
frozen_before = {i: {k: v.copy() for k, v in layer.params.items()}
                 for i, layer in enumerate(reused.layers) if not layer.trainable and layer.params}
for name, m in (("from scratch", scratch), ("reused layers, new head", reused)):
    hg.fit(m, loss, optim.SGD(m, lr=0.02, momentum=0.9), xb, yb, epochs=15, batch_size=20,
           seed=0, progress_bar=False)
    print(f"{name:<30} task B test accuracy {hg.evaluate(m, loss, xb_test, yb_test)['accuracy']:.3f}")
unchanged = all(np.array_equal(reused.layers[i].params[k], v) for i, p in frozen_before.items() for k, v in p.items())
print("trainable layers:", transfer.trainable_layers(reused), "| frozen layers bit-for-bit unchanged:", unchanged)

tuned = transfer.unfreeze(transfer.clone(reused))
hg.fit(tuned, loss, optim.SGD(tuned, lr=0.002, momentum=0.9), xb, yb, epochs=5, batch_size=20,
       seed=0, progress_bar=False)
print(f"{'then fine-tuned, all layers':<30} task B test accuracy {hg.evaluate(tuned, loss, xb_test, yb_test)['accuracy']:.3f}")

# %%
# Gradient check of the new head
# ------------------------------
# The only layer that learns is the new ``Dense(84, 5)``; it is checked in float64 on the
# features the frozen layers produce for a few task-B images. (The frozen LeNet-5 itself is
# checked layer by layer in the CNN topic: a finite difference across a whole ReLU/max-pool
# network straddles kinks, where no derivative exists.)
feats = xb[:8]
for layer in reused.layers[:-1]:
    feats = layer.forward(feats)
head = hg.Sequential([transfer.clone_layer(reused.layers[-1])]).astype("float64")
result = hg.gradcheck(head, feats.astype(np.float64))
print(f"new head {head.layers[0]}: worst relative error {result.max_error:.1e}")
