r"""
Restricted Boltzmann machines and the deep autoencoder
======================================================

A restricted Boltzmann machine (``003`` §8; Hinton & Salakhutdinov 2006) is an energy model of
visible units :math:`\mathbf v` and hidden units :math:`\mathbf h` with no connections inside a
layer. With bernoulli units,

.. math::

   E(\mathbf v, \mathbf h) = -\mathbf v^{\mathsf T}\mathbf b_v - \mathbf h^{\mathsf T}\mathbf b_h - \mathbf h^{\mathsf T} W \mathbf v,
   \qquad p(\mathbf v) = \frac{e^{-F(\mathbf v)}}{Z}, \qquad
   F(\mathbf v) = -\mathbf v^{\mathsf T}\mathbf b_v - \sum_j \ln\big(1 + e^{(W\mathbf v + \mathbf b_h)_j}\big),

so that :math:`E[\mathbf h \mid \mathbf v] = \sigma(W\mathbf v + \mathbf b_h)` and
:math:`E[\mathbf v \mid \mathbf h] = \sigma(W^{\mathsf T}\mathbf h + \mathbf b_v)`. The gradient of
the mean negative log-likelihood is a difference of a data and a model expectation,

.. math::

   -\frac{\partial \ln p(\mathbf v)}{\partial W} = -\,E[\mathbf h \mid \mathbf v]\,\mathbf v^{\mathsf T}
   + \mathbb E_{p(\mathbf v', \mathbf h')}\big[\mathbf h' \mathbf v'^{\mathsf T}\big],

and contrastive divergence (CD-k) replaces the model expectation by the state of a Gibbs chain
run for :math:`k` steps from the data. A stack of RBMs, each trained on the hidden means of the
one below, *unrolls* (``003`` §9) into a deep autoencoder: encoder
:math:`\text{Dense}(W_i, \mathbf b_{h,i})`, decoder :math:`\text{Dense}(W_i^{\mathsf T}, \mathbf b_{v,i})`,
then fine-tuned by backpropagation.

- **Code**: :source:`handgrad.rbm.machine.RBM`,
  :source:`handgrad.rbm.cd.contrastive_divergence`, :source:`handgrad.rbm.exact.exact_grads`,
  :source:`handgrad.rbm.stack.unroll`.
- **Proof**: below, the exact gradient (by enumerating the hidden states) against finite
  differences of the exact log-likelihood, CD-1's bias against that exact gradient, and the
  gradient check of the unrolled autoencoder.
- **Derivations**: the chapter :doc:`../rbm` (free energies, CD-k and PCD, exact
  enumeration, unrolling).
- **Errata**: none — the notes give the section titles only; the equations follow Hinton &
  Salakhutdinov (2006) and Hinton's practical guide.
"""

# %%
# The exact gradient, checked by finite differences
# -------------------------------------------------
# A small RBM (12 hidden units: log Z sums 2¹² states exactly) on 8×8 thumbnails of the
# shipped images, in float64.
import matplotlib.pyplot as plt
import numpy as np

import handgrad as hg
from handgrad import losses, optim, rbm

(x_train, y_train), (x_test, y_test) = hg.data.load_fashion_mnist_subset()
images = hg.data.to_float(x_train).reshape(-1, 28, 28)
thumbs = images[:, 2:26, 2:26].reshape(-1, 8, 3, 8, 3).mean(axis=(2, 4)).reshape(-1, 64)

small = rbm.RBM(64, 12, rng=0, dtype=np.float64)
v = thumbs[:20].astype(np.float64)
exact = rbm.exact_grads(small, v)


def mean_nll():
    return -float(np.mean(small.log_likelihood(v)))


