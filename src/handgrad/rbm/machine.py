r"""The restricted Boltzmann machine (``003`` §8 — a title only in the notes; the equations
below follow Hinton 2002, Hinton 2010's practical guide and Hinton & Salakhutdinov 2006).

Legend: N batch size, V visible units (``n_visible``), H hidden units (``n_hidden``);
v ``(N, V)``, h ``(N, H)``, W ``(H, V)`` (the orientation of ``Dense(V, H).W``), b_v ``(V,)``,
b_h ``(H,)``; σ(x) = 1/(1 + e^{−x}), softplus(x) = log(1 + eˣ).

Energy (one row v, h; "bernoulli" units take values in {0, 1}, "gaussian" units are real
with unit variance)::

    bernoulli–bernoulli   E(v, h) = −vᵀb_v − hᵀb_h − hᵀWv                        (E1)
    gaussian visible      E(v, h) = ½‖v − b_v‖² − hᵀb_h − hᵀWv                    (E2)
    gaussian hidden       E(v, h) = −vᵀb_v + ½‖h − b_h‖² − hᵀWv                   (E3)

and p(v, h) = exp(−E(v, h)) / Z with Z = Σ_{v,h} exp(−E) (sums become integrals over a
gaussian layer; both gaussian makes Z infinite for some W, hence forbidden).

Conditionals. There are no hidden–hidden or visible–visible terms, so −E is a sum over
hidden units of h_j (b_h + Wv)_j (plus −½h_j² + h_j b_h,j − ... for gaussian units) and the
hidden units are independent given v. With the input to the hidden layer a_h = b_h + Wv::

    bernoulli h: p(h_j = 1 | v) = e^{a_h,j} / (1 + e^{a_h,j}) = σ(a_h,j)            (C1)
    gaussian h:  −½‖h − b_h‖² + hᵀWv = −½‖h − a_h‖² + const, so h | v ~ N(a_h, I)   (C2)

and symmetrically with a_v = b_v + Wᵀh for the visible layer. ``hidden_mean``/``visible_mean``
return these means; ``sample_hidden``/``sample_visible`` draw from them.

Free energy F(v) = −log Σ_h exp(−E(v, h)), so that p(v) = exp(−F(v)) / Z. The sum over h
factorises over hidden units (the conditional independence above)::

    bernoulli h:  Σ_{h_j∈{0,1}} e^{h_j a_h,j} = 1 + e^{a_h,j}
                  F(v) = [visible term] − Σ_j softplus(a_h,j)                            (F1)
    gaussian h:   ∫ exp(−½‖h − b_h‖² + hᵀWv) dh = (2π)^{H/2} exp(½‖a_h‖² − ½‖b_h‖²)
                  F(v) = −vᵀb_v − ½‖a_h‖² + ½‖b_h‖² − (H/2) log 2π                        (F2)

with the visible term −vᵀb_v (bernoulli visibles) or ½‖v − b_v‖² (gaussian visibles). The
same formulas with the roles of v and h swapped give F(h) = −log Σ_v exp(−E(v, h)), which the
exact computations in :mod:`handgrad.rbm.exact` use when enumerating the hidden layer.

Log-likelihood gradient. For any parameter θ, −log p(v) = F(v) + log Z and
∂F/∂θ = E_{h|v}[∂E/∂θ], ∂log Z/∂θ = −E_{v,h}[∂E/∂θ], so (Hinton 2002, eq. 5)::

    ∂(−log p(v))/∂θ = E_{p(h|v)}[∂E/∂θ] − E_{p(v,h)}[∂E/∂θ]     data term − model term   (G1)

and from (E1)–(E3), for every unit type (the b_h of the gaussian ½‖h − b_h‖² cancels between
the two terms)::

    ∂E/∂W = −h vᵀ,   ∂E/∂b_h = −h (+ b_h),   ∂E/∂b_v = −v (+ b_v)
    ∂NLL/∂W   = −(⟨h vᵀ⟩_data − ⟨h vᵀ⟩_model)                                              (G2)
    ∂NLL/∂b_h = −(⟨h⟩_data − ⟨h⟩_model),   ∂NLL/∂b_v = −(⟨v⟩_data − ⟨v⟩_model)

where ⟨·⟩_data averages over the batch with h replaced by its conditional mean E[h | v] (an
exact expectation, not a sample: it is free and has no variance). ``grads`` always holds this
gradient of the *mean negative* log-likelihood, so the optimizers of ``handgrad.optim``, which
descend, move the model uphill in likelihood.
"""
from __future__ import annotations

