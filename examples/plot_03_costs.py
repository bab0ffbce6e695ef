r"""
Cost functions and output layers
================================

The cost is the mean :math:`C = \frac1n \sum c` of a per-sample cost (``003`` §2–3). Each
pairing of output activation and cost changes only statement (1) of backpropagation,
:math:`\boldsymbol\delta^{(L)} = \nabla_{\mathbf a} c \odot \sigma'(\mathbf z^{(L)})`:

.. math::

   c_{\text{MSE}} &= \tfrac12\|\mathbf a - \mathbf y\|^2\\
   c_{\text{CE}} &= -\textstyle\sum_j \big[y_j \ln a_j + (1 - y_j)\ln(1 - a_j)\big]\\
   c_{\text{NLL}} &= -\textstyle\sum_j y_j \ln a_j

and, for the output layer's error,

.. math::

   \text{sigmoid output, } c_{\text{MSE}}: \quad & \boldsymbol\delta^{(L)} = (\mathbf a - \mathbf y) \odot \sigma'(\mathbf z^{(L)})\\
   \text{sigmoid output, } c_{\text{CE}}: \quad & \boldsymbol\delta^{(L)} = \mathbf a - \mathbf y\\
   \text{linear output, } c_{\text{MSE}}: \quad & \boldsymbol\delta^{(L)} = \mathbf a - \mathbf y\\
   \text{softmax output, } c_{\text{NLL}}: \quad & \boldsymbol\delta^{(L)} = \mathbf a - \mathbf y

The first pairing learns slowly when the output neuron saturates (:math:`\sigma' \to 0`); the
cross-entropy is designed to cancel that factor.

- **Code**: :source:`handgrad.losses` (:class:`~handgrad.losses.MeanSquaredError`,
  :class:`~handgrad.losses.BinaryCrossEntropy` with ``from_logits``,
  :class:`~handgrad.losses.SoftmaxCrossEntropy`,
  :class:`~handgrad.losses.NegativeLogLikelihood`) and the stable log-softmax and softplus
  of :source:`handgrad.functional`.
- **Proof**: the gradient checks below, ``tests/test_losses.py`` (finite differences, PyTorch
  parity, logits of any magnitude).
- **Errata**: :ref:`errata-3` (a categorical cross-entropy paired with an element-wise
  output), :ref:`errata-5` (the cross-entropy's domain), :ref:`errata-6` and
  :ref:`errata-7` (dropped factors in ``000``), :ref:`errata-16` (a spurious factor in ``004``).
"""

# %%
# Saturation: δ of the output neuron against its weighted input
# -------------------------------------------------------------
# A sigmoid output neuron whose target is 0, for weighted inputs z from −6 to 6. With the
# halved MSE the error δ = (a − y)σ'(z) vanishes exactly where the neuron is most wrong.
import matplotlib.pyplot as plt
import numpy as np

import handgrad as hg
from handgrad import layers, losses

z = np.linspace(-6, 6, 241)[:, None]
y = np.zeros_like(z)
sig = layers.Sigmoid()
deltas = {}
for name, loss, through_sigmoid in [("sigmoid + halved MSE", losses.MeanSquaredError(), True),
                                    ("sigmoid + cross-entropy", losses.BinaryCrossEntropy(from_logits=True), False)]:
    if through_sigmoid:
        loss.forward(sig.forward(z, training=True), y)
        deltas[name] = sig.backward(loss.backward())
    else:
        loss.forward(z, y)                 # from_logits: the sigmoid is inside the loss
        deltas[name] = loss.backward()
fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
for name, d in deltas.items():
    ax.plot(z[:, 0], d[:, 0] * len(z), label=name)   # × n: the per-sample δ, not the mean's
ax.set(xlabel="weighted input z (target y = 0)", ylabel="δ⁽ᴸ⁾", title="Output error of one neuron")
ax.legend()
plt.show()

# %%
# Softmax + negative log-likelihood gives δ = a − y
# -------------------------------------------------
# On a batch of Fashion-MNIST logits from a small untrained model.
(x_train, y_train), _ = hg.data.load_fashion_mnist_subset()
x = hg.data.to_float(x_train[:16]).reshape(16, -1).astype(np.float64)
logits = layers.Dense(784, 10, rng=0, dtype="float64").forward(x)
target = hg.data.one_hot(y_train[:16], 10).astype(np.float64)
sce = losses.SoftmaxCrossEntropy()
value = sce.forward(logits, target)
a = np.exp(logits - logits.max(1, keepdims=True))
a /= a.sum(1, keepdims=True)
print(f"C = {value:.4f};  max |n·dC/dz − (a − y)| = {np.abs(sce.backward() * len(x) - (a - target)).max():.2e}")
nll = losses.NegativeLogLikelihood()
print(f"softmax then NegativeLogLikelihood gives the same C: {nll.forward(a, target):.4f}")

# %%
# Gradient checks of every loss
# -----------------------------
# ``hg.gradcheck(loss, output, target)``: the loss's ``backward`` against central differences
# of its value, in float64, with logits large enough to saturate a naive implementation.
rng = np.random.default_rng(0)
out = rng.standard_normal((8, 5)) * 4
probs = rng.dirichlet(np.ones(5), 8) * 0.9 + 0.02
labels = rng.integers(0, 5, 8)
checks = {
    "MeanSquaredError": (losses.MeanSquaredError(), out, rng.standard_normal((8, 5))),
    "BinaryCrossEntropy": (losses.BinaryCrossEntropy(), out, rng.integers(0, 2, (8, 5)).astype(float)),
    "SoftmaxCrossEntropy": (losses.SoftmaxCrossEntropy(), out, labels),
    "NegativeLogLikelihood": (losses.NegativeLogLikelihood(), probs, labels),
}
for name, (loss, output, tgt) in checks.items():
    print(f"{name:>22}: worst relative error {hg.gradcheck(loss, output, tgt).max_error:.1e}")
