"""Numerical evidence for ``docs/errata.md``: the slips in the MLP, CNN, RNN and LSTM derivations
of the source notes (``seeds/000``, ``seeds/001``, ``seeds/003``, ``seeds/004``) and the
statements checked as correct.

Every test computes a formula *as the note writes it*, the corrected formula, and a
finite-difference gradient (fourth-order central differences in float64), and compares them
with the norm-wise relative error

    rel(a, b) = max|a − b| / max(max|a|, max|b|).

A slip shows up as rel ≳ 0.1 against finite differences; a correct formula (and handgrad's
backward) as rel < 1e-6 (in practice 1e-10 or smaller). Running this file as a script
(``python tests/test_errata.py``) prints every number quoted in ``docs/errata.md``.

Conventions: the notes write one sample as a column vector; here a batch is rows ``(N, F)``
and a weight matrix is ``(out, in)`` as in ``handgrad.layers.Dense``.
"""
from __future__ import annotations

import itertools

import numpy as np

import handgrad as hg
from handgrad import init, layers, losses, optim

F64 = np.float64
FAIL = 0.1    # a note's formula "fails" if it is at least this far off
PASS = 1e-6   # a correct formula "passes" below this


# -- helpers ------------------------------------------------------------------------------------
def rel(a, b) -> float:
    a = np.asarray(a, dtype=F64)
    b = np.asarray(b, dtype=F64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-300)
    return float(np.abs(a - b).max() / scale)


def fd(f, arr, h=1e-4):
    """Fourth-order central differences of the scalar f() w.r.t. every entry of arr (in place)."""
    g = np.zeros_like(arr, dtype=F64)
    flat, gflat = arr.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        x0 = flat[i]
        vals = []
        for s in (2 * h, h, -h, -2 * h):
            flat[i] = x0 + s
            vals.append(f())
        flat[i] = x0
        gflat[i] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    return g


def sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ==============================================================================================
# 000 (Jin) §1: 3-layer sigmoid MLP, multi-label sigmoid cross-entropy, eqs. (6)-(8), (42)-(43)
# ==============================================================================================
M, K, C, N = 3, 4, 3, 5   # inputs, hidden units, classes, samples


def _jin_setup(n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, M))
    Y = (rng.random((n, C)) < 0.5).astype(F64)          # multi-label 0/1 targets P(y_i=c|x_i)
    Wh, bh = rng.standard_normal((K, M)), rng.standard_normal(K)
    Wo, bo = rng.standard_normal((C, K)), rng.standard_normal(C)
    return X, Y, Wh, bh, Wo, bo


def _jin_J(X, Y, Wh, bh, Wo, bo):
    """eq. (6): J = −Σ_c Σ_i [P log a + (1 − P) log(1 − a)] (a sum over samples and classes)."""
    Ah = sig(X @ Wh.T + bh)
    Ao = sig(Ah @ Wo.T + bo)
    return -float((Y * np.log(Ao) + (1 - Y) * np.log(1 - Ao)).sum())


def _jin_forward(X, Wh, bh, Wo, bo):
    Ah = sig(X @ Wh.T + bh)
    Ao = sig(Ah @ Wo.T + bo)
    return Ah, Ao


def jin_eq7_evidence(seed=0):
    """eq. (7) ∂J/∂w_{c,k} = (a_{c,i} − P_{c,i}) a_{k,i}: as written, for one sample i."""
    X, Y, Wh, bh, Wo, bo = _jin_setup(seed=seed)
    Ah, Ao = _jin_forward(X, Wh, bh, Wo, bo)
    num = fd(lambda: _jin_J(X, Y, Wh, bh, Wo, bo), Wo)
    per_sample = [np.outer(Ao[i] - Y[i], Ah[i]) for i in range(N)]   # the note, sample i
    note = min(rel(g, num) for g in per_sample)                      # best choice of i
    correct = rel(sum(per_sample), num)                              # Σ_i
    return {"note_best_i": note, "correct_sum_i": correct, "num": num}


def jin_eq8_evidence(seed=0):
    """eq. (8) ∂J/∂w_{k,m} = (a_{c,i} − P_{c,i}) w_{c,k} a_{k,i}(1 − a_{k,i}) a_{m,i}."""
    out = {}
    # (a) one sample (N = 1), so only the missing sum over classes c can matter
    X, Y, Wh, bh, Wo, bo = _jin_setup(n=1, seed=seed)
    Ah, Ao = _jin_forward(X, Wh, bh, Wo, bo)
    num1 = fd(lambda: _jin_J(X, Y, Wh, bh, Wo, bo), Wh)

    def term(c, i):
        return np.outer((Ao[i, c] - Y[i, c]) * Wo[c] * Ah[i] * (1 - Ah[i]), X[i])

    out["N1_note_best_c"] = min(rel(term(c, 0), num1) for c in range(C))
    out["N1_correct_sum_c"] = rel(sum(term(c, 0) for c in range(C)), num1)
    # (b) a batch: with Σ_c but without Σ_i it still fails; with both it matches
    X, Y, Wh, bh, Wo, bo = _jin_setup(n=N, seed=seed)
    Ah, Ao = _jin_forward(X, Wh, bh, Wo, bo)
    num = fd(lambda: _jin_J(X, Y, Wh, bh, Wo, bo), Wh)
    out["note_best_c_i"] = min(rel(term(c, i), num) for c in range(C) for i in range(N))
    out["sum_c_only_best_i"] = min(rel(sum(term(c, i) for c in range(C)), num) for i in range(N))
    out["correct_sum_c_i"] = rel(sum(term(c, i) for c in range(C) for i in range(N)), num)
    out["num"] = num
    return out


