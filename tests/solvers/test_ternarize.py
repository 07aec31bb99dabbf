"""NTK-LC solver: recovery of known members, dense networks, capped levels, the gauge."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntk import (
    ActivationConstants,
    activation_constants,
    ck_coefficients,
    step_activation,
    tau_chain,
)
from solvers.ternarize import compress_network, solve_hidden_layer, solve_output_layer
from validation.kit.strategies import activation_targets, step_functions

TOL = 1e-10


def target_of(step, tau):
    """Constants of a drawn step function by the generic quadrature (independent of the
    solver)."""
    act = step.activation()
    return act, activation_constants(act, tau, "quad")


@settings(max_examples=25, deadline=None)
@given(member=step_functions(min_levels=3, max_levels=7), tau=st.floats(0.5, 2.0))
def test_output_layer_recovers_members(member, tau):
    _, target = target_of(member, tau)
    sol = solve_output_layer(target, tau, max_levels=member.n_levels)
    assert sol.residual < TOL
    assert sol.step.n_levels <= member.n_levels
    assert set(sol.residuals) == {"d1", "d2", "tau_L^2"}


@settings(max_examples=15, deadline=None)
@given(member=step_functions(min_levels=5, max_levels=7), tau=st.floats(0.5, 2.0))
def test_hidden_layer_recovers_members(member, tau):
    act, target = target_of(member, tau)
    # The solver searches its own level families, not the member's: it may need more levels
    # than the member has (5 pieces at tau = 1.375 needed 14), so it gets its default budget.
    sol = solve_hidden_layer(act, target, tau, symmetric=False, max_levels=32)
    assert sol.residual < TOL
    assert set(sol.residuals) == {"d1", "d2", "d3", "tau2_next"}


@settings(max_examples=15, deadline=None)
@given(member=step_functions(min_levels=4, max_levels=8, symmetric=True),
       tau=st.floats(0.5, 2.0))
def test_symmetric_members_are_recovered(member, tau):
    act, target = target_of(member, tau)
    assert act.odd
    out = solve_output_layer(target, tau, max_levels=member.n_levels, symmetric=True)
    assert out.residual < TOL and out.step.activation().odd
    hidden = solve_hidden_layer(act, target, tau, symmetric=True, max_levels=12,
                                match_d3=False)
    assert hidden.residual < TOL


@settings(max_examples=20, deadline=None)
@given(target=activation_targets(feasible=False))
def test_infeasible_variance_raises(target):
    # Any function's variance is at least c1^2 + c2^2 / 2 (Hermite): asking for less fails.
    assert target.share > 1
    bad = ActivationConstants(tau=target.tau_in, m0=0.0, d1=target.d1, d2=target.d2,
                              d3=target.d3, tau2_next=target.tau2, esp2=math.inf,
                              method="target")
    with pytest.raises(ValueError, match="cannot be matched"):
        solve_output_layer(bad, target.tau_in)


def assert_alphas_equal(result, dense, tau0, delta=0.0):
    """Recompute both networks' final alphas by generic quadrature along their own chains."""
    want = ck_coefficients(dense, tau0)[-1]
    got = ck_coefficients(result.activations, tau0)[-1]
    for key in ("a1", "a2", "a3"):
        scale = max(abs(want.a1), 1e-300)
        assert abs(getattr(got, key) - getattr(want, key)) <= 1e-8 * scale, key
    assert abs(got.tau2 - want.tau2 - delta) <= 1e-8 * want.tau2


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("act", ["relu", "tanh", "erf"])
def test_dense_networks_fast(act, L):
    result = compress_network([act] * L, 1.0)
    assert max(layer.residual for layer in result.layers) < TOL
    assert result.delta == pytest.approx(0.0, abs=1e-12)
    assert_alphas_equal(result, [act] * L, 1.0)
    if act != "relu":  # odd activations use the symmetric family at every layer
        assert all(a.odd for a in result.activations)


@pytest.mark.parametrize("tau0", [0.5, 1.3, 2.0])
@pytest.mark.parametrize("L", [1, 2, 3, 4])
@pytest.mark.parametrize("act", ["relu", "tanh", "gelu", "sigmoid", "swish", "erf"])
def test_dense_networks_grid(act, L, tau0):
    try:
        result = compress_network([act] * L, tau0)
    except ValueError as exc:  # must name what cannot be matched
        assert "cannot be matched" in str(exc)
        return
    assert max(layer.residual for layer in result.layers) < TOL
    assert result.delta >= -1e-12
    assert_alphas_equal(result, [act] * L, tau0, delta=result.delta)


def test_capped_levels_report_delta():
    result = compress_network(["relu"] * 3, 1.0, max_levels=4)
    assert result.layers[-1].step.n_levels <= 4
    assert result.delta > 1e-3
    assert_alphas_equal(result, ["relu"] * 3, 1.0, delta=result.delta)
    assert "tau_L^2" not in result.layers[-1].residuals


def test_gauge_symmetry():
    # Scaling hidden layer 1's levels by c and layer 2's thresholds by c leaves every later
    # alpha unchanged (spec section 7), re-derived here on a solved network.
    result = compress_network(["relu"] * 3, 1.0)
    steps = [layer.step for layer in result.layers]
    c = 3.7
    scaled = [steps[0].scaled(c).activation(),
              step_activation([t * c for t in steps[1].thresholds], steps[1].levels),
              steps[2].activation()]
    base = ck_coefficients(result.activations, 1.0)
    moved = ck_coefficients(scaled, 1.0)
    assert moved[0].a1 == pytest.approx(c**2 * base[0].a1, rel=1e-10)
    for key in ("a1", "a2", "a3", "tau2"):
        assert getattr(moved[-1], key) == pytest.approx(getattr(base[-1], key), rel=1e-9)


def test_binary_family_up_to_gauge_makes_the_last_layer_infeasible():
    # The spec's two-level hidden family matches (d1^2, d2^2, d3) up to the gauge...
    with pytest.raises(ValueError, match=r"tau_L\^2 = .* cannot be matched"):
        compress_network(["relu"] * 2, 1.0, hidden_family="binary")
    # ...and it does match those equations: the failure is the share ratio rho, not the fit.
    from solvers.ternarize import _solve_binary_layer

    target = tau_chain(["relu"] * 2, 1.0)[0]
    sol = _solve_binary_layer(target, 1.0, 1.0, 1)
    assert sol.residual < TOL
    share_dense = target.d1**2 / target.tau2_next
    c = sol.constants
    assert c.d1**2 / c.tau2_next < 0.5 * share_dense


@pytest.mark.parametrize("kwargs, message", [
    ({"acts": [], "tau0": 1.0}, "at least one"),
    ({"acts": ["relu"], "tau0": 0.0}, "tau0"),
    ({"acts": ["relu"], "tau0": 1.0, "hidden_family": "quaternary"}, "unknown family"),
    ({"acts": ["relu"], "tau0": 1.0, "max_levels": 1}, "max_levels"),
    ({"acts": ["nope"], "tau0": 1.0}, "unknown activation"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compress_network(**kwargs)


def test_result_serialises():
    result = compress_network(["relu", "relu"], 0.8)
    d = result.as_dict()
    layer = d["layers"][0]
    for key in ("family", "params", "thresholds", "levels", "tau_in", "d1", "d2", "d3",
                "tau2_next", "residual", "gauge"):
        assert key in layer
    assert len(layer["levels"]) == len(layer["thresholds"]) + 1
    assert set(d["alphas"]["dense"]) == {"a1", "a2", "a3", "tau2"}
    assert abs(d["delta"]) < 1e-12
    assert math.isfinite(d["tau0"])
