"""Errata evidence for ``seeds/003`` (Rauber): backpropagation, weight decay, momentum,
dropout and initialization (§2–§4), the convolution of §5, BPTT (§6, statements (1)–(8)) and
the LSTM with peepholes (§7, statements (1)–(15)). Method and tolerances:
``errata_common.py``; ``python tests/test_errata_003.py`` prints the numbers quoted in
``docs/errata.md``.
"""
from __future__ import annotations

import itertools

import numpy as np
from errata_common import F64, FAIL, PASS, fd, rel, sig, softmax

import handgrad as hg
from handgrad import init, layers, losses, optim

# ==============================================================================================
# 003 (Rauber) §2-§4
# ==============================================================================================
SIZES = (3, 5, 4, 2)   # N^(1..L), L = 4


def _ffn_setup(n=6, seed=2):
    rng = np.random.default_rng(seed)
    Ws = [rng.standard_normal((SIZES[l + 1], SIZES[l])) for l in range(len(SIZES) - 1)]
    bs = [rng.standard_normal(SIZES[l + 1]) for l in range(len(SIZES) - 1)]
    X = rng.standard_normal((n, SIZES[0]))
    Y = rng.random((n, SIZES[-1]))
    return X, Y, Ws, bs


def _ffn_C(X, Y, Ws, bs):
    """C = (1/n) Σ c, c = ½‖a^{(L)} − y‖², sigmoid everywhere (003 §2)."""
    A = X
    for W, b in zip(Ws, bs):
        A = sig(A @ W.T + b)
    return 0.5 * float(((A - Y) ** 2).sum()) / X.shape[0]


def rauber_six_statements(seed=2):
    """Backprop exactly as statements (1)-(6), one observation at a time."""
    X, Y, Ws, bs = _ffn_setup(seed=seed)
    n = X.shape[0]
    gW = [np.zeros_like(W) for W in Ws]
    gb = [np.zeros_like(b) for b in bs]
    for x, y in zip(X, Y):
        a, zs = [x], []
        for W, b in zip(Ws, bs):
            zs.append(W @ a[-1] + b)
            a.append(sig(zs[-1]))
        sp = [sig(z) * (1 - sig(z)) for z in zs]
        delta = (a[-1] - y) * sp[-1]                         # (1)
        for l in range(len(Ws) - 1, -1, -1):
            gb[l] += delta / n                               # (3), (5)
            gW[l] += np.outer(delta, a[l]) / n               # (4), (6)
            if l > 0:
                delta = (Ws[l].T @ delta) * sp[l - 1]        # (2)
    errs = {}
    for l in range(len(Ws)):
        errs[f"W{l + 2}"] = rel(gW[l], fd(lambda: _ffn_C(X, Y, Ws, bs), Ws[l]))
        errs[f"b{l + 2}"] = rel(gb[l], fd(lambda: _ffn_C(X, Y, Ws, bs), bs[l]))
    model = hg.Sequential([lay for l in range(len(Ws)) for lay in
                           (layers.Dense(SIZES[l], SIZES[l + 1], dtype=F64), layers.Sigmoid())])
    for l in range(len(Ws)):
        model[2 * l].params.update(W=Ws[l].copy(), b=bs[l].copy())
    errs["handgrad"] = hg.gradcheck(model, X, Y, loss=losses.MeanSquaredError(),
                                    max_entries=None).max_error
    return errs


