"""Compiled inner loops of the NTK-LC solver: Var_min minimisation and hidden-layer residuals.

``solvers.quantizer.optimise_thresholds`` minimises Var_min(z(w)) from a few dozen starts
for every level count k. Each objective evaluation is a handful of flops on vectors of length
k <= 33, so SciPy's BFGS spends almost all its time in Python overhead (the line search and
the objective's NumPy calls). This module runs the same computation in Numba:

* :func:`var_min_and_gradient`: Var_min and its gradient in the unconstrained parameters w,
  the closed forms of ``solvers.quantizer.min_variance`` / ``_gradient_z`` and the
  parametrisation of ``LevelStructure.thresholds`` / ``chain``;
* :func:`bfgs`: BFGS with the inverse-Hessian update and a strong-Wolfe line search
  (Nocedal & Wright, *Numerical Optimization*, 2nd ed., algorithms 6.1, 3.5 and 3.6), the
  same method as ``scipy.optimize.minimize(method="BFGS")``, stopping at max |grad| <= gtol
  or when the line search can no longer make progress;
* :func:`hidden_residuals_at` and :func:`hidden_jacobian`: the scaled hidden-layer residuals
  of ``solvers.quantizer.hidden_residuals`` at packed unknowns x = (w, u) (levels v = S u),
  and their central-difference Jacobian, for the Newton steps of ``match_hidden_newton``.

Infeasible thresholds (a level without probability, degenerate constraints) return the value
1e30 with a zero gradient, as in the Python objective, so the line search backs off from them.
Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["bfgs", "hidden_jacobian", "hidden_residuals_at", "var_min_and_gradient"]

#: Objective value of infeasible thresholds (the Python objective's).
INFEASIBLE = 1e30
_SQRT_2PI = math.sqrt(2 * math.pi)
_SQRT_HALF = math.sqrt(0.5)


@numba.njit(cache=True)
def _thresholds(w, symmetric, k):
    """``LevelStructure(k, symmetric).thresholds(w)``."""
    z = np.empty(k - 1)
    if not symmetric:
        acc = w[0]
        z[0] = acc
        for i in range(1, k - 1):
            acc += math.exp(min(max(w[i], -40.0), 4.0))
            z[i] = acc
        return z
    h = w.size
    acc = 0.0
    for i in range(h):
        acc += math.exp(min(max(w[i], -40.0), 4.0))
        z[k - 1 - h + i] = acc
        z[h - 1 - i] = -acc
    if k % 2 == 0:
        z[h] = 0.0
    return z


@numba.njit(cache=True)
def _chain(w, grad_z, symmetric):
    """``LevelStructure.chain``: the gradient in w from the gradient in z."""
    n = w.size
    out = np.empty(n)
    if not symmetric:
        tail = 0.0
        for i in range(grad_z.size - 1, -1, -1):
            tail += grad_z[i]
            out[i] = tail if i == 0 else tail * math.exp(min(max(w[i], -40.0), 4.0))
        return out
    m = grad_z.size
    tail = 0.0
    for i in range(n - 1, -1, -1):
        tail += grad_z[m - n + i] - grad_z[n - 1 - i]
        out[i] = tail * math.exp(min(max(w[i], -40.0), 4.0))
    return out


@numba.njit(cache=True)
def _projections(z):
    """``solvers.steps.level_projections``: per-level P, a, b (Phi from the accurate tail)."""
    n = z.size
    P = np.empty(n + 1)
    a = np.empty(n + 1)
    b = np.empty(n + 1)
    prev_cdf, prev_upper, prev_phi, prev_zphi = 0.0, 1.0, 0.0, 0.0
    for i in range(n + 1):
        if i < n:
            x = z[i]
            cdf = 0.5 * math.erfc(-x * _SQRT_HALF)
            upper = 0.5 * math.erfc(x * _SQRT_HALF)
            phi = math.exp(-0.5 * x * x) / _SQRT_2PI
            zphi = x * phi
            low = x <= 0
        else:
            cdf, upper, phi, zphi, low = 1.0, 0.0, 0.0, 0.0, False
        P[i] = cdf - prev_cdf if low else prev_upper - upper
        a[i] = prev_phi - phi
        b[i] = prev_zphi - zphi
        prev_cdf, prev_upper, prev_phi, prev_zphi = cdf, upper, phi, zphi
    return P, a, b


@numba.njit(cache=True)
def _solve3(M, t):
    """3 x 3 Gaussian elimination with partial pivoting; ``ok`` False on a zero pivot."""
    # Filled element by element: 2-D slice assignment takes Numba seconds to compile.
    A = np.empty((3, 4))
    for r in range(3):
        for c in range(3):
            A[r, c] = M[r, c]
        A[r, 3] = t[r]
    x = np.zeros(3)
    for col in range(3):
        piv = col
        for r in range(col + 1, 3):
            if abs(A[r, col]) > abs(A[piv, col]):
                piv = r
        if A[piv, col] == 0.0:
            return x, False
        if piv != col:
            for c in range(4):
                tmp = A[col, c]
                A[col, c] = A[piv, c]
                A[piv, c] = tmp
        for r in range(col + 1, 3):
            f = A[r, col] / A[col, col]
            for c in range(col, 4):
                A[r, c] -= f * A[col, c]
    x[2] = A[2, 3] / A[2, 2]
    x[1] = (A[1, 3] - A[1, 2] * x[2]) / A[1, 1]
    x[0] = (A[0, 3] - A[0, 1] * x[1] - A[0, 2] * x[2]) / A[0, 0]
    return x, True


@numba.njit(cache=True)
def _cond_block(m_aa, m_ab, m_bb, m_pp):
    """``solvers.quantizer._cond_block``: condition number of the 3 x 3 constraint matrix."""
    half_tr, half_diff = 0.5 * (m_aa + m_bb), 0.5 * (m_aa - m_bb)
    big = half_tr + math.hypot(half_diff, m_ab)
    if not big > 0:
        return math.inf
    small = (m_aa * m_bb - m_ab * m_ab) / big
    lo, hi = min(abs(small), abs(m_pp)), max(big, abs(m_pp))
    return hi / lo if lo > 0 else math.inf


@numba.njit(cache=True)
def var_min_and_gradient(w, symmetric, k, c1, c2):
    """Var_min at thresholds z(w) and its gradient in w.

    Var_min(z) = t^T (R D^-1 R^T)^-1 t with R = [a, b, P] (general) or the antisymmetric
    reduction (symmetric); dVar_min/dz_i = phi(z_i) [(v_{i-1}^2 - v_i^2) - 2 (v_{i-1} - v_i)
    (lam_a z_i - lam_b (1 - z_i^2) + lam_P)] (``solvers.quantizer`` module docstring).

    Args:
        w: (n_params,) unconstrained parameters of ``LevelStructure(k, symmetric)``.
        symmetric: odd structure.
        k: number of levels.
        c1, c2: targets E[xi sigma], E[(xi^2 - 1) sigma] (c2 unused when symmetric).

    Returns:
        ``(value, grad)``; ``(1e30, 0)`` for infeasible thresholds.
    """
    z = _thresholds(w, symmetric, k)
    P, a, b = _projections(z)
    zero = np.zeros(w.size)
    for j in range(k):
        if P[j] <= 1e-300:
            return INFEASIBLE, zero
    v = np.zeros(k)
    lam_a, lam_b, lam_p = 0.0, 0.0, 0.0
    if symmetric:
        h = k // 2
        m = 0.0
        for j in range(h):
            d = P[j] + P[k - 1 - j]
            r = a[k - 1 - j] - a[j]
            m += r * r / d
        if not (math.isfinite(m) and m > 0):
            return INFEASIBLE, zero
        lam_a = c1 / m
        for j in range(h):
            d = P[j] + P[k - 1 - j]
            u = (a[k - 1 - j] - a[j]) * (lam_a / d)
            v[j] = -u
            v[k - 1 - j] = u
        var = c1 * lam_a
    else:
        m_aa = m_ab = m_bb = m_ap = m_bp = m_pp = 0.0
        for j in range(k):
            m_aa += a[j] * a[j] / P[j]
            m_ab += a[j] * b[j] / P[j]
            m_bb += b[j] * b[j] / P[j]
            m_ap += a[j]
            m_bp += b[j]
            m_pp += P[j]
        # Element by element: a nested-list np.array takes Numba seconds to compile.
        M = np.empty((3, 3))
        M[0, 0], M[0, 1], M[0, 2] = m_aa, m_ab, m_ap
        M[1, 0], M[1, 1], M[1, 2] = m_ab, m_bb, m_bp
        M[2, 0], M[2, 1], M[2, 2] = m_ap, m_bp, m_pp
        t = np.zeros(3)
        t[0], t[1] = c1, c2
        lam, ok = _solve3(M, t)
        if (not ok or not (math.isfinite(lam[0]) and math.isfinite(lam[1])
                           and math.isfinite(lam[2]))
                or _cond_block(m_aa, m_ab, m_bb, m_pp) > 1e14):
            return INFEASIBLE, zero
        lam_a, lam_b, lam_p = lam[0], lam[1], lam[2]
        for j in range(k):
            v[j] = (lam_a * a[j] + lam_b * b[j]) / P[j] + lam_p
        var = c1 * lam_a + c2 * lam_b
    if not var >= 0:
        return INFEASIBLE, zero
    grad_z = np.empty(k - 1)
    for i in range(k - 1):
        x = z[i]
        phi = math.exp(-0.5 * x * x) / _SQRT_2PI
        dv = v[i] - v[i + 1]
        grad_z[i] = phi * ((v[i] ** 2 - v[i + 1] ** 2)
                           - 2 * dv * (lam_a * x - lam_b * (1 - x * x) + lam_p))
    return var, _chain(w, grad_z, symmetric)


@numba.njit(cache=True)
def _dot(x, y):
    """x . y as a loop.

    Here and below, loops replace np.dot, np.eye, np.max(np.abs(.)) and slice assignment:
    Numba takes seconds to compile each of those, which would dominate a first solve.
    """
    out = 0.0
    for i in range(x.size):
        out += x[i] * y[i]
    return out


@numba.njit(cache=True)
def _axpy(x, t, p):
    """x + t p, a new array."""
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = x[i] + t * p[i]
    return out


@numba.njit(cache=True)
def _max_abs(x):
    out = 0.0
    for xi in x:
        out = max(out, abs(xi))
    return out


@numba.njit(cache=True)
def _identity(n):
    H = np.zeros((n, n))
    for i in range(n):
        H[i, i] = 1.0
    return H


@numba.njit(cache=True)
def _cubic_min(a, fa, da, b, fb, db):
    """Minimiser of the cubic through (a, fa, da), (b, fb, db), or NaN if it has none."""
    d1 = da + db - 3 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if disc < 0:
        return math.nan
    d2 = math.copysign(math.sqrt(disc), b - a)
    return b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2)


@numba.njit(cache=True)
def _zoom(x, p, f0, d0, lo, f_lo, d_lo, hi, f_hi, d_hi, symmetric, k, c1, c2, wolfe1, wolfe2):
    """Algorithm 3.6: shrink [lo, hi] to a step with the strong Wolfe conditions."""
    for _ in range(40):
        t = _cubic_min(lo, f_lo, d_lo, hi, f_hi, d_hi)
        left, right = min(lo, hi), max(lo, hi)
        margin = 0.1 * (right - left)
        if not (math.isfinite(t) and left + margin <= t <= right - margin):
            t = 0.5 * (lo + hi)
        f, g = var_min_and_gradient(_axpy(x, t, p), symmetric, k, c1, c2)
        d = _dot(g, p)
        if f > f0 + wolfe1 * t * d0 or f >= f_lo:
            hi, f_hi, d_hi = t, f, d
        else:
            if abs(d) <= -wolfe2 * d0:
                return t, f, g, True
            if d * (hi - lo) >= 0:
                hi, f_hi, d_hi = lo, f_lo, d_lo
            lo, f_lo, d_lo = t, f, d
        if abs(hi - lo) <= 1e-16 * max(1.0, abs(lo)):
            break
    return 0.0, f0, np.zeros(x.size), False


@numba.njit(cache=True)
def _line_search(x, p, f0, g0, symmetric, k, c1, c2):
    """Algorithm 3.5 (strong Wolfe, c1 = 1e-4, c2 = 0.9 as SciPy's BFGS); returns
    ``(step, f, grad, ok)``."""
    wolfe1, wolfe2 = 1e-4, 0.9
    d0 = _dot(g0, p)
    prev, f_prev, d_prev = 0.0, f0, d0
    t = 1.0
    for i in range(40):
        f, g = var_min_and_gradient(_axpy(x, t, p), symmetric, k, c1, c2)
        d = _dot(g, p)
        if f > f0 + wolfe1 * t * d0 or (i > 0 and f >= f_prev):
            return _zoom(x, p, f0, d0, prev, f_prev, d_prev, t, f, d, symmetric, k, c1, c2,
                         wolfe1, wolfe2)
        if abs(d) <= -wolfe2 * d0:
            return t, f, g, True
        if d >= 0:
            return _zoom(x, p, f0, d0, t, f, d, prev, f_prev, d_prev, symmetric, k, c1, c2,
                         wolfe1, wolfe2)
        prev, f_prev, d_prev = t, f, d
        t *= 2.0
    return 0.0, f0, g0, False


@numba.njit(cache=True)
def bfgs(w0, symmetric, k, c1, c2, gtol, maxiter):
    """Minimise Var_min(z(w)) from w0 by BFGS (algorithm 6.1, H_0 = I).

    Args:
        w0: (n,) start.
        symmetric, k, c1, c2: as :func:`var_min_and_gradient`.
        gtol: stop when max |grad| <= gtol.
        maxiter: most iterations.

    Returns:
        ``(value, w)`` at the last accepted point.
    """
    n = w0.size
    x = w0.copy()
    f, g = var_min_and_gradient(x, symmetric, k, c1, c2)
    H = _identity(n)
    p = np.empty(n)
    Hy = np.empty(n)
    for _ in range(maxiter):
        if _max_abs(g) <= gtol:
            break
        for i in range(n):
            p[i] = -_dot(H[i], g)
        if _dot(g, p) >= 0:  # not a descent direction (rounding in H): restart, steepest descent
            H = _identity(n)
            for i in range(n):
                p[i] = -g[i]
        t, f_new, g_new, ok = _line_search(x, p, f, g, symmetric, k, c1, c2)
        if not ok:
            break
        s = _axpy(np.zeros(n), t, p)
        y = _axpy(g_new, -1.0, g)
        x = _axpy(x, 1.0, s)
        f, g = f_new, g_new
        ys = _dot(y, s)
        if ys > 0:
            # H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T, written out (H symmetric).
            rho = 1.0 / ys
            for i in range(n):
                Hy[i] = _dot(H[i], y)
            coef = (ys + _dot(y, Hy)) * rho * rho
            for i in range(n):
                for j in range(n):
                    H[i, j] += coef * s[i] * s[j] - rho * (Hy[i] * s[j] + s[i] * Hy[j])
    return f, x


@numba.njit(cache=True)
def hidden_residuals_at(x, symmetric, k, c1, c2, var_target, e3_target):
    """``solvers.quantizer.hidden_residuals`` at thresholds z(x[:n_w]) and levels S x[n_w:].

    Args:
        x: (n_w + r,) packed unknowns: threshold parameters, then level coordinates in the
            basis S of ``LevelStructure.basis`` (identity, or antisymmetric pairs).
        symmetric, k: the structure.
        c1, c2, var_target, e3_target: the targets.

    Returns:
        ``(r, ok)``: r = ((a.v - c1) / s, [(b.v - c2) / s,] (Var - var) / var,
        (E3 - e3) / var) with s = sqrt(var_target); ``ok`` False when a level has no
        probability.
    """
    n_w = (k - 1) // 2 if symmetric else k - 1
    z = _thresholds(x[:n_w], symmetric, k)
    v = np.empty(k)
    if symmetric:
        h = k // 2
        if k % 2 == 1:
            v[h] = 0.0
        for j in range(h):
            v[j] = -x[n_w + j]
            v[k - 1 - j] = x[n_w + j]
    else:
        for j in range(k):
            v[j] = x[n_w + j]
    P, a, b = _projections(z)
    out = np.empty(3 if symmetric else 4)
    for j in range(k):
        if P[j] <= 1e-300:
            return out, False
    mean = _dot(P, v)
    cc = np.empty(k)
    for j in range(k):
        cc[j] = (v[j] - mean) ** 2
    scale = math.sqrt(var_target)
    i = 0
    out[i] = (_dot(a, v) - c1) / scale
    if not symmetric:
        i += 1
        out[i] = (_dot(b, v) - c2) / scale
    out[i + 1] = (_dot(P, cc) - var_target) / var_target
    out[i + 2] = (_dot(b, cc) - e3_target) / var_target
    return out, True


@numba.njit(cache=True)
def hidden_jacobian(x, symmetric, k, c1, c2, var_target, e3_target):
    """Central-difference Jacobian of :func:`hidden_residuals_at`, steps 1e-7 max(1, |x_i|).

    Returns:
        ``(J, ok)``, J of shape (m, x.size); ``ok`` False if a shifted point is infeasible.
    """
    m = 3 if symmetric else 4
    J = np.empty((m, x.size))
    for i in range(x.size):
        h = 1e-7 * max(1.0, abs(x[i]))
        xp = x.copy()
        xm = x.copy()
        xp[i] += h
        xm[i] -= h
        rp, okp = hidden_residuals_at(xp, symmetric, k, c1, c2, var_target, e3_target)
        rm, okm = hidden_residuals_at(xm, symmetric, k, c1, c2, var_target, e3_target)
        if not (okp and okm):
            return J, False
        for r in range(m):
            J[r, i] = (rp[r] - rm[r]) / (2 * h)
    return J, True
