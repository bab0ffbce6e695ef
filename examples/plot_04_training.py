r"""
Training: momentum, L2, dropout, early stopping
===============================================

Stochastic gradient descent on mini-batches (``003`` §2), with the techniques of ``003`` §4:

.. math::

   \text{momentum: } & v_{t+1} = \mu v_t - \eta \frac{\partial C}{\partial w_t}, \quad w_{t+1} = w_t + v_{t+1}\\
   \text{L2 (weight decay): } & C = C_0 + \frac{\lambda}{2n}\sum_w w^2, \quad
   \frac{\partial C}{\partial w} = \frac{\partial C_0}{\partial w} + \frac{\lambda}{n} w
   \quad\text{(biases not penalized)}\\
   \text{dropout: } & \tilde{\mathbf a} = \mathbf a \odot \mathbf m / (1 - p), \quad m_j \sim \text{Bernoulli}(1 - p)

handgrad's ``weight_decay`` is the :math:`\lambda/n` of the notes (applied to every parameter
except the biases ``b``); its dropout is *inverted* — scaled by :math:`1/(1-p)` during training
instead of halving the weights afterwards, the same network in expectation. Early stopping
watches the validation accuracy of the learning curves and keeps the best weights.

- **Code**: :source:`handgrad.optim.sgd.SGD` (momentum, weight decay),
  :source:`handgrad.layers.dropout.Dropout`, :source:`handgrad.training.loop.fit` (the loop,
  learning curves in the returned ``History``) and
  :source:`handgrad.training.callbacks.EarlyStopping`.
- **Proof**: ``tests/test_optim.py`` checks every update rule against the formulas above and
  against ``torch.optim``; the gradient check of ``Dropout`` below uses a fixed mask.
- **Errata**: none — the L2, momentum and dropout derivations of ``003`` §4 check out (see the
  errata's *Checked and correct*).
"""

# %%
# Data: the shipped subset, with a validation split
# -------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

import handgrad as hg
from handgrad import layers, losses, optim

(x_train, y_train), (x_test, y_test) = hg.data.load_fashion_mnist_subset()
x_train, x_test = hg.data.standardize(hg.data.to_float(x_train).reshape(len(x_train), -1),
                                      hg.data.to_float(x_test).reshape(len(x_test), -1))
x_fit, y_fit = x_train[:1500], y_train[:1500]          # small on purpose: overfitting shows
x_val, y_val = x_train[5000:], y_train[5000:]


def mlp(dropout=0.0):
    stack = [layers.Dense(784, 64, weight_init="he_normal", rng=0), layers.ReLU()]
    if dropout:
        stack.append(layers.Dropout(dropout))
    return hg.Sequential(stack + [layers.Dense(64, 10, rng=1)])


def run(name, dropout=0.0, callbacks=(), **sgd):
    model = mlp(dropout)
    opt = optim.SGD(model, lr=sgd.pop("lr", 0.05), **sgd)
    history = hg.fit(model, losses.SoftmaxCrossEntropy(), opt, x_fit, y_fit, epochs=25,
                     batch_size=50, validation_data=(x_val, y_val), callbacks=list(callbacks),
                     seed=0, progress_bar=False)
    acc = hg.evaluate(model, losses.SoftmaxCrossEntropy(), x_test, y_test)["accuracy"]
    print(f"{name:<28} epochs {len(history.history['loss']):>2}  "
          f"final val acc {history.history['val_accuracy'][-1]:.3f}  test acc {acc:.3f}")
    return history.history


# %%
# Four runs, same seed
# --------------------
runs = {
    "plain SGD (η = 0.05)": run("plain SGD (η = 0.05)"),
    "momentum μ = 0.9": run("momentum μ = 0.9", momentum=0.9, lr=0.01),
    "momentum + L2 + dropout 0.5": run("momentum + L2 + dropout 0.5", dropout=0.5,
                                       momentum=0.9, lr=0.01, weight_decay=1e-3),
    "early stopping (patience 3)": run("early stopping (patience 3)", momentum=0.9, lr=0.01,
                                       callbacks=[hg.EarlyStopping("val_accuracy", patience=3)]),
}

# %%
# Learning curves
# ---------------
# Training cost falls for every run; the validation cost of the unregularized runs turns up
# (overfitting on 1,500 images), dropout and L2 keep it down, and early stopping ends the run
# a few epochs after the best validation accuracy and restores those weights.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
for name, h in runs.items():
    line, = ax1.plot(h["loss"], label=name)
    ax1.plot(h["val_loss"], "--", color=line.get_color())
    ax2.plot(h["val_accuracy"], color=line.get_color(), label=name)
ax1.set(xlabel="epoch", ylabel="cost", title="training (solid) and validation (dashed) cost")
ax2.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
ax2.legend(fontsize=8)
plt.show()

# %%
# Gradient check of dropout
# -------------------------
# With the layer's generator re-seeded before each evaluation (``gradcheck`` does this for
# stochastic layers) the mask is fixed and dropout is a linear map.
x = np.random.default_rng(0).standard_normal((6, 20))
print(f"Dropout(0.5): worst relative error {hg.gradcheck(layers.Dropout(0.5), x).max_error:.1e}")