def jin_handgrad(seed=0):
    """handgrad's Dense/Sigmoid/Dense + BinaryCrossEntropy(from_logits=True) on the same net.

    The handgrad cost is the mean over samples, J/N, so N·grads must equal ∂J/∂W."""
    X, Y, Wh, bh, Wo, bo = _jin_setup(seed=seed)
    model = hg.Sequential([layers.Dense(M, K, dtype=F64), layers.Sigmoid(),
                           layers.Dense(K, C, dtype=F64)])
    model[0].params.update(W=Wh.copy(), b=bh.copy())
    model[2].params.update(W=Wo.copy(), b=bo.copy())
    loss = losses.BinaryCrossEntropy()
    value = loss.forward(model.forward(X, training=True), Y)
    model.backward(loss.backward())
    gWo, gWh = model[2].grads["W"].copy(), model[0].grads["W"].copy()
    numWo = fd(lambda: _jin_J(X, Y, Wh, bh, Wo, bo), Wo)
    numWh = fd(lambda: _jin_J(X, Y, Wh, bh, Wo, bo), Wh)
    gc = hg.gradcheck(model, X, Y, loss=losses.BinaryCrossEntropy(), max_entries=None)
    return {"value_times_N_vs_J": abs(value * N - _jin_J(X, Y, Wh, bh, Wo, bo)),
            "Wo": rel(N * gWo, numWo), "Wh": rel(N * gWh, numWh), "gradcheck": gc.max_error}


def test_000_eq7_missing_sum_over_samples():
    ev = jin_eq7_evidence()
    assert ev["note_best_i"] > FAIL
    assert ev["correct_sum_i"] < PASS


def test_000_eq8_missing_sum_over_classes_and_samples():
    ev = jin_eq8_evidence()
    assert ev["N1_note_best_c"] > FAIL        # even for one sample: the Σ_c is missing
    assert ev["N1_correct_sum_c"] < PASS
    assert ev["note_best_c_i"] > FAIL
    assert ev["sum_c_only_best_i"] > FAIL     # and for a batch also the Σ_i
    assert ev["correct_sum_c_i"] < PASS


def test_000_handgrad_matches_corrected_eqs_7_8():
    ev = jin_handgrad()
    assert ev["value_times_N_vs_J"] < 1e-10
    assert ev["Wo"] < PASS and ev["Wh"] < PASS and ev["gradcheck"] < PASS


def test_000_eq6_is_negative_log_of_eq5():
    X, Y, Wh, bh, Wo, bo = _jin_setup()
    _, Ao = _jin_forward(X, Wh, bh, Wo, bo)
    likelihood = np.prod(Ao ** Y * (1 - Ao) ** (1 - Y))              # eq. (5)
    assert abs(-np.log(likelihood) - _jin_J(X, Y, Wh, bh, Wo, bo)) < 1e-10


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


# ==============================================================================================
# CNN parts: 000 §2 + Appendix eqs. (11)-(21), (44)-(50); 001 §3 eqs. (23)-(31); 003 §5; 004
# ==============================================================================================
def _conv_true(X, W):
    """Valid *convolution* (flipped kernel) of a 2-D X with kernels W ``(..., m, m)``:
    out[..., a, b] = Σ_{k1,k2} W[..., k1, k2] X[a + m−1−k1, b + m−1−k2].

    This is ``000`` eq. (12) and ``004`` eq. (10) in 0-based indices: the note's output position
    i ∈ {m, …, n} (1-based) is a = i − m, and X(i − k1) is X[a + m − 1 − k1]."""
    m, n = W.shape[-1], X.shape[0]
    out = n - m + 1
    Z = np.zeros(W.shape[:-2] + (out, out))
    for k1 in range(m):
        for k2 in range(m):
            Z += W[..., k1, k2, None, None] * X[m - 1 - k1:m - 1 - k1 + out, m - 1 - k2:m - 1 - k2 + out]
    return Z


# -- 000 (Jin) §2: conv (sigmoid) → mean pooling → fully connected (sigmoid), loss (17) -------
n1_, m1_, p1_, Cout_, Ccls_ = 6, 3, 2, 2, 3      # 6×6 input, 3×3 kernels, 2×2 pooling, 2 maps, 3 classes
A_SIZE = n1_ - m1_ + 1                           # 4: the valid positions i ∈ {m1, …, n1} of eq. (12)
S_SIZE = A_SIZE // p1_                           # 2


def _jcnn_setup(seed=10):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n1_, n1_))
    Wc = rng.standard_normal((Cout_, m1_, m1_))            # W^{(conv)}_{c_out}(k1, k2)
    bc = rng.standard_normal(Cout_)
    Wf = rng.standard_normal((Ccls_, Cout_ * S_SIZE ** 2))  # W^{(f)}
    bf = rng.standard_normal(Ccls_)
    P = rng.random(Ccls_) + 0.2
    P /= P.sum()                                           # P(y = c | X): a distribution over classes
    return X, Wc, bc, Wf, bf, P


def _jcnn_Z(S):
    """eq. (14): vectorize each map by column scan, concatenate the channels."""
    return S.transpose(0, 2, 1).reshape(-1)


