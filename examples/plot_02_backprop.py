r"""
Feedforward networks and backpropagation
========================================

For a feedforward network with :math:`\mathbf a^{(l)} = \sigma(W^{(l)} \mathbf a^{(l-1)} +
\mathbf b^{(l)})` and per-sample cost :math:`c`, ``003`` §2 computes every partial derivative
from the error :math:`\boldsymbol\delta^{(l)} = \partial c / \partial \mathbf z^{(l)}` and four
statements (plus the two averages over the data set, (5)–(6)):

.. math::

   \boldsymbol\delta^{(L)} &= \nabla_{\mathbf a} c \odot \sigma'(\mathbf z^{(L)}) \qquad \text{(1)}\\
   \boldsymbol\delta^{(l)} &= \big((W^{(l+1)})^{\mathsf T} \boldsymbol\delta^{(l+1)}\big) \odot \sigma'(\mathbf z^{(l)}) \qquad \text{(2)}\\
   \frac{\partial c}{\partial b^{(l)}_j} &= \delta^{(l)}_j \qquad \text{(3)}\\
   \frac{\partial c}{\partial w^{(l)}_{j,k}} &= a^{(l-1)}_k \delta^{(l)}_j \qquad \text{(4)}

and :math:`\partial C / \partial \theta = \frac1n \sum \partial c / \partial \theta`, (5)–(6).

- **Code**: :source:`handgrad.layers.dense.Dense` (statements (2)–(4) in
  ``Dense.backward``: the input gradient :math:`W^{\mathsf T}\boldsymbol\delta`, the bias and
  weight gradients summed over the batch), :source:`handgrad.layers.activations.Sigmoid`
  (the :math:`\odot\sigma'` factor), :source:`handgrad.losses` (:math:`\nabla_{\mathbf a} c`,
  divided by the batch size for (5)–(6)) and :source:`handgrad.model.Sequential` (the
  backward sweep).
- **Proof**: below, each statement is evaluated by hand with NumPy and compared with both
  handgrad's ``backward`` and finite differences; ``tests/layers/test_dense.py`` and
  ``tests/test_model.py`` check every layer and model the same way.
- **Errata**: ``003`` §2 has no slip; the same derivatives in ``000`` lose their sums,
  :ref:`errata-1` and :ref:`errata-2`; index typos in ``001``: :ref:`errata-4`.
"""

# %%
# A 784-30-10 sigmoid network with the halved squared error
# ---------------------------------------------------------
# The textbook network of ``003`` §2, on a batch of the shipped Fashion-MNIST subset.
import numpy as np

import handgrad as hg
from handgrad import layers, losses

(x_train, y_train), _ = hg.data.load_fashion_mnist_subset()
x = hg.data.to_float(x_train[:32]).reshape(32, -1).astype(np.float64)
y = hg.data.one_hot(y_train[:32], 10).astype(np.float64)

model = hg.Sequential([layers.Dense(784, 30, rng=0, dtype="float64"), layers.Sigmoid(),
                       layers.Dense(30, 10, rng=1, dtype="float64"), layers.Sigmoid()])
loss = losses.MeanSquaredError()
cost = loss.forward(model.forward(x, training=True), y)
model.backward(loss.backward())
print(f"C = {cost:.5f}")

# %%
# The four statements by hand
# ---------------------------
# Row ``i`` of each array is one sample; the 1/n of (5)–(6) is applied at the end.
W2, b2 = model.layers[0].params["W"], model.layers[0].params["b"]
W3, b3 = model.layers[2].params["W"], model.layers[2].params["b"]
sigma = lambda v: 1 / (1 + np.exp(-v))
z2 = x @ W2.T + b2
a2 = sigma(z2)
z3 = a2 @ W3.T + b3
a3 = sigma(z3)
n = len(x)
delta3 = (a3 - y) * sigma(z3) * (1 - sigma(z3))                 # (1): ∇_a c = a − y
delta2 = (delta3 @ W3) * sigma(z2) * (1 - sigma(z2))            # (2)
grads = {"2.b": delta3.sum(0) / n, "2.W": delta3.T @ a2 / n,    # (3), (4), averaged: (5), (6)
         "0.b": delta2.sum(0) / n, "0.W": delta2.T @ x / n}
for key, by_hand in grads.items():
    i, name = key.split(".")
    ours = model.layers[int(i)].grads[name]
    print(f"layer {i} {name}: max |by hand − backward| = {np.abs(by_hand - ours).max():.2e}")

# %%
# Finite differences
# ------------------
# ``hg.gradcheck`` perturbs 256 randomly chosen entries of every parameter and of the input
# (``max_entries=None`` would take all 23,860; the test suite does so on smaller networks)
# and compares with the same ``backward`` through the loss.
result = hg.gradcheck(model, x, y, loss=loss)
print(result.table())
