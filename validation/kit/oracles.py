"""Slow but trustworthy references that property tests compare against.

Each oracle states its accuracy. They take plain arrays and return plain numbers or arrays;
none of them uses the code it is meant to check.
"""

from __future__ import annotations

import math

import numpy as np

from ntklc.errors import InputError

__all__ = [
    "absmax_grid",
    "brute_force_rounding",
    "dense_spectrum",
    "empirical_entropy",
    "milp_knapsack",
    "mpmath_constants",
    "quadrature_kernels",
]

# == solvers: knapsack, entropy coding, rounding ==================================================

def milp_knapsack(costs, values, budget) -> tuple[np.ndarray | None, float]:
    """Exact grouped knapsack by mixed-integer programming (``scipy.optimize.milp``, HiGHS).

    Maximise sum_g values[g][j_g] subject to sum_g costs[g][j_g] <= budget, one choice j_g per
    group, as the 0/1 program x_gj in {0, 1}, sum_j x_gj = 1, sum c x <= budget.

    Args:
        costs, values: lists (one entry per group) of 1-D arrays of equal lengths >= 1, finite.
        budget: the largest total cost.

    Returns:
        ``(choice, value)``: the chosen index of every group (int64 array) and its total value
        (``math.fsum`` of the chosen values); ``(None, -inf)`` when no allocation fits.

    Accuracy: the relative MIP gap is set to 0, so the value is optimal up to HiGHS' absolute
    gap and tolerances, 1e-6 (absolute) for values of order 1 (a better allocation within 1e-6
    may be missed). The choice is re-checked exactly: its float sum of costs is <= ``budget``
    (a ``RuntimeError`` is raised if HiGHS' 1e-7 feasibility tolerance let it exceed the
    budget, which cannot happen when costs and budget are multiples of a common unit far above
    1e-7, as in :func:`validation.kit.strategies.knapsack_instances`).
    """
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, milp

    costs = [np.asarray(c, dtype=float).ravel() for c in costs]
    values = [np.asarray(v, dtype=float).ravel() for v in values]
    sizes = [len(c) for c in costs]
    if not costs or sizes != [len(v) for v in values] or min(sizes) < 1:
        raise InputError("costs and values must be non-empty lists of non-empty arrays of "
                         "equal lengths")
    flat_c, flat_v = np.concatenate(costs), np.concatenate(values)
    if not (np.all(np.isfinite(flat_c)) and np.all(np.isfinite(flat_v))
            and math.isfinite(budget)):
        raise InputError("costs, values and budget must be finite")
    one_each = sparse.block_diag([np.ones((1, n)) for n in sizes], format="csr")
    constraints = [LinearConstraint(one_each, 1, 1),
                   LinearConstraint(flat_c[None, :], -np.inf, float(budget))]
    res = milp(-flat_v, constraints=constraints, integrality=np.ones(flat_v.size),
               bounds=Bounds(0, 1), options={"mip_rel_gap": 0.0})
    if res.status == 2:
        return None, -math.inf
    if not res.success:
        raise RuntimeError(f"MILP failed: {res.message}")
    starts = np.cumsum([0, *sizes[:-1]])
    choice = np.array([int(np.argmax(res.x[a:a + n])) for a, n in zip(starts, sizes,
                                                                        strict=True)])
    spent = math.fsum(float(c[j]) for c, j in zip(costs, choice, strict=True))
    if spent > budget:
        raise RuntimeError(f"MILP allocation costs {spent} > budget {budget}: costs too close "
                           "to the budget for HiGHS' tolerances")
    return choice, math.fsum(float(v[j]) for v, j in zip(values, choice, strict=True))


def empirical_entropy(symbols) -> float:
    """Entropy of a symbol stream's own frequencies, in bits per symbol.

    H = -sum_k p_k log2 p_k with p_k = n_k / N, n_k the count of each distinct value (compared
    by value, any shape flattened). N H is what an ideal static code fitted to the stream
    spends, model excluded. Returns 0 for a constant or empty stream.

    Accuracy: float64 with a compensated sum, relative error below 1e-13.
    """
    flat = np.asarray(symbols).ravel()
    if flat.size == 0:
        return 0.0
    _, counts = np.unique(flat, return_counts=True)
    n = flat.size
    return max(0.0, -math.fsum(k / n * math.log2(k / n) for k in counts.tolist()))


def absmax_grid(weights, bits: int, channel_axis: int | None = None) -> tuple[np.ndarray, int]:
    """The symmetric absmax grid s * {-L, ..., L}: L = 2^(bits-1) - 1 and s = max|w| / L over
    each channel (over the tensor for ``channel_axis=None``), s = 1 for an all-zero channel.

    Returns ``(scale, L)``, ``scale`` float64 and broadcastable to ``weights``. Exact up to one
    float64 rounding of the division. The grid of ``solvers.rounding.grid_scale`` (which rounds
    s to float32) and of most post-training quantizers.
    """
    W = np.asarray(weights, dtype=np.float64)
    levels = 2 ** (int(bits) - 1) - 1
    if channel_axis is None:
        peak = np.max(np.abs(W), keepdims=True)
    else:
        others = tuple(i for i in range(W.ndim) if i != channel_axis % W.ndim)
        peak = np.max(np.abs(W), axis=others, keepdims=True)
    return np.where(peak > 0, peak / levels, 1.0), levels


