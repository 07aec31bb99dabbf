"""The compiled inner loops of the solver (``solvers.inner_loops``) against the Python path.

References: ``min_variance`` + ``_gradient_z`` + ``LevelStructure.chain`` for the objective;
``scipy.optimize.minimize(method="BFGS")`` on that objective (``optimise_thresholds(...,
compiled=False)``) for the minimisation; ``hidden_residuals`` with NumPy central differences
(``match_hidden_newton(..., compiled=False)``) for the Newton matching.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntk import activation_constants, parse_activations
from solvers.inner_loops import (
    INFEASIBLE,
    hidden_jacobian,
    hidden_residuals_at,
    var_min_and_gradient,
)
from solvers.quantizer import (
    LevelStructure,
    _central_jacobian,
    _gradient_z,
    activation_thresholds,
    conditional_levels,
    hidden_residuals,
    match_hidden_newton,
    min_variance,
    optimise_thresholds,
)

structures = st.builds(LevelStructure, k=st.integers(3, 20), symmetric=st.booleans())


@settings(max_examples=300, deadline=None)
@given(structure=structures, seed=st.integers(0, 2**32 - 1), c1=st.floats(0.05, 2.0),
       c2=st.floats(-2.0, 2.0), spread=st.floats(0.1, 3.0))
def test_objective_and_gradient_equal_python(structure, seed, c1, c2, spread):
    c2 = 0.0 if structure.symmetric else c2
    w = np.random.default_rng(seed).normal(size=structure.n_params) * spread
    value, grad = var_min_and_gradient(w, structure.symmetric, structure.k, c1, c2)
    z = structure.thresholds(w)
    mv = min_variance(structure, z, c1, c2)
    if mv is None:
        assert value == INFEASIBLE and not grad.any()
        return
    # Same closed forms; erfc vs ndtr and summation order differ by rounding, amplified by
    # the condition number of the constraint matrix R D^-1 R^T (up to 1e14 is accepted).
    R = structure.rows(mv.P, mv.a, mv.b) @ structure.basis()
    Dr = structure.basis().T @ (mv.P[:, None] * structure.basis())
    rtol = 1e-12 * max(1.0, np.linalg.cond(R @ np.linalg.solve(Dr, R.T)))
    assert value == pytest.approx(mv.var, rel=rtol, abs=1e-15)
    want = structure.chain(w, _gradient_z(z, mv))
    np.testing.assert_allclose(grad, want, rtol=1e3 * rtol, atol=rtol * max(1.0, mv.var))


@settings(max_examples=40, deadline=None)
@given(structure=st.builds(LevelStructure, k=st.integers(3, 12), symmetric=st.booleans()),
       c1=st.floats(0.1, 1.5), c2=st.floats(-1.0, 1.0))
def test_compiled_bfgs_reaches_scipy_minimum(structure, c1, c2):
    c2 = 0.0 if structure.symmetric else c2
    fast_var, fast_z = optimise_thresholds(structure, c1, c2)
    ref_var, _ = optimise_thresholds(structure, c1, c2, compiled=False)
    # Both stop at |grad| <= 1e-13 from the same starts: the same minimum, or a lower one.
    assert fast_var <= ref_var * (1 + 1e-10) + 1e-14
    assert fast_var >= ref_var * (1 - 1e-6)
    mv = min_variance(structure, fast_z, c1, c2)
    assert mv is not None and mv.var == pytest.approx(fast_var, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(structure=structures, seed=st.integers(0, 2**32 - 1))
def test_hidden_residuals_and_jacobian_equal_python(structure, seed):
    rng = np.random.default_rng(seed)
    S = structure.basis()
    x = np.concatenate([rng.normal(size=structure.n_params) * 0.7,
                        rng.normal(size=S.shape[1])])
    targets = (0.6, 0.0 if structure.symmetric else 0.2, 0.9, 0.1)
    n_w = structure.n_params

    def python_residual(x):
        return hidden_residuals(structure, structure.thresholds(x[:n_w]), S @ x[n_w:],
                                *targets)

    r, ok = hidden_residuals_at(x, structure.symmetric, structure.k, *targets)
    want = python_residual(x)
    if want is None:
        assert not ok
        return
    assert ok
    np.testing.assert_allclose(r, want, rtol=1e-11, atol=1e-13)
    J, ok = hidden_jacobian(x, structure.symmetric, structure.k, *targets)
    J_want = _central_jacobian(python_residual, x)
    if J_want is None:
        assert not ok
        return
    # Central differences amplify the rounding of the residuals by 1 / h = 1e7.
    np.testing.assert_allclose(J, J_want, rtol=1e-6, atol=1e-7)


# Cases where Newton from the activation's own quantization converges (lrelu, abs, tanh, sin,
# gelu), and one where it does not (relu at k = 9), at which both paths must give up.
@pytest.mark.parametrize(("act", "tau", "k"), [("lrelu", 1.0, 11), ("abs", 1.0, 9),
                                               ("tanh", 2.0, 11), ("sin", 1.0, 5),
                                               ("gelu", 2.0, 8), ("relu", 1.0, 9)])
def test_newton_matching_equals_python(act, tau, k):
    activation = parse_activations([act])[0]
    target = activation_constants(act, tau)
    symmetric = activation.odd
    z = activation_thresholds(activation.fn, tau, k, symmetric)
    structure = LevelStructure(z.size + 1, symmetric)
    levels = conditional_levels(activation.fn, tau, z)
    moments = (tau * target.d1, tau**2 * target.d2, target.tau2_next, tau**2 * target.d3)
    fast = match_hidden_newton(structure, z, levels - levels.mean(), *moments)
    ref = match_hidden_newton(structure, z, levels - levels.mean(), *moments, compiled=False)
    assert (fast is None) == (ref is None) == (act == "relu")
    if fast is not None:
        # The system is under-determined, so its solutions form a manifold. The Jacobians
        # differ by ~1e-7 relative (central differences of residuals that differ by
        # rounding), and the damped minimum-norm steps amplify that into a different point of
        # the same solution branch (seen: up to 1e-4 relative). Both must be exact solutions.
        for got, want in zip(fast, ref, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)
        assert np.max(np.abs(hidden_residuals(structure, *fast, *moments))) <= 1e-14