def _jcnn_Zinv(z):
    """eq. (15)."""
    return z.reshape(Cout_, S_SIZE, S_SIZE).transpose(0, 2, 1)


def _jcnn_pool(A):
    """eq. (13) with corrected indices: non-overlapping p×p windows tiling the conv output."""
    return A.reshape(Cout_, S_SIZE, p1_, S_SIZE, p1_).mean(axis=(2, 4))


def _jcnn_forward(X, Wc, bc, Wf, bf):
    A = sig(_conv_true(X, Wc) + bc[:, None, None])     # eqs. (11)-(12)
    S = _jcnn_pool(A)                                   # eq. (13)
    z = _jcnn_Z(S)                                      # eq. (14)
    yhat = sig(Wf @ z + bf)                             # eq. (16)
    return A, S, z, yhat


def _jcnn_J_from_z(z, Wf, bf, P):
    return -float((P * np.log(sig(Wf @ z + bf))).sum())    # eq. (17)


def _jcnn_J(X, Wc, bc, Wf, bf, P):
    return _jcnn_J_from_z(_jcnn_forward(X, Wc, bc, Wf, bf)[2], Wf, bf, P)


def _jcnn_upsample(dS, factor):
    """∂J/∂A(i, j) = factor · ∂J/∂S(window of (i, j)) (eq. (49) with factor p1p2, or 1/(p1p2))."""
    return factor * np.repeat(np.repeat(dS, p1_, axis=1), p1_, axis=2)


def _jcnn_kernel_grad(alpha, X):
    """eqs. (20)/(46): Σ_{i,j} α(i, j) X(i − k1, j − k2), i.e. (α ∗ X_rot180)(k1, k2)."""
    m = m1_
    g = np.zeros((Cout_, m, m))
    for k1 in range(m):
        for k2 in range(m):
            g[:, k1, k2] = (alpha * X[m - 1 - k1:m - 1 - k1 + A_SIZE, m - 1 - k2:m - 1 - k2 + A_SIZE]).sum(axis=(1, 2))
    return g


def jin_cnn_evidence(seed=10):
    """000 §2 backward, step by step: each of the note's formulas (18)-(21), (44)-(50) as written,
    with every other step correct, against finite differences of J (eq. (17)); then the whole
    chain as written and the whole chain corrected."""
    X, Wc, bc, Wf, bf, P = _jcnn_setup(seed)
    A, S, z, yhat = _jcnn_forward(X, Wc, bc, Wf, bf)
    J = lambda: _jcnn_J(X, Wc, bc, Wf, bf, P)  # noqa: E731
    num = {"Wf": fd(J, Wf), "bf": fd(J, bf), "Wc": fd(J, Wc), "bc": fd(J, bc)}
    zv = z.copy()
    num["z"] = fd(lambda: _jcnn_J_from_z(zv, Wf, bf, P), zv)
    Av = A.copy()
    num["A"] = fd(lambda: _jcnn_J_from_z(_jcnn_Z(_jcnn_pool(Av)), Wf, bf, P), Av)
    out = {}
    # (18)/(19), (44)/(45): −(1 − ŷ_c) z_j; correct −P_c (1 − ŷ_c) z_j
    g_o = -P * (1 - yhat)                                   # ∂J/∂o_c, o = W^{(f)} z + b
    out["eq18_note"] = rel(np.outer(-(1 - yhat), z), num["Wf"])
    out["eq19_note"] = rel(-(1 - yhat), num["bf"])
    out["eq18_correct"] = rel(np.outer(g_o, z), num["Wf"])
    out["eq19_correct"] = rel(g_o, num["bf"])
    # (47): ∂J/∂z = −(1/ŷ_c) W_{c,j} (c free); with σ' but no Σ_c; correct Σ_c
    out["eq47_note_best_c"] = min(rel(-Wf[c] / yhat[c], num["z"]) for c in range(Ccls_))
    out["eq47_sigma_no_sum_best_c"] = min(rel(g_o[c] * Wf[c], num["z"]) for c in range(Ccls_))
    dz = Wf.T @ g_o
    out["eq47_correct"] = rel(dz, num["z"])
    # (49): ∂J/∂A = p1p2 · ∂J/∂S(window); correct 1/(p1p2)
    dS = _jcnn_Zinv(dz)                                     # eq. (48)
    dA_note = _jcnn_upsample(dS, p1_ * p1_)
    dA = _jcnn_upsample(dS, 1.0 / (p1_ * p1_))
    out["eq49_note"] = rel(dA_note, num["A"])
    out["eq49_correct"] = rel(dA, num["A"])
    out["eq49_ratio"] = float(np.median(dA_note / dA))
    # (46)/(50): α = ∂J/∂A · A; correct ∂J/∂A · A(1 − A)
    alpha_note, alpha = dA * A, dA * A * (1 - A)
    out["eq20_alpha_note"] = rel(_jcnn_kernel_grad(alpha_note, X), num["Wc"])
    out["eq21_alpha_note"] = rel(alpha_note.sum(axis=(1, 2)), num["bc"])
    out["eq20_correct"] = rel(_jcnn_kernel_grad(alpha, X), num["Wc"])
    out["eq21_correct"] = rel(alpha.sum(axis=(1, 2)), num["bc"])
    # the whole chain as written: (47) [best c] → (48) → (49) → α of (46) → (20), (50)
    best = []
    for c in range(Ccls_):
        a_w = _jcnn_upsample(_jcnn_Zinv(-Wf[c] / yhat[c]), p1_ * p1_) * A
        best.append((rel(_jcnn_kernel_grad(a_w, X), num["Wc"]), rel(a_w.sum(axis=(1, 2)), num["bc"])))
    out["chain_note_Wc_best_c"] = min(b[0] for b in best)
    out["chain_note_bc_best_c"] = min(b[1] for b in best)
    out["num"] = num
    return out


