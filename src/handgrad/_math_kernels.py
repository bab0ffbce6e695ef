"""Compiled float32 transcendental functions: σ(z) and softplus(z) in one pass over the data (for
:mod:`handgrad.functional`), and tanh (:func:`tanh32`, a scalar function the layers' kernels
inline, and :func:`tanh_float32` over an array), used when the JIT is on.

NumPy computes ``functional.sigmoid`` in about ten passes (abs, minimum, exp, division,
comparisons, products), and its float32 ``exp`` ran at scalar speed on the AVX2 machine of
``docs/benchmarks.md`` (2.5 ns a value, 2026-12-04). Here e^{−|z|} is
written out so that the loops vectorize: Cody–Waite range reduction |z| = k ln 2 + r,
|r| ≤ ½ ln 2, a degree-7 polynomial for e^{−r} (Cephes' ``expf`` coefficients, within 1 ulp on
that interval), and 2^{−k} applied by subtracting k from the exponent bits (through an int32
view). Both functions then follow ``functional``'s stable formulas:

    σ(z) = 1/(1 + e)  (z ≥ 0),   e/(1 + e)  (z < 0),           e = e^{−|z|}
    softplus(z) = max(z, 0) + ln(1 + e),   ln(1 + e) = 2 atanh(s) = 2(s + s³/3 + … + s¹⁵/15),
                                           s = e/(2 + e) ∈ [0, ⅓]

(the series' remainder is below 2e-8 relative). |z| is capped at 87, where e^{−87} = 1.6e-38 is
still a normal number, and σ(z) and softplus(z) below −87 are flushed to 0 (their true values
are below 1.7e-38); NaN stays NaN, ±inf give 0 or 1 and 0 or inf. Measured against float64:
σ within 2.5 float32 ulp, softplus within 3 (NumPy's formulas: 3.6 and 2.7). Arithmetic is IEEE in the order written (no
fast-math), so results are bit for bit the same from run to run.

tanh is a rational function (:func:`tanh32`): no range reduction, so a scalar function that
vectorizes wherever a kernel calls it.

Array arguments are 1-D contiguous float32 arrays; ``out`` may be the input.
"""
from __future__ import annotations

import numpy

from . import accel

CHUNK = 2048  # values per pass of the three loops: the chunk stays in L1 between them


@accel.kernel
def logistic_float32(z, out, softplus):
    """``out`` ← σ(z), or softplus(z) when ``softplus`` is True (module docstring)."""
    n = z.shape[0]
    f = numpy.float32
    cap, log2e = f(87.0), f(1.44269504088896341)
    ln2_hi, ln2_lo = f(0.693359375), f(-2.12194440e-4)              # ln 2 = hi + lo, hi exact in 9 bits
    c7, c6, c5 = f(1.9875691500e-4), f(1.3981999507e-3), f(8.3334519073e-3)
    c4, c3, c2 = f(4.1665795894e-2), f(1.6666665459e-1), f(5.0000001201e-1)
    half, one, two, zero = f(0.5), f(1.0), f(2.0), f(0.0)
    l3, l5, l7, l9 = f(1 / 3), f(1 / 5), f(1 / 7), f(1 / 9)
    l11, l13, l15 = f(1 / 11), f(1 / 13), f(1 / 15)
    es = numpy.empty(min(n, CHUNK), numpy.float32)                  # e^{−|z|} of a chunk
    bits = es.view(numpy.int32)
    ks = numpy.empty(min(n, CHUNK), numpy.int32)
    shift = numpy.int32(23)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        for j in range(start, stop):                                # e^{−r}, and k
            a = abs(z[j])
            a = cap if a > cap else a                               # NaN passes (and is caught below)
            k = numpy.floor(a * log2e + half)
            x = -((a - k * ln2_hi) - k * ln2_lo)                    # −r
            p = ((((c7 * x + c6) * x + c5) * x + c4) * x + c3) * x + c2
            es[j - start] = (p * x) * x + x + one
            ks[j - start] = numpy.int32(k) if a == a else numpy.int32(0)
        for j in range(start, stop):                                # e = e^{−r} 2^{−k}
            bits[j - start] = bits[j - start] - (ks[j - start] << shift)
        if softplus:
            for j in range(start, stop):
                e, v = es[j - start], z[j]
                s = e / (two + e)
                s2 = s * s
                q = ((((((l15 * s2 + l13) * s2 + l11) * s2 + l9) * s2 + l7) * s2 + l5) * s2 + l3) * s2
                y = (v if v > zero else zero) + two * (s * q + s)
                y = zero if v < -cap else y
                out[j] = v if v != v else y
        else:
            for j in range(start, stop):
                e, v = es[j - start], z[j]
                s = one / (one + e)
                y = s if v >= zero else e * s
                y = zero if v < -cap else y
                out[j] = v if v != v else y


@accel.inline
def tanh32(x):
    """tanh(x) ≈ x·P(x²)/Q(x²) for float32 x, ±1 beyond |x| = 7.905 (where float32's tanh is ±1
    within 3 ulp): P of degree 6 and Q of degree 3 in x², Eigen's ``generic_fast_tanh_float``
    coefficients, evaluated without fused multiply-adds. At most 4e-7 from the true tanh over
    the whole line, 7 float32 ulp of 1 near |x| = 5.8 (NumPy's float32 tanh: 6e-8, 1.4 ulp);
    relative error at most 2.5e-7 (2 ulp) for |x| < ½, tiny and subnormal x included. NaN
    stays NaN (the comparisons are written so), ±inf gives ±1."""
    f = numpy.float32
    lim = f(7.90531110763549805)
    x = lim if x > lim else x
    x = -lim if x < -lim else x
    x2 = x * x
    p = x2 * f(-2.76076847742355e-16) + f(2.00018790482477e-13)
    p = x2 * p + f(-8.60467152213735e-11)
    p = x2 * p + f(5.12229709037114e-08)
    p = x2 * p + f(1.48572235717979e-05)
    p = x2 * p + f(6.37261928875436e-04)
    p = x2 * p + f(4.89352455891786e-03)
    q = x2 * f(1.19825839466702e-06) + f(1.18534705686654e-04)
    q = x2 * q + f(2.26843463243900e-03)
    q = x2 * q + f(4.89352518554385e-03)
    return x * (p / q)                                            # x · (≈1): exact for tiny x


@accel.kernel
def tanh_float32(x, out):
    """``out`` ← tanh(x) by :func:`tanh32`."""
    for j in range(x.shape[0]):
        out[j] = tanh32(x[j])