worst = 0.0
pick = np.random.default_rng(0)
for name in ("W", "b_hidden", "b_visible"):
    p = small.params[name].reshape(-1)
    for idx in pick.choice(p.size, 8, replace=False):
        old = p[idx]
        p[idx] = old + 1e-5
        up = mean_nll()
        p[idx] = old - 1e-5
        down = mean_nll()
        p[idx] = old
        numeric = (up - down) / 2e-5
        analytic = exact[name].reshape(-1)[idx]
        worst = max(worst, abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-8))
print(f"exact gradient vs finite differences of −mean log p(v): worst relative error {worst:.1e}")

# %%
# CD-k estimates that gradient from a k-step Gibbs chain: the cosine similarity of its
# average over 20 chains to the exact gradient, for k = 1, 5, 25 (on this untrained machine
# the chain mixes fast and even CD-1 points close to the exact direction).
for k in (1, 5, 25):
    est = []
    for seed in range(20):
        small.contrastive_divergence(v, k=k, rng=seed)
        est.append(small.grads["W"].copy())
    est = np.mean(est, axis=0)
    cos = float((est * exact["W"]).sum() / np.linalg.norm(est) / np.linalg.norm(exact["W"]))
    print(f"CD-{k:<2}: cosine to the exact dW {cos:.3f}")

# %%
# Pretraining a stack and unrolling it
# ------------------------------------
# 784 → 128 → 32 on the full 28×28 images (gray levels as probabilities), CD-1 with momentum,
# a few epochs each, then unrolled into a 784-128-32-128-784 autoencoder and fine-tuned with
# the cross-entropy on the logits.
x = hg.data.to_float(x_train).reshape(-1, 784)
xt = hg.data.to_float(x_test).reshape(-1, 784)
stack, inputs = [], x
for n_hidden, seed in ((128, 0), (32, 1)):
    r = rbm.RBM(inputs.shape[1], n_hidden, rng=seed)
    opt = optim.SGD(r, lr=0.05, momentum=0.5, weight_decay=2e-4)
    order = np.random.default_rng(seed)
    for epoch in range(3):
        errs = []
        for batch in np.array_split(order.permutation(len(inputs)), len(inputs) // 100):
            errs.append(r.contrastive_divergence(inputs[batch], k=1, rng=order))
            opt.step()
        opt.momentum = 0.9
    print(f"RBM {r.params['W'].shape[1]}→{n_hidden}: reconstruction error {np.mean(errs):.2f} after 3 epochs")
    stack.append(r)
    inputs = r.hidden_mean(inputs)

auto = rbm.unroll(stack, logits=True)
print(auto.summary())
bce = losses.BinaryCrossEntropy(from_logits=True)
before = hg.evaluate(auto, bce, xt, xt, metrics=[])["loss"]
hg.fit(auto, bce, optim.Adam(auto, lr=1e-3), x, x, epochs=3, batch_size=100, seed=0,
       metrics=[], progress_bar=False)
after = hg.evaluate(auto, bce, xt, xt, metrics=[])["loss"]
print(f"test cross-entropy per image: unrolled {before:.1f}, after fine-tuning {after:.1f}")

# %%
# Reconstructions through the 32-unit code
# ----------------------------------------
recon = 1 / (1 + np.exp(-auto.predict(xt[:8])))
fig, axes = plt.subplots(2, 8, figsize=(10, 2.8), constrained_layout=True)
for j in range(8):
    axes[0, j].imshow(xt[j].reshape(28, 28), cmap="gray")
    axes[1, j].imshow(recon[j].reshape(28, 28), cmap="gray")
for ax in axes.ravel():
    ax.set(xticks=[], yticks=[])
axes[0, 0].set_ylabel("test")
axes[1, 0].set_ylabel("decoded")
plt.show()

# %%
# Gradient check of the unrolled autoencoder
# ------------------------------------------
check = rbm.unroll(stack, logits=True).astype("float64")
result = hg.gradcheck(check, xt[:4].astype(np.float64), xt[:4].astype(np.float64), loss=bce, max_entries=64)
print(f"worst relative error over {len(result.errors)} arrays: {result.max_error:.1e}")
