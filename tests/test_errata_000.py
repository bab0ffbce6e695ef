"""Errata evidence for ``seeds/000`` (Jin): the sigmoid MLP (§1, eqs. (6)–(8)), the CNN (§2
and the appendix, eqs. (11)–(21), (44)–(50)), the RNN (§3.1–3.2, eqs. (26)–(29)) and the
LSTM (§3.3, eqs. (30)–(41)). Method and tolerances: ``errata_common.py``; ``python
tests/test_errata_000.py`` prints the numbers quoted in ``docs/errata.md``.
"""
from __future__ import annotations

import numpy as np
from errata_common import F64, FAIL, PASS, conv_true, fd, rel, sig, softmax

import handgrad as hg
from handgrad import layers, losses

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
    A = sig(conv_true(X, Wc) + bc[:, None, None])     # eqs. (11)-(12)
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


# ==============================================================================================
# 000 (Jin) §3.1-3.2: RNN, eqs. (26)-(29)
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


# ==============================================================================================
# 000 (Jin) §3.3: LSTM, eqs. (30)-(41)
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


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    fmt = lambda d: {k: (f"{v:.2e}" if isinstance(v, float) else v) for k, v in d.items()  # noqa: E731
                     if k not in ("num", "outputs")}
    print("000 eq7", fmt(jin_eq7_evidence()))
    print("000 eq8", fmt(jin_eq8_evidence()))
    print("000 handgrad", fmt(jin_handgrad()))
    print("000 CNN", fmt(jin_cnn_evidence()))
    print("000 CNN eq13", jin_cnn_eq13_indices())
    print("000 CNN handgrad", fmt(jin_cnn_handgrad()))
    print("000 RNN eq29", fmt(jin_rnn_evidence()))
    print("000 RNN growth", fmt(jin_rnn_growth()))
    print("000 RNN handgrad", fmt(jin_rnn_handgrad()))
    for k, v in jin_lstm_evidence().items():
        print("000 LSTM", k, f"{v:.2e}")
