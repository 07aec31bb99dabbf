"""CK and NTK coefficient recursions and their deterministic equivalents (spec sections 4, 5).

CK (alpha) recursion, starting from a1' = 1, a2' = a3' = 0, a4' = 1, per layer with that
layer's constants taken at its input scale tau_{l-1}:

    a1 = d1^2 a1'
    a2 = d1^2 a2' + d2^2 a4'^2 / 4
    a3 = d1^2 a3' + d2^2 a1'^2 / 2
    a4 = d3 a4' / 2

NTK (beta, kappa) recursion, from b1 = 1, b2 = b3 = 0, kappa^2 = tau0^2:

    b1 = a1 + d1^2 b1'
    b2 = a2 + d1^2 b2'
    b3 = a3 + d1^2 b3' + d2^2 a1' b1'
    kappa^2 = tau_l^2 + E[sigma'(tau_{l-1} xi)^2] kappa'^2

Both equivalents have the form (X: p x n, V = [J/sqrt(p), psi]: n x (K+1)):

    Ktilde = c1 X^T X + V C V^T + (c_diag - tau0^2 c1) I_n,
    C = [[c2 t t^T + c3 T, c2 t], [c2 t^T, c2]],

with (c1, c2, c3, c_diag) = (a1, a2, a3, tau_L^2) for the CK and (b1, b2, b3, kappa_L^2) for
the NTK. These identity coefficients are the corrected ones of the spec (no -tau0^4 a3 term).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas
from scipy.sparse.linalg import LinearOperator

from ntk.activations import activation
from ntk.constants import ActivationConstants, tau_chain
from ntklc.errors import InputError

__all__ = [
    "CKLayer",
    "EquivalentOperator",
    "NTKLayer",
    "ck_coefficients",
    "ck_equivalent",
    "equivalent_kernel",
    "ntk_coefficients",
    "ntk_equivalent",
]


@dataclass(frozen=True)
class CKLayer:
    """CK coefficients after one layer, with that layer's constants.

    ``tau2`` is tau_l^2, the variance of the layer's output (the next layer's input scale).
    """

    a1: float
    a2: float
    a3: float
    a4: float
    tau2: float
    constants: ActivationConstants


@dataclass(frozen=True)
class NTKLayer:
    """NTK coefficients after one layer (``kappa2`` = kappa_l^2, the NTK diagonal)."""

    b1: float
    b2: float
    b3: float
    kappa2: float
    ck: CKLayer


def ck_coefficients(acts, tau0: float, method: str = "auto") -> list[CKLayer]:
    """The alpha recursion through every layer.

    Args:
        acts: per-layer activations (names, :class:`~ntk.activations.Activation` or callables),
            L >= 1.
        tau0: data scale, > 0.
        method: how the activation constants are computed (see ``activation_constants``).

    Returns:
        One :class:`CKLayer` per layer; the last one defines the equivalent.
    """
    _check_tau0(tau0)
    a1, a2, a3, a4 = 1.0, 0.0, 0.0, 1.0
    out = []
    for c in tau_chain(acts, tau0, method):
        d1s, d2s = c.d1 * c.d1, c.d2 * c.d2
        a1, a2, a3, a4 = (d1s * a1, d1s * a2 + 0.25 * d2s * a4 * a4,
                          d1s * a3 + 0.5 * d2s * a1 * a1, 0.5 * c.d3 * a4)
        out.append(CKLayer(a1=a1, a2=a2, a3=a3, a4=a4, tau2=c.tau2_next, constants=c))
    return out


def ntk_coefficients(acts, tau0: float, method: str = "auto") -> list[NTKLayer]:
    """The beta/kappa recursion through every layer.

    Raises:
        InputError: a layer's activation has jumps (E[sigma'^2] infinite: NTK undefined).
    """
    acts = [activation(a) for a in acts]
    for layer, act in enumerate(acts, start=1):
        if act.has_jumps:
            raise InputError(f"NTK undefined: activation {act.name!r} of layer {layer} has "
                             "jumps, so E[sigma'^2] is infinite")
    b1, b2, b3, kappa2 = 1.0, 0.0, 0.0, float(tau0) ** 2
    a1_prev = 1.0
    out = []
    for ck in ck_coefficients(acts, tau0, method):
        c = ck.constants
        d1s = c.d1 * c.d1
        b1, b2, b3 = (ck.a1 + d1s * b1, ck.a2 + d1s * b2,
                      ck.a3 + d1s * b3 + c.d2 * c.d2 * a1_prev * b1)
        kappa2 = ck.tau2 + c.esp2 * kappa2
        a1_prev = ck.a1
        out.append(NTKLayer(b1=b1, b2=b2, b3=b3, kappa2=kappa2, ck=ck))
    return out


def _class_matrix(n: int, V: np.ndarray, t, T, c2: float, c3: float) -> np.ndarray:
    """C = [[c2 t t^T + c3 T, c2 t], [c2 t^T, c2]] ((K + 1, K + 1)), after checking the shapes
    of V (n, K + 1), t (K,) and T (K, K)."""
    t = np.asarray(t, dtype=float)
    k = t.shape[0]
    if V.shape != (n, k + 1) or np.shape(T) != (k, k):
        raise InputError(f"V must be ({n}, {k + 1}) and T ({k}, {k}); got {V.shape}, "
                         f"{np.shape(T)}")
    C = np.empty((k + 1, k + 1))
    C[:k, :k] = c2 * np.outer(t, t) + c3 * np.asarray(T, dtype=float)
    C[:k, k] = C[k, :k] = c2 * t
    C[k, k] = c2
    return C


def equivalent_kernel(X: np.ndarray, V: np.ndarray, t: np.ndarray, T: np.ndarray, tau0: float,
                      c1: float, c2: float, c3: float, c_diag: float) -> np.ndarray:
    """Ktilde = c1 X^T X + V C V^T + (c_diag - tau0^2 c1) I (see module docstring).

    Args:
        X: (p, n) data.
        V: (n, K + 1) = [J/sqrt(p), psi].
        t: (K,) trace offsets; T: (K, K).
        tau0: data scale.
        c1, c2, c3, c_diag: the coefficients.

    Returns:
        (n, n) float64 matrix.
    """
    X = np.asarray(X, dtype=float)
    n = X.shape[1]
    C = _class_matrix(n, V, t, T, c2, c3)
    K = X.T @ X
    K *= c1
    # K^T is K's column-major view (K is symmetric): the rank-(k + 1) update goes in place
    # instead of through an n x n temporary.
    blas.dgemm(1.0, V @ C, V, beta=1.0, c=K.T, trans_b=True, overwrite_c=True)
    K.flat[:: n + 1] += c_diag - tau0 * tau0 * c1
    return K


class EquivalentOperator(LinearOperator):
    """Ktilde = c1 X^T X + V C V^T + (c_diag - tau0^2 c1) I as a symmetric linear operator.

    A product Ktilde M (M: (n,) or (n, m)) is c1 X^T (X M) + V (C (V^T M)) + d M, computed from
    the factors in O((n p + n (K + 1)) m) operations; no n x n array is ever formed, so
    ``scipy.sparse.linalg.eigsh`` finds the top of the spectrum of an n = 10^5 equivalent in
    the memory of X. ``op @ np.eye(n)`` is the dense matrix (:func:`equivalent_kernel`, to
    rounding).

    Attributes:
        X: (p, n) float64 data; V: (n, K + 1); C: (K + 1, K + 1); c1, diagonal: the scalars.
    """

    def __init__(self, X: np.ndarray, V: np.ndarray, t, T, tau0: float, c1: float, c2: float,
                 c3: float, c_diag: float):
        self.X = np.asarray(X, dtype=float)
        n = self.X.shape[1]
        self.V = np.asarray(V, dtype=float)
        self.C = _class_matrix(n, self.V, t, T, c2, c3)
        self.c1 = float(c1)
        self.diagonal = float(c_diag - tau0 * tau0 * c1)
        super().__init__(dtype=np.float64, shape=(n, n))

    def _matmat(self, M: np.ndarray) -> np.ndarray:
        M = np.asarray(M, dtype=float)
        out = self.X.T @ (self.X @ M)
        out *= self.c1
        out += self.V @ (self.C @ (self.V.T @ M))
        out += self.diagonal * M
        return out

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self._matmat(np.asarray(v).reshape(-1, 1)).reshape(np.shape(v))

    def _adjoint(self) -> EquivalentOperator:
        return self


def ck_equivalent(X: np.ndarray, stats, acts, method: str = "auto", *,
                  operator: bool = False) -> np.ndarray | EquivalentOperator:
    """Deterministic equivalent Ktilde_CK (n, n) of the CK of ``acts`` on GMM data.

    Args:
        X: (p, n) data.
        stats: :class:`rmt.gmm.GMMStatistics` of X (tau0, t, T, V).
        acts: per-layer activations.
        method: how the activation constants are computed (see ``activation_constants``).
        operator: return an :class:`EquivalentOperator` (products in O(n p), no n x n array)
            instead of the dense matrix.
    """
    last = ck_coefficients(acts, stats.tau0, method)[-1]
    build = EquivalentOperator if operator else equivalent_kernel
    return build(X, stats.V, stats.t, stats.T, stats.tau0, last.a1, last.a2, last.a3,
                 last.tau2)


def ntk_equivalent(X: np.ndarray, stats, acts, method: str = "auto", *,
                   operator: bool = False) -> np.ndarray | EquivalentOperator:
    """Deterministic equivalent Ktilde_NTK (n, n); see :func:`ck_equivalent`."""
    last = ntk_coefficients(acts, stats.tau0, method)[-1]
    build = EquivalentOperator if operator else equivalent_kernel
    return build(X, stats.V, stats.t, stats.T, stats.tau0, last.b1, last.b2, last.b3,
                 last.kappa2)


def _check_tau0(tau0: float) -> None:
    if not (math.isfinite(tau0) and tau0 > 0):
        raise InputError(f"tau0 must be a positive finite number, got {tau0}")