import math

from .. import backend, init
from .._checks import check_finite, check_float_array, check_positive_int
from . import exact as _exact
from .energy import UNITS, own_term, sigmoid, summed_out


class RBM:
    r"""A restricted Boltzmann machine with bernoulli or gaussian (unit-variance) units.

    ``RBM(n_visible, n_hidden, visible="bernoulli", hidden="bernoulli", rng=0, dtype=float32)``

    Params: ``W`` ``(H, V)`` drawn from N(0, 0.01²) (Hinton 2010 §8: small random weights
    break the symmetry between hidden units without putting them in saturation), ``b_hidden``
    ``(H,)`` zeros, ``b_visible`` ``(V,)`` zeros (set them to log(p/(1−p)) of the data's
    pixel means with :meth:`init_visible_bias`, the guide's advice). ``grads`` has the same
    keys and shapes from construction on. ``params`` is the single source of truth, as for
    layers: replace an entry by an array of the same shape and the RBM computes with it.

    Energy, conditionals and free energy: see the module docstring, (E1)–(F2). Bernoulli
    visibles accept data in [0, 1], gray levels read as probabilities (Hinton &
    Salakhutdinov 2006); the exact likelihood and the pseudo-likelihood need binary data.
    Data may be float32/float64 (computed in the RBM's dtype) or integer/boolean 0/1 arrays.

    ``rng`` (a Generator or an int seed) draws the initial weights and is kept as the
    machine's own generator: sampling methods and ``contrastive_divergence`` called with
    ``rng=None`` draw from it.
    """

    def __init__(self, n_visible: int, n_hidden: int, visible: str = "bernoulli", hidden: str = "bernoulli",
                 rng=0, dtype=backend.DEFAULT_DTYPE, weight_std: float = 0.01) -> None:
        where = f"RBM({n_visible!r}, {n_hidden!r})"
        self.n_visible = check_positive_int(n_visible, where, "n_visible")
        self.n_hidden = check_positive_int(n_hidden, where, "n_hidden")
        for name, kind in (("visible", visible), ("hidden", hidden)):
            if kind not in UNITS:
                raise ValueError(f"{where}: expected {name} to be 'bernoulli' or 'gaussian', got {kind!r}")
        if visible == hidden == "gaussian":
            raise ValueError(f"{where}: visible and hidden units cannot both be gaussian "
                             "(the partition function would diverge)")
        if not (isinstance(weight_std, (int, float)) and math.isfinite(weight_std) and weight_std >= 0):
            raise ValueError(f"{where}: expected weight_std to be a finite number >= 0, got {weight_std!r}")
        self.visible, self.hidden = visible, hidden
        self.weight_std = float(weight_std)
        dt = backend.resolve_dtype(dtype, where)
        self.rng = backend.make_rng(rng)
        xp = backend.default_xp()
        shapes = {"W": (self.n_hidden, self.n_visible), "b_hidden": (self.n_hidden,), "b_visible": (self.n_visible,)}
        if init.is_deferred():  # hg.load: shapes only, nothing allocated before the file's tensors are checked
            self.params = {k: init.placeholder(s, dt) for k, s in shapes.items()}
            self.grads = {k: init.placeholder(s, dt) for k, s in shapes.items()}
        else:
            W = (self.rng.standard_normal(shapes["W"]) * self.weight_std).astype(dt)
            self.params = {"W": backend.asarray(W, xp=xp), "b_hidden": xp.zeros(self.n_hidden, dtype=dt),
                           "b_visible": xp.zeros(self.n_visible, dtype=dt)}
            self.grads = {k: xp.zeros_like(p) for k, p in self.params.items()}
        #: optimizers skip parameters of layers that are not trainable; an RBM always is
        self.trainable = True

    def __repr__(self) -> str:
        return f"RBM({self.n_visible}→{self.n_hidden}, visible={self.visible!r}, hidden={self.hidden!r})"

    @classmethod
    def from_config(cls, config: dict, *, deferred: bool = False) -> RBM:
        """An RBM from ``get_config()``'s dict; ``deferred=True`` allocates nothing (``hg.load``)."""
        if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
            raise TypeError(f"RBM.from_config: expected a dict with string keys, got {type(config).__name__}")
        if not deferred:
            return cls(**config)
        with init.deferred():
            return cls(**config)

    def get_config(self) -> dict:
        return {"n_visible": self.n_visible, "n_hidden": self.n_hidden, "visible": self.visible,
                "hidden": self.hidden, "dtype": str(self.dtype), "weight_std": self.weight_std}

    @property
    def dtype(self):
        return self.params["W"].dtype

    def zero_grads(self) -> None:
        xp = backend.array_module(self.params["W"])
        self.grads = {k: xp.zeros(p.shape, dtype=p.dtype) for k, p in self.params.items()}

    def init_visible_bias(self, v) -> None:
        """b_v ← log(p/(1 − p)) for bernoulli visibles, p the data's per-unit mean clipped to
        [0.01, 0.99] (Hinton 2010 §8); b_v ← the data mean for gaussian visibles."""
        v = self._check(v, "visible", "init_visible_bias")
        xp = backend.array_module(v)
        p = v.mean(axis=0)
        if self.visible == "bernoulli":
            p = xp.clip(p, 0.01, 0.99)
            p = xp.log(p / (1 - p))
        self.params["b_visible"][...] = p

    # -- validation ----------------------------------------------------------------------
    def _check(self, x, side: str, fn: str, binary_ok_range: bool = True):
        where = f"RBM.{fn}"
        width = self.n_visible if side == "visible" else self.n_hidden
        name = "v" if side == "visible" else "h"
        if hasattr(x, "dtype") and x.dtype.kind in "biu":  # binary data given as integers or booleans
            x = x.astype(self.dtype)
        check_float_array(x, where, ndim=2, name=name)
        if x.shape[1] != width:
            raise ValueError(f"{where}: expected {name} of shape (N, {width}), got {tuple(x.shape)}")
        check_finite(x, where, name)
        kind = self.visible if side == "visible" else self.hidden
        if kind == "bernoulli" and binary_ok_range and x.size:
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"{where}: bernoulli {side} units take values in [0, 1], "
                                 f"got {name} in [{lo:g}, {hi:g}]")
        return x.astype(self.dtype, copy=False)

    def _gen(self, rng):
        return self.rng if rng is None else backend.make_rng(rng)

    # -- conditionals --------------------------------------------------------------------
    def hidden_input(self, v):
        """a_h = b_h + W v for each row: ``(N, V)`` → ``(N, H)``."""
        a = v @ self.params["W"].T
        a += self.params["b_hidden"]
        return a

    def visible_input(self, h):
        """a_v = b_v + Wᵀh for each row: ``(N, H)`` → ``(N, V)``."""
        a = h @ self.params["W"]
        a += self.params["b_visible"]
        return a

    def _mean(self, a, kind):
        return sigmoid(a) if kind == "bernoulli" else a

    def _sample(self, mean, kind, gen):
        xp = backend.array_module(mean)
        if kind == "bernoulli":
            u = backend.asarray(gen.random(mean.shape, dtype=mean.dtype), xp=xp)
            return (u < mean).astype(mean.dtype)
        return mean + backend.asarray(gen.standard_normal(mean.shape, dtype=mean.dtype), xp=xp)

    def hidden_mean(self, v):
        """E[h | v] ``(N, H)``: σ(a_h) for bernoulli hidden units (C1), a_h for gaussian (C2)."""
        v = self._check(v, "visible", "hidden_mean")
        return self._mean(self.hidden_input(v), self.hidden)

    def visible_mean(self, h):
        """E[v | h] ``(N, V)``: σ(a_v) for bernoulli visible units, a_v for gaussian."""
        h = self._check(h, "hidden", "visible_mean", binary_ok_range=False)
        return self._mean(self.visible_input(h), self.visible)

    def sample_hidden(self, v, rng=None):
        """A draw h ~ p(h | v) ``(N, H)``: Bernoulli(σ(a_h)) or N(a_h, I)."""
        return self._sample(self.hidden_mean(v), self.hidden, self._gen(rng))

    def sample_visible(self, h, rng=None):
        """A draw v ~ p(v | h) ``(N, V)``: Bernoulli(σ(a_v)) or N(a_v, I)."""
        return self._sample(self.visible_mean(h), self.visible, self._gen(rng))

    def gibbs(self, v, steps: int = 1, rng=None, mean_visible: bool = False):
        """Block Gibbs sampling: ``steps`` full steps v → h ~ p(h | v) → v ~ p(v | h), all
        units of a layer at once (they are independent given the other layer). Returns the
        last visible state ``(N, V)`` (the conditional mean E[v | h] in place of the last
        sample with ``mean_visible=True``, the usual way to show samples as pictures)."""
        steps = check_positive_int(steps, "RBM.gibbs", "steps")
        gen = self._gen(rng)
        v = self._check(v, "visible", "gibbs")
        for t in range(steps):
            h = self._sample(self._mean(self.hidden_input(v), self.hidden), self.hidden, gen)
            mean = self._mean(self.visible_input(h), self.visible)
            v = mean if (mean_visible and t == steps - 1) else self._sample(mean, self.visible, gen)
        return v

    # -- energies ------------------------------------------------------------------------
    def energy(self, v, h):
        """E(v, h) ``(N,)`` for paired rows of v ``(N, V)`` and h ``(N, H)``, (E1)–(E3)."""
        v = self._check(v, "visible", "energy")
        h = self._check(h, "hidden", "energy", binary_ok_range=False)
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"RBM.energy: v and h need the same number of rows, got {v.shape[0]} and {h.shape[0]}")
        P = self.params
        inter = ((h @ P["W"]) * v).sum(axis=1)
        return own_term(v, P["b_visible"], self.visible) + own_term(h, P["b_hidden"], self.hidden) - inter

    def free_energy(self, v):
        """F(v) = −log Σ_h exp(−E(v, h)) ``(N,)`` (an integral over gaussian hidden units),
        (F1)/(F2): the visible term plus the hidden layer summed out in closed form."""
        v = self._check(v, "visible", "free_energy")
        return self._free_energy(v)

    def _free_energy(self, v):
        P = self.params
        return own_term(v, P["b_visible"], self.visible) + summed_out(self.hidden_input(v), P["b_hidden"], self.hidden)

    def reconstruction_error(self, v, rng=None) -> float:
        """Mean over rows of ‖v − E[v | h₀]‖² summed over visible units, h₀ ~ p(h | v) — the
        number ``contrastive_divergence`` returns (Hinton 2010 §5: a rough progress signal,
        not the objective)."""
        v = self._check(v, "visible", "reconstruction_error")
        h0 = self._sample(self._mean(self.hidden_input(v), self.hidden), self.hidden, self._gen(rng))
        d = v - self._mean(self.visible_input(h0), self.visible)
        return float((d * d).sum()) / max(1, v.shape[0])

    # -- training ------------------------------------------------------------------------
    def contrastive_divergence(self, v, k: int = 1, rng=None, persistent=None, mean_visible: bool = False) -> float:
        """Write the CD-k (or PCD-k) estimate of ∂(mean NLL)/∂θ into ``grads``; see
        :func:`handgrad.rbm.cd.contrastive_divergence` for the estimator and its choices."""
        from .cd import contrastive_divergence

        return contrastive_divergence(self, v, k=k, rng=rng, persistent=persistent, mean_visible=mean_visible)

    # -- exact (small models) ------------------------------------------------------------
    def log_partition(self) -> float:
        """log Z by enumeration; see :func:`handgrad.rbm.exact.log_partition`."""
        return _exact.log_partition(self)

    def log_likelihood(self, v):
        """log p(v) = −F(v) − log Z ``(N,)``, exact; see :func:`handgrad.rbm.exact.log_likelihood`."""
        return _exact.log_likelihood(self, v)

    def pseudo_log_likelihood(self, v):
        """Σ_i log p(v_i | v_−i) ``(N,)``; see :func:`handgrad.rbm.exact.pseudo_log_likelihood`."""
        return _exact.pseudo_log_likelihood(self, v)

    def astype(self, dtype) -> RBM:
        """A copy with every parameter in ``dtype`` (float64 copies for exact checks)."""
        dt = backend.resolve_dtype(dtype, "RBM.astype")
        other = RBM(self.n_visible, self.n_hidden, self.visible, self.hidden, rng=0, dtype=dt,
                    weight_std=self.weight_std)
        for k, p in self.params.items():
            other.params[k] = p.astype(dt, copy=True)
        other.zero_grads()
        return other