def output_deltas(seed=3):
    """δ^{(L)} = ∂c/∂z^{(L)} for the §3 output/cost pairs, against finite differences in z."""
    rng = np.random.default_rng(seed)
    d = 4
    z = rng.standard_normal(d) * 2
    y_prob = rng.random(d)
    y_hot = np.eye(d)[1]
    out = {}
    # sigmoid + halved MSE: statement (1), δ = (a − y) σ'(z)
    c = lambda: 0.5 * float(((sig(z) - y_prob) ** 2).sum())  # noqa: E731
    out["sigmoid_mse"] = rel((sig(z) - y_prob) * sig(z) * (1 - sig(z)), fd(c, z))
    # sigmoid + cross-entropy: ∂c/∂a = (a − y)/(a(1 − a)) and δ = a − y
    a_var = sig(z.copy())
    c_a = lambda: -float((y_prob * np.log(a_var) + (1 - y_prob) * np.log(1 - a_var)).sum())  # noqa: E731
    out["ce_dc_da"] = rel((a_var - y_prob) / (a_var * (1 - a_var)), fd(c_a, a_var, h=1e-6))
    c = lambda: -float((y_prob * np.log(sig(z)) + (1 - y_prob) * np.log(1 - sig(z))).sum())  # noqa: E731
    out["sigmoid_ce"] = rel(sig(z) - y_prob, fd(c, z))
    # linear + halved MSE: δ = a − y
    c = lambda: 0.5 * float(((z - y_prob) ** 2).sum())  # noqa: E731
    out["linear_mse"] = rel(z - y_prob, fd(c, z))
    # softmax + NLL (one-hot y, as the note assumes): δ = a − y
    c = lambda: -float((y_hot * np.log(softmax(z))).sum())  # noqa: E731
    out["softmax_nll"] = rel(softmax(z) - y_hot, fd(c, z))
    # ... statement (1) with σ' = a(1 − a) does NOT hold for softmax (the note says so)
    a = softmax(z)
    out["softmax_statement1"] = rel((-y_hot / a) * a * (1 - a), fd(c, z))
    # softmax Jacobian ∂a_h/∂z_j = a_h(1 − a_j) if h = j, −a_h a_j otherwise
    jac = np.diag(a) - np.outer(a, a)
    num = np.stack([fd(lambda h=h: float(softmax(z)[h]), z) for h in range(d)])
    out["softmax_jacobian"] = rel(jac, num)
    # beyond the note: soft targets with Σ y = 1 still give δ = a − y
    y_soft = y_prob / y_prob.sum()
    c = lambda: -float((y_soft * np.log(softmax(z))).sum())  # noqa: E731
    out["softmax_nll_soft"] = rel(softmax(z) - y_soft, fd(c, z))
    # handgrad's losses on the same cases
    Z, Yp, Yh = z[None].copy(), y_prob[None], y_hot[None]
    out["hg_MSE"] = hg.gradcheck(losses.MeanSquaredError(), Z, Yp, max_entries=None).max_error
    out["hg_BCE_logits"] = hg.gradcheck(losses.BinaryCrossEntropy(), Z, Yp, max_entries=None).max_error
    out["hg_BCE_probs"] = hg.gradcheck(losses.BinaryCrossEntropy(from_logits=False), sig(Z), Yp,
                                       max_entries=None).max_error
    out["hg_SoftmaxCE"] = hg.gradcheck(losses.SoftmaxCrossEntropy(), Z, Yh, max_entries=None).max_error
    out["hg_SoftmaxCE_soft"] = hg.gradcheck(losses.SoftmaxCrossEntropy(), Z, y_soft[None],
                                            max_entries=None).max_error
    # (probabilities kept >= 1e-3: the default step 1e-4 must not push one below 0)
    P = softmax(0.5 * Z)
    assert P.min() > 1e-3
    out["hg_NLL"] = hg.gradcheck(losses.NegativeLogLikelihood(), P, Yh, max_entries=None).max_error
    out["hg_Softmax_layer"] = hg.gradcheck(layers.Softmax(), Z, max_entries=None).max_error
    return out


def test_003_six_backprop_statements():
    ev = rauber_six_statements()
    assert max(ev.values()) < PASS


def test_003_output_deltas_section3():
    ev = output_deltas()
    assert ev.pop("softmax_statement1") > FAIL   # the note: softmax "invalidates" statement (1)
    assert max(ev.values()) < PASS


