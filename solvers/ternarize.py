"""NTK-LC: quantized activations whose network has the dense network's CK equivalent.

Spec section 7. The weight law does not enter the equivalent, so only the activations are
solved for, layer by layer, each at the COMPRESSED network's own input scale tau^c.

Gauge. If after layer l-1 the compressed CK coefficients are g times the dense ones, layer l
keeps that structure (with g_l = r g) iff d1c^2 = r d1^2, d2c^2 = r d2^2 / g and d3c = r d3
for some r > 0. Scaling a hidden activation's levels by c multiplies r by c^2 and is undone by
the next layer's thresholds, so r is free. But the ratio rho = (tau^c)^2 / (g tau^2) is NOT
gauge dependent: rho_l = rho_{l-1} s_dense / s_comp with s = (tau d1)^2 / Var the degree-1
Hermite share of the layer. The last layer needs d1c^2 = d1^2 / g, d2c^2 = d2^2 / g^2 and
Var = tau_L^2, which requires rho s1 + rho^2 s2 <= 1 (s1, s2 the dense shares of degree 1 and
2 of the last layer). Step functions have small shares (the two-level family of the spec:
s = 0.34 against 0.73 for ReLU), so matching only (d1^2, d2^2, d3) up to the gauge in the hidden
layers (``hidden_family="binary"``) drives rho above 2 and the last layer infeasible (shown in
``tests/solvers/test_ternarize.py``). The default therefore keeps rho = 1: each hidden layer
also matches its variance, and with the gauge fixed at g = 1 the hidden conditions are

    d1c = d1,   d2c = d2,   d3c = d3,   Var[sigma_c(tau xi)] = tau_l^2      (tau^c = tau).

Families (``solvers.quantizer``): ``levels`` (general k-level step) and ``symmetric`` (odd,
for d2 = 0: thresholds symmetric about 0, levels antisymmetric). For each k, the thresholds
minimise the smallest variance compatible with the linear conditions (d1, d2), a necessary
condition Var_min <= tau_l^2 is checked, and the remaining conditions are met exactly: the
output layer's variance by moving the thresholds along a path (bracketing), a hidden layer's
variance and d3 on the ellipsoid of admissible levels (bracketing on a great circle). k grows
from the smallest structure that can work up to ``max_levels``. The output layer with a cap that
is too small keeps d1, d2 exact and reports delta = Var_c - tau_L^2 > 0: the compressed
equivalent is then the dense one plus delta I. A hidden layer that cannot be matched raises
an error naming the condition.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ntk.activations import Activation, parse_activations
from ntk.constants import ActivationConstants, tau_chain
from ntk.equivalents import ck_coefficients
from ntk.progress import progress_bar
from ntklc.errors import InputError
from solvers.quantizer import (
    LevelStructure,
    activation_thresholds,
    conditional_levels,
    extremal_function,
    match_hidden,
    match_hidden_newton,
    match_output,
    min_variance,
    optimise_thresholds,
)
from solvers.steps import StepFunction, level_projections

__all__ = ["FAMILIES", "CompressionResult", "LayerSolution", "compress_network",
           "solve_hidden_layer", "solve_output_layer"]

#: Residual below which an equation counts as matched.
MATCH_TOL = 1e-10
#: Hidden-layer families; ``auto`` picks ``symmetric`` for odd activations, else ``levels``.
FAMILIES = ("auto", "levels", "symmetric", "binary")


@dataclass(frozen=True)
class LayerSolution:
    """One compressed layer.

    Attributes:
        step: the quantized activation (family, parameters, canonical thresholds and levels).
        tau_in: compressed input scale tau^c_{l-1}.
        constants: its constants at ``tau_in`` (closed forms).
        target: the dense constants of the same layer (at the dense scale tau_{l-1}).
        residuals: relative residual of each equation the layer solves.
        gauge: g_l after this layer (1 after the last layer, and throughout unless
            ``hidden_family="binary"``).
        role: ``hidden`` or ``output``.
    """

    step: StepFunction
    tau_in: float
    constants: ActivationConstants
    target: ActivationConstants
    residuals: dict[str, float]
    gauge: float
    role: str

    @property
    def residual(self) -> float:
        """Largest residual of the layer's equations."""
        return max(self.residuals.values())

    def as_dict(self) -> dict:
        c = self.constants
        return {**self.step.as_dict(), "role": self.role, "n_levels": self.step.n_levels,
                "tau_in": self.tau_in, "d1": c.d1, "d2": c.d2, "d3": c.d3,
                "tau2_next": c.tau2_next, "residual": self.residual,
                "residuals": dict(self.residuals), "gauge": self.gauge}


