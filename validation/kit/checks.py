"""Ready-made property checks: give your function, get the standard properties run on it.

Each ``check_*`` runs Hypothesis with the strategies of ``validation.kit.strategies`` against the
oracles of ``validation.kit.oracles`` and raises an ordinary ``AssertionError`` (Hypothesis prints
the shrunk counterexample and how to reproduce it) when a property fails. Call them inside your
own test functions. They run under the active Hypothesis settings profile: ``ntklc-ci`` (fast,
the default) or ``ntklc-nightly`` (thorough), chosen by the environment variable
``NTKLC_HYPOTHESIS_PROFILE`` (see :func:`load_profile`).
"""

from __future__ import annotations

import math
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntklc.errors import InputError
from validation.kit import oracles, strategies

__all__ = [
    "ENTROPY_BYTES_PER_VALUE",
    "ENTROPY_HEADER_BYTES",
    "ENTROPY_REL_SLACK",
    "KNAPSACK_TOLERANCE",
    "PROFILES",
    "ROUNDING_TOLERANCE",
    "TERNARIZATION_RTOL",
    "TRACE_REPEATS",
    "TRACE_Z_MAX",
    "check_entropy_coder",
    "check_knapsack_solver",
    "check_rounding",
    "check_ternarization_solver",
    "check_trace_estimator",
    "load_profile",
]

#: Hypothesis settings profiles: fast for CI, thorough for nightly runs.
PROFILES = {
    "ntklc-ci": {"max_examples": 40, "deadline": None, "derandomize": True,
                 "suppress_health_check": [HealthCheck.too_slow]},
    "ntklc-nightly": {"max_examples": 1000, "deadline": None,
                      "suppress_health_check": [HealthCheck.too_slow]},
}
for _name, _options in PROFILES.items():
    settings.register_profile(_name, **_options)


def load_profile(name: str | None = None) -> str:
    """Load a settings profile: ``name``, else ``$NTKLC_HYPOTHESIS_PROFILE``, else
    ``ntklc-ci``. Returns the name loaded.

    Raises:
        InputError: unknown profile.
    """
    name = name or os.environ.get("NTKLC_HYPOTHESIS_PROFILE") or "ntklc-ci"
    if name not in PROFILES:
        raise InputError(f"unknown Hypothesis profile {name!r}; known: {', '.join(PROFILES)}")
    settings.load_profile(name)
    return name

# == solvers: knapsack, entropy coding, rounding ==================================================
#: Optimality tolerance of :func:`check_knapsack_solver`, relative to 1 + sum_g max_j |v_gj|:
#: the MILP oracle is optimal within HiGHS' absolute gap of 1e-6.
KNAPSACK_TOLERANCE = 1e-6
#: Size slack of :func:`check_entropy_coder`: len(code) <= (1 + ENTROPY_REL_SLACK) n H / 8
#: + ENTROPY_HEADER_BYTES + ENTROPY_BYTES_PER_VALUE K, for n symbols of empirical entropy H
#: bits per symbol and K distinct values. The relative part covers a fixed-point model's loss,
#: the header part a magic, a version, the length, a CRC and a range coder's flush (two 32-bit
#: words), the per-value part a value (up to a 10-byte varint) and its count (up to 10 bytes).
ENTROPY_REL_SLACK = 0.01
ENTROPY_HEADER_BYTES = 32
ENTROPY_BYTES_PER_VALUE = 20
#: Relative tolerance of :func:`check_rounding`, per grid level: an entry may miss the oracle's
#: objective by ROUNDING_TOLERANCE * L * s (times |g| + h L s for gradient-aware rounding),
#: room for a grid scale stored in float32 (relative error 6e-8) but far below one step.
ROUNDING_TOLERANCE = 1e-6
# On top of the active profile: no deadline (oracles are slow, a user's first call may
# compile), and one failure reported as itself (an AssertionError, not an ExceptionGroup).
_CHECK_SETTINGS = {"deadline": None, "report_multiple_bugs": False}