def l2_weight_decay(seed=4, lam=0.3, eta=0.1):
    """003 §4: C = (1/n)Σc + λ/(2n) Σ w², ∂C/∂w = mean ∂c/∂w + (λ/n) w, ∂C/∂b unchanged;
    the SGD step is w ← (1 − ηλ/n) w − η mean ∂c/∂w. handgrad's weight_decay is λ/n."""
    rng = np.random.default_rng(seed)
    n = 5
    X, Y = rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
    W, b = rng.standard_normal((2, 3)), rng.standard_normal(2)

    def C(reg=True):
        c = 0.5 * float(((X @ W.T + b - Y) ** 2).sum()) / n
        return c + (lam / (2 * n)) * float((W ** 2).sum()) if reg else c

    gW0, gb0 = fd(lambda: C(False), W), fd(lambda: C(False), b)
    out = {"dW": rel(gW0 + lam / n * W, fd(C, W)), "db": rel(gb0, fd(C, b))}
    layer = layers.Dense(3, 2, dtype=F64)
    layer.params.update(W=W.copy(), b=b.copy())
    model = hg.Sequential([layer])
    loss = losses.MeanSquaredError()
    loss.forward(model.forward(X, training=True), Y)
    model.backward(loss.backward())
    optim.SGD(model, lr=eta, weight_decay=lam / n).step()
    out["sgd_W"] = rel(layer.params["W"], (1 - eta * lam / n) * W - eta * gW0)
    out["sgd_b"] = rel(layer.params["b"], b - eta * gb0)
    return out


def test_003_l2_weight_decay():
    assert max(l2_weight_decay().values()) < PASS


def vanishing_product(seed=5, L=6):
    """One sigmoid neuron per layer, cross-entropy cost:
    δ^{(l)} = (a^{(L)} − y) Π_{i=l}^{L−1} w^{(i+1)} σ'(z^{(i)})."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(L + 1)   # w[l] = w_{1,1}^{(l)}, l = 2..L
    b = rng.standard_normal(L + 1)
    x, y = 0.7, 1.0

    def fwd():
        a, zs = {1: x}, {}
        for l in range(2, L + 1):
            zs[l] = w[l] * a[l - 1] + b[l]
            a[l] = sig(zs[l])
        return a, zs

    def c():
        a, _ = fwd()
        return -(y * np.log(a[L]) + (1 - y) * np.log(1 - a[L]))

    a, zs = fwd()
    formula = np.array([(a[L] - y) * np.prod([w[i + 1] * sig(zs[i]) * (1 - sig(zs[i]))
                                              for i in range(l, L)]) for l in range(2, L + 1)])
    num = fd(c, b)[2:]               # ∂c/∂b^{(l)} = δ^{(l)} (statement (3))
    return rel(formula, num)


def test_003_vanishing_gradient_product_formula():
    assert vanishing_product() < PASS


def momentum_evidence(mu=0.9, eta=0.05, steps=4, seed=6):
    """v_{t+1} = μ v_t − η ∂C/∂w_t, w_{t+1} = w_t + v_{t+1} (003 §4), vs handgrad's SGD."""
    rng = np.random.default_rng(seed)
    layer = layers.Dense(3, 2, dtype=F64)
    model = hg.Sequential([layer])
    opt = optim.SGD(model, lr=eta, momentum=mu)
    w = {k: v.copy() for k, v in layer.params.items()}
    v = {k: np.zeros_like(p) for k, p in w.items()}
    for _ in range(steps):
        for k in w:
            layer.grads[k] = rng.standard_normal(w[k].shape)
            v[k] = mu * v[k] - eta * layer.grads[k]
            w[k] = w[k] + v[k]
        opt.step()
    return max(rel(layer.params[k], w[k]) for k in w)


def test_003_momentum_rule():
    assert momentum_evidence() < 1e-12