@dataclass(frozen=True)
class CompressionResult:
    """The compressed network's activations and how well they match.

    Attributes:
        layers: one :class:`LayerSolution` per layer.
        dense: the dense network's constants per layer (its own tau chain).
        dense_names: the dense activations.
        alphas_dense, alphas_compressed: (a1, a2, a3, tau_L^2) after the last layer; the
            compressed ones are recomputed from the quantized activations by the generic
            quadrature of ``ntk.constants`` along the compressed chain, not taken from the
            solver.
        delta: tau_L,c^2 - tau_L^2 (0 for an exact match; > 0 with capped levels).
        tau0: data scale.
    """

    layers: tuple[LayerSolution, ...]
    dense: tuple[ActivationConstants, ...]
    dense_names: tuple[str, ...]
    alphas_dense: dict[str, float]
    alphas_compressed: dict[str, float]
    delta: float
    tau0: float

    @property
    def activations(self) -> list[Activation]:
        """The quantized activations, ready for a network or ``ntk.equivalents``."""
        return [layer.step.activation() for layer in self.layers]

    def as_dict(self) -> dict:
        return {
            "tau0": self.tau0,
            "layers": [layer.as_dict() for layer in self.layers],
            "dense": [{"activation": name, "tau_in": c.tau, "m0": c.m0, "d1": c.d1,
                       "d2": c.d2, "d3": c.d3, "tau2_next": c.tau2_next}
                      for name, c in zip(self.dense_names, self.dense, strict=True)],
            "alphas": {"dense": self.alphas_dense, "compressed": self.alphas_compressed},
            "delta": self.delta,
        }


def compress_network(acts, tau0: float, *, max_levels: int = 32, hidden_family: str = "auto",
                     hidden_max_levels: int = 32, progress: bool = False) -> CompressionResult:
    """Solve the NTK-LC equations layer by layer (module docstring).

    Args:
        acts: the dense network's per-layer activations, L >= 1.
        tau0: data scale, > 0.
        max_levels: cap on the output layer's levels (>= 2); when no k <= max_levels
            matches, its best fit is returned with ``delta``.
        hidden_family: one of :data:`FAMILIES`.
        hidden_max_levels: cap on a hidden layer's levels; a hidden layer that needs more
            raises.
        progress: a progress bar over the layers on stderr (a smooth activation's layer can
            take tens of seconds).

    Returns:
        :class:`CompressionResult`.

    Raises:
        InputError: bad arguments, or a hidden-layer condition (or, for ``binary``, the last
            layer's Hermite-share condition) that cannot be met; the message names it.
    """
    dense_acts = parse_activations(acts)
    if not (math.isfinite(tau0) and tau0 > 0):
        raise InputError(f"tau0 must be a positive finite number, got {tau0}")
    if hidden_family not in FAMILIES:
        raise InputError(f"unknown family {hidden_family!r}; choose from {', '.join(FAMILIES)}")
    for name, value in (("max_levels", max_levels), ("hidden_max_levels", hidden_max_levels)):
        if isinstance(value, bool) or int(value) != value or value < 2:
            raise InputError(f"{name} must be an integer >= 2, got {value}")
    dense = tau_chain(dense_acts, tau0)
    layers = []
    gauge, tau_c = 1.0, float(tau0)
    bar = progress_bar(total=len(dense_acts), desc="layers", unit="layer", disable=not progress,
               leave=False)
    for index, (act, target) in enumerate(zip(dense_acts, dense, strict=True), start=1):
        if index < len(dense_acts):
            family = hidden_family
            if family == "auto":
                family = "symmetric" if _is_odd(act, target) else "levels"
            if family == "binary":
                sol = _solve_binary_layer(target, tau_c, gauge, index)
            else:
                later_d2 = any(not _is_odd(a, c) for a, c in zip(dense_acts[index:],
                                                                 dense[index:], strict=True))
                sol = solve_hidden_layer(act, target, tau_c, family == "symmetric",
                                         hidden_max_levels, index, match_d3=later_d2)
        else:
            sol = solve_output_layer(target, tau_c, gauge, max_levels, _is_odd(act, target),
                                     index)
        layers.append(sol)
        gauge = sol.gauge
        tau_c = math.sqrt(sol.constants.tau2_next)
        bar.update()
    bar.close()
    return CompressionResult(
        layers=tuple(layers), dense=tuple(dense), dense_names=tuple(a.name for a in dense_acts),
        alphas_dense=_alphas(dense_acts, tau0),
        alphas_compressed=_alphas([s.step.activation() for s in layers], tau0),
        delta=layers[-1].constants.tau2_next - dense[-1].tau2_next, tau0=float(tau0))


