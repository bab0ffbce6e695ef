"""Fully connected layer.

Legend: N batch size, F input features (``in_features``), O output units (``out_features``).
"""
from __future__ import annotations

from typing import Any

from .. import backend, init
from .._checks import check_float_array, check_positive_int
from .base import Layer, register


@register
class Dense(Layer):
    r"""Affine map ``y = x Wᵀ + b``.

    Forward, for a batch of row vectors (``003`` §2, z⁽ˡ⁾ = W⁽ˡ⁾a⁽ˡ⁻¹⁾ + b⁽ˡ⁾; ``000`` eqs.
    (1)–(4); ``001`` eqs. (1), (3))::

        y[n, j] = b[j] + Σ_k W[j, k] x[n, k]

    Backward, with δ = dC/dy the error arriving from above (already divided by the batch
    size by the loss, so the sums below are the mean of ``003`` §2 statements (5)–(6))::

        dC/db[j]    = Σ_n δ[n, j]                 statement (3), summed over the batch
        dC/dW[j, k] = Σ_n δ[n, j] x[n, k]         statement (4): grads["W"] = δᵀ x
        dC/dx[n, k] = Σ_j W[j, k] δ[n, j]         the Wᵀδ of statement (2): δ W

    The element-wise σ'(z) of statement (2) belongs to the activation layer that follows.

    Input ``(N, F)``; output ``(N, O)``. A sequence ``(N, T, F)`` gives ``(N, T, O)``: the same
    layer applied at every time step (the output layer of ``003`` §6), its parameter gradients
    summed over n and t (statements (3)–(4) of §6).
    Params: ``W`` ``(O, F)`` drawn by ``weight_init`` (default N(0, 1/F), ``003`` §4);
    ``b`` ``(O,)`` zeros by default (``bias_init="normal"`` draws N(0, 1) as in ``003`` §4).
    """

    _cache = ("_x",)

    def __init__(self, in_features: int, out_features: int, *, weight_init: str = "normal_fan_in",
                 bias_init: str = "zeros", rng=None, dtype=backend.DEFAULT_DTYPE) -> None:
        super().__init__()
        where = f"Dense({in_features!r}→{out_features!r})"
        self.in_features = check_positive_int(in_features, where, "in_features")
        self.out_features = check_positive_int(out_features, where, "out_features")
        self.weight_init, self.bias_init = weight_init, bias_init
        dt = backend.resolve_dtype(dtype, where)
        gen = backend.make_rng(rng)
        xp = backend.default_xp()
        W = init.weights(weight_init, (out_features, in_features), in_features, out_features, gen, dt, where)
        b = init.bias(bias_init, (out_features,), gen, dt, where)
        self.params = {"W": backend.asarray(W, xp=xp), "b": backend.asarray(b, xp=xp)}
        self.zero_grads()
        self._x = None

    def __repr__(self) -> str:
        return f"Dense({self.in_features}→{self.out_features})"

    def _check_input(self, x) -> None:
        check_float_array(x, self, last=self.in_features)
        if x.ndim not in (2, 3):
            raise ValueError(f"{self}: expected input of shape (N, {self.in_features}) or "
                             f"(N, T, {self.in_features}), got {tuple(x.shape)}")

    def _forward(self, x, training: bool):
        y = x @ self.params["W"].T
        y += self.params["b"]
        if training:
            self._x = x
        return y

    def _backward(self, grad_y, need_input_grad: bool):
        x, W = self._x, self.params["W"]
        if self.trainable:  # a frozen layer passes the error on but computes no parameter gradient
            g2 = grad_y.reshape(-1, self.out_features)  # (N, T, O) sequences: sum over n and t
            self.grads["W"] = g2.T @ x.reshape(-1, self.in_features)
            self.grads["b"] = g2.sum(axis=0)
        return grad_y @ W if need_input_grad else None

    def output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_features,)

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "weight_init": self.weight_init, "bias_init": self.bias_init}
