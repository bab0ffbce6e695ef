"""Errata evidence for ``seeds/004``: ReLU convolution with untied biases → max-pooling
(+ untied bias, ReLU) → dense → softmax + cross-entropy. Method and tolerances:
``errata_common.py``; ``python tests/test_errata_004.py`` prints the numbers quoted in
``docs/errata.md``.
"""
from __future__ import annotations

import numpy as np
from errata_common import F64, FAIL, PASS, conv_true, fd, rel, softmax

import handgrad as hg
from handgrad import layers, losses

# -- 004: ReLU conv (untied biases) → max-pool (+ untied bias, ReLU) → dense → softmax + CE --------
n4_, k4_, q4_, c4_ = 6, 3, 2, 3       # 6×6 input, 3×3 kernel, 2×2 max-pool, 3 classes
o4_ = n4_ - k4_ + 1                  # 4: conv output positions d, e ∈ {k−1, …, n−1} of eq. (10)
s4_ = o4_ // q4_                     # 2


def _s4_setup(seed=15):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n4_, n4_))
    Wc = rng.standard_normal((k4_, k4_))                 # W^{(conv)}_{uv}, u, v ∈ {0…k−1}
    b1 = rng.standard_normal((o4_, o4_)) * 0.3 + 0.5     # b^{(1)}_{de}: one bias per position (untied)
    b2 = rng.standard_normal((s4_, s4_)) * 0.3 + 0.5     # b^{(2)}_{fg}
    Wf = rng.standard_normal((c4_, s4_, s4_))            # W^{(full)}_{ifg}
    b3 = rng.standard_normal(c4_)
    y = _s4_forward(x, Wc, b1, b2, Wf, b3)[-1]
    t = np.eye(c4_)[np.argsort(y)[1]]                    # one-hot target: the class of median probability
    return x, Wc, b1, b2, Wf, b3, t


def _s4_forward(x, Wc, b1, b2, Wf, b3):
    z1 = conv_true(x, Wc) + b1                          # eq. (10): Σ_bc W_{d−b,e−c} x_bc + b_de
    a1 = np.maximum(z1, 0)                               # (11)
    win = a1.reshape(s4_, q4_, s4_, q4_)
    z2 = win.max(axis=(1, 3)) + b2                       # (12)
    a2 = np.maximum(z2, 0)                               # (13)
    z3 = np.einsum("ifg,fg->i", Wf, a2) + b3             # (14)
    y = softmax(z3)                                      # (15)
    return z1, a1, z2, a2, z3, y


def _s4_S(x, Wc, b1, b2, Wf, b3, t):
    return -float((t * np.log(_s4_forward(x, Wc, b1, b2, Wf, b3)[-1])).sum())     # (17)


def _s4_mprime(a1):
    """m'_{fg}(a_{de}) (eqs. (9), (23)): 1 if a_de is the max of window fg, else 0; shape (f, g, d, e)."""
    M = np.zeros((s4_, s4_, o4_, o4_))
    for f_ in range(s4_):
        for g_ in range(s4_):
            blk = a1[q4_ * f_:q4_ * f_ + q4_, q4_ * g_:q4_ * g_ + q4_]
            u, v = np.unravel_index(np.argmax(blk), blk.shape)
            M[f_, g_, q4_ * f_ + u, q4_ * g_ + v] = 1.0
    return M


def s4_evidence(seed=15):
    """004 eqs. (29)-(54) evaluated literally vs finite differences of S (eq. (17))."""
    x, Wc, b1, b2, Wf, b3, t = P4 = _s4_setup(seed)
    z1, a1, z2, a2, z3, y = _s4_forward(*P4[:-1])
    # stay away from the kinks (ReLU at 0, ties in the max) by more than the FD steps
    assert np.abs(z1).min() > 1e-3 and np.abs(z2).min() > 1e-3
    S = lambda: _s4_S(x, Wc, b1, b2, Wf, b3, t)  # noqa: E731
    th1, th2 = (z1 > 0).astype(F64), (z2 > 0).astype(F64)       # θ = ρ' (eq. (5))
    M = _s4_mprime(a1)
    eye = np.eye(c4_)
    # −Σ_h (t_h / y_h) Σ_i y_h (δ_ih − y_i) [·]_i  (the softmax Jacobian (20) with (19)):
    u = -np.einsum("h,hi->i", t / y, y[:, None] * (eye - y[None, :]))   # eqs. (31)/(38)/(43)/(48)
    u_simpl = -np.einsum("h,hi->i", t, eye - y[None, :])                  # eqs. (32)/(40)/(44)/(54)
    v = np.einsum("i,ifg->fg", u_simpl, Wf) * th2                         # Σ_i … W_ifg θ(z2_fg)
    xs = np.array([[x[k4_ - 1 - yy:k4_ - 1 - yy + o4_, k4_ - 1 - zz:k4_ - 1 - zz + o4_]
                    for zz in range(k4_)] for yy in range(k4_)])           # x_{d−y, e−z} (eq. (28))
    eq35 = np.einsum("fg,a->afg", a2, y - t)                               # (35)
    eq40 = np.einsum("fg,fgde,de,yzde->yz", v, M, th1, xs)                 # (40)
    eq45 = y - t                                                           # (45)
    eq48 = np.einsum("i,ilm->lm", u, Wf) * th2                             # (48)
    eq49 = -np.einsum("h,h,hilm->lm", t, y, (eye[:, :, None, None] - y[None, :, None, None]) * Wf[None]) * th2  # (49)
    eq53 = np.einsum("fg,fglm->lm", np.einsum("i,ifg->fg", u, Wf) * th2, M) * th1                           # (53)
    eq54 = np.einsum("fg,fglm->lm", v, M) * th1                            # (54)
    num = {"Wf": fd(S, Wf), "Wc": fd(S, Wc), "b3": fd(S, b3), "b2": fd(S, b2), "b1": fd(S, b1)}
    return {"eq35_Wfull": rel(eq35, num["Wf"]), "eq40_Wconv": rel(eq40, num["Wc"]),
            "eq45_b3": rel(eq45, num["b3"]), "eq48_b2": rel(eq48, num["b2"]), "eq49_b2": rel(eq49, num["b2"]),
            "eq49_over_eq48": float(np.median(eq49 / eq48)), "y_target": float(y @ t),
            "eq53_b1": rel(eq53, num["b1"]), "eq54_b1": rel(eq54, num["b1"]), "num": num}