def _is_odd(act: Activation, c: ActivationConstants) -> bool:
    return act.odd or abs(c.d2) <= 1e-14 * max(1.0, abs(c.d1) / c.tau)


def _alphas(acts, tau0: float) -> dict[str, float]:
    last = ck_coefficients(acts, tau0)[-1]
    return {"a1": last.a1, "a2": last.a2, "a3": last.a3, "tau2": last.tau2}


def _relative(got: float, want: float, scale: float) -> float:
    return abs(got - want) / max(abs(want), scale)


def _step(family: str, structure: LevelStructure, z: np.ndarray, v: np.ndarray, tau_c: float
          ) -> StepFunction:
    thresholds = tuple(float(t * tau_c) for t in z)
    levels = tuple(float(x) for x in v)
    params = ({f"t{j}": t for j, t in enumerate(thresholds)}
              | {f"v{j}": x for j, x in enumerate(levels)})
    return StepFunction(family, params, thresholds, levels)


def _level_range(symmetric: bool, minimum: int, max_levels: int) -> range:
    return range(max(minimum, 2 if symmetric else 3), max_levels + 1)


#: Memoise the pure parts of the solver (threshold optimisation, dense constants). Switch off
#: (``solvers.ternarize.MEMOISE = False``) to recompute everything, e.g. as a reference.
MEMOISE = True
#: Significant digits of the target direction in the cache key of ``_optimal_thresholds``.
_KEY_DIGITS = 12


def clear_caches() -> None:
    """Forget every memoised solve (benchmarks time cold calls with it)."""
    from solvers.steps import _step_activation

    _unit_thresholds.cache_clear()
    _hidden_candidate_cached.cache_clear()
    _step_activation.cache_clear()


def _optimal_thresholds(structure: LevelStructure, c1: float, c2: float, k0: int,
                        previous: np.ndarray | None) -> tuple[float, np.ndarray]:
    """``optimise_thresholds`` for k = ``structure.k`` levels, warm-started from the optimum at
    k - 1 along the chain that starts (without a warm start) at k0 levels.

    Var_min is homogeneous of degree 2 in the targets (c1, c2) and its minimiser depends only
    on their direction, so the chain is solved (and memoised) for the unit direction, rounded
    to ``_KEY_DIGITS`` digits, and Var_min is rescaled: layers whose targets differ only in
    scale (ReLU at any depth, the hidden and the output layer) share one solve. With
    ``MEMOISE`` off (or zero targets), ``optimise_thresholds`` runs on the raw targets from
    ``previous`` (the caller's optimum at k - 1), as before.
    """
    scale = math.hypot(c1, 0.0 if structure.symmetric else c2)
    if not MEMOISE or not (scale > 0 and math.isfinite(scale)):
        return optimise_thresholds(structure, c1, c2, previous)
    if structure.symmetric:
        c2 = 0.0
    u1, u2 = (float(f"{c / scale:.{_KEY_DIGITS}g}") + 0.0 for c in (c1, c2))
    var, z = _unit_thresholds(structure.symmetric, u1, u2, k0, structure.k)
    return var * scale**2, z


@functools.lru_cache(maxsize=4096)
def _unit_thresholds(symmetric: bool, u1: float, u2: float, k0: int, k: int
                     ) -> tuple[float, np.ndarray]:
    """The memoised chain of ``_optimal_thresholds`` for a unit target direction (read-only z)."""
    previous = None if k == k0 else _unit_thresholds(symmetric, u1, u2, k0, k - 1)[1]
    var, z = optimise_thresholds(LevelStructure(k, symmetric), u1, u2, previous)
    z = np.array(z, dtype=float)
    z.flags.writeable = False
    return var, z


# -- hidden layers ------------------------------------------------------------------------------