def check_knapsack_solver(fn, *, instances=None) -> None:
    """Check a grouped-knapsack solver: feasible and optimal against the MILP oracle.

    Convention: ``fn(costs, values, budget)`` gets ``costs`` and ``values`` as lists of 1-D
    float arrays (one per group, same lengths; groups may differ) and a float ``budget``. It
    must *maximise* the total value with exactly one choice per group and total cost at most
    ``budget``, and return the chosen index of each group (any integer sequence of length
    groups), or ``None`` when nothing fits. (A minimiser of losses passes ``-values``.)

    Properties, on :func:`validation.kit.strategies.knapsack_instances` (or ``instances``, a
    strategy of ``(costs, values, budget)`` triples): ``None`` exactly when
    :func:`validation.kit.oracles.milp_knapsack` finds no allocation; otherwise valid indices whose
    exact cost sum is <= budget and whose value is at least the oracle's minus
    ``KNAPSACK_TOLERANCE * (1 + sum_g max_j |values[g][j]|)``. ``fn`` gets copies.

    Raises:
        AssertionError: a property fails; Hypothesis prints the shrunk instance.
    """
    @settings(**_CHECK_SETTINGS)
    @given(instance=instances if instances is not None else strategies.knapsack_instances())
    def knapsack_solver_is_optimal(instance):
        costs, values, budget = instance
        out = fn([c.copy() for c in costs], [v.copy() for v in values], budget)
        choice, best = oracles.milp_knapsack(costs, values, budget)
        if choice is None:
            lightest = math.fsum(float(np.min(c)) for c in costs)
            assert out is None, (f"nothing fits the budget {budget} (the lightest allocation "
                                 f"costs {lightest}), but fn returned {out!r}")
            return
        assert out is not None, (f"fn returned None, but the allocation {choice.tolist()} of "
                                 f"value {best} fits the budget {budget}")
        picks = np.asarray(out)
        assert picks.shape == (len(costs),), f"fn returned {out!r}: one index per group wanted"
        assert np.all(picks == np.rint(picks)), f"fn returned non-integer indices {out!r}"
        picks = picks.astype(np.int64)
        assert all(0 <= j < len(c) for c, j in zip(costs, picks, strict=True)), \
            f"fn returned indices {picks.tolist()} out of range for group sizes " \
            f"{[len(c) for c in costs]}"
        spent = math.fsum(float(c[j]) for c, j in zip(costs, picks, strict=True))
        assert spent <= budget, f"allocation {picks.tolist()} costs {spent} > budget {budget}"
        got = math.fsum(float(v[j]) for v, j in zip(values, picks, strict=True))
        scale = 1 + math.fsum(float(np.max(np.abs(v))) for v in values)
        assert got >= best - KNAPSACK_TOLERANCE * scale, (
            f"allocation {picks.tolist()} has value {got}, but {choice.tolist()} reaches "
            f"{best} within the budget {budget}")

    knapsack_solver_is_optimal()


