r"""
Long short-term memory (LSTM) and peephole connections
======================================================

An LSTM block (``003`` §7) keeps a cell state :math:`s_t` behind three sigmoid gates —
input :math:`i`, forget :math:`f`, output :math:`o` — and a tanh cell candidate :math:`g`. With
:math:`A_t = W_{ih}\mathbf x_t + W_{hh}\mathbf h_{t-1} + \mathbf b` split into four blocks and,
with **peephole connections**, each gate also seeing the previous cell state through a
diagonal weight :math:`\boldsymbol\psi_G`:

.. math::

   i_t &= \sigma(A_{I,t} + \psi_I \odot s_{t-1}), \qquad f_t = \sigma(A_{F,t} + \psi_F \odot s_{t-1})\\
   o_t &= \sigma(A_{O,t} + \psi_O \odot s_{t-1}), \qquad g_t = \tanh(A_{g,t})\\
   s_t &= f_t \odot s_{t-1} + i_t \odot g_t, \qquad \mathbf h_t = o_t \odot \tanh(s_t)

Backpropagation through time (``003`` §7, statements (2)–(11)), with
:math:`\boldsymbol\epsilon_a[t] = \partial C/\partial \mathbf h_t` and
:math:`\boldsymbol\epsilon_s[t] = \partial C / \partial s_t`:

.. math::

   \boldsymbol\epsilon_a[t] &= \mathbf e_t + \textstyle\sum_G W_{hh,G}^{\mathsf T}\boldsymbol\delta_G[t+1]\\
   \boldsymbol\epsilon_s[t] &= \boldsymbol\epsilon_a[t] \odot o_t \odot (1 - \tanh^2 s_t)
      + \boldsymbol\epsilon_s[t+1] \odot f_{t+1}\\
      &\quad + \textstyle\sum_G \psi_G \odot \boldsymbol\delta_G[t+1]\\
   \boldsymbol\delta_O &= \boldsymbol\epsilon_a \odot \tanh(s_t) \odot o(1-o), \qquad
   \boldsymbol\delta_g = \boldsymbol\epsilon_s \odot i \odot (1 - g^2)\\
   \boldsymbol\delta_F &= \boldsymbol\epsilon_s \odot s_{t-1} \odot f(1-f), \qquad
   \boldsymbol\delta_I = \boldsymbol\epsilon_s \odot g \odot i(1-i)\\
   \frac{\partial C}{\partial \psi_G} &= \textstyle\sum_t \boldsymbol\delta_G[t] \odot s_{t-1}

The term :math:`\boldsymbol\epsilon_s[t+1] \odot f_{t+1}` is the constant error carousel: with the
forget gate open the error flows back along the cell without the repeated
:math:`W_{hh}^{\mathsf T}\operatorname{diag}(\phi')` factors of the Elman RNN.

- **Code**: :source:`handgrad.layers.lstm.LSTM` (``peepholes=True`` adds ``w_peep``,
  ``(3, H)`` for (input, forget, output)).
- **Proof**: the gradient check below, with and without peepholes; ``tests/layers/test_lstm.py``
  adds PyTorch parity (``torch.nn.LSTM``, whose two biases are our one), masks and stateful
  truncated BPTT.
- **Errata**: :ref:`errata-12`, :ref:`errata-13`, :ref:`errata-14`, :ref:`errata-15` — ``000``'s
  LSTM gradients (sigmoid gates differentiated as tanh, a spurious output-gate factor, a wrong
  index, missing paths). ONNX's own ``LSTM`` operator feeds the output-gate peephole with
  :math:`s_t`, not :math:`s_{t-1}`, so a peephole LSTM is exported another way (see the ONNX
  topic).
"""

# %%
# Gradient check, with and without peepholes
# ------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

import handgrad as hg
from handgrad import layers, losses, optim

rng = np.random.default_rng(0)
x = rng.standard_normal((3, 6, 4))
for peep in (False, True):
    lstm = layers.LSTM(4, 5, peepholes=peep, rng=0, dtype="float64")
    if peep:   # zero-initialized: give the peepholes values so their gradient is exercised
        lstm.params["w_peep"][...] = rng.standard_normal((3, 5)) * 0.5
    result = hg.gradcheck(lstm, x)
    print(f"LSTM(peepholes={peep!s:<5}) " + ", ".join(f"{k} {v:.1e}" for k, v in result.errors.items()))

# %%
# An LSTM with peepholes reading images row by row
# ------------------------------------------------
(x_train, y_train), (x_test, y_test) = hg.data.load_fashion_mnist_subset()
s_train = hg.data.sequential_images(hg.data.to_float(x_train))
s_test = hg.data.sequential_images(hg.data.to_float(x_test))
model = hg.Sequential([layers.LSTM(28, 32, peepholes=True, return_sequences=False, rng=0,
                                   record_delta_norms=True),
                       layers.Dense(32, 10, rng=1)])
loss = losses.SoftmaxCrossEntropy()
h = hg.fit(model, loss, optim.Adam(model, lr=3e-3), s_train[:3000], y_train[:3000], epochs=2,
           batch_size=50, validation_data=(s_test, y_test), seed=0, progress_bar=False)
print("test accuracy per epoch:", [round(a, 3) for a in h.history["val_accuracy"]])
print("peephole weights after training, mean |ψ| per gate (I, F, O):",
      np.round(np.abs(model.layers[0].params["w_peep"]).mean(axis=1), 4))

# %%
# The error along time: LSTM against the Elman RNN
# ------------------------------------------------
# ‖δ[t]‖ of the gates' pre-activations at each step, for one batch, next to an Elman RNN of
# the same width trained the same way (see the RNN topic). The cell path keeps the early rows'
# error alive.
rnn_model = hg.Sequential([layers.RNN(28, 32, return_sequences=False, rng=0, record_delta_norms=True),
                           layers.Dense(32, 10, rng=1)])
hg.fit(rnn_model, loss, optim.Adam(rnn_model, lr=3e-3), s_train[:3000], y_train[:3000], epochs=2,
       batch_size=50, seed=0, progress_bar=False)
fig, ax = plt.subplots(figsize=(6.5, 3.6), constrained_layout=True)
for name, m in (("LSTM (peepholes)", model), ("Elman RNN", rnn_model)):
    loss.forward(m.forward(s_test[:256], training=True), y_test[:256])
    m.backward(loss.backward())
    norms = np.asarray(m.layers[0].delta_norms)
    ax.semilogy(range(1, 29), norms / norms[-1], marker=".", label=name)
ax.set(xlabel="time step t", ylabel="‖δ[t]‖ / ‖δ[T]‖", title="Error reaching each step, relative to the last")
ax.legend()
plt.show()