def solve_hidden_layer(act: Activation, target: ActivationConstants, tau_c: float,
                       symmetric: bool, max_levels: int = 32, layer: int = 1,
                       match_d3: bool = True) -> LayerSolution:
    """Fewest-level step activation with d1, d2, d3 and the output variance of ``target``.

    For each k, two threshold sets are tried: the minimiser of Var_min and a quantization of
    the activation itself (``activation_thresholds``), which follows its saturation and so
    reaches d3 where the first cannot.

    Args:
        act: the dense activation of this layer.
        target: dense constants of this layer (at the dense input scale, equal to ``tau_c``).
        tau_c: compressed input scale.
        symmetric: use the odd (symmetric) family; requires d2 = 0.
        max_levels: the most levels tried.
        layer: index for messages.
        match_d3: also match d3. It only feeds a4, which reaches the equivalent through the
            d2 of a later layer: when every later layer is odd (d2 = 0), d3 is free.

    Raises:
        InputError: no k <= max_levels matches; the message names the condition.
    """
    c1, c2 = tau_c * target.d1, tau_c**2 * target.d2
    var_t, e3_t = target.tau2_next, tau_c**2 * target.d3
    if symmetric and abs(c2) > 1e-12 * max(1.0, abs(c1)):
        raise InputError(f"layer {layer}: d2 = {target.d2:.3g} != 0 cannot be matched by the "
                         "symmetric family (its d2 is 0)")
    family = "symmetric" if symmetric else "levels"
    if not match_d3:
        structure, z, v, exact = _fit_variance(c1, c2, var_t, symmetric, max_levels, layer)
        if not exact:
            raise InputError(
                f"layer {layer}: tau_l^2 = {var_t:.6g} cannot be matched with at most "
                f"{max_levels} levels (Hermite share {(c1**2 + c2**2 / 2) / var_t:.4f} of the "
                "dense activation)")
        return _hidden_solution(_step(family, structure, z, v, tau_c), target, tau_c, False)
    # Two free directions of levels beyond the linear conditions are needed for Var and d3.
    minimum = 6 if symmetric else 5
    previous, best_var, share_ok = None, math.inf, False
    levels = _level_range(symmetric, minimum - 2, max_levels)
    for k in levels:
        structure = LevelStructure(k, symmetric)
        var, z = _optimal_thresholds(structure, c1, c2, levels.start, previous)
        previous, best_var = z, min(best_var, var)
        if var > var_t or k < minimum:
            continue
        share_ok = True
        found = _hidden_candidate(act, structure, z, tau_c, c1, c2, var_t, e3_t, max_levels)
        if found is not None:
            sol = _hidden_solution(_step(family, *found, tau_c), target, tau_c, True)
            if sol.residual <= MATCH_TOL:
                return sol
    if not share_ok:
        raise InputError(
            f"layer {layer}: tau_l^2 = {var_t:.6g} cannot be matched with at most {max_levels} "
            f"levels: the smallest variance compatible with d1 and d2 is {best_var:.6g} "
            f"(Hermite share {(c1**2 + c2**2 / 2) / var_t:.4f} of the dense activation)")
    raise InputError(f"layer {layer}: d3 = {target.d3:.6g} cannot be matched together with "
                     f"d1, d2 and tau_l^2 with at most {max_levels} levels")


def _hidden_solution(step: StepFunction, target: ActivationConstants, tau_c: float,
                     with_d3: bool) -> LayerSolution:
    c = step.constants(tau_c)
    var_t = target.tau2_next
    scale = math.sqrt(var_t)
    residuals = {"d1": _relative(c.d1, target.d1, scale / tau_c),
                 "d2": _relative(c.d2, target.d2, scale / tau_c**2),
                 "tau2_next": _relative(c.tau2_next, var_t, var_t)}
    if with_d3:
        residuals["d3"] = _relative(c.d3, target.d3, var_t / tau_c**2)
    return LayerSolution(step=step, tau_in=tau_c, constants=c, target=target,
                         residuals=residuals, gauge=1.0, role="hidden")


def _hidden_candidate(act, structure, z_opt, tau_c, c1, c2, var_t, e3_t, max_levels):
    """:func:`_hidden_candidate_solve`, memoised (``MEMOISE``) on its arguments (z by value)."""
    if not MEMOISE:
        return _hidden_candidate_solve(act, structure, z_opt, tau_c, c1, c2, var_t, e3_t,
                                       max_levels)
    z_key = tuple(float(x) for x in z_opt)
    return _hidden_candidate_cached(act, structure, z_key, tau_c, c1, c2, var_t, e3_t,
                                    max_levels)