def check_entropy_coder(encode, decode, *, symbols=None) -> None:
    """Check a lossless entropy coder: exact round trip and a size near the empirical entropy.

    Convention: ``encode(symbols)`` gets a non-empty 1-D integer array (any integer dtype,
    values anywhere in int64) and returns ``bytes``; ``decode(data, n)`` returns the ``n``
    symbols (a 1-D integer sequence).

    Properties, on 1-D :func:`validation.kit.strategies.integer_symbols` (or ``symbols``): the
    decoded symbols equal the input exactly (compared as Python integers), and
    ``len(data) <= (1 + ENTROPY_REL_SLACK) n H / 8 + ENTROPY_HEADER_BYTES
    + ENTROPY_BYTES_PER_VALUE K``, H the empirical entropy in bits per symbol
    (:func:`validation.kit.oracles.empirical_entropy`), K the number of distinct values. So a
    constant stream may cost 52 bytes, 256 fair bits 32 + 20 * 2 + 32.32 bytes.

    Raises:
        AssertionError: a property fails; Hypothesis prints the shrunk symbols.
    """
    @settings(**_CHECK_SETTINGS)
    @given(symbols=symbols if symbols is not None else strategies.integer_symbols())
    def entropy_coder_round_trips_near_entropy(symbols):
        symbols = np.asarray(symbols).ravel()
        n = symbols.size
        data = encode(symbols.copy())
        assert isinstance(data, bytes), f"encode returned {type(data).__name__}, not bytes"
        out = np.asarray(decode(data, n))
        assert out.shape == (n,), f"decode returned shape {out.shape} for {n} symbols"
        assert out.size == 0 or np.issubdtype(out.dtype, np.integer), \
            f"decode returned dtype {out.dtype}, not integers"
        wrong = [i for i, (a, b) in enumerate(zip(out.tolist(), symbols.tolist(), strict=True))
                 if a != b]
        assert not wrong, (f"round trip differs at {len(wrong)} of {n} positions, first at "
                           f"{wrong[0]}: {out[wrong[0]]} instead of {symbols[wrong[0]]}")
        h = oracles.empirical_entropy(symbols)
        k = np.unique(symbols).size
        allowance = ((1 + ENTROPY_REL_SLACK) * n * h / 8 + ENTROPY_HEADER_BYTES
                     + ENTROPY_BYTES_PER_VALUE * k)
        assert len(data) <= allowance, (
            f"{len(data)} bytes for {n} symbols of empirical entropy {h:.4f} bits each "
            f"({n * h / 8:.1f} bytes) and {k} distinct values: allowance {allowance:.1f}")

    entropy_coder_round_trips_near_entropy()


def check_rounding(fn, *, gradient: bool = False, problems=None) -> None:
    """Check a rounding onto the symmetric absmax grid against brute force over grid points.

    Grid: s * {-L, ..., L} with L = 2^(bits-1) - 1 and s = max|w| / L per channel (1 for an
    all-zero channel), :func:`validation.kit.oracles.absmax_grid`, as in ``solvers.rounding``.

    Convention: ``fn(weights, bits, channel_axis)`` (with ``gradient=True``:
    ``fn(weights, gradient, bits, curvature, channel_axis)``) returns the integer grid
    indices q of the weights' shape, or an object with a ``symbols`` attribute holding them
    (e.g. ``solvers.rounding.quantize_nearest`` and ``quantize_gradient_opposed`` as they are).
    The rounded weights are s q.

    Properties, on :func:`validation.kit.strategies.quantization_problems` (or ``problems``):
    shape, integer values, |q| <= L, and for every entry, with n = s q - w:

    * nearest (default): |n| <= |n*| + tol, n* from :func:`oracles.brute_force_rounding`, so
      q is a nearest grid point (ties either way);
    * ``gradient=True``: q is a neighbouring grid point (|n| <= s (1 + L tol')) and
      g n + h n^2 / 2 <= the oracle's best over the neighbours + tol (|n| for h = inf),

    tol = ``ROUNDING_TOLERANCE`` * L * s (times |g| + h L s in the gradient case).

    Raises:
        AssertionError: a property fails; Hypothesis prints the shrunk problem.
    """
    @settings(**_CHECK_SETTINGS)
    @given(problem=problems if problems is not None else strategies.quantization_problems())
    def rounding_picks_the_best_neighbour(problem):
        W, G, bits, axis, h = problem
        if gradient:
            out = fn(W.copy(), G.copy(), bits, h, axis)
        else:
            out = fn(W.copy(), bits, axis)
        q = np.asarray(getattr(out, "symbols", out))
        assert q.shape == W.shape, f"fn returned shape {q.shape} for weights of {W.shape}"
        assert np.all(q == np.rint(q)), "fn returned non-integer grid indices"
        s, top = oracles.absmax_grid(W, bits, axis)
        assert np.all(np.abs(q) <= top), (
            f"grid indices {q[np.abs(q) > top].tolist()} beyond the {bits}-bit grid's "
            f"L = {top}")
        nearest = not gradient or math.isinf(h)
        best = oracles.brute_force_rounding(W, s, top, None if nearest else G, h)
        n, n_best = q * s - W, best * s - W
        if nearest:
            cost, cost_best = np.abs(n), np.abs(n_best)
            slack = ROUNDING_TOLERANCE * top * s
        else:
            assert np.all(np.abs(n) <= s * (1 + ROUNDING_TOLERANCE * top)), \
                f"entries more than one step from the grid point: {np.argwhere(np.abs(n) > s)}"
            cost, cost_best = G * n + 0.5 * h * n * n, G * n_best + 0.5 * h * n_best ** 2
            slack = ROUNDING_TOLERANCE * top * s * (np.abs(G) + h * top * s)
        bad = np.argwhere(cost > cost_best + slack)
        assert bad.size == 0, (
            f"{len(bad)} entries not rounded to the best neighbouring grid point; first at "
            f"{tuple(bad[0])}: w = {W[tuple(bad[0])]!r}, got q = {q[tuple(bad[0])]}, best "
            f"q = {best[tuple(bad[0])]} (scale {np.broadcast_to(s, W.shape)[tuple(bad[0])]})")

    rounding_picks_the_best_neighbour()

