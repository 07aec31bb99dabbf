"""The theory half of the property-testing kit finds real bugs, and its strategies keep their
own promises (issue 12)."""

import functools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntk import ActivationConstants, sample_weights
from solvers.hessian import hutchinson_trace
from solvers.ternarize import solve_output_layer
from validation.kit import checks, oracles, strategies

# -- ternarization: the project's solver passes, a d1/d2-only "solver" fails ----------------------

def _target(d1, d2, d3, tau2, tau_in):
    return ActivationConstants(tau=tau_in, m0=0.0, d1=d1, d2=d2, d3=d3, tau2_next=tau2,
                               esp2=math.inf, method="target")


@functools.cache
def project_solver(d1, d2, d3, tau2, tau_in):
    """solvers.ternarize's output-layer solver in the check's calling convention."""
    sol = solve_output_layer(_target(d1, d2, d3, tau2, tau_in), tau_in, max_levels=32)
    if "tau_L^2" not in sol.residuals:
        raise ValueError("tau2 cannot be matched with at most 32 levels")
    return sol.step.thresholds, sol.step.levels


def variance_blind_solver(d1, d2, d3, tau2, tau_in):
    """Matches d1 and d2 exactly but returns the 3-level smallest-variance fit: tau2 is off."""
    sol = solve_output_layer(_target(d1, d2, d3, tau2, tau_in), tau_in, max_levels=3)
    return sol.step.thresholds, sol.step.levels


def test_project_ternarization_solver_passes():
    checks.check_ternarization_solver(project_solver)


def test_variance_blind_solver_fails():
    with pytest.raises(AssertionError, match="tau2_next"):
        checks.check_ternarization_solver(variance_blind_solver)


def test_solver_accepting_infeasible_targets_fails():
    def never_raises(d1, d2, d3, tau2, tau_in):
        if strategies.hermite_share(d1, d2, tau2, tau_in) > 1:
            return (0.0,), (-1.0, 1.0)  # answers anyway instead of raising
        return project_solver(d1, d2, d3, tau2, tau_in)

    with pytest.raises(AssertionError, match="infeasible target"):
        checks.check_ternarization_solver(never_raises)


# -- trace estimators: Hutchinson passes, a wrong scale fails -------------------------------------

def hutchinson(matvec, n, rng, probes=8):
    z = rng.choice([-1.0, 1.0], size=(probes, n))
    return float(np.mean([v @ matvec(v) for v in z]))


def project_hutchinson(matvec, n, rng):
    return hutchinson_trace(matvec, n, samples=8, seed=int(rng.integers(2**32)))[0]


def uniform_probes(matvec, n, rng, probes=8):
    """Uniform probes on [-1, 1] have variance 1/3 and are not rescaled: E = tr / 3."""
    z = rng.uniform(-1.0, 1.0, size=(probes, n))
    return float(np.mean([v @ matvec(v) for v in z]))


def test_hutchinson_passes():
    checks.check_trace_estimator(hutchinson)
    checks.check_trace_estimator(project_hutchinson)


def scaled_hutchinson(matvec, n, rng):
    """2 % too large."""
    return 1.02 * hutchinson(matvec, n, rng)


@pytest.mark.parametrize("broken", [uniform_probes, scaled_hutchinson])
def test_wrong_scale_fails(broken):
    with pytest.raises(AssertionError, match="standard errors"):
        checks.check_trace_estimator(broken)


# -- the strategies keep their promises --------------------------------------------------------

@given(model=strategies.gmm_models())
def test_gmm_models_satisfy_the_assumptions(model):
    assert strategies.gmm_violations(model) == []
    assert np.isclose(model.proportions.sum(), 1.0) and np.all(model.proportions >= 1 / 13)


@given(model=strategies.gmm_models(within=False))
def test_gmm_models_outside_break_an_assumption(model):
    assert strategies.gmm_violations(model)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=10)
@given(sample=strategies.gmm_samples())
def test_gmm_samples(sample):
    k, p = sample.model.n_classes, sample.model.dim
    assert sample.X.shape[0] == p and np.all(np.isfinite(sample.X))
    assert set(np.unique(sample.labels)) == set(range(k))
    assert strategies.gmm_violations(sample.model) == []


@given(law=strategies.weight_laws())
def test_weight_laws_have_mean_0_and_variance_1(law):
    """Sample mean and second moment of 200 000 draws within 6 standard errors of 0 and 1
    (the second moment's s.e. sqrt((k4 + 2) / n) from the law's kurtosis); for Student-t
    with nu <= 4 (infinite k4) the variance is checked by quadrature of the density to 1e-8."""
    n = 200_000
    w = sample_weights(law, n, np.random.default_rng(0))
    assert abs(w.mean()) <= 6 / math.sqrt(n)
    k4 = law.excess_kurtosis
    if math.isfinite(k4):
        assert abs(np.mean(w * w) - 1) <= 6 * math.sqrt((k4 + 2) / n) + 1e-12
    else:
        from scipy import integrate, stats

        nu = law.params["nu"]
        scale = math.sqrt((nu - 2) / nu)
        var = integrate.quad(lambda x: x * x * stats.t.pdf(x, nu, scale=scale),
                             -np.inf, np.inf, epsabs=1e-12, epsrel=1e-11)[0]
        assert var == pytest.approx(1.0, abs=1e-8)
        assert 2 < nu <= 4


@given(law=strategies.weight_laws(heavy_tails=False))
def test_finite_tails_only(law):
    assert math.isfinite(law.excess_kurtosis)


@given(act=strategies.activations(smooth_only=True))
def test_smooth_activations(act):
    assert act.breakpoints == () and not act.has_jumps


