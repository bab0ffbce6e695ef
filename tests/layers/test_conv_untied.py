"""Conv2D with untied biases (one per output position, ``004`` eq. (10))."""
from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
from handgrad import layers

CASES = [(2, 3, 3, 1, 1, (6, 6)), (1, 2, (3, 2), 2, 0, (7, 8)), (3, 1, 1, 1, 0, (4, 5))]


def make(c, d, k, s, p, hw, dtype=np.float64):
    out = layers.Conv2D(c, d, k, s, p).output_shape((c, *hw))[1:]
    conv = layers.Conv2D(c, d, k, s, p, untied_bias=out, rng=1, dtype=dtype)
    conv.params["b"][...] = np.random.default_rng(2).standard_normal(conv.params["b"].shape)
    return conv


@pytest.mark.parametrize("c,d,k,s,p,hw", CASES)
def test_untied_bias_gradcheck(c, d, k, s, p, hw):
    conv = make(c, d, k, s, p, hw)
    x = np.random.default_rng(0).standard_normal((2, c, *hw))
    assert conv.params["b"].shape == (d, *conv.untied_bias)
    assert hg.gradcheck(conv, x).max_error < 1e-6


@pytest.mark.parametrize("c,d,k,s,p,hw", CASES)
def test_untied_bias_matches_torch(c, d, k, s, p, hw):
    torch = pytest.importorskip("torch")
    conv = make(c, d, k, s, p, hw)
    x = np.random.default_rng(0).standard_normal((3, c, *hw))
    y = conv.forward(x, training=True)
    g = np.random.default_rng(1).standard_normal(y.shape)
    dx = conv.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(conv.params["W"], requires_grad=True)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, stride=s, padding=p) + bt
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_untied_bias_rejects_other_sizes():
    conv = make(2, 3, 3, 1, 1, (6, 6))
    with pytest.raises(ValueError, match=r"Conv2D\(2→3, 3×3, padding=1\).*\(6, 6\).*\(7, 7\)"):
        conv.forward(np.zeros((1, 2, 7, 7)))
    with pytest.raises(ValueError, match="untied_bias"):
        layers.Conv2D(2, 3, 3, untied_bias=(0, 4))
