r"""
Convolutional networks and LeNet-5
==================================

A convolutional layer is a cross-correlation of its input with :math:`D` kernels, with stride
:math:`s` and zero padding (``001`` eq. (25); ``003`` §5); max-pooling keeps the largest value
of each window:

.. math::

   y_{n,d,p,q} &= b_d + \sum_{c}\sum_{i,j} W_{d,c,i,j}\, \tilde x_{n,c,\,ps + i,\,qs + j}\\
   \text{pool}(x)_{n,c,p,q} &= \max_{(i,j)\,\in\,\text{window}(p,q)} x_{n,c,i,j}

with :math:`\tilde x` the zero-padded input. Backward, with
:math:`\delta = \partial C / \partial y` (``001`` eqs. (30)–(31)):

.. math::

   \frac{\partial C}{\partial b_d} &= \sum_{n,p,q} \delta_{n,d,p,q}\\
   \frac{\partial C}{\partial W_{d,c,i,j}} &= \sum_{n,p,q} \delta_{n,d,p,q}\, \tilde x_{n,c,\,ps+i,\,qs+j}\\
   \frac{\partial C}{\partial \tilde x_{n,c,u,v}} &= \sum_{d,i,j} W_{d,c,i,j}\,
   \delta_{n,d,\,(u-i)/s,\,(v-j)/s}

(the last one is the full convolution of :math:`\delta` with the kernel rotated by 180°,
over the integer quotients), and max-pooling routes each window's error to the position of
its maximum (mean pooling spreads it evenly, divided by the window size). LeNet-5 (``001`` §3) stacks
conv 5×5 (6) → pool → conv 5×5 (16) → pool → 120 → 84 → 10.

- **Code**: :source:`handgrad.layers.conv.Conv2D` (im2col/col2im in
  :source:`handgrad.kernels`), :source:`handgrad.layers.pool.MaxPool2D`,
  :source:`handgrad.layers.pool.AvgPool2D`, the preset :source:`handgrad.presets.lenet5`.
- **Proof**: the gradient checks below (stride 2 and padding included);
  ``tests/layers/test_conv.py`` and ``tests/layers/test_pool.py`` compare with a naive loop,
  finite differences and ``torch.nn.functional``.
- **Errata**: :ref:`errata-8`, :ref:`errata-9`, :ref:`errata-10` (``000``'s pooling and
  convolution derivatives) and :ref:`errata-17` (``001``'s summation ranges).
"""

# %%
# Gradient checks: convolution with stride and padding, both poolings
# -------------------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

import handgrad as hg
from handgrad import layers, losses, optim, presets

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 9, 9))
for layer in (layers.Conv2D(3, 4, 3, stride=2, padding=1, dtype="float64", rng=0),
              layers.Conv2D(3, 2, (2, 3), dtype="float64", rng=1),
              layers.MaxPool2D(2), layers.AvgPool2D(3, stride=2)):
    print(f"{layer!s:<40} worst relative error {hg.gradcheck(layer, x).max_error:.1e}")

# %%
# The whole network at once, in its smooth variant (tanh, mean pooling): with ReLU and
# max-pooling a finite difference over ~14,000 positions nearly always straddles a kink
# (ReLU at 0, a max-pool tie), where the derivative does not exist, so those two are checked
# layer by layer above.
smooth = presets.lenet5(activation="tanh", pool="avg", classes=10, seed=0).astype("float64")
images = rng.uniform(0, 1, (2, 1, 28, 28))
result = hg.gradcheck(smooth, images, np.array([3, 7]), loss=losses.SoftmaxCrossEntropy(), max_entries=64)
print(result.table())

# %%
# LeNet-5 on the shipped subset
# -----------------------------
# Two epochs on 3,000 of the training images (the full data set reaches 91 %: see the model
# zoo). The preset starts with a ``Normalize`` layer, so it takes gray levels in [0, 1].
(x_train, y_train), (x_test, y_test) = hg.data.load_fashion_mnist_subset()
x_train = hg.data.to_float(x_train).reshape(-1, 1, 28, 28)
x_test = hg.data.to_float(x_test).reshape(-1, 1, 28, 28)
model = presets.lenet5(seed=0)
loss = losses.SoftmaxCrossEntropy()
opt = optim.SGD(model, lr=0.02, momentum=0.9)
history = hg.fit(model, loss, opt, x_train[:3000], y_train[:3000], epochs=2, batch_size=32,
                 validation_data=(x_test, y_test), seed=0, progress_bar=False)
print(model.summary())
for epoch, (a, va) in enumerate(zip(history.history["accuracy"], history.history["val_accuracy"]), 1):
    print(f"epoch {epoch}: train accuracy {a:.3f}, test accuracy {va:.3f}")

# %%
# What the first layer learned
# ----------------------------
# The six 5×5 kernels of the first convolution and their feature maps on one test image.
conv1 = model.layers[1]
image = x_test[:1]
maps = model.layers[2].forward(conv1.forward(model.layers[0].forward(image)))
fig, axes = plt.subplots(2, 7, figsize=(12, 3.8), constrained_layout=True)
axes[0, 0].imshow(image[0, 0], cmap="gray")
axes[0, 0].set_title(hg.data.CLASSES[y_test[0]], fontsize=9)
axes[1, 0].axis("off")
for k in range(6):
    axes[0, k + 1].imshow(conv1.params["W"][k, 0], cmap="RdBu_r")
    axes[0, k + 1].set_title(f"kernel {k}", fontsize=9)
    axes[1, k + 1].imshow(maps[0, k], cmap="magma")
for ax in axes.ravel():
    ax.set(xticks=[], yticks=[])
plt.show()