@functools.lru_cache(maxsize=1024)
def _hidden_candidate_cached(act, structure, z_key, tau_c, c1, c2, var_t, e3_t, max_levels):
    found = _hidden_candidate_solve(act, structure, np.array(z_key), tau_c, c1, c2, var_t, e3_t,
                                    max_levels)
    if found is None:
        return None
    s, z, v = found
    z, v = np.array(z, dtype=float), np.array(v, dtype=float)
    z.flags.writeable = v.flags.writeable = False
    return s, z, v


def _hidden_candidate_solve(act, structure, z_opt, tau_c, c1, c2, var_t, e3_t, max_levels):
    """Exact (structure, thresholds, levels) for k = ``structure.k`` centroids, or ``None``.

    Tried in order: the ellipsoid of admissible levels at the Var_min-optimal thresholds, at
    the thresholds of a k-level quantization of the activation itself and at those of the
    extremal (smallest-d3) function; then minimum-norm Newton from the activation's
    quantization (its conditional means as levels), which also moves the thresholds. A
    non-monotone function's quantization can have more than k levels; those above
    ``max_levels`` are skipped.
    """
    symmetric = structure.symmetric
    z_act = activation_thresholds(act.fn, tau_c, structure.k, symmetric)
    extremal = extremal_function(c1, c2, var_t)
    z_ext = (None if extremal is None
             else activation_thresholds(extremal, 1.0, structure.k, symmetric))
    candidates = [(structure, z_opt)] + [(LevelStructure(z.size + 1, symmetric), z)
                                         for z in (z_act, z_ext) if z is not None]
    candidates = [(s, z) for s, z in candidates if s.k <= max_levels]
    for s, z in candidates:
        v = match_hidden(s, z, c1, c2, var_t, e3_t)
        if v is not None:
            return s, z, v
    for s, z in candidates[1:2] if z_act is not None else []:
        levels = conditional_levels(act.fn, tau_c, z)
        found = match_hidden_newton(s, z, levels - levels.mean(), c1, c2, var_t, e3_t)
        if found is not None:
            return s, *found
    return None


# -- output layer -------------------------------------------------------------------------------

def solve_output_layer(target: ActivationConstants, tau_c: float, gauge: float = 1.0,
                       max_levels: int = 32, symmetric: bool = False, layer: int = 1
                       ) -> LayerSolution:
    """Fewest-level step activation with d1^2 / g, d2^2 / g^2 and tau_L^2 of ``target``.

    Args:
        target: dense constants of the last layer (``tau2_next`` is tau_L^2).
        tau_c: compressed input scale.
        gauge: g_{L-1} (1 unless the hidden layers were matched only up to the gauge).
        max_levels: the largest k tried; if none matches, the best fit at the largest k
            (d1, d2 exact, variance too large by delta) is returned.
        symmetric: use the odd family (dense d2 = 0).
        layer: index for messages.

    Raises:
        InputError: tau_L^2 below the Hermite-share bound c1^2 + c2^2 / 2 (no function of any
            number of levels reaches it).
    """
    c1 = tau_c * target.d1 / math.sqrt(gauge)
    c2 = tau_c**2 * target.d2 / gauge
    var_t = target.tau2_next
    bound = c1**2 + c2**2 / 2
    if bound == 0:
        raise InputError(f"layer {layer}: d1 = d2 = 0; nothing to match")
    if bound > var_t * (1 + 1e-12):
        raise InputError(
            f"layer {layer}: tau_L^2 = {var_t:.6g} cannot be matched: the compressed input scale "
            f"forces a degree-1+2 Hermite variance {bound:.6g} > tau_L^2 (share "
            f"{bound / var_t:.4f} > 1)")
    structure, z, v, exact = _fit_variance(c1, c2, var_t, symmetric, max_levels, layer)
    step = _step("symmetric" if symmetric else "levels", structure, z, v, tau_c)
    c = step.constants(tau_c)
    d1_t, d2_t = target.d1 / math.sqrt(gauge), target.d2 / gauge
    scale = math.sqrt(var_t)
    residuals = {"d1": _relative(c.d1, d1_t, scale / tau_c),
                 "d2": _relative(c.d2, d2_t, scale / tau_c**2)}
    if exact:
        residuals["tau_L^2"] = _relative(c.tau2_next, var_t, var_t)
    return LayerSolution(step=step, tau_in=tau_c, constants=c, target=target,
                         residuals=residuals, gauge=1.0, role="output")