def s4_handgrad(seed=15):
    """The same network in handgrad with tied biases (Conv2D's one bias per channel, no bias after
    the pooling): the note's model with b1_de ≡ b and b2 ≡ 0. Then Conv2D's dS/db = Σ_de ∂S/∂b1_de,
    the kernel is rotated by 180° (eq. (10) is a true convolution), and the gradient arriving at
    the pooling output is ∂S/∂b2 (z2 = maxpool + b2)."""
    x, Wc, b1, b2, Wf, b3, t = _s4_setup(seed)
    b = 0.4
    b1 = np.full_like(b1, b)
    b2 = np.zeros_like(b2)
    z1, a1, z2, *_ = _s4_forward(x, Wc, b1, b2, Wf, b3)
    assert np.abs(z1).min() > 1e-3 and np.abs(z2).min() > 1e-3
    S = lambda: _s4_S(x, Wc, b1, b2, Wf, b3, t)  # noqa: E731
    net = [layers.Conv2D(1, 1, k4_, dtype=F64), layers.ReLU(), layers.MaxPool2D(q4_), layers.ReLU(),
           layers.Flatten(), layers.Dense(s4_ * s4_, c4_, dtype=F64)]
    net[0].params.update(W=Wc[None, None, ::-1, ::-1].copy(), b=np.array([b]))
    net[5].params.update(W=Wf.reshape(c4_, -1).copy(), b=b3.copy())
    loss = losses.SoftmaxCrossEntropy()
    h = x[None, None]
    for lay in net:
        h = lay.forward(h, training=True)
    out = {"value": abs(loss.forward(h, t[None]) - S())}
    g = loss.backward()
    grads_in = []
    for lay in reversed(net):
        g = lay.backward(g)
        grads_in.append(g)
    d_pool_out = grads_in[2][0, 0]                    # returned by the ReLU after the pooling: ∂S/∂z2
    out["Wconv"] = rel(net[0].grads["W"][0, 0, ::-1, ::-1], fd(S, Wc))
    out["b_tied"] = rel(net[0].grads["b"], [fd(S, b1).sum()])
    out["b2"] = rel(d_pool_out, fd(S, b2))
    out["Wfull"] = rel(net[5].grads["W"], fd(S, Wf).reshape(c4_, -1))
    out["b3"] = rel(net[5].grads["b"], fd(S, b3))
    out["gradcheck"] = hg.gradcheck(hg.Sequential(net), x[None, None], t[None], loss=losses.SoftmaxCrossEntropy(),
                                    max_entries=None).max_error
    return out


def test_004_eq49_extra_factor_y():
    ev = s4_evidence()
    assert ev["eq49_b2"] > FAIL and abs(ev["eq49_over_eq48"] - ev["y_target"]) < 1e-12
    assert ev["eq48_b2"] < PASS


def test_004_other_derivatives_correct():
    ev = s4_evidence()
    for k in ("eq35_Wfull", "eq40_Wconv", "eq45_b3", "eq48_b2", "eq53_b1", "eq54_b1"):
        assert ev[k] < PASS, k


def test_004_handgrad_tied_biases():
    ev = s4_handgrad()
    assert ev["value"] < 1e-12
    assert max(ev.values()) < PASS


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    fmt = lambda d: {k: (f"{v:.2e}" if isinstance(v, float) else v) for k, v in d.items()  # noqa: E731
                     if k not in ("num", "outputs")}
    print("004", fmt(s4_evidence()))
    print("004 handgrad", fmt(s4_handgrad()))
