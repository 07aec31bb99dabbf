"""Spectral comparison of symmetric kernel matrices.

The quantities the equivalents are judged by (spec section 6):

    rel_spectral_error = ||K_ref - K||_2 / ||K_ref||_2     (operator norm = max |eigenvalue|)
    eig_rel_err_i      = |lambda_i(K) - lambda_i(K_ref)| / |lambda_i(K_ref)|   (top i = 1..k)
    alignment_i        = |<u_i(K), u_i(K_ref)>|             (unit top eigenvectors)

Large matrices use Lanczos (``scipy.sparse.linalg.eigsh``) with a fixed start vector, so results
are reproducible; small ones a dense ``eigh``. Every function of this module except
:func:`compare_full_spectra` and :func:`eigenvalue_histogram` also takes a
``scipy.sparse.linalg.LinearOperator`` (such as ``ntk.EquivalentOperator``) for either kernel:
it is then only multiplied by vectors, always by Lanczos, and the difference K_ref - K is an
operator too, so no n x n array beyond the inputs is formed. Lanczos runs to a tolerance of
1e-10 (norms) and 1e-12 (eigenpairs) relative to the eigenvalue. :func:`compare_full_spectra`
also returns every eigenvalue, at the cost of one Householder tridiagonalization per matrix
(see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg
from scipy.linalg import blas, lapack
from scipy.sparse.linalg import LinearOperator, aslinearoperator, eigsh

from ntklc.errors import InputError

__all__ = [
    "FullComparison",
    "SpectralComparison",
    "compare_full_spectra",
    "compare_spectra",
    "comparison_from_pairs",
    "eigenvalue_histogram",
    "operator_norm",
    "rel_spectral_error",
    "top_eigenpairs",
]

# Below this size a dense eigendecomposition is as fast as Lanczos and exact.
_DENSE_MAX = 400


def _check_square(K, name: str = "K"):
    """K as a float64 array, or as given if it is a LinearOperator; square and non-empty."""
    if not isinstance(K, LinearOperator):
        K = np.asarray(K, dtype=float)
        if K.ndim != 2:
            raise InputError(f"{name} must be a non-empty square matrix, got shape {K.shape}")
    if K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise InputError(f"{name} must be a non-empty square matrix, got shape {K.shape}")
    return K


def _small_dense(K):
    """A small operator as its dense matrix (n products with the identity), where a dense
    eigendecomposition is as fast as Lanczos; anything else as given."""
    if isinstance(K, LinearOperator) and K.shape[0] <= _DENSE_MAX:
        return K @ np.eye(K.shape[0])
    return K


def _start_vector(n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(n)


def operator_norm(K: np.ndarray) -> float:
    """||K||_2 = max |eigenvalue| of a symmetric matrix K (n, n)."""
    K = _small_dense(_check_square(K))
    if not isinstance(K, LinearOperator) and K.shape[0] <= _DENSE_MAX:
        return float(np.max(np.abs(linalg.eigvalsh(K))))
    val = eigsh(K, k=1, which="LM", return_eigenvectors=False, v0=_start_vector(K.shape[0]),
                tol=1e-10)
    return float(abs(val[0]))


def rel_spectral_error(K: np.ndarray, K_ref: np.ndarray, *, ref_norm: float | None = None
                       ) -> float:
    """Relative operator-norm error ||K_ref - K||_2 / ||K_ref||_2 (both (n, n), symmetric).

    ``ref_norm``: ||K_ref||_2 when already known (e.g. the top eigenvalue of a positive
    semi-definite kernel), which saves its Lanczos run."""
    K = _check_square(K)
    K_ref = _check_square(K_ref, "K_ref")
    if K.shape != K_ref.shape:
        raise InputError(f"shapes differ: {K.shape} vs {K_ref.shape}")
    if isinstance(K, LinearOperator) or isinstance(K_ref, LinearOperator):
        difference = aslinearoperator(K_ref) - aslinearoperator(K)
    else:
        difference = K_ref - K
    return operator_norm(difference) / (operator_norm(K_ref) if ref_norm is None
                                        else float(ref_norm))


def top_eigenpairs(K: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The k largest (algebraic) eigenvalues, descending, and their unit eigenvectors.

    Returns:
        ``(values (k,), vectors (n, k))``; each vector's sign is fixed so that its largest-
        magnitude entry is positive.
    """
    K = _small_dense(_check_square(K))
    n = K.shape[0]
    if not 1 <= k <= n:
        raise InputError(f"k must lie in [1, {n}], got {k}")
    if isinstance(K, LinearOperator) and k >= n - 1:
        raise InputError(f"k = {k} of an operator of size {n}: Lanczos finds at most n - 2 "
                         "eigenpairs; pass the dense matrix")
    if not isinstance(K, LinearOperator) and (n <= _DENSE_MAX or k >= n - 1):
        vals, vecs = linalg.eigh(K, subset_by_index=(n - k, n - 1))
    else:
        vals, vecs = eigsh(K, k=k, which="LA", v0=_start_vector(n), tol=1e-12)
    order = np.argsort(vals)[::-1]
    return vals[order], _fix_signs(vecs[:, order])


