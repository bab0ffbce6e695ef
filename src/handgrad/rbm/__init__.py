"""Restricted Boltzmann machines and deep autoencoders (``003`` §8–9).

    from handgrad import rbm
    r = rbm.RBM(n_visible, n_hidden, visible="bernoulli", hidden="bernoulli", rng=0)

``machine`` (the RBM: energy, conditionals, free energy, sampling), ``cd`` (CD-k / PCD-k and
``PersistentChain``), ``exact`` (log Z, log-likelihood, exact gradient and pseudo-likelihood by
enumeration), ``trainer`` (the training loop), ``stack`` (greedy pretraining and ``unroll``),
``pca`` (the linear baseline). The derivations are in docs/rbm.md.
"""
from .cd import PersistentChain, contrastive_divergence
from .exact import exact_grads, log_likelihood, log_partition, pseudo_log_likelihood
from .machine import RBM
from .pca import PCA
from .stack import pretrain, unroll
from .trainer import train_rbm

__all__ = [
           "PCA",
           "RBM",
           "PersistentChain",
           "contrastive_divergence",
           "exact_grads",
           "log_likelihood",
           "log_partition",
           "pretrain",
           "pseudo_log_likelihood",
           "train_rbm",
           "unroll",
]