def dropout_evidence(seed=7):
    """003 §4: drop half the hidden units while training, halve their outgoing weights after.
    Averaged over all 2^H masks the training network equals the halved-weight network exactly;
    handgrad's inverted dropout is the same model with W' = W/2 (identity at inference, ×2 at
    training), and its backward passes a gradient check with the mask fixed."""
    rng = np.random.default_rng(seed)
    Hh = 4
    a = rng.random(Hh)
    W, b = rng.standard_normal((2, Hh)), rng.standard_normal(2)
    masks = np.array(list(itertools.product([0.0, 1.0], repeat=Hh)))
    mean_train = np.mean([W @ (mk * a) + b for mk in masks], axis=0)
    out = {"note_expectation": rel(mean_train, (W / 2) @ a + b)}
    d = layers.Dropout(0.5, rng=seed)
    y = d.forward(a[None], training=True)[0]
    mask = y / a
    out["inverted_train"] = rel((W / 2) @ y + b, W @ (mask / 2 * a) + b)   # same net, W' = W/2
    out["inverted_eval_identity"] = rel(d.forward(a[None], training=False)[0], a)
    out["mask_not_0_or_2"] = float(not np.all(np.isin(np.round(mask, 12), [0.0, 2.0])))
    model = hg.Sequential([layers.Dense(3, Hh, dtype=F64), layers.Sigmoid(),
                           layers.Dropout(0.5, rng=seed), layers.Dense(Hh, 2, dtype=F64)])
    out["gradcheck"] = hg.gradcheck(model, rng.standard_normal((5, 3)), max_entries=None).max_error
    return out


def test_003_dropout():
    assert max(dropout_evidence().values()) < PASS


def init_variance(seed=8, p=400, trials=4000):
    """003 §4: w ~ N(0, 1/p) gives Σ_k w_k ~ N(0, 1); w ~ N(0, 1) gives N(0, p)."""
    gen = np.random.default_rng(seed)
    W = init.normal_fan_in((trials, p), p, 1, gen, F64)
    W1 = init.standard_normal((trials, p), p, 1, gen, F64)
    return {"var_fan_in": float(W.sum(axis=1).var()), "var_standard_over_p": float(W1.sum(axis=1).var()) / p}


def test_003_init_variance():
    ev = init_variance()
    # Monte Carlo: the sample variance of 4000 draws has relative s.d. sqrt(2/4000) ≈ 0.022
    assert abs(ev["var_fan_in"] - 1) < 0.1 and abs(ev["var_standard_over_p"] - 1) < 0.1


def cross_entropy_domain():
    """003 §3 says the cross-entropy requires a ∈ (0, 1]; at a = 1 with y < 1 the cost is +∞
    (and ∂c/∂a = (a − y)/(a(1 − a)) is undefined), so the domain is a ∈ (0, 1)."""
    with np.errstate(divide="ignore"):
        c = -(0.0 * np.log(1.0) + (1 - 0.0) * np.log(1 - 1.0))
    hg_value = losses.BinaryCrossEntropy(from_logits=False).forward(np.array([[1.0]]), np.array([[0.0]]))
    return {"cost_at_a1_y0": float(c), "hg_clipped_value": hg_value}


def test_003_cross_entropy_domain():
    ev = cross_entropy_domain()
    assert ev["cost_at_a1_y0"] == np.inf
    assert np.isfinite(ev["hg_clipped_value"])