def brute_force_rounding(weights, scale, levels: int, gradient=None,
                         curvature: float = math.inf) -> np.ndarray:
    """Best neighbouring grid point of every weight, by trying every grid point.

    Grid: s * k for the integers k in [-L, L] (``levels`` = L, ``scale`` s > 0 broadcastable to
    the weights). The neighbours of w are the grid points strictly within one step of it,
    |s k - w| < s (the one below and the one above; only w itself when w is on the grid), or
    the grid's nearest end point when w lies a step or more beyond it. Among them the oracle
    takes the k minimising, with n = s k - w,

    * |n| when ``gradient`` is ``None`` or ``curvature`` is ``inf`` (nearest rounding; at an
      exact tie the smaller k);
    * g n + h n^2 / 2 otherwise (``gradient`` g of the weights' shape, ``curvature`` h >= 0:
      gradient-aware rounding as in ``solvers.rounding.quantize_gradient_opposed``).

    Returns the integers k (int64, the weights' shape). Accuracy: exact up to float64 rounding
    of s k - w (relative 1e-16 of the step). Cost O((2L + 1) * weights.size).
    """
    W = np.asarray(weights, dtype=np.float64)
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), W.shape)
    nearest = gradient is None or math.isinf(curvature)
    G = None if nearest else np.asarray(gradient, dtype=np.float64)
    best = np.zeros(W.shape, dtype=np.int64)
    best_cost = np.full(W.shape, np.inf)
    for k in range(-levels, levels + 1):
        n = k * s - W
        cost = np.abs(n) if nearest else G * n + 0.5 * curvature * n * n
        near = np.abs(n) < s
        if k in (-levels, levels):
            # w at least a step beyond this end of the grid.
            near |= np.sign(k) * W - (levels + 1) * s >= 0
        better = near & (cost < best_cost)
        best[better], best_cost[better] = k, cost[better]
    return best

# == theory: GMMs, activations, step functions, targets, weight laws, operators ===================

def mpmath_constants(act, tau: float, dps: int = 30) -> dict[str, float]:
    """m0, d1, d2, d3 and tau2_next of ``act`` at input scale ``tau`` by mpmath quadrature.

    Adaptive tanh-sinh quadrature (``mpmath.quad``) of the Stein forms of spec section 3,
    at ``dps`` decimal digits, the real line split at the activation's breakpoints (kinks and
    jumps) divided by tau, so each panel's integrand is analytic. The activation is evaluated
    in mpmath (its ``mp_fn``; a bare callable is evaluated in double precision, limiting the
    result to ~1e-15 relative). Accuracy: the returned floats are correctly rounded doubles up
    to a few ulp for catalogue and step activations (quadrature error estimates below
    10^-(dps - 10), checked); d3 and tau2_next are computed from the centred function, so no
    cancellation occurs. Slow: tens of milliseconds per constant.

    Args:
        act: an ``ntk.Activation``, a catalogue name or a callable.
        tau: input scale, > 0.
        dps: working precision in decimal digits, >= 20.

    Raises:
        InputError: bad tau, or a quadrature error estimate above 10^-(dps - 10).
    """
    import mpmath

    from ntk import activation

    act = activation(act)
    if not (math.isfinite(tau) and tau > 0):
        raise InputError(f"tau must be a positive finite number, got {tau}")
    if act.mp_fn is not None:
        fn = act.mp_fn
    else:
        def fn(x):
            return mpmath.mpf(float(act.fn(np.array([float(x)]))[0]))
    with mpmath.workdps(dps):
        t = mpmath.mpf(tau)
        cuts = sorted({mpmath.mpf(b) / t for b in act.breakpoints})
        interval = [-mpmath.inf, *cuts, mpmath.inf]
        norm = 1 / mpmath.sqrt(2 * mpmath.pi)
        tol = mpmath.mpf(10) ** (10 - dps)

        def expect(g):
            value, err = mpmath.quad(lambda x: g(x) * mpmath.exp(-x * x / 2) * norm, interval,
                                     error=True)
            if err > tol:
                raise InputError(f"mpmath quadrature error estimate {float(err):.2e} too large")
            return value

        m0 = expect(lambda x: fn(t * x))
        out = {
            "m0": m0,
            "d1": expect(lambda x: x * fn(t * x)) / t,
            "d2": expect(lambda x: (x * x - 1) * fn(t * x)) / t**2,
            "d3": expect(lambda x: (x * x - 1) * (fn(t * x) - m0) ** 2) / t**2,
            "tau2_next": expect(lambda x: (fn(t * x) - m0) ** 2),
        }
        return {key: float(value) for key, value in out.items()}


