r"""
Recurrent networks, BPTT and the vanishing gradient
===================================================

An Elman network (``003`` §6) reads a sequence :math:`\mathbf x_1, \dots, \mathbf x_T` and keeps a
state :math:`\mathbf h_t = \phi(\mathbf z_t)`, :math:`\mathbf z_t = W_{ih}\mathbf x_t + W_{hh}\mathbf h_{t-1} + \mathbf b`,
:math:`\mathbf h_0 = 0`. Backpropagation through time, with :math:`\mathbf e_t = \partial C/\partial \mathbf h_t`
from the layer above and :math:`\boldsymbol\delta[t] = \partial C / \partial \mathbf z_t` (``003`` §6,
statements (2)–(5)):

.. math::

   \boldsymbol\delta[t] &= \phi'(\mathbf z_t) \odot \big(\mathbf e_t + W_{hh}^{\mathsf T} \boldsymbol\delta[t+1]\big),
   \qquad \boldsymbol\delta[T+1] = 0\\
   \frac{\partial C}{\partial \mathbf b} &= \sum_t \boldsymbol\delta[t], \qquad
   \frac{\partial C}{\partial W_{ih}} = \sum_t \boldsymbol\delta[t]\,\mathbf x_t^{\mathsf T}, \qquad
   \frac{\partial C}{\partial W_{hh}} = \sum_t \boldsymbol\delta[t]\,\mathbf h_{t-1}^{\mathsf T}

An error arriving at step :math:`T` reaches step :math:`t` multiplied by
:math:`\prod_{\tau = t+1}^{T} W_{hh}^{\mathsf T} \operatorname{diag}\big(\phi'(\mathbf z_\tau)\big)`: with
:math:`|\phi'| \le 1` and a moderate :math:`W_{hh}` it shrinks geometrically — the vanishing
gradient that the LSTM was designed to avoid.

- **Code**: :source:`handgrad.layers.recurrent.RNN` (``record_delta_norms`` keeps
  :math:`\|\boldsymbol\delta[t]\|` for each step), the row-by-row image sequences of
  :source:`handgrad.data.sequences.sequential_images`.
- **Proof**: the gradient check below (tanh and sigmoid, ``return_sequences`` both ways);
  ``tests/layers/test_rnn.py`` adds PyTorch parity against ``torch.nn.RNN``, masks and
  truncated BPTT.
- **Errata**: :ref:`errata-11` (``000`` replaces :math:`\partial \mathbf h_i / \partial \mathbf h_{i-1}`
  by :math:`W_{hh}`).
"""

# %%
# Gradient check of BPTT
# ----------------------
import matplotlib.pyplot as plt
import numpy as np

import handgrad as hg
from handgrad import layers, losses, optim

rng = np.random.default_rng(0)
x = rng.standard_normal((3, 7, 4))
for act in ("tanh", "sigmoid"):
    for seq in (True, False):
        rnn = layers.RNN(4, 5, activation=act, return_sequences=seq, rng=0, dtype="float64")
        print(f"RNN({act}, return_sequences={seq!s:<5}) worst relative error {hg.gradcheck(rnn, x).max_error:.1e}")

# %%
# An RNN reading Fashion-MNIST images row by row
# ----------------------------------------------
# 28 steps of 28 pixels; the class is predicted from the last state.
(x_train, y_train), (x_test, y_test) = hg.data.load_fashion_mnist_subset()
s_train = hg.data.sequential_images(hg.data.to_float(x_train))
s_test = hg.data.sequential_images(hg.data.to_float(x_test))
print("sequences:", s_train.shape)
model = hg.Sequential([layers.RNN(28, 64, return_sequences=False, rng=0, record_delta_norms=True),
                       layers.Dense(64, 10, rng=1)])
loss = losses.SoftmaxCrossEntropy()
h = hg.fit(model, loss, optim.Adam(model, lr=2e-3), s_train, y_train, epochs=3, batch_size=64,
           validation_data=(s_test, y_test), seed=0, progress_bar=False)
print("test accuracy per epoch:", [round(a, 3) for a in h.history["val_accuracy"]])

# %%
# The error signal along time
# ---------------------------
# One batch through the trained network: ‖δ[t]‖ (mean over the batch) for every step, for
# the trained RNN and for the same architecture with larger and smaller recurrent weights.
fig, ax = plt.subplots(figsize=(6.5, 3.6), constrained_layout=True)
for name, scale in (("trained", None), ("W_hh × 0.5", 0.5), ("W_hh × 2", 2.0)):
    rnn = model.layers[0]
    saved = rnn.params["W_hh"].copy()
    if scale is not None:
        rnn.params["W_hh"][...] = saved * scale
    loss.forward(model.forward(s_test[:256], training=True), y_test[:256])
    model.backward(loss.backward())
    ax.semilogy(range(1, 29), rnn.delta_norms, marker=".", label=name)
    rnn.params["W_hh"][...] = saved
ax.set(xlabel="time step t (row of the image)", ylabel="‖δ[t]‖", title="Elman RNN: error reaching each step")
ax.legend()
plt.show()
