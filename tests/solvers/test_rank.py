"""Rank search: the one-SVD profile against truncations computed rank by rank."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.rank import rank_profile, search_rank


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 12), n=st.integers(1, 12), seed=st.integers(0, 10**6))
def test_profile_matches_explicit_truncations(m, n, seed):
    rng = np.random.default_rng(seed)
    W, G = rng.standard_normal((m, n)), rng.standard_normal((m, n))
    change, noise, _ = rank_profile(W, G)
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    for r in range(min(m, n) + 1):
        Wr = (U[:, :r] * s[:r]) @ Vt[:r]
        assert change[r] == pytest.approx(np.sum(G * (Wr - W)), abs=1e-9)
        assert noise[r] == pytest.approx(np.linalg.norm(W - Wr) / np.linalg.norm(W), abs=1e-12)


def test_first_order_prediction_of_a_quadratic_loss():
    # L(W) = <A, W> + 0.5 ||W||^2: dL predicted by G = A + W, error 0.5 ||N||^2 exactly.
    rng = np.random.default_rng(1)
    W = rng.standard_normal((8, 6)) @ np.diag([5, 3, 1, 0.1, 0.05, 0.01])
    A = rng.standard_normal((8, 6))
    change, _, (U, s, Vt) = rank_profile(W, A + W)

    def loss(X):
        return np.sum(A * X) + 0.5 * np.sum(X * X)

    for r in range(7):
        N = (U[:, :r] * s[:r]) @ Vt[:r] - W
        assert loss(W + N) - loss(W) == pytest.approx(change[r] + 0.5 * np.sum(N * N), abs=1e-9)


def test_search_picks_the_smallest_acceptable_rank():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((10, 3)) @ rng.standard_normal((3, 10))  # rank 3
    W += 1e-6 * rng.standard_normal((10, 10))
    G = rng.standard_normal((10, 10))
    res = search_rank(W, G, tolerance=1e-3)
    assert res.rank == 3 and res.parameters == 60 and res.relative_noise < 1e-5
    strict = search_rank(W, G, tolerance=0.0, max_relative_noise=0.0)
    assert strict.rank == strict.full_rank == 10


def test_descent_only():
    rng = np.random.default_rng(3)
    W, G = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    res = search_rank(W, G, tolerance=0.0, max_relative_noise=1.0, require_descent=True)
    assert res.predicted_change <= 0


def test_bad_input():
    with pytest.raises(ValueError, match="shape of W"):
        rank_profile(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        rank_profile(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        search_rank(np.ones((2, 2)), np.ones((2, 2)), tolerance=-1)