def jin_cnn_eq13_indices():
    """eq. (13) as written: S(i, j) averages A(p1 i' − k1, p2 j' − k2), k = 1…p, with
    i' = m1 + i, i ∈ {1, …, n1/p1}; eq. (12) defines A(i, j) only for i ∈ {m1, …, n1}.
    Returns the share of the row indices used by (13) that lie outside {m1, …, n1}, the
    number of pooled rows (13) claims (n1/p1) and the number that exist ((n1 − m1 + 1)/p1)."""
    n1, m1, p1 = 8, 3, 2        # n1/p1 an integer, as (13) assumes
    rows = [p1 * (m1 + i) - k1 for i in range(1, n1 // p1 + 1) for k1 in range(1, p1 + 1)]
    outside = [r for r in rows if not (m1 <= r <= n1)]
    corrected = [m1 + p1 * i - k1 for i in range(1, (n1 - m1 + 1) // p1 + 1) for k1 in range(1, p1 + 1)]
    return {"share_outside": len(outside) / len(rows), "rows_used": sorted(rows),
            "rows_never_pooled": sorted(set(range(m1, n1 + 1)) - set(rows)), "claimed_rows": n1 // p1,
            "existing_rows": (n1 - m1 + 1) // p1,
            "corrected_covers_domain": sorted(corrected) == list(range(m1, m1 + p1 * ((n1 - m1 + 1) // p1)))}


def jin_cnn_handgrad(seed=10):
    """handgrad Conv2D (kernel rotated by 180°: (12) is a true convolution, Conv2D a
    cross-correlation) → Sigmoid → AvgPool2D → Flatten → Dense → Sigmoid, with
    NegativeLogLikelihood (= eq. (17) for N = 1). Flatten is row-major and (14) scans columns:
    the Dense weights are the note's W^{(f)} with permuted columns."""
    X, Wc, bc, Wf, bf, P = _jcnn_setup(seed)
    perm = np.arange(Cout_ * S_SIZE ** 2).reshape(Cout_, S_SIZE, S_SIZE).transpose(0, 2, 1).reshape(-1)
    model = hg.Sequential([layers.Conv2D(1, Cout_, m1_, dtype=F64), layers.Sigmoid(), layers.AvgPool2D(p1_),
                           layers.Flatten(), layers.Dense(Cout_ * S_SIZE ** 2, Ccls_, dtype=F64), layers.Sigmoid()])
    model[0].params.update(W=Wc[:, None, ::-1, ::-1].copy(), b=bc.copy())
    model[4].params.update(W=Wf[:, perm].copy(), b=bf.copy())
    loss = losses.NegativeLogLikelihood()
    y = model.forward(X[None, None], training=True)
    out = {"forward": rel(y[0], _jcnn_forward(X, Wc, bc, Wf, bf)[3]),
           "value_vs_J": abs(loss.forward(y, P[None]) - _jcnn_J(X, Wc, bc, Wf, bf, P))}
    model.backward(loss.backward())
    J = lambda: _jcnn_J(X, Wc, bc, Wf, bf, P)  # noqa: E731
    out["Wc"] = rel(model[0].grads["W"][:, 0, ::-1, ::-1], fd(J, Wc))
    out["bc"] = rel(model[0].grads["b"], fd(J, bc))
    out["Wf"] = rel(model[4].grads["W"], fd(J, Wf)[:, perm])
    out["bf"] = rel(model[4].grads["b"], fd(J, bf))
    out["gradcheck"] = hg.gradcheck(model, X[None, None], P[None], loss=losses.NegativeLogLikelihood(),
                                    max_entries=None).max_error
    # without the flip the layer computes a different function: the kernel orientation matters
    # for the forward pass, not for what can be learned
    model[0].params["W"] = Wc[:, None].copy()
    out["unflipped_forward"] = rel(model.forward(X[None, None])[0], _jcnn_forward(X, Wc, bc, Wf, bf)[3])
    return out


def test_000_cnn_eqs_18_19_drop_target_probability():
    ev = jin_cnn_evidence()
    assert ev["eq18_note"] > FAIL and ev["eq19_note"] > FAIL
    assert ev["eq18_correct"] < PASS and ev["eq19_correct"] < PASS


def test_000_cnn_eq47_drops_sigmoid_derivative_and_class_sum():
    ev = jin_cnn_evidence()
    assert ev["eq47_note_best_c"] > FAIL
    assert ev["eq47_sigma_no_sum_best_c"] > FAIL
    assert ev["eq47_correct"] < PASS


def test_000_cnn_eq49_mean_pool_backward_multiplies_instead_of_divides():
    ev = jin_cnn_evidence()
    assert ev["eq49_note"] > FAIL and abs(ev["eq49_ratio"] - p1_ ** 4) < 1e-9
    assert ev["eq49_correct"] < PASS


def test_000_cnn_eqs_46_50_alpha_drops_one_minus_A():
    ev = jin_cnn_evidence()
    assert ev["eq20_alpha_note"] > FAIL and ev["eq21_alpha_note"] > FAIL
    assert ev["eq20_correct"] < PASS and ev["eq21_correct"] < PASS
    assert ev["chain_note_Wc_best_c"] > FAIL and ev["chain_note_bc_best_c"] > FAIL


def test_000_cnn_eq13_pooling_indices_leave_the_conv_output():
    ev = jin_cnn_eq13_indices()
    assert ev["share_outside"] > 0.5 and ev["claimed_rows"] != ev["existing_rows"]
    assert ev["corrected_covers_domain"]


def test_000_cnn_handgrad_matches_corrected_chain():
    ev = jin_cnn_handgrad()
    assert ev["forward"] < 1e-12 and ev["value_vs_J"] < 1e-12
    assert max(ev[k] for k in ("Wc", "bc", "Wf", "bf", "gradcheck")) < PASS
    assert ev["unflipped_forward"] > FAIL


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
    z1 = _conv_true(x, Wc) + b1                          # eq. (10): Σ_bc W_{d−b,e−c} x_bc + b_de
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


# ==============================================================================================
# RNN parts: 000 §3.1-3.2 eqs. (26)-(29); 003 §6 statements (1)-(8)
# ==============================================================================================
Fr_, Hr_, Cr_, Tr_ = 2, 3, 3, 5      # input features, hidden units, classes, time steps


def _jrnn_setup(seed=16):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((Tr_, Fr_))
    Y = np.eye(Cr_)[rng.integers(Cr_, size=Tr_)]
    Wxh, Whh = rng.standard_normal((Fr_, Hr_)), rng.standard_normal((Hr_, Hr_))
    bh, Why, by = rng.standard_normal(Hr_), rng.standard_normal((Hr_, Cr_)), rng.standard_normal(Cr_)
    return X, Y, Wxh, Whh, bh, Why, by


def _jrnn_forward(X, Wxh, Whh, bh, Why, by):
    hs = [np.zeros(Hr_)]                                    # h_0
    for x in X:
        hs.append(np.tanh(Whh.T @ hs[-1] + Wxh.T @ x + bh))   # eq. (26), φ_h = tanh
    H = np.array(hs)
    return H, softmax(H[1:] @ Why + by)                     # eq. (27), softmax output


def _jrnn_J(X, Y, Wxh, Whh, bh, Why, by, tau=None):
    """eq. (28): J = Σ_τ J^{(τ)}; with ``tau`` only J^{(tau)} (1-based)."""
    _, Yh = _jrnn_forward(X, Wxh, Whh, bh, Why, by)
    per = -(Y * np.log(Yh)).sum(axis=1)
    return float(per.sum() if tau is None else per[tau - 1])


def jin_rnn_evidence(seed=16):
    """000 eq. (29) for ∂J^{(τ)}/∂W_hh, τ = T: the second line (with the true Jacobians
    ∂h_i/∂h_{i−1}) vs the third line (each Jacobian replaced by W_hh), against finite differences."""
    X, Y, Wxh, Whh, bh, Why, by = _jrnn_setup(seed)
    H, Yh = _jrnn_forward(X, Wxh, Whh, bh, Why, by)
    tau = Tr_
    out = {}
    # the Jacobian ∂h_i/∂h_{i−1} itself, at i = 3: [a, b] = ∂h_i[a]/∂h_{i−1}[b]
    i = 3
    hprev = H[i - 1].copy()
    step = lambda a: float(np.tanh(Whh.T @ hprev + Wxh.T @ X[i - 1] + bh)[a])  # noqa: E731
    jac_num = np.stack([fd(lambda a=a: step(a), hprev) for a in range(Hr_)])
    jac = lambda k: (1 - H[k] ** 2)[:, None] * Whh.T  # noqa: E731  diag(φ'(·)) W_hhᵀ
    out["jacobian_note_Whh"] = rel(Whh, jac_num)
    out["jacobian_Whh_T"] = rel(Whh.T, jac_num)
    out["jacobian_correct"] = rel(jac(i), jac_num)
    # eq. (29), ∂J^{(τ)}/∂W_hh = g Σ_t [Π_{i=t+1}^{τ} ∂h_i/∂h_{i−1}] ∂⁺h_t/∂W_hh, g = ∂J^{(τ)}/∂h_τ
    g = Why @ (Yh[tau - 1] - Y[tau - 1])

    def eq29(prod):
        dW = np.zeros_like(Whh)
        for t in range(1, tau + 1):
            r = g.copy()
            for k in range(tau, t, -1):        # g ∂h_τ/∂h_{τ−1} ⋯ ∂h_{t+1}/∂h_t
                r = r @ prod(k)
            dW += np.outer(H[t - 1], r * (1 - H[t] ** 2))   # ∂⁺h_t[b]/∂W_hh[a, b] = φ'(z_t[b]) h_{t−1}[a]
        return dW

    num = fd(lambda: _jrnn_J(X, Y, Wxh, Whh, bh, Why, by, tau=tau), Whh)
    out["eq29_line2"] = rel(eq29(jac), num)
    out["eq29_line3_note"] = rel(eq29(lambda k: Whh), num)
    out["eq29_line3_transposed"] = rel(eq29(lambda k: Whh.T), num)
    return out


def jin_rnn_handgrad(seed=16):
    """handgrad RNN (W_ih = W_xhᵀ, W_hh = the note's W_hhᵀ, eq. (26)) → Dense → SoftmaxCrossEntropy;
    handgrad's cost is the mean over the T steps, so T·grads = ∂J/∂W for J of eq. (28)."""
    X, Y, Wxh, Whh, bh, Why, by = _jrnn_setup(seed)
    rnn = layers.RNN(Fr_, Hr_, dtype=F64)
    rnn.params.update(W_ih=Wxh.T.copy(), W_hh=Whh.T.copy(), b=bh.copy())
    dense = layers.Dense(Hr_, Cr_, dtype=F64)
    dense.params.update(W=Why.T.copy(), b=by.copy())
    model = hg.Sequential([rnn, dense])
    loss = losses.SoftmaxCrossEntropy()
    value = loss.forward(model.forward(X[None], training=True), Y[None])
    model.backward(loss.backward())
    J = lambda: _jrnn_J(X, Y, Wxh, Whh, bh, Why, by)  # noqa: E731
    return {"value": abs(Tr_ * value - J()),
            "W_hh": rel(Tr_ * rnn.grads["W_hh"].T, fd(J, Whh)), "W_xh": rel(Tr_ * rnn.grads["W_ih"].T, fd(J, Wxh)),
            "b_h": rel(Tr_ * rnn.grads["b"], fd(J, bh)),
            "gradcheck": hg.gradcheck(model, X[None], Y[None], loss=losses.SoftmaxCrossEntropy(),
                                      max_entries=None).max_error}


def jin_rnn_growth():
    """The claim after eq. (29): the gradient explodes when |W_hh| > 1 and vanishes when |W_hh| < 1.
    What decides is the product of the Jacobians diag(φ') W_hhᵀ, i.e. (for long spans) its
    spectral radius, not the size of W_hh's entries or its norm. ‖∂h_{t+k}/∂h_t‖₂ for k = 30:"""
    k = 30
    out = {}
    # linear φ_h (so ∂h_i/∂h_{i−1} = W_hhᵀ exactly): entries 0.5 < 1 but spectral radius 2 → explodes
    A = np.full((4, 4), 0.5)
    out["entries_0.5_radius_2"] = float(np.linalg.norm(np.linalg.matrix_power(A.T, k), 2))
    # entries up to 5 and ‖W_hh‖₂ = 5 > 1 but nilpotent (spectral radius 0) → exactly 0 after 2 steps
    Bm = np.array([[0.0, 5.0], [0.0, 0.0]])
    out["norm_5_nilpotent"] = float(np.linalg.norm(np.linalg.matrix_power(Bm.T, k), 2))
    # tanh, W_hh = 3·I (every eigenvalue 3 > 1) with the units saturated → vanishes
    Whh = 3.0 * np.eye(2)
    h = np.array([0.9, -0.8])
    Jp = np.eye(2)
    for _ in range(k):
        h = np.tanh(Whh.T @ h)
        Jp = ((1 - h ** 2)[:, None] * Whh.T) @ Jp
    out["tanh_3I_saturated"] = float(np.linalg.norm(Jp, 2))
    return out


def test_000_rnn_eq29_jacobian_is_not_Whh():
    ev = jin_rnn_evidence()
    assert ev["jacobian_note_Whh"] > FAIL and ev["jacobian_Whh_T"] > FAIL
    assert ev["jacobian_correct"] < PASS
    assert ev["eq29_line3_note"] > FAIL and ev["eq29_line3_transposed"] > FAIL
    assert ev["eq29_line2"] < PASS


def test_000_rnn_growth_is_not_decided_by_abs_Whh():
    ev = jin_rnn_growth()
    assert ev["entries_0.5_radius_2"] > 1e8
    assert ev["norm_5_nilpotent"] == 0.0
    assert ev["tanh_3I_saturated"] < 1e-8


def test_000_rnn_handgrad_bptt():
    ev = jin_rnn_handgrad()
    assert ev["value"] < 1e-12
    assert max(ev.values()) < PASS


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


# ==============================================================================================
# LSTM parts: 000 §3.3 eqs. (30)-(41); 003 §7 statements (1)-(15) (peepholes)
# ==============================================================================================
Fl_, Hl_, Tl_ = 3, 2, 4      # input features, cells, time steps
GATES = ("i", "f", "a", "o")  # 000's names: input, forget, cell input a_τ (eq. (33)), output


def _jl_setup(seed=19, recurrent=True):
    """000 eqs. (30)-(33) parameters W_x* (H×F), W_h* (H×H), b_*; ``recurrent=False`` sets every
    W_h* to zero (no path from h_τ to the next step)."""
    rng = np.random.default_rng(seed)
    P = {}
    for G in GATES:
        P["Wx" + G] = rng.standard_normal((Hl_, Fl_))
        P["Wh" + G] = rng.standard_normal((Hl_, Hl_)) if recurrent else np.zeros((Hl_, Hl_))
        P["b" + G] = rng.standard_normal(Hl_)
    X = rng.standard_normal((Tl_, Fl_))
    Y = rng.standard_normal((Tl_, Hl_))
    return X, Y, P


def _jl_forward(X, P):
    h, C = np.zeros(Hl_), np.zeros(Hl_)
    keep = {k: [] for k in ("zi", "zf", "za", "zo", "i", "f", "a", "o", "C", "Cprev", "h")}
    for x in X:
        z = {G: P["Wx" + G] @ x + P["Wh" + G] @ h + P["b" + G] for G in GATES}
        i, f, o = sig(z["i"]), sig(z["f"]), sig(z["o"])       # (30)-(32)
        a = np.tanh(z["a"])                                    # (33)
        keep["Cprev"].append(C)
        C = a * i + C * f                                      # (34)
        h = np.tanh(C) * o                                     # (35)
        for G in GATES:
            keep["z" + G].append(z[G])
        for k, v in (("i", i), ("f", f), ("a", a), ("o", o), ("C", C), ("h", h)):
            keep[k].append(v)
    return {k: np.array(v) for k, v in keep.items()}


def _jl_J(X, Y, P):
    return 0.5 * float(((Y - _jl_forward(X, P)["h"]) ** 2).sum())      # (36)


def _jl_note_grads(X, Y, P, gate_deriv="tanh", extra_o=True, eq40_err="T"):
    """eqs. (37)-(41), summed over τ (the cases "τ = T" and "τ < T" are the contribution of step
    τ). ``gate_deriv``: "tanh" as written, 1 − tanh²(z), or "sigmoid", σ(z)(1 − σ(z));
    ``extra_o``: the factor σ_τ (= o_τ) that (38)-(39) put in every τ' > τ term; ``eq40_err``:
    (40) with (h_T − y_T) as written, or "tau": (h_τ − y_τ)."""
    s = _jl_forward(X, P)
    T = len(X)
    dgate = (lambda z: 1 - np.tanh(z) ** 2) if gate_deriv == "tanh" else (lambda z: sig(z) * (1 - sig(z)))
    err = s["h"] - Y
    # e[τ', τ] = (h_τ' − y_τ') ⊙ (1 − tanh² C_τ') ⊙ o_τ' ⊙ f_τ' ⋯ f_{τ+1}: the cell path C_τ → h_τ'
    e = np.zeros((T, T, Hl_))
    for tau in range(T):
        for tp in range(tau, T):
            e[tp, tau] = err[tp] * (1 - np.tanh(s["C"][tp]) ** 2) * s["o"][tp] * np.prod(s["f"][tau + 1:tp + 1], axis=0)
    o_fac = np.ones((T, T, Hl_))
    if extra_o:
        for tau in range(T):
            o_fac[tau + 1:, tau] = s["o"][tau]
    E_a = e.sum(axis=0)                                       # Σ_τ' for (37), (41): no extra factor
    E_g = (e * o_fac).sum(axis=0)                             # for (38), (39)
    g = {}
    g["Wxa"] = ((E_a * s["i"] * (1 - np.tanh(s["za"]) ** 2)).T @ X)                      # (37)
    g["ba"] = (E_a * s["i"] * (1 - np.tanh(s["za"]) ** 2)).sum(axis=0)                    # (41)
    g["Wxi"] = ((E_g * s["a"] * dgate(s["zi"])).T @ X)                                    # (38)
    g["Wxf"] = ((E_g * s["Cprev"] * dgate(s["zf"])).T @ X)                                # (39)
    eo = np.broadcast_to(err[-1], err.shape) if eq40_err == "T" else err
    per_tau_o = [np.outer(eo[t] * np.tanh(s["C"][t]) * dgate(s["zo"][t]), X[t]) for t in range(T)]
    g["Wxo"] = sum(per_tau_o)                                                              # (40) with Σ_τ
    g["Wxo_single_tau"] = per_tau_o
    return g


def jin_lstm_evidence(seed=19):
    """000 eqs. (37)-(41) vs finite differences of J (eq. (36)), first with W_h* = 0 (where the
    cell path is the whole gradient), then with W_h* ≠ 0."""
    out = {}
    for recurrent in (False, True):
        X, Y, P = _jl_setup(seed, recurrent)
        J = lambda: _jl_J(X, Y, P)  # noqa: E731
        num = {k: fd(J, P[k]) for k in ("Wxa", "Wxi", "Wxf", "Wxo", "ba")}
        tag = "rec" if recurrent else "norec"
        variants = {"as_written": {}, "sigmoid_deriv_only": {"gate_deriv": "sigmoid"},
                    "no_extra_o_only": {"extra_o": False},
                    "corrected": {"gate_deriv": "sigmoid", "extra_o": False, "eq40_err": "tau"}}
        for name, kw in variants.items():
            g = _jl_note_grads(X, Y, P, **kw)
            for k in ("Wxa", "ba", "Wxi", "Wxf", "Wxo"):
                out[f"{tag}.{name}.{k}"] = rel(g[k], num[k])
            if name == "as_written":   # (40) literally: one free τ, no sum
                out[f"{tag}.as_written.Wxo_best_single_tau"] = min(rel(m, num["Wxo"]) for m in g["Wxo_single_tau"])
        g = _jl_note_grads(X, Y, P, gate_deriv="sigmoid", extra_o=False, eq40_err="T")
        out[f"{tag}.eq40_sum_sigmoid_but_hT.Wxo"] = rel(g["Wxo"], num["Wxo"])
        g = _jl_note_grads(X, Y, P, gate_deriv="tanh", eq40_err="tau")
        out[f"{tag}.eq40_sum_htau_but_tanh.Wxo"] = rel(g["Wxo"], num["Wxo"])
        # handgrad LSTM: W_ih rows (I, F, g, O) = (W_xi, W_xf, W_xa, W_xo); backward fed dJ/dh = h − y
        lstm = layers.LSTM(Fl_, Hl_, dtype=F64)
        lstm.params.update(W_ih=np.vstack([P["Wx" + G] for G in ("i", "f", "a", "o")]),
                           W_hh=np.vstack([P["Wh" + G] for G in ("i", "f", "a", "o")]),
                           b=np.concatenate([P["b" + G] for G in ("i", "f", "a", "o")]))
        hseq = lstm.forward(X[None], training=True)
        lstm.backward(hseq - Y[None])
        W, b = lstm.grads["W_ih"], lstm.grads["b"]
        hgg = {"Wxi": W[:Hl_], "Wxf": W[Hl_:2 * Hl_], "Wxa": W[2 * Hl_:3 * Hl_], "Wxo": W[3 * Hl_:],
               "ba": b[2 * Hl_:3 * Hl_]}
        out[f"{tag}.handgrad"] = max(rel(hgg[k], num[k]) for k in hgg)
        out[f"{tag}.handgrad_forward"] = rel(hseq[0], _jl_forward(X, P)["h"])
    X, Y, P = _jl_setup(seed, True)
    lstm = layers.LSTM(Fl_, Hl_, dtype=F64, rng=0)
    out["handgrad_gradcheck"] = hg.gradcheck(lstm, X[None], max_entries=None).max_error
    return out


def test_000_lstm_gates_differentiated_as_tanh():
    ev = jin_lstm_evidence()
    for k in ("Wxi", "Wxf"):                     # tanh' alone (no extra o) is already wrong
        assert ev[f"norec.no_extra_o_only.{k}"] > FAIL
    assert ev["norec.eq40_sum_htau_but_tanh.Wxo"] > FAIL
    for k in ("Wxi", "Wxf", "Wxo"):
        assert ev[f"norec.corrected.{k}"] < PASS


def test_000_lstm_eqs_38_39_extra_output_gate_factor():
    ev = jin_lstm_evidence()
    for k in ("Wxi", "Wxf"):                     # σ' alone (extra o kept) is still wrong
        assert ev[f"norec.sigmoid_deriv_only.{k}"] > FAIL
        assert ev[f"norec.corrected.{k}"] < PASS


def test_000_lstm_eq40_wrong_error_and_missing_sum():
    ev = jin_lstm_evidence()
    assert ev["norec.as_written.Wxo"] > FAIL and ev["norec.as_written.Wxo_best_single_tau"] > FAIL
    assert ev["norec.eq40_sum_sigmoid_but_hT.Wxo"] > FAIL
    assert ev["norec.corrected.Wxo"] < PASS


def test_000_lstm_eqs_37_41_only_cell_path():
    ev = jin_lstm_evidence()
    # without recurrent weights (37) and (41) as written are exact ...
    assert ev["norec.as_written.Wxa"] < PASS and ev["norec.as_written.ba"] < PASS
    # ... with them, even the corrected formulas miss the paths through h_τ → the next step's gates
    for k in ("Wxa", "ba", "Wxi", "Wxf", "Wxo"):
        assert ev[f"rec.corrected.{k}"] > FAIL, k
    assert ev["rec.handgrad"] < PASS and ev["norec.handgrad"] < PASS
    assert ev["rec.handgrad_forward"] < 1e-12 and ev["handgrad_gradcheck"] < PASS


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
    print("000 eq7", fmt(jin_eq7_evidence()))
    print("000 eq8", fmt(jin_eq8_evidence()))
    print("000 handgrad", fmt(jin_handgrad()))
    for kind, out in (("l2", "sigmoid"), ("ce", "sigmoid"), ("ce", "softmax")):
        print("001", kind, out, fmt(bp_general_evidence(kind, out)))
    print("001 softmax corrected", fmt(bp_softmax_correct()))
    for kind in ("l2", "ce_sigmoid", "ce_softmax", "ce_softmax_layer"):
        print("001 handgrad", kind, f"{bp_handgrad(kind):.2e}")
    print("001 degenerate", bp_degenerate_ce_with_sigmoid())
    print("003 six statements", fmt(rauber_six_statements()))
    print("003 output deltas", fmt(output_deltas()))
    print("003 L2", fmt(l2_weight_decay()))
    print("003 vanishing", f"{vanishing_product():.2e}")
    print("003 momentum", f"{momentum_evidence():.2e}")
    print("003 dropout", fmt(dropout_evidence()))
    print("003 init", fmt(init_variance()))
    print("003 CE domain", cross_entropy_domain())
    print("000 CNN", fmt(jin_cnn_evidence()))
    print("000 CNN eq13", jin_cnn_eq13_indices())
    print("000 CNN handgrad", fmt(jin_cnn_handgrad()))
    print("001 conv definitions", fmt(bp_conv_definitions()))
    print("001 conv layer", fmt(bp_conv_layer_evidence()))
    print("pooling", fmt(pooling_evidence()))
    print("003 §5 conv", fmt(rauber_conv_definition()))
    print("004", fmt(s4_evidence()))
    print("004 handgrad", fmt(s4_handgrad()))
    print("000 RNN eq29", fmt(jin_rnn_evidence()))
    print("000 RNN growth", fmt(jin_rnn_growth()))
    print("000 RNN handgrad", fmt(jin_rnn_handgrad()))
    print("003 §6 BPTT", fmt(rauber_bptt_statements()))
    print("003 §6 BPTT soft targets", fmt(rauber_bptt_statements(soft=True)))
    print("003 §6 softmax delta", f"{rauber_rnn_softmax_delta():.2e}")
    for k, v in jin_lstm_evidence().items():
        print("000 LSTM", k, f"{v:.2e}")
    print("003 §7 LSTM", fmt(rauber_lstm_statements()))