# == theory: GMMs, activations, step functions, targets, weight laws, operators ===================
#: Estimates per operator and the largest |mean - trace| / s.e. that ``check_trace_estimator``
#: accepts. With a t statistic on 39 degrees of freedom, 6 standard errors leave a false
#: failure probability below 1e-6 per example (below 1e-3 over the 1000 nightly examples).
TRACE_REPEATS = 40
TRACE_Z_MAX = 6.0
#: Relative tolerance of ``check_ternarization_solver`` (see its docstring for the scales).
TERNARIZATION_RTOL = 1e-8


def check_trace_estimator(fn, *, repeats: int = TRACE_REPEATS, z_max: float = TRACE_Z_MAX
                          ) -> None:
    """Check a stochastic trace estimator ``fn(matvec, n, rng) -> float``.

    ``matvec`` applies an n x n symmetric operator to a vector of shape (n,); ``rng`` is a
    ``numpy.random.Generator``, the only randomness ``fn`` may use. For each operator of
    :func:`validation.kit.strategies.symmetric_operators` (known spectrum, so the exact trace is
    known; clustered, degenerate, indefinite and definite ones), ``fn`` runs ``repeats`` times
    with independent generators spawned from a drawn seed. The property: the estimates are
    finite and their mean is within ``z_max`` standard errors of the exact trace, the s.e.
    being the sample standard deviation / sqrt(repeats) (a t-test; an estimator that is exact
    on an operator, s.e. 0, must then be exact to 1e-9 relative to sum |lambda|). An unbiased
    estimator fails with probability < 1e-6 per example; a biased one (a wrong scale) fails
    as soon as Hypothesis draws an operator whose trace is large against the estimator's
    spread. Raises ``AssertionError`` with the shrunk operator and seed otherwise.
    """
    if repeats < 2:
        raise InputError(f"need at least 2 repeats for a standard error, got {repeats}")

    @settings(**_CHECK_SETTINGS)
    @given(op=strategies.symmetric_operators(), seed=st.integers(0, 2**32 - 1))
    def trace_estimator_is_unbiased(op, seed):
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(repeats)]
        estimates = np.array([float(fn(op.matvec, op.n, rng)) for rng in rngs])
        assert np.all(np.isfinite(estimates)), f"non-finite estimates {estimates}"
        exact = op.trace
        mean = float(estimates.mean())
        se = float(estimates.std(ddof=1)) / math.sqrt(repeats)
        floor = 1e-9 * max(1.0, float(np.sum(np.abs(op.eigenvalues))))
        assert abs(mean - exact) <= z_max * se + floor, (
            f"mean of {repeats} estimates {mean:.6g} vs exact trace {exact:.6g}: "
            f"{abs(mean - exact) / max(se, 1e-300):.3g} standard errors (s.e. {se:.3g}, "
            f"limit {z_max})")

    trace_estimator_is_unbiased()


