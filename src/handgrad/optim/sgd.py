"""Stochastic gradient descent with momentum, RMSprop and Adam."""
from __future__ import annotations

from .. import backend
from .._checks import check_nonnegative, check_probability
from .base import Optimizer


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

    def _update(self, key, p, g) -> None:
        if self.momentum == 0.0:
            p -= self.lr * g
            return
        v = self._slot(key, "velocity", p)
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

    def _update(self, key, p, g) -> None:
        xp = backend.array_module(p)
        b1, b2 = self.betas
        m = self._slot(key, "exp_avg", p)
        v = self._slot(key, "exp_avg_sq", p)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        t = self.steps
        step_size = self.lr / (1 - b1 ** t)
        denom = xp.sqrt(v / (1 - b2 ** t))
        denom += self.eps
        p -= step_size * (m / denom)