def subspace_alignment(U: np.ndarray, V: np.ndarray) -> float:
    """||U^T V||_F^2 / k for orthonormal (n, k) bases: the mean squared cosine of the principal
    angles between the two subspaces, in [0, 1]."""
    if U.shape != V.shape:
        raise InputError(f"bases must have the same shape, got {U.shape} and {V.shape}")
    return float(np.sum((U.T @ V) ** 2) / U.shape[1])


def _fix_signs(vecs: np.ndarray) -> np.ndarray:
    """Each column (n, k) times the sign of its largest-magnitude entry."""
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    return vecs * signs


@dataclass(frozen=True)
class SpectralComparison:
    """How well a theoretical kernel matches a reference one (see module docstring)."""

    rel_spectral_error: float
    top_eigs_theory: np.ndarray
    top_eigs_reference: np.ndarray
    eig_rel_err: np.ndarray
    alignment: np.ndarray

    def as_dict(self) -> dict[str, float | list[float]]:
        return {
            "rel_spectral_error": self.rel_spectral_error,
            "top_eigs_theory": self.top_eigs_theory.tolist(),
            "top_eigs_reference": self.top_eigs_reference.tolist(),
            "eig_rel_err": self.eig_rel_err.tolist(),
            "alignment": self.alignment.tolist(),
        }


def comparison_from_pairs(rel_error: float, vals_t, vecs_t, vals_r, vecs_r
                          ) -> SpectralComparison:
    """A :class:`SpectralComparison` from the error and the top eigenpairs ((k,), (n, k)) of
    both kernels, as :func:`top_eigenpairs` returns them."""
    return SpectralComparison(
        rel_spectral_error=rel_error,
        top_eigs_theory=vals_t,
        top_eigs_reference=vals_r,
        eig_rel_err=np.abs(vals_t - vals_r) / np.abs(vals_r),
        alignment=np.abs(np.sum(vecs_t * vecs_r, axis=0)),
    )


def compare_spectra(K_theory: np.ndarray, K_ref: np.ndarray, k: int = 5
                    ) -> SpectralComparison:
    """Operator-norm error, top-k eigenvalue errors and eigenvector alignments.

    Args:
        K_theory: (n, n) symmetric, e.g. a deterministic equivalent.
        K_ref: (n, n) symmetric reference, e.g. the exact or an empirical kernel.
        k: how many top eigenpairs to compare.
    """
    vals_t, vecs_t = top_eigenpairs(K_theory, k)
    vals_r, vecs_r = top_eigenpairs(K_ref, k)
    return comparison_from_pairs(rel_spectral_error(K_theory, K_ref), vals_t, vecs_t, vals_r,
                                 vecs_r)


