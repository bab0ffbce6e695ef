"""Principal component analysis: the linear baseline of deep autoencoders (Hinton &
Salakhutdinov 2006, Fig. 2 and the PCA rows of their table).

PCA with k components is the best rank-k linear reconstruction in squared error: with the
data mean μ and the k leading eigenvectors U ``(F, k)`` of the covariance (the right singular
vectors of the centred data), code z = (x − μ)U and reconstruction x̂ = μ + zUᵀ.
Computed from the F×F covariance in float64 (F = 784: one small eigendecomposition).
"""
from __future__ import annotations

import numpy

from .. import backend
from .._checks import check_finite, check_float_array, check_positive_int


class PCA:
    """``PCA(n_components).fit(x)``; ``transform(x)`` ``(N, k)``, ``inverse_transform(z)``
    ``(N, F)``, ``reconstruct(x)``; ``components`` ``(k, F)``, ``mean`` ``(F,)``."""

    def __init__(self, n_components: int) -> None:
        self.n_components = check_positive_int(n_components, "PCA", "n_components")
        self.mean = self.components = None

    def fit(self, x, batch: int = 10000) -> PCA:
        check_float_array(x, "PCA.fit", ndim=2, name="x")
        check_finite(x, "PCA.fit", "x")
        n, f = x.shape
        if self.n_components > min(n, f):
            raise ValueError(f"PCA.fit: n_components={self.n_components} exceeds min(N, F) = {min(n, f)}")
        x = backend.to_numpy(x)
        mean = x.mean(axis=0, dtype=numpy.float64)
        cov = numpy.zeros((f, f))
        for s in range(0, n, batch):  # blocks keep the float64 copy small
            d = x[s:s + batch].astype(numpy.float64) - mean
            cov += d.T @ d
        vals, vecs = numpy.linalg.eigh(cov / n)
        self.mean = mean
        self.components = vecs[:, ::-1][:, :self.n_components].T.copy()
        self.explained_variance = vals[::-1][:self.n_components].copy()
        return self

    def _need_fit(self, where):
        if self.components is None:
            raise RuntimeError(f"PCA.{where}: call fit first")

    def transform(self, x):
        self._need_fit("transform")
        check_float_array(x, "PCA.transform", ndim=2, last=self.mean.shape[0], name="x")
        return ((backend.to_numpy(x) - self.mean) @ self.components.T).astype(x.dtype)

    def inverse_transform(self, z):
        self._need_fit("inverse_transform")
        check_float_array(z, "PCA.inverse_transform", ndim=2, last=self.n_components, name="z")
        return (backend.to_numpy(z) @ self.components + self.mean).astype(z.dtype)

    def reconstruct(self, x):
        return self.inverse_transform(self.transform(x))


def squared_error_per_image(x, x_hat) -> float:
    """Σ over features of (x − x̂)², averaged over rows: the unit of the 2006 paper's table."""
    d = backend.to_numpy(x).astype(numpy.float64) - backend.to_numpy(x_hat).astype(numpy.float64)
    return float((d * d).sum() / max(1, d.shape[0]))