def _step_parts(out):
    if hasattr(out, "thresholds") and hasattr(out, "levels"):
        return out.thresholds, out.levels
    thresholds, levels = out
    return thresholds, levels


def check_ternarization_solver(fn, *, match_d3: bool = False, rtol: float = TERNARIZATION_RTOL,
                               max_share: float = 0.95) -> None:
    """Check a ternarization (step-activation) solver ``fn(d1, d2, d3, tau2, tau_in)``.

    ``fn`` returns ``(thresholds, levels)`` (or an object with those attributes) of a step
    activation sigma_c (``ntk.step_activation``: k - 1 ascending thresholds, k levels) whose
    constants at input scale ``tau_in`` are d1, d2 and the output variance tau2 (and d3 with
    ``match_d3=True``), or raises ``ValueError`` when no step function can match.

    Targets come from :func:`validation.kit.strategies.activation_targets`: real dense networks'
    last-layer constants along their tau chains with Hermite share <= ``max_share``
    (feasible: ``fn`` must match them, raising is a failure), and the same targets with the
    variance lowered below the Hermite bound (share > 1, infeasible: ``fn`` must raise
    ``ValueError``). The returned function's constants are recomputed by
    :func:`validation.kit.oracles.mpmath_constants` (20 digits, independent of the solver) and
    must match with relative errors at most ``rtol`` on the natural scales of the equations:
    |d1c - d1| <= rtol sqrt(tau2) / tau_in, |d2c - d2| <= rtol sqrt(tau2) / tau_in^2,
    |tau2c - tau2| <= rtol tau2 and |d3c - d3| <= rtol tau2 / tau_in^2. Calls of ``fn`` are
    memoised per target within one check (solvers are slow and Hypothesis repeats targets
    while shrinking). Raises ``AssertionError`` with the shrunk target otherwise.
    """
    from ntk import step_activation

    cache: dict = {}

    def solve(t):
        key = (t.d1, t.d2, t.d3, t.tau2, t.tau_in)
        if key not in cache:
            try:
                cache[key] = ("ok", _step_parts(fn(*key)))
            except ValueError as exc:
                cache[key] = ("raised", exc)
        return cache[key]

    # Infeasible first: Hypothesis shrinks towards the first branch, where a solver is cheap
    # (it only has to raise), so shrinking a failure does not run the solver on many targets.
    targets = st.one_of(strategies.activation_targets(feasible=False),
                        strategies.activation_targets(feasible=True, max_share=max_share))

    @settings(**_CHECK_SETTINGS,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(target=targets)
    def solver_matches_or_rejects(target):
        status, result = solve(target)
        if target.share > 1:
            assert status == "raised", (
                f"infeasible target (Hermite share {target.share:.4f} > 1) accepted: returned "
                f"{result}")
            return
        assert status == "ok", f"feasible target (share {target.share:.4f}) rejected: {result}"
        thresholds, levels = result
        try:
            act = step_activation(thresholds, levels)
        except ValueError as exc:
            raise AssertionError(f"not a step function: {exc}") from None
        c = oracles.mpmath_constants(act, target.tau_in, dps=20)
        tau, var = target.tau_in, target.tau2
        scales = {"d1": math.sqrt(var) / tau, "d2": math.sqrt(var) / tau**2,
                  "tau2_next": var, "d3": var / tau**2}
        wanted = {"d1": target.d1, "d2": target.d2, "tau2_next": var, "d3": target.d3}
        keys = ("d1", "d2", "tau2_next", "d3") if match_d3 else ("d1", "d2", "tau2_next")
        errors = {k: abs(c[k] - wanted[k]) / scales[k] for k in keys}
        bad = {k: e for k, e in errors.items() if not e <= rtol}
        assert not bad, (
            f"{len(levels)}-level solution misses "
            + ", ".join(f"{k}: got {c[k]:.10g}, want {wanted[k]:.10g} (rel. {e:.2e})"
                        for k, e in bad.items()) + f" (rtol {rtol})")

    solver_matches_or_rejects()
