"""Tiles of the exact kernels (ntk.tiles) against the whole-matrix recursion (ntk.exact)."""

import pickle
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntk.exact import exact_kernels
from ntk.tiles import check_portable, kernel_matrix, kernel_plan, kernel_tile
from rmt import gaussian_mixture, sample_gmm

# The tiles' X^T X is a general product, the whole kernel's a symmetric rank-k update: their
# rounding (~1e-16 of the scale) is all that may differ.
TOL = 1e-14


def _data(n=240, p=120, seed=3):
    X = sample_gmm(gaussian_mixture(p), n, seed=seed).X.copy()
    # A duplicate, a near-duplicate and an antipodal pair: the 2-D quadrature path.
    X[:, 5] = X[:, 6]
    X[:, 7] = X[:, 8] * (1 + 1e-7)
    X[:, 100] = -X[:, 9]
    return X


def _assembled(X, plan, row_edges, col_edges):
    n = X.shape[1]
    ck, ntk = np.empty((n, n)), np.empty((n, n))
    for r0, r1 in pairwise(row_edges):
        for c0, c1 in pairwise(col_edges):
            c, k = kernel_tile(X, plan, slice(r0, r1), slice(c0, c1))
            ck[r0:r1, c0:c1] = c
            if k is not None:
                ntk[r0:r1, c0:c1] = k
    return ck, ntk


@pytest.mark.parametrize("acts", [["relu"] * 3, ["tanh", "gelu"], ["erf", "abs"], ["swish"]])
def test_tiles_equal_the_whole_kernel(acts):
    X = _data()
    whole = exact_kernels(X, acts)
    plan = kernel_plan(X, acts)
    ck, ntk = _assembled(X, plan, [0, 70, 160, 240], [0, 100, 101, 240])
    for got, want in ((ck, whole.ck), (ntk, whole.ntk)):
        assert np.max(np.abs(got - want)) <= TOL * np.max(np.abs(want))


def test_ck_of_an_activation_with_jumps():
    X = _data()
    whole = exact_kernels(X, ["sign", "relu"], ntk=False)
    plan = kernel_plan(X, ["sign", "relu"], ntk=False)
    ck, _ = _assembled(X, plan, [0, 120, 240], [0, 240])
    assert np.max(np.abs(ck - whole.ck)) <= TOL * np.max(np.abs(whole.ck))
    with pytest.raises(ValueError, match="without the NTK"):
        kernel_tile(X, plan, slice(0, 2), slice(0, 2), ntk=True)


# Shared by the property test (Hypothesis draws many examples per test function call).
_X = _data()
_RELU_TANH = (_X, exact_kernels(_X, ["relu", "tanh"]), kernel_plan(_X, ["relu", "tanh"]))


@settings(max_examples=15, deadline=None)
@given(rows=st.lists(st.integers(0, 239), min_size=1, max_size=30),
       cols=st.lists(st.integers(0, 239), min_size=1, max_size=30))
def test_any_index_sets(rows, cols):
    """Rows and columns in any order, with repeats: the entries of the whole kernel."""
    X, whole, plan = _RELU_TANH
    ck, ntk = kernel_tile(X, plan, np.array(rows), np.array(cols))
    block = np.ix_(rows, cols)
    assert np.max(np.abs(ck - whole.ck[block])) <= TOL * np.max(np.abs(whole.ck))
    assert np.max(np.abs(ntk - whole.ntk[block])) <= TOL * np.max(np.abs(whole.ntk))


def test_plan_travels_by_activation_names():
    X, _, plan = _RELU_TANH
    again = pickle.loads(pickle.dumps(plan))
    assert [a.name for a in again.acts] == ["relu", "tanh"]
    np.testing.assert_array_equal(kernel_tile(X, again, slice(0, 50), slice(0, 50))[1],
                                  kernel_tile(X, plan, slice(0, 50), slice(0, 50))[1])
    custom = kernel_plan(X[:, :20], [np.tanh], ntk=False)
    with pytest.raises(ValueError, match="not a catalogue activation"):
        check_portable(custom.acts)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 0)), "2-D array"), (np.full((2, 3), np.nan), "finite"),
])
def test_bad_data(bad, match):
    with pytest.raises(ValueError, match=match):
        kernel_plan(bad, "relu")


def test_zero_sample_and_bad_options():
    X = _data()[:, :10].copy()
    X[:, 4] = 0
    with pytest.raises(ValueError, match="sample 4 has zero norm"):
        kernel_plan(X, "relu")
    with pytest.raises(ValueError, match="tol"):
        kernel_plan(_data()[:, :10], "relu", tol=2.0)
    with pytest.raises(ValueError, match="NTK undefined"):
        kernel_plan(_data()[:, :10], "sign")


def test_kernel_matrix_holds_one_kernel_equal_to_the_whole():
    X, whole, plan = _RELU_TANH
    for kernel, want in (("ck", whole.ck), ("ntk", whole.ntk)):
        got = kernel_matrix(X, plan, kernel, tile=64)
        assert np.max(np.abs(got - want)) <= TOL * np.max(np.abs(want))
        np.testing.assert_array_equal(got, got.T)
    with pytest.raises(ValueError, match="kernel must be"):
        kernel_matrix(X, plan, "gram")


@pytest.mark.parametrize("acts, options", [
    (["relu", "tanh"], {}),
    (["erf", "relu"], {"pool": (1,), "padding": "circular"}),
    (["gelu"], {"padding": "valid", "readout": "gap"}),
    (["sign"], {"ntk": False}),
])
def test_cnn_tiles_equal_the_whole_kernels(acts, options):
    """A CNN plan's tiles (any rows and columns) are the entries of cnn_kernels, also after
    the plan travels (pickled by its arguments, rebuilt by a new self pass)."""
    from ntk.cnn_exact import cnn_kernels, cnn_plan

    x = np.random.default_rng(0).standard_normal((11, 2, 4, 4))
    x[3] = x[4]  # a duplicate image
    whole = cnn_kernels(x, acts, progress=False, **options)
    plan = pickle.loads(pickle.dumps(cnn_plan(x, acts, **options)))
    rows, cols = np.array([2, 9, 3, 4, 0]), np.array([4, 1, 10, 3])
    ck, ntk = plan.tile(rows, cols)
    block = np.ix_(rows, cols)
    assert np.max(np.abs(ck - whole.ck[block])) <= TOL * np.max(np.abs(whole.ck))
    if whole.ntk is None:
        assert ntk is None
    else:
        assert np.max(np.abs(ntk - whole.ntk[block])) <= TOL * np.max(np.abs(whole.ntk))