@dataclass(frozen=True)
class FullComparison:
    """:class:`SpectralComparison` plus every eigenvalue of both matrices.

    Attributes:
        comparison: operator-norm error, top-k eigenvalues, alignments.
        eigs_theory, eigs_reference: all eigenvalues (n,), ascending.
        vectors_reference: (n, vectors) top unit eigenvectors of the reference, descending
            eigenvalues, signs as in :func:`top_eigenpairs`.
    """

    comparison: SpectralComparison
    eigs_theory: np.ndarray
    eigs_reference: np.ndarray
    vectors_reference: np.ndarray


@dataclass(frozen=True)
class _Tridiagonal:
    """Q^T K Q = tridiag(e, d, e) with Q = H_0 ... H_{n-2}, H_i = I - tau_i v_i v_i^T and
    v_i = (0 (i + 1 entries), 1, A[i + 2:, i]) (LAPACK ``sytrd``, lower triangle of A).

    A (n, n, column-major) holds the reflectors below its first subdiagonal and K, untouched, in
    its strict upper triangle; ``diag`` is K's diagonal."""

    A: np.ndarray
    d: np.ndarray
    e: np.ndarray
    tau: np.ndarray
    diag: np.ndarray


def _tridiagonalize(K: np.ndarray, overwrite: bool) -> _Tridiagonal:
    """Reduce symmetric K (n, n) to tridiagonal form, in K's own memory if ``overwrite`` and K
    is a contiguous float64 array (K is symmetric, so its transpose is the column-major matrix
    LAPACK wants), else in a copy."""
    A = K.T if K.flags.c_contiguous else K
    if not (overwrite and A.flags.f_contiguous and A.flags.writeable
            and A.dtype == np.float64):
        A = np.array(K, dtype=np.float64, order="F")
    n = A.shape[0]
    diag = A.diagonal().copy()
    lwork, info = lapack.dsytrd_lwork(n, lower=1)
    _, d, e, tau, info = lapack.dsytrd(A, lower=1, lwork=int(lwork), overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dsytrd failed (info = {info})")
    return _Tridiagonal(A=A, d=d, e=e, tau=tau, diag=diag)


def _back_transform(tri: _Tridiagonal, Y: np.ndarray) -> np.ndarray:
    """Q Y (n, k): the reflectors applied to the columns of Y, last reflector first, O(n^2 k)
    (LAPACK's ``ormtr``, which SciPy does not wrap)."""
    Z = np.array(Y, order="C")
    for i in range(len(tri.tau) - 1, -1, -1):
        v = tri.A[i + 2:, i]
        w = tri.tau[i] * (Z[i + 1] + v @ Z[i + 2:])
        Z[i + 1] -= w
        Z[i + 2:] -= np.outer(v, w)
    return Z


def _spectrum_and_top_pairs(tri: _Tridiagonal, k: int
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All eigenvalues (n,) ascending, the k largest (k,) descending and their unit
    eigenvectors (n, k), from the tridiagonal form (root-free QR for the values, bisection and
    inverse iteration for the k pairs)."""
    n = tri.d.shape[0]
    values = linalg.eigvalsh_tridiagonal(tri.d, tri.e, lapack_driver="sterf",
                                         check_finite=False)
    top, Y = linalg.eigh_tridiagonal(tri.d, tri.e, select="i", select_range=(n - k, n - 1),
                                     check_finite=False)
    return values, top[::-1], _fix_signs(_back_transform(tri, Y[:, ::-1]))


def _difference_norm(tri_t: _Tridiagonal, tri_r: _Tridiagonal) -> float:
    """||K_ref - K_theory||_2 from the strict upper triangles and saved diagonals, formed in
    the memory of ``tri_t.A`` (which no longer holds its reflectors afterwards) and applied by
    ``symv``, which reads only that triangle."""
    D = tri_t.A
    D -= tri_r.A
    np.fill_diagonal(D, tri_t.diag - tri_r.diag)
    n = D.shape[0]
    if n <= _DENSE_MAX:
        return float(np.max(np.abs(linalg.eigvalsh(D, lower=False, check_finite=False))))
    op = LinearOperator((n, n), matvec=lambda v: blas.dsymv(1.0, D, v, lower=0), dtype=float)
    val = eigsh(op, k=1, which="LM", return_eigenvectors=False, v0=_start_vector(n), tol=1e-10)
    return float(abs(val[0]))


def compare_full_spectra(K_theory: np.ndarray, K_ref: np.ndarray, k: int = 5, *,
                         vectors: int = 2, overwrite: bool = False) -> FullComparison:
    """:func:`compare_spectra` plus every eigenvalue of both matrices, near the cost of two
    eigenvalue-only decompositions.

    One float64 Householder tridiagonalization Q^T K Q = T per matrix (LAPACK ``sytrd``, the
    O(n^3) part, as in ``eigvalsh``) gives all eigenvalues (``sterf`` on T, O(n^2)) and the top
    pairs (bisection and inverse iteration on T, then Q applied to max(k, vectors) vectors,
    O(n^2 k)); no other eigenvectors are computed. ||K_ref||_2 = max |lambda_i(K_ref)| comes
    from the eigenvalues; ||K_ref - K_theory||_2 from Lanczos on the difference, formed in place
    in the triangle ``sytrd`` leaves untouched. Every number is float64 and agrees with
    :func:`compare_spectra` to the Lanczos tolerances (1e-12 on eigenvalues, 1e-10 on the
    operator norm).

    Args:
        K_theory: (n, n) symmetric, e.g. a deterministic equivalent.
        K_ref: (n, n) symmetric reference.
        k: how many top eigenpairs to compare, 1 <= k <= n.
        vectors: how many top eigenvectors of K_ref to return, 1 <= vectors <= n.
        overwrite: allow the two matrices to be destroyed (no n x n copy when they are
            contiguous float64 arrays).
    """
    K_theory = _check_square(K_theory, "K_theory")
    K_ref = _check_square(K_ref, "K_ref")
    if K_theory.shape != K_ref.shape:
        raise InputError(f"shapes differ: {K_theory.shape} vs {K_ref.shape}")
    if overwrite and np.shares_memory(K_theory, K_ref):
        raise InputError("K_theory and K_ref share memory; they cannot both be overwritten")
    n = K_ref.shape[0]
    for name, value in (("k", k), ("vectors", vectors)):
        if not 1 <= value <= n:
            raise InputError(f"{name} must lie in [1, {n}], got {value}")
    pairs = max(k, vectors)
    tri_t = _tridiagonalize(K_theory, overwrite)
    eigs_t, vals_t, vecs_t = _spectrum_and_top_pairs(tri_t, k)
    tri_r = _tridiagonalize(K_ref, overwrite)
    eigs_r, vals_r, vecs_r = _spectrum_and_top_pairs(tri_r, pairs)
    norm_ref = float(max(abs(eigs_r[0]), abs(eigs_r[-1])))
    rel_error = _difference_norm(tri_t, tri_r) / norm_ref
    comparison = comparison_from_pairs(rel_error, vals_t, vecs_t, vals_r[:k], vecs_r[:, :k])
    return FullComparison(comparison=comparison, eigs_theory=eigs_t, eigs_reference=eigs_r,
                          vectors_reference=vecs_r[:, :vectors])


def eigenvalue_histogram(K: np.ndarray, bins: int | np.ndarray = 60
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All eigenvalues of K and their density histogram.

    Returns:
        ``(eigenvalues (n,), density (bins,), edges (bins + 1,))``.
    """
    vals = linalg.eigvalsh(_check_square(K))
    density, edges = np.histogram(vals, bins=bins, density=True)
    return vals, density, edges
