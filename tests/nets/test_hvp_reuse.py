"""Hessian-vector products that reuse the forward pass at fixed weights, against independent
references: the products recorded from the R-operator before the reuse
(``tests/nets/data/hvp_reference.npz``, cases in ``hvp_cases.py``), the same object with
nothing kept (``max_cache_bytes=0``), and central differences of the gradient; and the
guards that keep the reused quantities from going stale."""

from pathlib import Path

import numpy as np
import pytest
from hvp_cases import CASES, build, directions, indices, perturb

from nets import LossCurvature, mlp

REFERENCE = np.load(Path(__file__).parent / "data" / "hvp_reference.npz")
RTOL = 1e-12


def relative_error(got, want):
    return np.linalg.norm(got - want) / np.linalg.norm(want)


@pytest.mark.parametrize("case", CASES)
def test_products_match_recorded_reference_before_and_after_a_weight_change(case):
    model, X, y, kwargs = build(case)
    before = LossCurvature(model, X, y, **kwargs)
    idx = indices(before.shapes)
    perturb(model)
    after = LossCurvature(model, X, y, **kwargs)
    # Interleaved: products of one object never disturb the other's kept quantities.
    for v0, v1, r0, r1 in zip(directions(before.n, case, 0), directions(after.n, case, 1),
                              REFERENCE[f"{case}/0/hvp"], REFERENCE[f"{case}/1/hvp"],
                              strict=True):
        assert relative_error(before.hvp(v0)[idx], r0) < RTOL
        assert relative_error(after.hvp(v1)[idx], r1) < RTOL
    assert relative_error(r0, r1) > 1e-3  # the weight change is visible in the products
    for state, curv in enumerate((before, after)):
        key = f"{case}/{state}"
        assert curv.loss() == pytest.approx(float(REFERENCE[f"{key}/loss"]), rel=RTOL)
        assert relative_error(curv.gradient()[idx], REFERENCE[f"{key}/gradient"]) < RTOL
        assert 0 < curv.cache_bytes <= curv.max_cache_bytes


@pytest.mark.parametrize("case", ["mlp", "cnn", "tiny_cnn"])
def test_kept_quantities_give_the_products_of_recomputed_ones(case):
    """Many directions, with everything kept, nothing kept, and a budget that keeps only
    some batches."""
    model, X, y, kwargs = build(case)
    kwargs = {"batch_size": 32 if case == "mlp" else 4} | kwargs
    kept = LossCurvature(model, X, y, **kwargs)
    fresh = LossCurvature(model, X, y, max_cache_bytes=0, **kwargs)
    rng = np.random.default_rng(12)
    V = rng.standard_normal((5, kept.n))
    for v in V:
        want = fresh.hvp(v)
        np.testing.assert_allclose(kept.hvp(v), want, rtol=0, atol=RTOL * np.abs(want).max())
    assert fresh.cache_bytes == 0
    batches = -(-X.shape[0] // kwargs["batch_size"])
    per_batch = kept.cache_bytes / batches  # batches of equal size but the last
    partial = LossCurvature(model, X, y, max_cache_bytes=int(1.5 * per_batch), **kwargs)
    for v in V[:3]:
        assert relative_error(partial.hvp(v), kept.hvp(v)) < RTOL
    assert 0 < partial.cache_bytes <= 1.5 * per_batch
    # H is symmetric: u^T (H v) = v^T (H u) through the kept quantities.
    assert V[0] @ kept.hvp(V[1]) == pytest.approx(V[1] @ kept.hvp(V[0]), rel=1e-10)


def test_products_match_finite_differences_of_the_gradient():
    """nets.mlp (ReLU, cross-entropy): no kink is crossed for h = 1e-5 (truncation h^2 |D^3 L|
    ~ 1e-10, rounding 1e-16 |g| / h ~ 1e-11, relative)."""
    model, X, y, _ = build("mlp")
    curv = LossCurvature(model, X, y)
    theta = curv.flatten(model.params())
    for seed in (1, 2):
        v = np.random.default_rng(seed).standard_normal(curv.n)
        v /= np.linalg.norm(v)
        h = 1e-5
        fd = (curv.gradient(theta + h * v) - curv.gradient(theta - h * v)) / (2 * h)
        assert relative_error(curv.hvp(v), fd) < 1e-5


def test_weights_and_data_are_copied_and_read_only():
    """Changing the model, X or y after the first product cannot make the kept quantities
    stale: the object holds read-only float64 copies, and products stay those of the weights
    it was built with."""
    rng = np.random.default_rng(13)
    model = mlp(10, (8,), classes=3, act="tanh", rng=1)
    X, y = rng.standard_normal((12, 10)), rng.integers(0, 3, 12)
    curv = LossCurvature(model, X, y)
    v = rng.standard_normal(curv.n)
    before = curv.hvp(v)
    perturb(model)
    X += 1.0
    y[:] = (y + 1) % 3
    np.testing.assert_array_equal(curv.hvp(v), before)
    moved = LossCurvature(model, X, y).hvp(v)
    assert relative_error(moved, before) > 1e-3
    for a in (curv._weights[0].W, curv._weights[0].b, curv._X, curv._y):
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0


def test_cache_budget_errors():
    model, X, y, _ = build("tiny_cnn")
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_cache_bytes"):
            LossCurvature(model, X, y, max_cache_bytes=bad)