# -- 003 §5: the "discrete convolution" is a cross-correlation; parameter counts ------------------
def rauber_conv_definition(seed=14):
    """003 §5: (f ∗ g)(n, m) = Σ_{i,j} f(i, j)·g(i − n, j − m) (· the inner product over the c
    channels) and the neuron's z_h = Σ_{i,j,k} w_{h,i,j,k} a_{i,j,k} over its window: both are the
    cross-correlation that handgrad's Conv2D computes with the *unflipped* filter. The textbook
    convolution Σ f(i, j)·g(n − i, m − j) is a different function of the same filter."""
    rng = np.random.default_rng(seed)
    c, Hh, Ww, w, h = 2, 5, 6, 3, 2
    f = rng.standard_normal((c, Hh, Ww))
    g = rng.standard_normal((c, w, h))
    oh, ow = Hh - w + 1, Ww - h + 1                # windows inside the domain D (strides 1)
    note = np.array([[sum(float(f[:, i, j] @ g[:, i - n, j - m]) for i in range(n, n + w) for j in range(m, m + h))
                      for m in range(ow)] for n in range(oh)])
    # the textbook convolution at the positions where the flipped window fits
    conv = np.array([[sum(float(f[:, i, j] @ g[:, n - i, m - j]) for i in range(n - w + 1, n + 1)
                          for j in range(m - h + 1, m + 1)) for m in range(h - 1, Ww)] for n in range(w - 1, Hh)])
    layer = layers.Conv2D(c, 1, (w, h), dtype=F64)
    layer.params.update(W=g[None].copy(), b=np.zeros(1))
    hg_out = layer.forward(f[None])[0, 0]
    layer.params["W"] = g[None, :, ::-1, ::-1].copy()
    hg_flipped = layer.forward(f[None])[0, 0]
    N_ = 4
    count = layers.Conv2D(c, N_, (w, h), dtype=F64).num_params
    return {"note_vs_conv2d": rel(note, hg_out), "note_vs_true_convolution": rel(note, conv),
            "true_convolution_vs_conv2d_flipped": rel(conv, hg_flipped),
            "params_shared": count == N_ * (c * w * h + 1),
            "params_unshared": oh * ow * N_ * (c * w * h + 1)}


def test_003_section5_convolution_is_cross_correlation():
    ev = rauber_conv_definition()
    assert ev["note_vs_conv2d"] < 1e-12 and ev["true_convolution_vs_conv2d_flipped"] < 1e-12
    assert ev["note_vs_true_convolution"] > FAIL
    assert ev["params_shared"]


# -- 003 §6: single-hidden-layer RNN, sigmoid everywhere, cross-entropy averaged over T ------------
m6_, N6_, d6_, T6_, n6_ = 2, 3, 2, 4, 2   # N^(1) = m, N^(2), N^(3) = d, time steps, sequences


def _r6_setup(seed=17, soft=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n6_, T6_, m6_))
    Y = rng.random((n6_, T6_, d6_)) if soft else np.eye(d6_)[rng.integers(d6_, size=(n6_, T6_))]
    P = {"W2": rng.standard_normal((N6_, m6_)), "Om": rng.standard_normal((N6_, N6_)),
         "b2": rng.standard_normal(N6_), "W3": rng.standard_normal((d6_, N6_)), "b3": rng.standard_normal(d6_)}
    return X, Y, P


def _r6_forward(x, P):
    a2 = [np.zeros(N6_)]                                    # a[0]^{(2)} = 0
    z2, z3, a3 = [], [], []
    for t in range(len(x)):
        z2.append(P["b2"] + P["W2"] @ x[t] + P["Om"] @ a2[-1])
        a2.append(sig(z2[-1]))
        z3.append(P["b3"] + P["W3"] @ a2[-1])
        a3.append(sig(z3[-1]))
    return np.array(a2), np.array(z2), np.array(z3), np.array(a3)


def _r6_C(X, Y, P):
    """C = (1/n) Σ c, c = −(1/T) Σ_t Σ_i [Y ln a + (1 − Y) ln(1 − a)]."""
    total = 0.0
    for x, y in zip(X, Y):
        a3 = _r6_forward(x, P)[3]
        total += -float((y * np.log(a3) + (1 - y) * np.log(1 - a3)).sum()) / len(x)
    return total / len(X)