def quadrature_kernels(X: np.ndarray, acts, tau0: float | None = None, *, ntk: bool = True
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact infinite-width CK_L and NTK_L of the columns of ``X`` by 2-D quadrature.

    The layer recursion of spec sections 2 and 5 (as in ``ntk.exact``): K_0 = NTK_0 = X^T X,
    then for each layer, with m_l = E[sigma(tau_{l-1} xi)] along the scalar tau chain from
    tau0, every pair (i, j) gets CK_l(i, j) = E[(sigma(u) - m_l)(sigma(v) - m_l)] and
    Sdot_l(i, j) = E[sigma'(u) sigma'(v)] for (u, v) ~ N(0, [[K_ii, K_ij], [K_ij, K_jj]]) by
    the 2-D Gaussian quadrature of ``ntk.bivariate.pair_moments`` (no Hermite series), and
    NTK_l = CK_l + Sdot_l o NTK_{l-1}. Each entry is accurate to ~1e-14 relative to the
    kernel scale for every correlation up to |rho| = 1 (pair_moments' accuracy; the input
    correlation's 1 - |rho| is carried layer to layer without cancellation). O(L n^2) pairs at
    ~2-10 ms each: meant for a handful of points (n <= 20).

    Args:
        X: (p, n) data, one sample per column, no zero column.
        acts: the L >= 1 activations (names or ``ntk.Activation``).
        tau0: scale of the centring chain; default sqrt(mean_i ||x_i||^2).
        ntk: also compute the NTK (needs activations without jumps).

    Returns:
        ``(ck, ntk)``: two (n, n) arrays (``ntk`` is ``None`` when not requested).
    """
    from ntk import parse_activations, tau_chain
    from ntk.bivariate import pair_moments

    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 1 or np.any(np.linalg.norm(X, axis=0) == 0):
        raise InputError("X must be (p, n) with n >= 1 and no zero column")
    acts = parse_activations(acts)
    if ntk and any(a.has_jumps for a in acts):
        raise InputError("the NTK is undefined for activations with jumps")
    n = X.shape[1]
    if tau0 is None:
        tau0 = float(np.sqrt(np.mean(np.sum(X * X, axis=0))))
    chain = tau_chain(acts, tau0)
    K = X.T @ X
    N = K.copy()
    unit = X / np.linalg.norm(X, axis=0)
    # delta = 1 - |rho| without cancellation: ||x_i/|x_i| -+ x_j/|x_j| ||^2 / 2.
    gram = unit.T @ unit
    sgn = np.where(gram >= 0, 1.0, -1.0)
    diff = unit[:, :, None] - sgn[None] * unit[:, None, :]
    delta = np.clip(np.sum(diff * diff, axis=0) / 2, 0.0, 1.0)
    for act, c in zip(acts, chain, strict=True):
        s = np.sqrt(np.diag(K))
        ck_diag = np.array([pair_moments(act, c.m0, s[i], s[i], 1.0, 0.0, grad=False).ck
                            for i in range(n)])
        ck = np.empty((n, n))
        sdot = np.empty((n, n))
        new_delta = np.zeros((n, n))
        new_sgn = np.ones((n, n))
        for i in range(n):
            for j in range(i, n):
                pm = pair_moments(act, c.m0, s[i], s[j], sgn[i, j], delta[i, j], grad=ntk,
                                  second_moments=(ck_diag[i], ck_diag[j]))
                ck[i, j] = ck[j, i] = ck_diag[i] if i == j else pm.ck
                sdot[i, j] = sdot[j, i] = pm.sdot
                new_delta[i, j] = new_delta[j, i] = 0.0 if i == j else pm.delta
                new_sgn[i, j] = new_sgn[j, i] = pm.sgn
        N = ck + sdot * N if ntk else N
        K, delta, sgn = ck, new_delta, new_sgn
    return K, (N if ntk else None)


def dense_spectrum(matvec, n: int) -> np.ndarray:
    """Ascending eigenvalues of the n x n symmetric operator ``matvec`` (vector -> vector).

    Applies it to the n columns of the identity one by one (no batching assumed), checks the
    matrix is symmetric to 1e-10 relative to its largest entry, symmetrises it and calls
    ``numpy.linalg.eigh``. Accuracy: each eigenvalue within ~n eps ||H||_2 (backward-stable
    LAPACK eigensolver), independent of clusters or multiplicities.

    Raises:
        InputError: n < 1, a wrong output shape, or a non-symmetric operator.
    """
    if int(n) != n or n < 1:
        raise InputError(f"n must be a positive integer, got {n}")
    n = int(n)
    eye = np.eye(n)
    H = np.column_stack([np.asarray(matvec(eye[:, j]), dtype=float).reshape(-1)
                         for j in range(n)])
    if H.shape != (n, n):
        raise InputError(f"matvec must map (n,) to (n,), got a {H.shape} matrix")
    scale = max(float(np.max(np.abs(H))), 1e-300)
    if np.max(np.abs(H - H.T)) > 1e-10 * scale:
        raise InputError("the operator is not symmetric")
    return np.linalg.eigvalsh((H + H.T) / 2)