@given(act=strategies.activations(jumps=True))
def test_activations_evaluate(act):
    x = np.linspace(-3, 3, 13)
    assert np.all(np.isfinite(act.fn(x)))


@given(step=strategies.step_functions(max_levels=7))
def test_step_functions_have_k_levels(step):
    th, lv = np.array(step.thresholds), np.array(step.levels)
    assert 2 <= step.n_levels <= 7 and th.size == lv.size - 1
    assert np.all(np.diff(th) >= 0.2 - 1e-12) and np.all(np.abs(np.diff(lv)) >= 0.2 - 1e-12)
    act = step.activation()
    # One point inside each piece: exactly the k levels, in order.
    probes = np.concatenate([[th[0] - 1], (th[:-1] + th[1:]) / 2, [th[-1] + 1]])
    np.testing.assert_array_equal(act.fn(probes), lv)


@given(step=strategies.step_functions(max_levels=8, symmetric=True))
def test_symmetric_step_functions_are_odd(step):
    act = step.activation()
    assert act.odd
    x = np.linspace(-5, 5, 101)
    x = x[~np.isin(np.round(x, 12), np.round(step.thresholds, 12))]
    np.testing.assert_array_equal(act.fn(-x), -act.fn(x))


@given(target=strategies.activation_targets(feasible=False))
def test_infeasible_targets_are_rejected_by_the_project_solver(target):
    assert target.share > 1
    with pytest.raises(ValueError, match="Hermite"):
        solve_output_layer(_target(target.d1, target.d2, target.d3, target.tau2,
                                   target.tau_in), target.tau_in)


@given(target=strategies.activation_targets())
def test_feasible_targets(target):
    assert 0 < target.share <= 0.95 and target.tau2 > 0 and target.tau_in > 0


@given(op=strategies.symmetric_operators())
def test_operators_have_their_spectrum(op):
    np.testing.assert_allclose(oracles.dense_spectrum(op.matvec, op.n), op.eigenvalues,
                               rtol=0, atol=1e-12 * max(1.0, np.abs(op.eigenvalues).max()))
    assert op.trace == pytest.approx(float(np.sum(op.eigenvalues)))
    block = np.random.default_rng(0).standard_normal((op.n, 3))
    np.testing.assert_allclose(op.matvec(block),
                               np.column_stack([op.matvec(b) for b in block.T]), atol=1e-12)
    if op.kind == "degenerate":
        assert np.unique(op.eigenvalues).size <= 3


# -- oracles --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["relu", "tanh", "sign", "gelu"])
def test_mpmath_constants_agree_with_quadrature(name):
    from ntk import activation_constants

    for tau in (0.5, 1.7):
        want = activation_constants(name, tau, "quad")
        got = oracles.mpmath_constants(name, tau)
        for key in ("m0", "d1", "d2", "d3", "tau2_next"):
            assert got[key] == pytest.approx(getattr(want, key), rel=1e-12, abs=1e-14), key


def test_relu_closed_form():
    got = oracles.mpmath_constants("relu", 2.0)
    assert got["d1"] == pytest.approx(0.5, rel=1e-15)
    assert got["d2"] == pytest.approx(1 / (2 * math.sqrt(2 * math.pi)), rel=1e-15)
    assert got["tau2_next"] == pytest.approx(4 * (0.5 - 1 / (2 * math.pi)), rel=1e-15)


def test_quadrature_kernels_match_exact_kernels():
    from ntk import exact_kernels

    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 4)) / math.sqrt(6)
    X[:, 3] = X[:, 2]  # a duplicate: |rho| = 1
    ck, ntk = oracles.quadrature_kernels(X, ["relu", "tanh"])
    ref = exact_kernels(X, ["relu", "tanh"])
    np.testing.assert_allclose(ck, ref.ck, atol=1e-13)
    np.testing.assert_allclose(ntk, ref.ntk, atol=1e-13)
    # One ReLU layer: the arc-cosine kernel in closed form.
    ck1, _ = oracles.quadrature_kernels(X[:, :2], ["relu"], ntk=False)
    n1, n2 = np.linalg.norm(X[:, 0]), np.linalg.norm(X[:, 1])
    rho = X[:, 0] @ X[:, 1] / (n1 * n2)
    theta = math.acos(rho)
    tau0 = math.sqrt((n1 * n1 + n2 * n2) / 2)
    m = tau0 / math.sqrt(2 * math.pi)
    arccos = n1 * n2 * (math.sin(theta) + (math.pi - theta) * rho) / (2 * math.pi)
    want = arccos - m * (n1 + n2) / math.sqrt(2 * math.pi) + m * m
    assert ck1[0, 1] == pytest.approx(want, rel=1e-12)


def test_dense_spectrum_rejects_non_symmetric():
    with pytest.raises(ValueError, match="symmetric"):
        oracles.dense_spectrum(lambda v: np.array([[0.0, 1.0], [0.0, 0.0]]) @ v, 2)


def test_bad_check_arguments():
    with pytest.raises(ValueError, match="2 repeats"):
        checks.check_trace_estimator(hutchinson, repeats=1)


def test_public_names():
    for module, names in ((strategies, ["gmm_models", "gmm_samples", "activations",
                                        "step_functions", "activation_targets", "weight_laws",
                                        "symmetric_operators"]),
                          (oracles, ["mpmath_constants", "quadrature_kernels",
                                     "dense_spectrum"]),
                          (checks, ["check_trace_estimator", "check_ternarization_solver"])):
        for name in names:
            assert name in module.__all__ and callable(getattr(module, name))
    assert isinstance(st.integers(), st.SearchStrategy)
