"""Stochastic gradient descent with momentum, RMSprop and Adam."""
from __future__ import annotations

import numpy

from .. import accel, backend
from .._checks import check_nonnegative, check_probability
from .base import Optimizer


# One pass over memory per parameter instead of NumPy's four to eight: the same operations in
# the same order and precision (the scalars are cast to the parameter's dtype first, as NumPy
# does with a Python float), so both paths give the same bits. ``wd`` is the weight decay
# already applied to the gradient (0 for biases), written into ``g`` as the NumPy path's
# g + λp.

@accel.kernel
def _sgd_momentum_kernel(p, g, v, lr, mu, wd, nesterov):
    p, g, v = p.reshape(-1), g.reshape(-1), v.reshape(-1)
    for i in range(p.size):
        gi = g[i] + wd * p[i] if wd != 0 else g[i]
        vi = v[i] * mu - lr * gi
        v[i] = vi
        p[i] = p[i] + (mu * vi - lr * gi) if nesterov else p[i] + vi


@accel.kernel
def _adam_kernel(p, g, m, v, b1, c1, b2, c2, step_size, bias2, eps, wd):
    p, g, m, v = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    for i in range(p.size):
        gi = g[i] + wd * p[i] if wd != 0 else g[i]
        mi = m[i] * b1 + c1 * gi
        vi = v[i] * b2 + c2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - step_size * (mi / (numpy.sqrt(vi / bias2) + eps))


def _fused(p, g) -> bool:
    """Whether this update may run as one compiled pass (contiguous NumPy arrays, JIT on)."""
    return (accel.jit_enabled() and isinstance(p, numpy.ndarray) and isinstance(g, numpy.ndarray)
            and p.flags.c_contiguous and g.flags.c_contiguous and p.dtype == g.dtype)


class SGD(Optimizer):
    """SGD with classical momentum in the convention of ``003`` §4::

        v ← μ v − η ∇C,    w ← w + v          (v₀ = 0)

    PyTorch writes the same method as b ← μ b + ∇C, w ← w − η b; the two agree when η is
    constant and differ only in when a changed η takes effect (here: on the next gradient
    alone; in PyTorch: on the whole velocity). ``nesterov=True`` uses the look-ahead update
    w ← w + μ v − η ∇C after the velocity step. μ = 0 is plain SGD.
    """

    def __init__(self, model, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, **kw) -> None:
        super().__init__(model, lr, weight_decay, **kw)
        self.momentum = check_probability(momentum, "SGD", "momentum", closed_right=True)
        if nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)

    fused_decay = True  # _update receives the raw gradient and the decay λ (see Optimizer.step)

    def _update(self, key, p, g, wd=0.0) -> None:
        if self.momentum == 0.0:
            if wd:
                g = g + wd * p
            p -= self.lr * g
            return
        v = self._slot(key, "velocity", p)
        if _fused(p, g):
            t = p.dtype.type
            _sgd_momentum_kernel(p, g, v, t(self.lr), t(self.momentum), t(wd), self.nesterov)
            return
        if wd:
            g = g + wd * p
        v *= self.momentum
        v -= self.lr * g
        if self.nesterov:
            p += self.momentum * v - self.lr * g
        else:
            p += v


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton, 2012), the adaptive rate ``003`` §4 mentions::

        s ← α s + (1 − α) g²,    w ← w − η g / (√s + ε)

    Defaults follow PyTorch (η = 0.01, α = 0.99, ε = 1e-8); ``momentum`` μ > 0 keeps a
    buffer b ← μ b + g/(√s + ε) and steps w ← w − η b, as PyTorch does.
    """

    def __init__(self, model, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0, **kw) -> None:
        super().__init__(model, lr, weight_decay, **kw)
        self.alpha = check_probability(alpha, "RMSprop", "alpha", closed_right=True)
        self.eps = check_nonnegative(eps, "RMSprop", "eps")
        self.momentum = check_probability(momentum, "RMSprop", "momentum")

    def _update(self, key, p, g) -> None:
        xp = backend.array_module(p)
        s = self._slot(key, "square_avg", p)
        s *= self.alpha
        s += (1 - self.alpha) * (g * g)
        step = g / (xp.sqrt(s) + self.eps)
        if self.momentum:
            b = self._slot(key, "momentum_buffer", p)
            b *= self.momentum
            b += step
            step = b
        p -= self.lr * step


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's defaults and bias correction::

        m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,
        w ← w − η (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)

    ``weight_decay`` adds λW to g (L2, as ``torch.optim.Adam``), biases excepted.
    """

    def __init__(self, model, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, **kw) -> None:
        super().__init__(model, lr, weight_decay, **kw)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"Adam: expected betas to be a pair (beta1, beta2), got {betas!r}")
        self.betas = (check_probability(betas[0], "Adam", "betas[0]"),
                      check_probability(betas[1], "Adam", "betas[1]"))
        self.eps = check_nonnegative(eps, "Adam", "eps")

    fused_decay = True

    def _update(self, key, p, g, wd=0.0) -> None:
        xp = backend.array_module(p)
        b1, b2 = self.betas
        m = self._slot(key, "exp_avg", p)
        v = self._slot(key, "exp_avg_sq", p)
        t = self.steps
        if _fused(p, g):
            c = p.dtype.type
            _adam_kernel(p, g, m, v, c(b1), c(1 - b1), c(b2), c(1 - b2), c(self.lr / (1 - b1 ** t)),
                         c(1 - b2 ** t), c(self.eps), c(wd))
            return
        if wd:
            g = g + wd * p
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        step_size = self.lr / (1 - b1 ** t)
        denom = xp.sqrt(v / (1 - b2 ** t))
        denom += self.eps
        p -= step_size * (m / denom)
