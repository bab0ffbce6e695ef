"""Errata evidence for ``seeds/001`` (BP derivation): the one-hidden-layer MLP with L2 or
cross-entropy loss (§2, eqs. (1)–(22)), the convolution definitions and the convolutional
layer (§3, eqs. (23)–(31)) and pooling. Method and tolerances: ``errata_common.py``;
``python tests/test_errata_001.py`` prints the numbers quoted in ``docs/errata.md``.
"""
from __future__ import annotations

import numpy as np
from errata_common import F64, FAIL, PASS, fd, rel, sig, softmax

import handgrad as hg
from handgrad import layers, losses

# ==============================================================================================
# 001 (BP derivation) §2: one-hidden-layer MLP, L2 or cross-entropy loss, eqs. (1)-(22)
# ==============================================================================================
m_, H_, n_ = 3, 4, 3   # inputs, hidden units, classes (m ≠ H and H ≠ n: index ranges differ)


def _bp_setup(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(m_)
    t = np.zeros(n_)
    t[rng.integers(n_)] = 1.0
    W1, b1 = rng.standard_normal((H_, m_)), rng.standard_normal(H_)
    W2, b2 = rng.standard_normal((n_, H_)), rng.standard_normal(n_)
    return x, t, W1, b1, W2, b2


def _bp_forward(x, W1, b1, W2, b2, out="sigmoid"):
    o1 = W1 @ x + b1            # eq. (1); note: the note's w_{kj}^{(1)} is W1[j, k]
    h = sig(o1)                 # eq. (2) with eq. (21)
    o2 = W2 @ h + b2            # eq. (3); the note's w_{ji}^{(2)} is W2[i, j]
    y = sig(o2) if out == "sigmoid" else softmax(o2)   # eq. (4)
    return h, y


def _bp_loss(kind, out="sigmoid"):
    def L(x, t, W1, b1, W2, b2):
        _, y = _bp_forward(x, W1, b1, W2, b2, out)
        if kind == "l2":
            return 0.5 * float(((t - y) ** 2).sum())        # eq. (9)
        return float(-(t * np.log(y)).sum())                # eq. (15)
    return L


def bp_general_evidence(kind, out="sigmoid", seed=1):
    """eqs. (5)-(8) with dL/dy from (10) or (16) and dy_i/do_i = y_i(1 − y_i) from (22),
    i.e. eqs. (11)-(14) / (17)-(20) as written (LHS indices corrected, see errata)."""
    x, t, W1, b1, W2, b2 = _bp_setup(seed)
    h, y = _bp_forward(x, W1, b1, W2, b2, out)
    L = _bp_loss(kind, out)
    f = lambda: L(x, t, W1, b1, W2, b2)  # noqa: E731
    dLdy = (y - t) if kind == "l2" else -t / y               # eq. (10) / eq. (16)
    dy_do = y * (1 - y)                                      # eq. (22), element-wise
    g2 = dLdy * dy_do                                        # ∂L/∂y_i ∂y_i/∂o_i
    note = {
        "W2": np.outer(g2, h),                               # eq. (11)/(17): [i, j] = g2_i h_j
        "b2": g2,                                            # eq. (12)/(18)
        "W1": np.outer((W2.T @ g2) * h * (1 - h), x),        # eq. (13)/(19): Σ_i g2_i w_ji h'_j x_k
        "b1": (W2.T @ g2) * h * (1 - h),                     # eq. (14)/(20)
    }
    num = {"W2": fd(f, W2), "b2": fd(f, b2), "W1": fd(f, W1), "b1": fd(f, b1)}
    return {k: rel(note[k], num[k]) for k in note}


def bp_softmax_correct(seed=1):
    """With softmax outputs and the cross-entropy (15), ∂L/∂o^{(2)} = y − t (003 §3)."""
    x, t, W1, b1, W2, b2 = _bp_setup(seed)
    h, y = _bp_forward(x, W1, b1, W2, b2, "softmax")
    L = _bp_loss("ce", "softmax")
    f = lambda: L(x, t, W1, b1, W2, b2)  # noqa: E731
    g2 = y - t
    good = {"W2": np.outer(g2, h), "b2": g2, "W1": np.outer((W2.T @ g2) * h * (1 - h), x),
            "b1": (W2.T @ g2) * h * (1 - h)}
    num = {"W2": fd(f, W2), "b2": fd(f, b2), "W1": fd(f, W1), "b1": fd(f, b1)}
    return {k: rel(good[k], num[k]) for k in good}


def bp_handgrad(kind, seed=1):
    x, t, W1, b1, W2, b2 = _bp_setup(seed)
    out = {"l2": [layers.Sigmoid()], "ce_sigmoid": [layers.Sigmoid()], "ce_softmax": [],
           "ce_softmax_layer": [layers.Softmax()]}[kind]
    model = hg.Sequential([layers.Dense(m_, H_, dtype=F64), layers.Sigmoid(),
                           layers.Dense(H_, n_, dtype=F64)] + out)
    model[0].params.update(W=W1.copy(), b=b1.copy())
    model[2].params.update(W=W2.copy(), b=b2.copy())
    loss = {"l2": losses.MeanSquaredError(), "ce_sigmoid": losses.NegativeLogLikelihood(),
            "ce_softmax": losses.SoftmaxCrossEntropy(),
            "ce_softmax_layer": losses.NegativeLogLikelihood()}[kind]
    return hg.gradcheck(model, x[None], t[None], loss=loss, max_entries=None).max_error


def bp_degenerate_ce_with_sigmoid(seed=1):
    """Loss (15) with element-wise sigmoid outputs ignores the non-target outputs: pushing every
    output to 1 (a network that says "every class") drives the loss to 0."""
    x, t, W1, b1, W2, b2 = _bp_setup(seed)
    L = _bp_loss("ce", "sigmoid")
    big = np.full(n_, 40.0)
    _, y = _bp_forward(x, W1, b1, W2, big, "sigmoid")
    return {"loss_all_ones": L(x, t, W1, b1, W2, big), "outputs": y}


def test_001_l2_loss_eqs_11_to_14_correct():
    ev = bp_general_evidence("l2")
    assert max(ev.values()) < PASS
    assert bp_handgrad("l2") < PASS


def test_001_cross_entropy_eqs_17_to_20_correct_for_sigmoid_outputs():
    ev = bp_general_evidence("ce", "sigmoid")
    assert max(ev.values()) < PASS
    assert bp_handgrad("ce_sigmoid") < PASS


def test_001_cross_entropy_with_sigmoid_outputs_is_degenerate():
    ev = bp_degenerate_ce_with_sigmoid()
    assert ev["loss_all_ones"] < 1e-15 and np.all(ev["outputs"] > 1 - 1e-15)


def test_001_elementwise_chain_rule_fails_for_softmax_outputs():
    bad = bp_general_evidence("ce", "softmax")
    assert min(bad.values()) > FAIL
    good = bp_softmax_correct()
    assert max(good.values()) < PASS
    assert bp_handgrad("ce_softmax") < PASS
    assert bp_handgrad("ce_softmax_layer") < PASS   # Softmax layer (full Jacobian) + eq. (16)


def test_001_bias_index_typos_eqs_6_8():
    """eqs. (6)/(12) write ∂L/∂b_j^{(2)} and (8)/(14)/(20) ∂L/∂b_k^{(1)}: j (hidden) and k
    (input) do not range over the right sets (here H ≠ n and m ≠ H); the right-hand sides,
    indexed by i (output) and j (hidden), are the gradients of b_i^{(2)} and b_j^{(1)}."""
    x, t, W1, b1, W2, b2 = _bp_setup()
    assert x.shape[0] != b1.shape[0] and W2.shape[1] != b2.shape[0]
    for kind in ("l2", "ce"):
        ev = bp_general_evidence(kind)
        assert ev["b1"] < PASS and ev["b2"] < PASS


# -- 001 §3 (LeNet-5 section): convolution definitions (23)-(25), conv layer (26)-(31), pooling --
def _full_conv(I, K):
    """(I ∗ K)_{ij} = Σ_{all m, n} I(m, n) K(i − m, j − n), I and K zero outside their arrays,
    i ∈ {0, …, H + k1 − 2}: the discrete convolution that (23) and (24) set out to define."""
    H, W = I.shape
    k1, k2 = K.shape
    out = np.zeros((H + k1 - 1, W + k2 - 1))
    for m in range(k1):
        for n in range(k2):
            out[m:m + H, n:n + W] += K[m, n] * I
    return out


def _at(A, i, j):
    """A(i, j), zero outside the array (negative indices included)."""
    return A[i, j] if 0 <= i < A.shape[0] and 0 <= j < A.shape[1] else 0.0


def bp_conv_definitions(seed=11):
    """001 eqs. (23)-(25) evaluated literally, with their summation ranges, on every position of
    the full convolution."""
    rng = np.random.default_rng(seed)
    I, K = rng.standard_normal((5, 6)), rng.standard_normal((3, 2))
    k1, k2 = K.shape
    true = _full_conv(I, K)
    pos = [(i, j) for i in range(true.shape[0]) for j in range(true.shape[1])]
    R1, R2 = range(k1), range(k2)
    Rneg1, Rneg2 = range(-(k1 - 1), 1), range(-(k2 - 1), 1)

    def grid(f):
        return np.array([f(i, j) for i, j in pos]).reshape(true.shape)

    eq23 = grid(lambda i, j: sum(_at(I, m, n) * _at(K, i - m, j - n) for m in R1 for n in R2))
    eq24a = grid(lambda i, j: sum(_at(I, i - m, j - n) * _at(K, m, n) for m in R1 for n in R2))
    eq24b = grid(lambda i, j: sum(_at(I, i + m, j + n) * _at(K, -m, -n) for m in R1 for n in R2))
    eq24b_fixed = grid(lambda i, j: sum(_at(I, i + m, j + n) * _at(K, -m, -n) for m in Rneg1 for n in Rneg2))
    # (25) with the flipped kernel K'(m, n) = K(k1 − 1 − m, k2 − 1 − n) on {0…k1−1}×{0…k2−1}:
    # the valid cross-correlation equals the convolution shifted by (k1 − 1, k2 − 1)
    corr = _corr_valid_rect(I, K[::-1, ::-1])
    return {"eq23": rel(eq23, true), "eq24a": rel(eq24a, true), "eq24b": rel(eq24b, true),
            "eq24b_is_I_times_K00": rel(eq24b, K[0, 0] * np.pad(I, ((0, k1 - 1), (0, k2 - 1)))),
            "eq24b_range_fixed": rel(eq24b_fixed, true),
            "eq25_flipped_is_shifted_conv": rel(corr, true[k1 - 1:I.shape[0], k2 - 1:I.shape[1]])}


def _corr_valid_rect(I, K):
    k1, k2 = K.shape
    oh, ow = I.shape[0] - k1 + 1, I.shape[1] - k2 + 1
    return np.array([[float((I[a:a + k1, b:b + k2] * K).sum()) for b in range(ow)] for a in range(oh)])


def bp_conv_layer_evidence(seed=12):
    """001 eqs. (26)-(31): multi-channel cross-correlation x_{ijd} = Σ K_{mncd} I_{i+m,j+n,c} + b_d,
    o = a(x) (sigmoid), a scalar loss L = Σ R ⊙ o so δ = ∂L/∂x = R ⊙ o(1 − o); the final lines
    of (30) and (31) vs finite differences, and handgrad's Conv2D (W[d, c, m, n] = K[m, n, c, d])."""
    rng = np.random.default_rng(seed)
    H, W, C, D, k1, k2 = 5, 6, 2, 3, 2, 3
    I = rng.standard_normal((H, W, C))
    K = rng.standard_normal((k1, k2, C, D))
    b = rng.standard_normal(D)
    oh, ow = H - k1 + 1, W - k2 + 1             # (H − k1 + 1) × (W − k2 + 1), §3.3
    R = rng.standard_normal((oh, ow, D))

    def x_of():
        x = np.zeros((oh, ow, D))
        for m in range(k1):
            for n in range(k2):
                x += np.einsum("ijc,cd->ijd", I[m:m + oh, n:n + ow], K[m, n])     # eq. (26)
        return x + b

    L = lambda: float((R * sig(x_of())).sum())  # noqa: E731
    o = sig(x_of())
    delta = R * o * (1 - o)
    eq30 = np.zeros_like(K)
    for m in range(k1):
        for n in range(k2):
            eq30[m, n] = np.einsum("ijd,ijc->cd", delta, I[m:m + oh, n:n + ow])    # Σ_ij δ_ijd o_{i+m',j+n',c}
    eq31 = delta.sum(axis=(0, 1))
    out = {"eq30": rel(eq30, fd(L, K)), "eq31": rel(eq31, fd(L, b))}
    conv = layers.Conv2D(C, D, (k1, k2), dtype=F64)
    conv.params.update(W=K.transpose(3, 2, 0, 1).copy(), b=b.copy())
    y = conv.forward(I.transpose(2, 0, 1)[None], training=True)
    out["hg_forward"] = rel(y[0].transpose(1, 2, 0), x_of())
    dx = conv.backward(delta.transpose(2, 0, 1)[None].copy())
    out["hg_W"] = rel(conv.grads["W"].transpose(2, 3, 1, 0), eq30)
    out["hg_b"] = rel(conv.grads["b"], eq31)
    out["hg_input"] = rel(dx[0].transpose(1, 2, 0), fd(L, I))   # (not stated in 001: full conv with the flipped kernel)
    out["hg_gradcheck"] = hg.gradcheck(conv, I.transpose(2, 0, 1)[None], max_entries=None).max_error
    out["output_size"] = (y.shape[2], y.shape[3]) == (H - k1 + 1, W - k2 + 1)
    return out


def pooling_evidence(seed=13):
    """001 eq. (29) and §3.3 routing, 003 §5 max-pooling, 000 eq. (13) mean pooling (corrected
    indices): N×N non-overlapping windows, L = Σ R ⊙ p. Max: the error goes to the winner;
    average: every unit gets δ/(N·N)."""
    rng = np.random.default_rng(seed)
    Hh, Ww, D, Np = 4, 6, 2, 2
    o = rng.standard_normal((Hh, Ww, D))
    R = rng.standard_normal((Hh // Np, Ww // Np, D))
    blocks = lambda a: a.reshape(Hh // Np, Np, Ww // Np, Np, D)  # noqa: E731
    pmax = lambda: blocks(o).max(axis=(1, 3))                     # eq. (29)
    pavg = lambda: blocks(o).mean(axis=(1, 3))
    win = blocks(o) == blocks(o).max(axis=(1, 3), keepdims=True)
    route_max = (win * R[:, None, :, None, :]).reshape(Hh, Ww, D)
    route_avg = np.broadcast_to(R[:, None, :, None, :] / (Np * Np), blocks(o).shape).reshape(Hh, Ww, D)
    out = {"max_routing": rel(route_max, fd(lambda: float((R * pmax()).sum()), o)),
           "avg_routing": rel(route_avg, fd(lambda: float((R * pavg()).sum()), o))}
    x = o.transpose(2, 0, 1)[None].copy()
    out["hg_max_forward"] = rel(layers.MaxPool2D(Np).forward(x)[0].transpose(1, 2, 0), pmax())
    out["hg_avg_forward"] = rel(layers.AvgPool2D(Np).forward(x)[0].transpose(1, 2, 0), pavg())
    out["hg_max_gradcheck"] = hg.gradcheck(layers.MaxPool2D(Np), x, max_entries=None).max_error
    out["hg_avg_gradcheck"] = hg.gradcheck(layers.AvgPool2D(Np), x, max_entries=None).max_error
    gaps = np.sort(blocks(o).transpose(0, 2, 4, 1, 3).reshape(-1, Np * Np), axis=1)
    assert (gaps[:, -1] - gaps[:, -2]).min() > 1e-3      # no near-ties: finite differences stay on one side
    return out


def test_001_eqs_23_24_summation_ranges():
    ev = bp_conv_definitions()
    assert ev["eq23"] > FAIL and ev["eq24b"] > FAIL      # as written
    assert ev["eq24b_is_I_times_K00"] < 1e-15            # (24), second line: only the m = n = 0 term survives
    assert ev["eq24a"] < 1e-12 and ev["eq24b_range_fixed"] < 1e-12 and ev["eq25_flipped_is_shifted_conv"] < 1e-12


def test_001_conv_layer_eqs_26_to_31_correct():
    ev = bp_conv_layer_evidence()
    assert ev.pop("output_size")
    assert max(ev.values()) < PASS


def test_pooling_routing_001_003_000():
    assert max(pooling_evidence().values()) < PASS


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    fmt = lambda d: {k: (f"{v:.2e}" if isinstance(v, float) else v) for k, v in d.items()  # noqa: E731
                     if k not in ("num", "outputs")}
    for kind, out in (("l2", "sigmoid"), ("ce", "sigmoid"), ("ce", "softmax")):
        print("001", kind, out, fmt(bp_general_evidence(kind, out)))
    print("001 softmax corrected", fmt(bp_softmax_correct()))
    for kind in ("l2", "ce_sigmoid", "ce_softmax", "ce_softmax_layer"):
        print("001 handgrad", kind, f"{bp_handgrad(kind):.2e}")
    print("001 degenerate", bp_degenerate_ce_with_sigmoid())
    print("001 conv definitions", fmt(bp_conv_definitions()))
    print("001 conv layer", fmt(bp_conv_layer_evidence()))
    print("pooling", fmt(pooling_evidence()))
