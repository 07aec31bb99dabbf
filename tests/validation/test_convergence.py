"""Convergence of the equivalents to the exact infinite-width kernels (spec section 6).

The error of a deterministic equivalent is O(n^-1/2) in operator norm; with one data draw per n
the fitted log-log slope over n = 200..1600 fluctuates by about +-0.1 around -0.5, hence the
accepted band [-0.65, -0.35].
"""

import pytest

from validation.experiments.spectra import convergence_experiment

NS = (200, 400, 800, 1600)


@pytest.mark.parametrize("kernel", ["ck", "ntk"])
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_error_decays_like_inverse_sqrt_n(act, L, kernel):
    r = convergence_experiment([act] * L, NS, kernel=kernel)
    errors = r.errors.mean(axis=1)
    assert -0.65 <= r.slope <= -0.35, (errors, r.slope)
    assert errors[-1] < errors[0]
    if (act, L, kernel) == ("relu", 1, "ck"):
        assert errors[-1] < 0.02
    if (act, L, kernel) == ("relu", 3, "ntk"):
        assert errors[-1] < 0.10