def rauber_bptt_statements(seed=17, soft=False):
    """003 §6 statements (1)-(8) implemented literally, vs finite differences of C; and handgrad's
    RNN(activation="sigmoid") → Dense → BinaryCrossEntropy (the mean over n·T of the per-step
    cross-entropy, which is this C)."""
    X, Y, P = _r6_setup(seed, soft)
    G = {k: np.zeros_like(v) for k, v in P.items()}
    for x, y in zip(X, Y):
        T = len(x)
        a2, z2, z3, a3 = _r6_forward(x, P)
        dc_da3 = -(y / a3 - (1 - y) / (1 - a3)) / T
        d3 = dc_da3 * sig(z3) * (1 - sig(z3))                                 # (1)
        d2 = np.zeros((T + 1, N6_))                                          # δ[T+1]^{(2)} = 0
        for t in range(T - 1, -1, -1):
            d2[t] = sig(z2[t]) * (1 - sig(z2[t])) * (P["W3"].T @ d3[t] + P["Om"].T @ d2[t + 1])   # (2)
        d2 = d2[:T]
        G["b3"] += d3.sum(axis=0) / len(X)                                   # (3), (6)
        G["b2"] += d2.sum(axis=0) / len(X)
        G["W3"] += d3.T @ a2[1:] / len(X)                                    # (4), (7)
        G["W2"] += d2.T @ x / len(X)
        G["Om"] += d2.T @ a2[:-1] / len(X)                                   # (5), (8)
        assert rel(d3, (a3 - y) / T) < 1e-12                                  # δ^{(3)} = (a − Y)/T
    out = {k: rel(G[k], fd(lambda: _r6_C(X, Y, P), P[k])) for k in P}
    rnn = layers.RNN(m6_, N6_, activation="sigmoid", dtype=F64)
    rnn.params.update(W_ih=P["W2"].copy(), W_hh=P["Om"].copy(), b=P["b2"].copy())
    dense = layers.Dense(N6_, d6_, dtype=F64)
    dense.params.update(W=P["W3"].copy(), b=P["b3"].copy())
    model = hg.Sequential([rnn, dense])
    loss = losses.BinaryCrossEntropy()
    out["hg_value"] = abs(loss.forward(model.forward(X, training=True), Y) - _r6_C(X, Y, P))
    model.backward(loss.backward())
    hgG = {"W2": rnn.grads["W_ih"], "Om": rnn.grads["W_hh"], "b2": rnn.grads["b"],
           "W3": dense.grads["W"], "b3": dense.grads["b"]}
    out["hg_vs_statements"] = max(rel(hgG[k], G[k]) for k in G)
    out["hg_gradcheck"] = hg.gradcheck(model, X, Y, loss=losses.BinaryCrossEntropy(), max_entries=None).max_error
    return out


def rauber_rnn_softmax_delta(seed=18):
    """003 §6: with a softmax output layer and the negative log-likelihood averaged over T,
    δ[t]^{(3)} = (a[t]^{(3)} − Y[t])/T still holds (one-hot Y)."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((T6_, d6_ + 1))
    Y = np.eye(d6_ + 1)[rng.integers(d6_ + 1, size=T6_)]
    c = lambda: -float((Y * np.log(softmax(Z))).sum()) / T6_  # noqa: E731
    return rel((softmax(Z) - Y) / T6_, fd(c, Z))


def test_003_rnn_bptt_statements_1_to_8():
    ev = rauber_bptt_statements()
    assert max(ev.values()) < PASS
    assert rauber_rnn_softmax_delta() < PASS


def test_003_rnn_cross_entropy_needs_no_one_hot_targets():
    """The note says its (sigmoid, multi-label) cross-entropy "requires that every Y[t] be a
    standard basis vector"; statements (1)-(8) and δ^{(3)} = (a − Y)/T hold for any Y ∈ [0, 1]^d."""
    ev = rauber_bptt_statements(soft=True)
    assert max(ev.values()) < PASS


# -- 003 §7: LSTM with peepholes (gates I, F, O peek at s[t−1]), sigmoid output layer ------------
m7_, N7_, d7_, T7_, n7_ = 2, 3, 2, 4, 2


