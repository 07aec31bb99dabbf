"""The fast solver path (closed-form Var_min, scale-invariant memoised threshold chains, cached
candidates) against independent references: generic linear algebra, the padded form of the
level projections, the un-memoised path, and the levels recorded from the solver before the
speed-up (``tests/solvers/data/solver_reference.json``, written at commit 3a8fe5f by
``tests/solvers/data/record_solver_reference.py``: every catalogue activation, L = 1..4,
tau0 = 1; the same at tau0 = 0.5 and 2.0 added later, recorded by the same script on a
checkout of commit 3a8fe5f). tau0 = 1 runs by default, the other scales in ``make test-all``."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers.ternarize as tz
from solvers.quantizer import LevelStructure, min_variance
from solvers.steps import _level_projections_padded, level_projections

TOL = 1e-10
REFERENCE = json.loads((Path(__file__).parent / "data" / "solver_reference.json").read_text())


def generic_min_variance(structure, z, c1, c2):
    """Var_min = t^T (R D^-1 R^T)^-1 t by dense linear algebra in the level basis S."""
    P, a, b = _level_projections_padded(z)
    k = structure.k
    if structure.symmetric:
        S = np.zeros((k, k // 2))
        for j in range(k // 2):
            S[j, j], S[k - 1 - j, j] = -1.0, 1.0
        R, t = a[None, :] @ S, np.array([c1])
    else:
        S, R, t = np.eye(k), np.stack([a, b, P]), np.array([c1, c2, 0.0])
    Dr = S.T @ (P[:, None] * S)
    G = np.linalg.solve(Dr, R.T)
    M = R @ G
    if np.linalg.cond(M) > 1e12:  # degenerate constraints (two levels, three conditions)
        return None
    lam = np.linalg.solve(M, t)
    return float(t @ lam), S @ (G @ lam)


@settings(max_examples=200, deadline=None)
@given(k=st.integers(2, 16), symmetric=st.booleans(), seed=st.integers(0, 2**32 - 1),
       c1=st.floats(0.05, 2.0), c2=st.floats(-2.0, 2.0))
def test_min_variance_matches_generic_linear_algebra(k, symmetric, seed, c1, c2):
    structure = LevelStructure(k, symmetric)
    z = structure.thresholds(np.random.default_rng(seed).normal(size=structure.n_params) * 0.6)
    got = min_variance(structure, z, c1, 0.0 if symmetric else c2)
    want = generic_min_variance(structure, z, c1, 0.0 if symmetric else c2)
    if want is None:  # ill-conditioned: the fast form returns None above cond 1e14 only
        if k == 2 and not symmetric:  # two levels, three conditions: always degenerate
            assert got is None
        return
    var, v = want
    assert got is not None
    assert got.var == pytest.approx(var, rel=1e-9, abs=1e-300)
    np.testing.assert_allclose(got.levels, v, rtol=1e-8, atol=1e-9 * np.max(np.abs(v)))


@settings(max_examples=200, deadline=None)
@given(z=st.lists(st.floats(-9.0, 9.0), min_size=1, max_size=20, unique=True))
def test_level_projections_equal_padded_form(z):
    z = np.sort(np.array(z))
    for got, want in zip(level_projections(z), _level_projections_padded(z), strict=True):
        np.testing.assert_array_equal(got, want)


def _summary(result):
    return [(layer.step.n_levels, layer.step.thresholds, layer.step.levels)
            for layer in result.layers]


def test_memoised_equals_recomputed_and_repeated_calls_reuse_it(monkeypatch):
    fast = tz.compress_network(["relu"] * 3, 1.0)
    again = tz.compress_network(["relu"] * 3, 1.0)
    assert _summary(again) == _summary(fast)
    assert tz._unit_thresholds.cache_info().hits > 0
    monkeypatch.setattr(tz, "MEMOISE", False)
    slow = tz.compress_network(["relu"] * 3, 1.0)
    for f, s in zip(fast.layers, slow.layers, strict=True):
        assert f.step.n_levels == s.step.n_levels
        assert max(f.residual, s.residual) < TOL


def _check_against_reference(key):
    act, L, tau0 = key.split("|")
    ref = REFERENCE[key]
    try:
        result = tz.compress_network([act] * int(L), float(tau0))
    except ValueError as exc:
        assert "error" in ref, f"{key}: failed now ({exc}), solved before"
        return
    if "error" in ref:  # solving what used to fail is fine; it must be exact
        assert max(layer.residual for layer in result.layers) < TOL, key
        return
    for layer, want in zip(result.layers, ref["layers"], strict=True):
        assert layer.step.n_levels <= want["n_levels"], key
        assert layer.residual < TOL, key
        assert set(layer.residuals) == set(want["residuals"]), key
    assert result.delta >= -1e-12
    if abs(ref["delta"]) <= 1e-12:
        assert abs(result.delta) <= 1e-12
    else:  # capped output layer: at most the old excess variance
        assert result.delta <= ref["delta"] * (1 + 1e-9)


@pytest.mark.parametrize("key", [key for key in REFERENCE if key.endswith("|1.0")])
def test_catalogue_matches_recorded_levels(key):
    _check_against_reference(key)


@pytest.mark.slow
@pytest.mark.parametrize("key", [key for key in REFERENCE if not key.endswith("|1.0")])
def test_catalogue_matches_recorded_levels_other_scales(key):
    _check_against_reference(key)
