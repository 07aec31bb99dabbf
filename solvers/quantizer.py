"""k-level step functions with prescribed Gaussian moments: the geometry behind NTK-LC.

For standardised thresholds z (k-1, ascending) and levels v (k), with the per-level vectors
P, a, b of ``solvers.steps.level_projections``, a step function at unit input scale has

    E[xi sigma] = a.v,   E[(xi^2 - 1) sigma] = b.v,   mean = P.v,
    Var = sum P_j (v_j - m)^2,   E[(xi^2 - 1)(sigma - m)^2] = sum b_j (v_j - m)^2.

Levels enter the first three linearly. For fixed z, the smallest variance compatible with the
linear targets R v = t (rows a, b and, to fix the mean at 0, P) is

    Var_min(z) = t^T (R D^-1 R^T)^-1 t,  reached by v = D^-1 R^T lambda,  D = diag(P),

(for symmetric structures, v = S u with S the antisymmetric basis and R = [a], since b.v = 0 and
P.v = 0 hold by symmetry). Its gradient in z follows from the envelope theorem:
dVar_min/dz_i = phi(z_i) [(v_{i-1}^2 - v_i^2) - 2 (v_{i-1} - v_i)(lam_a z_i - lam_b (1 - z_i^2)
+ lam_P)].

Every other level vector with the same linear moments is v_min + N y (N a basis of the null
space), with Var = Var_min + y^T N^T D N y and a quadratic d3-moment: so the variance and d3
targets are met on an ellipsoid, by bracketing along a great circle (``match_hidden``); the
variance alone by moving z along a path on which Var_min grows without bound (``match_output``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, special

from solvers.steps import level_projections

__all__ = ["LevelStructure", "match_hidden", "match_output", "min_variance",
           "optimise_thresholds"]


@dataclass(frozen=True)
class LevelStructure:
    """Shape of a k-level step function.

    Attributes:
        k: number of levels (>= 2).
        symmetric: thresholds symmetric about 0 and levels antisymmetric (an odd function).
    """

    k: int
    symmetric: bool = False

    @property
    def n_params(self) -> int:
        """Free threshold parameters: k - 1, or the number of positive thresholds."""
        return (self.k - 1) // 2 if self.symmetric else self.k - 1

    def thresholds(self, w: np.ndarray) -> np.ndarray:
        """Ascending thresholds from unconstrained parameters (positive gaps via exp)."""
        w = np.asarray(w, dtype=float)
        if not self.symmetric:
            return np.cumsum(np.concatenate([w[:1], np.exp(np.clip(w[1:], -40.0, 4.0))]))
        y = np.cumsum(np.exp(np.clip(w, -40.0, 4.0)))
        middle = [0.0] if self.k % 2 == 0 else []
        return np.concatenate([-y[::-1], middle, y])

    def params(self, z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`thresholds`."""
        z = np.asarray(z, dtype=float)
        if not self.symmetric:
            return np.concatenate([z[:1], np.log(np.maximum(np.diff(z), 1e-17))])
        y = z[z.size - self.n_params:]
        return np.log(np.maximum(np.diff(np.concatenate([[0.0], y])), 1e-17))

    def chain(self, w: np.ndarray, grad_z: np.ndarray) -> np.ndarray:
        """Gradient in w from the gradient in z."""
        w = np.asarray(w, dtype=float)
        if not self.symmetric:
            tail = np.cumsum(grad_z[::-1])[::-1]
            return np.concatenate([[tail[0]], tail[1:] * np.exp(np.clip(w[1:], -40.0, 4.0))])
        h = self.n_params
        grad_y = grad_z[grad_z.size - h:] - grad_z[:h][::-1]
        return np.cumsum(grad_y[::-1])[::-1] * np.exp(np.clip(w, -40.0, 4.0))

    def basis(self) -> np.ndarray:
        """Level basis S (k, r): identity, or the antisymmetric vectors e_{k-1-j} - e_j."""
        if not self.symmetric:
            return np.eye(self.k)
        S = np.zeros((self.k, self.k // 2))
        for j in range(self.k // 2):
            S[j, j], S[self.k - 1 - j, j] = -1.0, 1.0
        return S

    def rows(self, P: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Linear constraint rows: [a, b, P] (general) or [a] (symmetric)."""
        return a[None, :] if self.symmetric else np.stack([a, b, P])

    def targets(self, c1: float, c2: float) -> np.ndarray:
        return np.array([c1]) if self.symmetric else np.array([c1, c2, 0.0])


@dataclass(frozen=True)
class MinVariance:
    """Smallest-variance levels at fixed thresholds (module docstring)."""

    var: float
    levels: np.ndarray
    lam: np.ndarray
    P: np.ndarray
    a: np.ndarray
    b: np.ndarray


def min_variance(structure: LevelStructure, z: np.ndarray, c1: float, c2: float
                 ) -> MinVariance | None:
    """Var_min(z) and its levels for E[xi sigma] = c1, E[(xi^2 - 1) sigma] = c2, mean 0.

    Returns ``None`` when a level has no probability or the constraints are degenerate.
    """
    P, a, b = level_projections(z)
    if np.any(P <= 1e-300):
        return None
    if structure.symmetric:
        # S = antisymmetric basis: S^T D S = diag(P_j + P_{k-1-j}) and R S = a_{k-1-j} - a_j,
        # so M = R S (S^T D S)^-1 S^T R^T is a scalar (the generic form, written out).
        h = structure.k // 2
        d = P[:h] + P[::-1][:h]
        r = a[::-1][:h] - a[:h]
        m = float(np.sum(r * r / d))
        if not (math.isfinite(m) and m > 0):
            return None
        lam0 = c1 / m
        u = r * (lam0 / d)
        v = np.zeros(structure.k)
        v[:h] = -u
        v[::-1][:h] = u
        var = float(c1 * lam0)
        if not var >= 0:
            return None
        return MinVariance(var=var, levels=v, lam=np.array([lam0, 0.0, 0.0]), P=P, a=a, b=b)
    # General: R = [a, b, P], D = diag(P), M = R D^-1 R^T (3 x 3, written out; the a/b-P
    # entries are sums of a and b, zero up to rounding).
    ap, bp = a / P, b / P
    m_aa, m_ab, m_bb = float(a @ ap), float(a @ bp), float(b @ bp)
    m_ap, m_bp, m_pp = float(np.sum(a)), float(np.sum(b)), float(np.sum(P))
    M = ((m_aa, m_ab, m_ap), (m_ab, m_bb, m_bp), (m_ap, m_bp, m_pp))
    lam = _solve3(M, (c1, c2, 0.0))
    if lam is None or not all(map(math.isfinite, lam)) or _cond_block(M) > 1e14:
        return None
    v = lam[0] * ap + lam[1] * bp + lam[2]
    var = c1 * lam[0] + c2 * lam[1]
    if not var >= 0:
        return None
    return MinVariance(var=float(var), levels=v, lam=np.array(lam), P=P, a=a, b=b)


def _solve3(M, t) -> tuple[float, float, float] | None:
    """Solve a 3 x 3 system by Gaussian elimination with partial pivoting (plain floats:
    ``np.linalg.solve`` costs more than the arithmetic at this size)."""
    A = [[*M[i], t[i]] for i in range(3)]
    for col in range(3):
        piv = max(range(col, 3), key=lambda r: abs(A[r][col]))
        if A[piv][col] == 0.0:
            return None
        A[col], A[piv] = A[piv], A[col]
        for r in range(col + 1, 3):
            f = A[r][col] / A[col][col]
            for c in range(col, 4):
                A[r][c] -= f * A[col][c]
    x2 = A[2][3] / A[2][2]
    x1 = (A[1][3] - A[1][2] * x2) / A[1][1]
    x0 = (A[0][3] - A[0][1] * x1 - A[0][2] * x2) / A[0][0]
    return x0, x1, x2


def _cond_block(M) -> float:
    """2-norm condition number of M = [[A, e], [e^T, m_pp]] with e ~ rounding (e = sums of a
    and b, exactly 0): the eigenvalues are those of the 2 x 2 block A (closed form) and m_pp,
    moved by O(|e|^2) only."""
    (m_aa, m_ab, _), (_, m_bb, _), (_, _, m_pp) = M
    half_tr, half_diff = 0.5 * (m_aa + m_bb), 0.5 * (m_aa - m_bb)
    big = half_tr + math.hypot(half_diff, m_ab)
    if not big > 0:
        return math.inf
    small = (m_aa * m_bb - m_ab * m_ab) / big
    lo, hi = min(abs(small), abs(m_pp)), max(big, abs(m_pp))
    return hi / lo if lo > 0 else math.inf


def _gradient_z(z: np.ndarray, mv: MinVariance) -> np.ndarray:
    """dVar_min/dz (envelope theorem, module docstring)."""
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    v = mv.levels
    lam_a, lam_b, lam_p = mv.lam
    dv = v[:-1] - v[1:]
    return phi * ((v[:-1] ** 2 - v[1:] ** 2)
                  - 2 * dv * (lam_a * z - lam_b * (1 - z * z) + lam_p))


def _starts(structure: LevelStructure, previous: np.ndarray | None) -> list[np.ndarray]:
    """Deterministic starting thresholds: equiprobable, uniform, previous optimum + one cut."""
    k = structure.k
    candidates = [special.ndtri(np.arange(1, k) / k), np.linspace(-2.5, 2.5, k - 1)]
    if previous is not None and previous.size:
        edges = np.concatenate([[previous[0] - 1.0], previous, [previous[-1] + 1.0]])
        mids = 0.5 * (edges[:-1] + edges[1:])
        for m in mids:
            z = np.sort(np.concatenate([previous, [m]] if not structure.symmetric
                                       else [previous, [m, -m]]))
            candidates.append(z)
    out = []
    for z in candidates:
        z = np.unique(np.round(z, 12))
        if structure.symmetric:
            z = np.unique(np.concatenate([z, -z])) if z.size else z
            if structure.k % 2 == 0:
                z = np.unique(np.concatenate([z, [0.0]]))
            else:
                z = z[z != 0.0]
        if z.size == structure.k - 1 and np.all(np.diff(z) > 0):
            out.append(z)
    return out


def optimise_thresholds(structure: LevelStructure, c1: float, c2: float,
                        previous: np.ndarray | None = None, *, compiled: bool = True
                        ) -> tuple[float, np.ndarray]:
    """min over thresholds of Var_min, from a structured set of starts (BFGS, exact gradient).

    Args:
        structure: the level structure.
        c1, c2: targets E[xi sigma], E[(xi^2 - 1) sigma].
        previous: the optimum with one level fewer (adds starts that insert one threshold).
        compiled: run BFGS compiled (``solvers.inner_loops``, about 100x faster);
            ``False`` runs ``scipy.optimize.minimize(method="BFGS")`` on the Python objective
            (the reference of the tests).

    Returns:
        ``(Var_min, z)``; ``(inf, z0)`` when no start is feasible.
    """
    def objective(w):
        z = structure.thresholds(w)
        mv = min_variance(structure, z, c1, c2)
        if mv is None:
            return 1e30, np.zeros_like(w)
        return mv.var, structure.chain(w, _gradient_z(z, mv))

    if compiled:
        # Imported here: Numba loads only when a solve needs it (fast CLI start-up).
        from solvers.inner_loops import bfgs

    best = (math.inf, None)
    for z0 in _starts(structure, previous):
        if structure.n_params == 0:
            mv = min_variance(structure, z0, c1, c2)
            value = mv.var if mv is not None else math.inf
            if value < best[0]:
                best = (value, z0)
            continue
        if compiled:
            value, w = bfgs(structure.params(z0), structure.symmetric, structure.k,
                            float(c1), float(c2), 1e-13, 5000)
        else:
            fit = optimize.minimize(objective, structure.params(z0), jac=True, method="BFGS",
                                    options={"gtol": 1e-13, "maxiter": 5000})
            value, w = fit.fun, fit.x
        if value < best[0]:
            best = (float(value), structure.thresholds(w))
    if best[1] is None:
        return math.inf, structure.thresholds(np.zeros(structure.n_params))
    return best


def match_output(structure: LevelStructure, z_best: np.ndarray, c1: float, c2: float,
                 var_target: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Thresholds and levels with the linear targets and Var = var_target exactly.

    Moves z from ``z_best`` (where Var_min <= var_target) along a dilation (keeps symmetry) or
    a shift, on which Var_min grows without bound, and stops where it equals the target.
    """
    paths = [lambda t: z_best * (1 + t)]
    if not structure.symmetric:
        paths.append(lambda t: z_best + t)
    for path in paths:
        def excess(t, path=path):
            mv = min_variance(structure, path(t), c1, c2)
            return (mv.var if mv is not None else 1e30) - var_target

        if excess(0.0) > 0:
            return None
        hi = 1e-3
        while excess(hi) < 0 and hi < 1e4:
            hi *= 2
        if excess(hi) < 0:
            continue
        t = optimize.brentq(excess, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                            maxiter=1000)
        z = path(t)
        return z, min_variance(structure, z, c1, c2).levels
    return None


def _sphere_extreme(Q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Unit s minimising s^T Q s + 2 g^T s (the trust-region subproblem on the sphere).

    s = -(Q + mu I)^-1 g with mu > -lambda_min(Q) solving |s| = 1 (a monotone secular
    equation); in the degenerate case g = 0 the bottom eigenvector.
    """
    lam, V = np.linalg.eigh(Q)
    gp = V.T @ g
    if np.linalg.norm(gp) < 1e-300:
        return V[:, 0]

    def norm_excess(mu):
        return float(np.sum((gp / (lam + mu)) ** 2)) - 1.0

    lo = -lam[0] + 1e-15 * max(1.0, abs(lam[0]))
    if norm_excess(lo) <= 0:  # the hard case: complete with the bottom eigenvector
        s = -gp / np.where(np.abs(lam + lo) > 1e-300, lam + lo, np.inf)
        s[0] = math.sqrt(max(0.0, 1.0 - float(s @ s)))
        return V @ s
    hi = lo + np.linalg.norm(gp) + 1.0
    while norm_excess(hi) > 0:
        hi = lo + 2 * (hi - lo)
    mu = optimize.brentq(norm_excess, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps)
    s = V @ (-gp / (lam + mu))
    return s / np.linalg.norm(s)


def match_hidden(structure: LevelStructure, z: np.ndarray, c1: float, c2: float,
                 var_target: float, e3_target: float) -> np.ndarray | None:
    """Levels at thresholds z with the linear targets, Var = var_target and
    sum_j b_j v_j^2 = e3_target (= tau^2 d3 for mean-zero levels), or ``None``.

    The levels with the linear targets and the variance form an ellipsoid around v_min; the
    d3-moment is continuous on it, so a bracket between two of its points (eigen- and gradient
    directions of the quadratic) gives an exact solution on the great circle through them.
    """
    mv = min_variance(structure, z, c1, c2)
    if mv is None or mv.var > var_target:
        return None
    S = structure.basis()
    R = structure.rows(mv.P, mv.a, mv.b) @ S
    N = linalg.null_space(R)
    if N.shape[1] < 2:
        return None
    Dr = S.T @ (mv.P[:, None] * S)
    L = np.linalg.cholesky(N.T @ Dr @ N)
    H = math.sqrt(var_target - mv.var) * S @ N @ np.linalg.inv(L).T     # (k, dim)
    B = mv.b
    v0 = mv.levels

    def e3(s):
        v = v0 + H @ s
        return float(B @ (v * v)) - e3_target

    Q = H.T @ (B[:, None] * H)
    grad = H.T @ (B * v0)
    dirs = [_sphere_extreme(Q, grad), _sphere_extreme(-Q, -grad)]
    dirs += list(np.linalg.eigh(Q)[1].T)
    dirs = dirs + [-d for d in dirs]
    values = [e3(d) for d in dirs]
    lo, hi = int(np.argmin(values)), int(np.argmax(values))
    if values[lo] > 0 or values[hi] < 0:
        return None
    if values[lo] == 0:
        return v0 + H @ dirs[lo]
    u, target = dirs[lo], dirs[hi]
    w = target - (target @ u) * u
    if np.linalg.norm(w) < 1e-12:  # antipodal: any orthogonal direction spans a great circle
        w = np.linalg.svd(u[None, :])[2][-1]
    w /= np.linalg.norm(w)
    theta_end = math.atan2(target @ w, target @ u)
    if theta_end <= 0:
        theta_end += 2 * math.pi

    def along(theta):
        return e3(math.cos(theta) * u + math.sin(theta) * w)

    theta = optimize.brentq(along, 0.0, theta_end, xtol=1e-300,
                            rtol=4 * np.finfo(float).eps, maxiter=1000)
    return v0 + H @ (math.cos(theta) * u + math.sin(theta) * w)


def activation_thresholds(fn, tau: float, k: int, symmetric: bool) -> np.ndarray | None:
    """Standardised thresholds of a k-level quantization of the activation itself.

    The output values sigma(tau xi), xi ~ N(0, 1), are quantized by Lloyd's algorithm
    (k centroids, weighted by a Gaussian quadrature rule); the thresholds are the xi where
    sigma(tau xi) crosses the decision boundaries between centroids. Such thresholds follow the
    activation's shape (saturation, kinks), which fixes d3 and the variance together.

    Args:
        fn: vectorised activation.
        tau: input scale.
        k: number of levels.
        symmetric: mirror the positive thresholds (and keep 0 for even k), for odd functions.

    Returns:
        Ascending thresholds: k - 1 of them for a monotone activation, more where it is not
        (each boundary crossed twice); ``None`` when there are none.
    """
    from ntk.quadrature import gaussian_rule

    xi, w = gaussian_rule(half_width=6.0, panel=0.25)
    s = fn(tau * xi)
    order = np.argsort(s)
    cdf = np.cumsum(w[order])
    centroids = np.interp((np.arange(k) + 0.5) / k, cdf / cdf[-1], s[order])
    for _ in range(200):
        bounds = 0.5 * (centroids[:-1] + centroids[1:])
        idx = np.searchsorted(bounds, s)
        mass = np.bincount(idx, weights=w, minlength=k)
        total = np.bincount(idx, weights=w * s, minlength=k)
        new = np.where(mass > 0, total / np.maximum(mass, 1e-300), centroids)
        if np.max(np.abs(new - centroids)) <= 1e-13:  # allclose(atol=1e-13), without its overhead
            break
        centroids = np.sort(new)
    bounds = 0.5 * (centroids[:-1] + centroids[1:])
    grid = np.linspace(-6.0, 6.0, 4801)
    values = fn(tau * grid)
    cuts = []
    for bound in bounds:
        g = values - bound
        for i in np.flatnonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0):
            cuts.append(optimize.brentq(lambda x, bound=bound: float(fn(np.array([tau * x]))[0])
                                        - bound, grid[i], grid[i + 1], xtol=1e-14))
    z = np.unique(np.round(np.array(cuts), 13))
    if symmetric:
        y = z[z > 1e-12]
        z = np.concatenate([-y[::-1], [0.0] if k % 2 == 0 else [], y])
    if z.size == 0 or np.any(np.diff(z) <= 0):
        return None
    return z


def hidden_residuals(structure: LevelStructure, z: np.ndarray, v: np.ndarray, c1: float,
                     c2: float, var_target: float, e3_target: float) -> np.ndarray | None:
    """Scaled residuals of the hidden-layer conditions at thresholds z and levels v.

    Conditions: E[xi sigma] = c1, E[(xi^2 - 1) sigma] = c2 (general structure only),
    Var = var_target, E[(xi^2 - 1)(sigma - m)^2] = e3_target; each divided by its natural scale
    (sqrt(var_target) for the first two, var_target for the others).
    """
    P, a, b = level_projections(z)
    if np.any(P <= 1e-300):
        return None
    c = v - P @ v
    scale = math.sqrt(var_target)
    out = [(a @ v - c1) / scale]
    if not structure.symmetric:
        out.append((b @ v - c2) / scale)
    out += [(P @ (c * c) - var_target) / var_target, (b @ (c * c) - e3_target) / var_target]
    return np.array(out)


def match_hidden_newton(structure: LevelStructure, z0: np.ndarray, v0: np.ndarray, c1: float,
                        c2: float, var_target: float, e3_target: float,
                        tol: float = 1e-14, *, compiled: bool = True
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """Thresholds and levels meeting the hidden-layer conditions, by minimum-norm Newton steps.

    The system is under-determined (more unknowns than the 3 or 4 conditions), so each step is
    the least-norm solution of the linearised system (pseudo-inverse of a central-difference
    Jacobian); from a nearby start, such as a quantization of the activation itself, it
    converges quadratically. Returns ``None`` if it does not reach ``tol``.

    ``compiled`` evaluates the residuals and the Jacobian in Numba
    (``solvers.inner_loops``); ``False`` evaluates them with :func:`hidden_residuals` (the
    reference of the tests). The iteration is the same.
    """
    S = structure.basis()
    u0 = np.linalg.lstsq(S, np.asarray(v0, dtype=float), rcond=None)[0]
    x = np.concatenate([structure.params(z0), u0])
    n_w = structure.n_params
    targets = (structure.symmetric, structure.k, float(c1), float(c2), float(var_target),
               float(e3_target))
    if compiled:
        from solvers.inner_loops import hidden_jacobian, hidden_residuals_at

        def residual(x):
            r, ok = hidden_residuals_at(x, *targets)
            return r if ok else None

        def jacobian(x):
            J, ok = hidden_jacobian(x, *targets)
            return J if ok else None
    else:
        def residual(x):
            return hidden_residuals(structure, structure.thresholds(x[:n_w]), S @ x[n_w:], c1,
                                    c2, var_target, e3_target)

        def jacobian(x):
            return _central_jacobian(residual, x)

    r = residual(x)
    for _ in range(60):
        if r is None:
            return None
        if np.max(np.abs(r)) <= tol:
            return structure.thresholds(x[:n_w]), S @ x[n_w:]
        J = jacobian(x)
        if J is None:
            return None
        step = np.linalg.lstsq(J, r, rcond=None)[0]
        # Halve the step until the residual decreases (keeps the iteration from jumping away).
        for _ in range(30):
            trial = residual(x - step)
            if trial is not None and np.linalg.norm(trial) < np.linalg.norm(r):
                x, r = x - step, trial
                break
            step = step / 2
        else:
            return None
    return None


def _central_jacobian(residual, x: np.ndarray) -> np.ndarray | None:
    """Central differences with steps 1e-7 max(1, |x_i|); ``None`` if a point is infeasible."""
    r = residual(x)
    J = np.empty((r.size, x.size))
    for i in range(x.size):
        h = 1e-7 * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        rp, rm = residual(xp), residual(xm)
        if rp is None or rm is None:
            return None
        J[:, i] = (rp - rm) / (2 * h)
    return J


def conditional_levels(fn, tau: float, z: np.ndarray) -> np.ndarray:
    """E[sigma(tau xi) | level j] for standardised thresholds z (quadrature)."""
    from ntk.quadrature import gaussian_rule

    xi, w = gaussian_rule(z, half_width=8.0, panel=0.25)
    idx = np.searchsorted(z, xi, side="right")
    k = z.size + 1
    mass = np.bincount(idx, weights=w, minlength=k)
    return np.bincount(idx, weights=w * fn(tau * xi), minlength=k) / np.maximum(mass, 1e-300)


def extremal_function(c1: float, c2: float, var_target: float):
    """The function of smallest d3-moment with the given linear moments and variance.

    Minimising E[(xi^2 - 1) f^2] subject to E[f] = 0, E[xi f] = c1, E[(xi^2 - 1) f] = c2 and
    E[f^2] = var_target gives, by Lagrange, f = (l0 + l1 xi + l2 (xi^2 - 1)) / (xi^2 + kappa)
    with kappa > 0 (for kappa -> inf, f tends to the Hermite projection, of variance
    c1^2 + c2^2 / 2; for kappa -> 0 the variance diverges). For fixed kappa the l's solve a
    3 x 3 linear system; kappa is found by bracketing the variance. Saturating activations
    (tanh, erf) lie close to this bound, so quantizing it gives thresholds where the d3 target
    is still reachable by step functions.

    Returns:
        A vectorised function of xi, or ``None`` if var_target is not above the bound.
    """
    from ntk.quadrature import gaussian_rule

    xi, w = gaussian_rule(half_width=12.0, panel=0.25)
    basis = np.stack([np.ones_like(xi), xi, xi * xi - 1])
    targets = np.array([0.0, c1, c2])

    def coefficients(kappa):
        g = basis / (xi * xi + kappa)
        return np.linalg.solve((basis * w) @ g.T, targets), g

    def excess(log_kappa):
        lam, g = coefficients(math.exp(log_kappa))
        f = lam @ g
        return float(w @ (f * f)) - var_target

    if c1**2 + c2**2 / 2 >= var_target:
        return None
    lo, hi = -8.0, 8.0
    while excess(hi) > 0 and hi < 60:
        hi += 8.0
    while excess(lo) < 0 and lo > -60:
        lo -= 8.0
    if excess(hi) > 0 or excess(lo) < 0:
        return None
    kappa = math.exp(optimize.brentq(excess, lo, hi, xtol=1e-14))
    lam, _ = coefficients(kappa)
    return lambda x: (lam[0] + lam[1] * x + lam[2] * (x * x - 1)) / (x * x + kappa)
