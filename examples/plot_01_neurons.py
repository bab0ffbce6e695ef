r"""
Artificial neurons
==================

``003`` §1 defines five models of an artificial neuron with weights
:math:`\mathbf w \in \mathbb R^m`, bias :math:`b` and threshold :math:`\theta`, all functions
of the weighted input :math:`z = b + \mathbf x \mathbf w`:

.. math::

   \text{linear: } z, \qquad \text{rectified linear: } \max(0, z), \qquad
   \text{binary thresholded: } \begin{cases} 1 & z \ge \theta \\ 0 & \text{otherwise,}\end{cases}

.. math::

   \text{sigmoid: } \sigma(z) = \frac{1}{1 + e^{-z}}, \qquad
   \text{stochastic binary: } P(Y = 1 \mid \mathbf w, b) = \sigma(z),

with :math:`\sigma'(z) = \sigma(z)\,(1 - \sigma(z))` (``003`` §2).

- **Code**: :source:`handgrad.layers.activations`
  (:class:`~handgrad.layers.Identity`, :class:`~handgrad.layers.ReLU`,
  :class:`~handgrad.layers.BinaryThreshold`, :class:`~handgrad.layers.Sigmoid`,
  :class:`~handgrad.layers.StochasticBinary`) and the weighted input
  :source:`handgrad.layers.dense.Dense`.
- **Proof**: the gradient check below, and ``tests/layers/test_activations.py``
  (finite differences in float64 and PyTorch parity for every activation).
- **Errata**: none in ``003`` §1; the cross-entropy's domain remark of ``003`` §3 is
  :ref:`errata-5`.
"""

# %%
# One neuron, five models
# -----------------------
# A single ``Dense(2, 1)`` computes :math:`z = b + \mathbf x \mathbf w` for a batch of 2-D
# inputs; each activation layer turns it into one neuron model. The bias is the negative
# intercept of the hyperplane :math:`\mathbf x \mathbf w = -b` that the thresholded neuron
# draws.
import matplotlib.pyplot as plt
import numpy as np

import handgrad as hg
from handgrad import layers

neuron = layers.Dense(2, 1, rng=0, dtype="float64")
neuron.params["W"][...] = [[1.5, -1.0]]
neuron.params["b"][...] = [0.5]

grid = np.linspace(-3, 3, 121)
xx, yy = np.meshgrid(grid, grid)
x = np.stack([xx.ravel(), yy.ravel()], axis=1)
z = neuron.forward(x)

models = {
    "linear": layers.Identity(),
    "rectified linear": layers.ReLU(),
    "binary threshold (θ=0)": layers.BinaryThreshold(0.0),
    "sigmoid": layers.Sigmoid(),
    "stochastic binary (sample)": layers.StochasticBinary(rng=0),
}
fig, axes = plt.subplots(1, 5, figsize=(15, 3.2), constrained_layout=True)
for ax, (name, act) in zip(axes, models.items()):
    out = act.forward(z, training=True).reshape(xx.shape)   # training=True: StochasticBinary samples
    im = ax.imshow(out, origin="lower", extent=(-3, 3, -3, 3), cmap="viridis")
    ax.plot(grid, (1.5 * grid + 0.5) / 1.0, "w--", lw=1)    # the hyperplane z = 0
    ax.set(title=name, xlim=(-3, 3), ylim=(-3, 3), xticks=[], yticks=[])
    fig.colorbar(im, ax=ax, shrink=0.8)
plt.show()

# %%
# The stochastic neuron fires with probability :math:`\sigma(z)`: its mean over many draws is
# the sigmoid neuron.
stoch = layers.StochasticBinary(rng=1)
zs = np.full((20000, 1), 0.8)
print(f"mean of 20000 samples at z=0.8: {stoch.forward(zs, training=True).mean():.4f}")
print(f"sigma(0.8)                     : {1 / (1 + np.exp(-0.8)):.4f}")

# %%
# Gradient check
# --------------
# Each differentiable model's ``backward`` against fourth-order central differences in
# float64 (inputs kept away from ReLU's kink). The thresholded neuron has derivative zero
# almost everywhere, so its backward returns zeros — which is why it cannot be trained by
# backpropagation.
rng = np.random.default_rng(0)
x = rng.uniform(0.1, 2.0, (8, 5)) * rng.choice([-1, 1], (8, 5))
for layer in (layers.Identity(), layers.ReLU(), layers.Sigmoid(), layers.Tanh(),
              layers.Dense(5, 3, rng=0, dtype="float64")):
    result = hg.gradcheck(layer, x)
    print(f"{type(layer).__name__:>8}: worst relative error {result.max_error:.1e}")
threshold = layers.BinaryThreshold(0.0)
threshold.forward(np.array([[-1.0, 0.5, 2.0]]), training=True)
print("BinaryThreshold backward of ones:", threshold.backward(np.ones((1, 3))))