def _r7_setup(seed=20):
    rng = np.random.default_rng(seed)
    P = {}
    for G in ("", "I", "F", "O"):                       # "" is the cell's weighted input z
        P["w" + G] = rng.standard_normal((N7_, m7_))
        P["om" + G] = rng.standard_normal((N7_, N7_))
        P["b" + G] = rng.standard_normal(N7_)
        if G:
            P["psi" + G] = rng.standard_normal(N7_)
    P["W3"], P["b3"] = rng.standard_normal((d7_, N7_)), rng.standard_normal(d7_)
    X = rng.standard_normal((n7_, T7_, m7_))
    Y = np.eye(d7_)[rng.integers(d7_, size=(n7_, T7_))]
    return X, Y, P


def _r7_forward(x, P):
    T = len(x)
    a2, s = np.zeros((T + 1, N7_)), np.zeros((T + 1, N7_))     # a[0], s[0] = 0
    z, zG, aG, z3 = np.zeros((T + 1, N7_)), {}, {}, np.zeros((T + 1, d7_))
    for G in "IFO":
        zG[G], aG[G] = np.zeros((T + 2, N7_)), np.zeros((T + 2, N7_))
    for t in range(1, T + 1):
        z[t] = P["b"] + P["w"] @ x[t - 1] + P["om"] @ a2[t - 1]
        for G in "IFO":
            zG[G][t] = P["b" + G] + P["psi" + G] * s[t - 1] + P["w" + G] @ x[t - 1] + P["om" + G] @ a2[t - 1]
            aG[G][t] = sig(zG[G][t])                            # f = σ
        s[t] = aG["F"][t] * s[t - 1] + aG["I"][t] * np.tanh(z[t])   # g = tanh
        a2[t] = aG["O"][t] * np.tanh(s[t])                      # h = tanh
        z3[t] = P["b3"] + P["W3"] @ a2[t]
    return a2, s, z, zG, aG, z3


def _r7_C(X, Y, P):
    total = 0.0
    for x, y in zip(X, Y):
        a3 = sig(_r7_forward(x, P)[5][1:])
        total += -float((y * np.log(a3) + (1 - y) * np.log(1 - a3)).sum()) / len(x)
    return total / len(X)


