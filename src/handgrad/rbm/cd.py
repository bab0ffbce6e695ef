r"""Contrastive divergence (Hinton 2002) and persistent contrastive divergence (Tieleman 2008).

The model term ⟨·⟩_model of the log-likelihood gradient (G2 in :mod:`handgrad.rbm.machine`)
is an expectation under p(v, h), intractable beyond a few dozen units. CD-k replaces it by
the statistics of a short block-Gibbs chain started at the data; PCD-k keeps one set of
chains alive across parameter updates (the "persistent" chains, ``PersistentChain``), so they
approach samples of the current model instead of staying near the data.

The estimator, for a batch v ``(N, V)`` and M chains (M = N without ``persistent``)::

    positive:  h⁺ = E[h | v]                       the exact conditional mean (no variance)
    chain:     v⁰ = v (CD) or the persistent state (PCD)
               for t = 1..k:  hᵗ⁻¹ ~ p(h | vᵗ⁻¹),  vᵗ ~ p(v | hᵗ⁻¹)      sampled, both layers
    negative:  v⁻ = vᵏ,   h⁻ = E[h | vᵏ]            mean of the last hidden step
    grads["W"]         = −(h⁺ᵀ v / N − h⁻ᵀ v⁻ / M)
    grads["b_hidden"]  = −(mean h⁺ − mean h⁻)
    grads["b_visible"] = −(mean v − mean v⁻)

the sign making it the gradient of the **mean negative** log-likelihood, so any handgrad
optimizer (which descends) raises the likelihood.

Choices, and why (Hinton 2010, §3):

- Hidden states driving the chain are *samples*: binary hidden states are an information
  bottleneck that regularises, and using probabilities there makes the chain a
  deterministic mean-field iteration, not a sampler.
- The statistics use *probabilities* wherever this costs no bias: E[h | v] replaces h in
  both terms (Rao–Blackwellisation: the same expectation, less variance).
- The chain's visible states are samples by default, so the negative statistics estimate
  the model's own distribution (and a persistent chain stays a Markov chain of the model).
  ``mean_visible=True`` uses E[v | h] instead — the reconstruction of Hinton &
  Salakhutdinov 2006's code and the guide's advice for pretraining on gray-level data —,
  only without ``persistent`` (a chain of means is no longer a sampler of p).
- The returned reconstruction error ‖v − E[v | h⁰]‖², h⁰ ~ p(h | v), is a progress signal
  only (it is not what CD minimises); with ``persistent`` h⁰ is a separate draw from the data.
"""
from __future__ import annotations

from .. import backend
from .._checks import check_positive_int
from .energy import is_rbm


class PersistentChain:
    """Persistent Markov chains for PCD (Tieleman 2008).

    ``PersistentChain(rbm, n_chains, rng)``: ``state`` ``(n_chains, n_visible)`` in the RBM's
    dtype starts as uniform random binary states (bernoulli visibles) or standard normal
    draws (gaussian visibles) from ``rng``; each ``contrastive_divergence(...,
    persistent=chain)`` continues the chains from ``state`` and stores their last sampled
    visible state back into it.
    """

    def __init__(self, rbm, n_chains: int, rng=None) -> None:
        if not is_rbm(rbm):
            raise TypeError(f"PersistentChain: expected an RBM, got {type(rbm).__name__}")
        self.n_chains = check_positive_int(n_chains, "PersistentChain", "n_chains")
        self.n_visible, self.visible = rbm.n_visible, rbm.visible
        gen = backend.make_rng(rng)
        shape = (self.n_chains, rbm.n_visible)
        if rbm.visible == "bernoulli":
            state = (gen.random(shape) < 0.5).astype(rbm.dtype)
        else:
            state = gen.standard_normal(shape).astype(rbm.dtype)
        self.state = backend.asarray(state, xp=backend.array_module(rbm.params["W"]))

    def __repr__(self) -> str:
        return f"PersistentChain(n_chains={self.n_chains}, n_visible={self.n_visible})"


def contrastive_divergence(rbm, v, k: int = 1, rng=None, persistent: PersistentChain | None = None,
                           mean_visible: bool = False) -> float:
    """Write the CD-k estimate of ∂(mean NLL of ``v``)/∂θ into ``rbm.grads`` (overwriting).

    ``v`` ``(N, V)``: the batch (values in [0, 1] for bernoulli visibles). ``k``: Gibbs steps.
    ``rng``: a Generator or seed (None: the RBM's own generator). ``persistent``: a
    :class:`PersistentChain` to run PCD-k from. Returns the batch's mean reconstruction error
    (see the module docstring). ``rbm.params`` are not changed; an optimizer steps them.
    """
    where = "RBM.contrastive_divergence"
    if not is_rbm(rbm):
        raise TypeError(f"{where}: expected an RBM, got {type(rbm).__name__}")
    v = rbm._check(v, "visible", "contrastive_divergence")
    k = check_positive_int(k, where, "k")
    if persistent is not None:
        if not isinstance(persistent, PersistentChain):
            raise TypeError(f"{where}: expected persistent to be a PersistentChain or None, "
                            f"got {type(persistent).__name__}")
        st = persistent.state
        if tuple(st.shape) != (persistent.n_chains, rbm.n_visible) or persistent.visible != rbm.visible:
            raise ValueError(f"{where}: the persistent chain holds {persistent.visible} states of shape "
                             f"{tuple(st.shape)}, this {rbm!r} needs ({persistent.n_chains}, {rbm.n_visible})")
        if mean_visible:
            raise ValueError(f"{where}: mean_visible=True cannot be used with persistent chains "
                             "(a chain of conditional means is not a sampler of the model)")
    if v.shape[0] == 0:
        raise ValueError(f"{where}: expected a non-empty batch, got shape {tuple(v.shape)}")
    gen = rbm._gen(rng)
    hid, vis = rbm.hidden, rbm.visible
    h_pos = rbm._mean(rbm.hidden_input(v), hid)            # positive statistics: E[h | v]
    h = rbm._sample(h_pos, hid, gen)                        # h⁰ ~ p(h | v)
    recon = rbm._mean(rbm.visible_input(h), vis)            # E[v | h⁰]
    diff = v - recon
    error = float((diff * diff).sum()) / v.shape[0]
    if persistent is not None:  # the chain continues from its own state, not from the data
        chain_v = persistent.state.astype(rbm.dtype, copy=False)
        h = rbm._sample(rbm._mean(rbm.hidden_input(chain_v), hid), hid, gen)
    for t in range(k):
        mean_v = recon if (t == 0 and persistent is None) else rbm._mean(rbm.visible_input(h), vis)
        v_neg = mean_v if mean_visible else rbm._sample(mean_v, vis, gen)
        h_neg = rbm._mean(rbm.hidden_input(v_neg), hid)
        if t < k - 1:
            h = rbm._sample(h_neg, hid, gen)
    if persistent is not None:
        persistent.state = v_neg
    n, m = v.shape[0], v_neg.shape[0]
    W = h_neg.T @ v_neg
    W *= 1.0 / m
    W -= (h_pos.T @ v) * (1.0 / n)
    rbm.grads = {"W": W,
                 "b_hidden": h_neg.mean(axis=0) - h_pos.mean(axis=0),
                 "b_visible": v_neg.mean(axis=0) - v.mean(axis=0)}
    return error
