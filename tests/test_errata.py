"""Numerical evidence for ``docs/errata.md``: the slips in the MLP derivations of the source
notes (``seeds/000``, ``seeds/001``, ``seeds/003``) and the statements checked as correct.

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
import pytest

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