def rauber_lstm_statements(seed=20):
    """003 §7 statements (1)-(15) implemented literally (time index 1…T, zero errors at T + 1),
    vs finite differences of C; and handgrad's LSTM(peepholes=True) → Dense → BinaryCrossEntropy."""
    X, Y, P = _r7_setup(seed)
    G_ = {k: np.zeros_like(v) for k, v in P.items()}
    dsig = lambda v: sig(v) * (1 - sig(v))  # noqa: E731
    dtanh = lambda v: 1 - np.tanh(v) ** 2  # noqa: E731
    for x, y in zip(X, Y):
        T = len(x)
        a2, s, z, zG, aG, z3 = _r7_forward(x, P)
        a3 = sig(z3)
        d3 = np.zeros((T + 1, d7_))
        d3[1:] = -(y / a3[1:] - (1 - y) / (1 - a3[1:])) / T * dsig(z3[1:])        # (1)
        dl = np.zeros((T + 2, N7_))                                               # δ[t]^{(2)} (cell input)
        dG = {G: np.zeros((T + 2, N7_)) for G in "IFO"}
        ea, es = np.zeros((T + 2, N7_)), np.zeros((T + 2, N7_))
        for t in range(T, 0, -1):
            ea[t] = P["W3"].T @ d3[t] + P["om"].T @ dl[t + 1] + sum(P["om" + G].T @ dG[G][t + 1] for G in "IFO")  # (7)
            dG["O"][t] = dsig(zG["O"][t]) * np.tanh(s[t]) * ea[t]                                         # (2)
            es[t] = (aG["O"][t] * dtanh(s[t]) * ea[t] + aG["F"][t + 1] * es[t + 1]
                     + sum(P["psi" + G] * dG[G][t + 1] for G in "IFO"))                                   # (6)
            dl[t] = aG["I"][t] * dtanh(z[t]) * es[t]                                                      # (3)
            dG["F"][t] = dsig(zG["F"][t]) * s[t - 1] * es[t]                                              # (4)
            dG["I"][t] = dsig(zG["I"][t]) * np.tanh(z[t]) * es[t]                                         # (5)
        n = len(X)
        xs, hprev, sprev = x, a2[:T], s[:T]
        for G, d in [("I", dG["I"]), ("F", dG["F"]), ("O", dG["O"]), ("", dl)]:
            d = d[1:T + 1]
            G_["b" + G] += d.sum(axis=0) / n                     # (8), (12), (15)
            G_["w" + G] += d.T @ xs / n                          # (9), (13)
            G_["om" + G] += d.T @ hprev / n                      # (10), (14)
            if G:
                G_["psi" + G] += (d * sprev).sum(axis=0) / n     # (11)
        G_["b3"] += d3[1:].sum(axis=0) / n                       # (12), l = 3
        G_["W3"] += d3[1:].T @ a2[1:] / n                        # (13), l = 3
    out = {k: rel(G_[k], fd(lambda: _r7_C(X, Y, P), P[k])) for k in P}
    lstm = layers.LSTM(m7_, N7_, peepholes=True, dtype=F64)
    order = ("I", "F", "", "O")
    lstm.params.update(W_ih=np.vstack([P["w" + G] for G in order]), W_hh=np.vstack([P["om" + G] for G in order]),
                       b=np.concatenate([P["b" + G] for G in order]),
                       w_peep=np.vstack([P["psi" + G] for G in "IFO"]))
    dense = layers.Dense(N7_, d7_, dtype=F64)
    dense.params.update(W=P["W3"].copy(), b=P["b3"].copy())
    model = hg.Sequential([lstm, dense])
    loss = losses.BinaryCrossEntropy()
    out["hg_value"] = abs(loss.forward(model.forward(X, training=True), Y) - _r7_C(X, Y, P))
    model.backward(loss.backward())
    g = lstm.grads
    hgG = {"W3": dense.grads["W"], "b3": dense.grads["b"]}
    for r, G in enumerate(order):
        hgG["w" + G] = g["W_ih"][r * N7_:(r + 1) * N7_]
        hgG["om" + G] = g["W_hh"][r * N7_:(r + 1) * N7_]
        hgG["b" + G] = g["b"][r * N7_:(r + 1) * N7_]
    for r, G in enumerate("IFO"):
        hgG["psi" + G] = g["w_peep"][r]
    out["hg_vs_statements"] = max(rel(hgG[k], G_[k]) for k in G_)
    out["hg_gradcheck"] = hg.gradcheck(model, X, Y, loss=losses.BinaryCrossEntropy(), max_entries=None).max_error
    out["hg_params_per_block"] = lstm.num_params / N7_ - (4 * (m7_ + N7_) + 7)   # 003: 4(N1 + N2) + 7
    return out


def test_003_lstm_statements_1_to_15():
    ev = rauber_lstm_statements()
    assert ev.pop("hg_params_per_block") == 0
    assert max(ev.values()) < PASS


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    fmt = lambda d: {k: (f"{v:.2e}" if isinstance(v, float) else v) for k, v in d.items()  # noqa: E731
                     if k not in ("num", "outputs")}
    print("003 six statements", fmt(rauber_six_statements()))
    print("003 output deltas", fmt(output_deltas()))
    print("003 L2", fmt(l2_weight_decay()))
    print("003 vanishing", f"{vanishing_product():.2e}")
    print("003 momentum", f"{momentum_evidence():.2e}")
    print("003 dropout", fmt(dropout_evidence()))
    print("003 init", fmt(init_variance()))
    print("003 CE domain", cross_entropy_domain())
    print("003 §5 conv", fmt(rauber_conv_definition()))
    print("003 §6 BPTT", fmt(rauber_bptt_statements()))
    print("003 §6 BPTT soft targets", fmt(rauber_bptt_statements(soft=True)))
    print("003 §6 softmax delta", f"{rauber_rnn_softmax_delta():.2e}")
    print("003 §7 LSTM", fmt(rauber_lstm_statements()))