def _fit_variance(c1: float, c2: float, var_t: float, symmetric: bool, max_levels: int,
                  layer: int) -> tuple[LevelStructure, np.ndarray, np.ndarray, bool]:
    """Fewest levels with the linear moments (c1, c2) and variance var_t.

    Returns ``(structure, z, v, exact)``; when no k <= max_levels reaches var_t, the
    smallest-variance fit at the largest feasible k with ``exact = False``.
    """
    previous, best = None, None
    levels = _level_range(symmetric, 2, max_levels)
    for k in levels:
        structure = LevelStructure(k, symmetric)
        var, z = _optimal_thresholds(structure, c1, c2, levels.start, previous)
        previous = z
        if not math.isfinite(var):
            continue
        best = (structure, z)
        if var <= var_t:
            match = match_output(structure, z, c1, c2, var_t)
            if match is not None:
                return structure, *match, True
    if best is None:
        raise InputError(f"layer {layer}: no step function with at most {max_levels} levels "
                         "has the required d1 and d2")
    structure, z = best
    return structure, z, min_variance(structure, z, c1, c2).levels, False


# -- the two-level family of the spec, up to the gauge --------------------------------------------

def _binary_shape(z: np.ndarray) -> np.ndarray:
    """(A^2, B^2, C) of the unit binary step (1, 0, 1) at standardised thresholds z."""
    P, a, b = level_projections(z)
    v = np.array([1.0, 0.0, 1.0])
    c = (v - P @ v) ** 2
    return np.array([(a @ v) ** 2, (b @ v) ** 2, b @ c])


def _direction_residual(u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """u/|u| - t/|t|: zero exactly when u = s t with s > 0."""
    nu = np.linalg.norm(u)
    return u / nu - t / np.linalg.norm(t) if nu > 0 else np.ones(3)


def _solve_binary_layer(target: ActivationConstants, tau_c: float, gauge: float, layer: int
                        ) -> LayerSolution:
    """Binary b(1[t < s1] + 1[t > s2]) matching (d1^2, d2^2, d3) up to the gauge only.

    The thresholds solve the two scale-free equations (A^2, B^2, C) || (d1^2,
    (tau^c)^2 d2^2 / g, d3) (2-D least squares from a grid of starts); b is chosen so that the
    output variance equals the dense one, and the gauge follows as r = d1c^2 / d1^2.
    """
    t = np.array([target.d1**2, tau_c**2 * target.d2**2 / gauge, target.d3])
    structure = LevelStructure(3)

    def residual(w):
        return _direction_residual(_binary_shape(structure.thresholds(w)), t)

    grid = np.linspace(-4.0, 4.0, 33)
    starts = sorted((float(np.sum(residual(structure.params(np.array([z1, z2]))) ** 2)), z1, z2)
                    for z1 in grid for z2 in grid[grid > z1])
    best = None
    for _, z1, z2 in starts[:12]:
        fit = optimize.least_squares(residual, structure.params(np.array([z1, z2])),
                                     method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
        z = structure.thresholds(fit.x)
        err = float(np.max(np.abs(fit.fun)))
        # Mirror images z -> -z solve the same equations: prefer the larger thresholds.
        key = (err > MATCH_TOL, -round(float(z.sum()), 9), err)
        if best is None or key < best[0]:
            best = (key, z, err)
    _, z, err = best
    if err > MATCH_TOL:
        raise InputError(f"layer {layer}: the binary family cannot match (d1^2, d2^2, d3) up "
                         f"to the gauge (residual {err:.2e})")
    unit = StepFunction("binary", {}, tuple(float(x * tau_c) for x in z), (1.0, 0.0, 1.0))
    b = math.sqrt(target.tau2_next / unit.constants(tau_c).tau2_next)
    step = StepFunction("binary", {"s1": unit.thresholds[0], "s2": unit.thresholds[1], "b": b},
                        unit.thresholds, (b, 0.0, b))
    c = step.constants(tau_c)
    res = _direction_residual(np.array([c.d1**2, tau_c**2 * c.d2**2, c.d3]), t)
    residuals = {name: float(abs(x)) for name, x in zip(("d1^2", "d2^2", "d3"), res,
                                                         strict=True)}
    return LayerSolution(step=step, tau_in=tau_c, constants=c, target=target,
                         residuals=residuals, gauge=gauge * c.d1**2 / target.d1**2,
                         role="hidden")
