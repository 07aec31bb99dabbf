"""Compressed networks: the sparse kernel against dense products, the forward pass against a plain
NumPy loop, and the kernels against ``ntk.empirical`` built from the very same weights.

Float tolerance of ``TernaryMatrix.matmul``. Row i of the product is scale times a sum of
k_i = nnz(row i) terms +-X[j, c]; any summation order in precision u (2^-24 for float32, 2^-53
for float64) is within (k_i - 1) u sum |terms| of the exact sum, and the final multiplication by
the scale adds one more rounding. So |Y - W X| <= (k_max + 1) u (|W| |X|) entrywise, checked
below against the float64 (or exact-integer) dense product.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nets.compressed import CompressedNetwork, DenseNetwork, TernaryMatrix, sample_ternary_signs
from ntk.activations import step_activation
from ntk.constants import tau_chain
from ntk.empirical import empirical_kernels, network_kernels
from ntk.weights import sample_weights

EPS = (0.0, 0.5, 0.9, 0.99)
UNIT_ROUNDOFF = {np.float32: 2.0**-24, np.float64: 2.0**-53}
# Thresholds off the lattices that sums of round levels times 1/sqrt(d(1 - eps)) form: an exact
# tie at a threshold would fall on either side depending on the summation order.
STEP3 = step_activation([-0.6123, 0.6123], [-1.0, 0.0, 1.0])
STEP4 = step_activation([-0.8137, 0.0137, 0.8311], [-1.5, -0.5, 0.5, 1.5])


def assert_product_close(T: TernaryMatrix, X: np.ndarray, Y: np.ndarray) -> None:
    S = T.to_signs().astype(np.float64)
    exact = T.scale * (S @ X.astype(np.float64))
    k_max = int(np.abs(S).sum(axis=1).max())
    u = UNIT_ROUNDOFF[Y.dtype.type]
    bound = (k_max + 1) * u * T.scale * (np.abs(S) @ np.abs(X.astype(np.float64)))
    assert np.all(np.abs(Y - exact) <= bound)


# -- sign sampling -------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", EPS)
def test_signs_reproduce_the_ternary_weight_law_of_ntk_weights(eps):
    signs = sample_ternary_signs((30, 50), eps, np.random.default_rng(7))
    weights = sample_weights(f"ternary:{eps}", (30, 50), np.random.default_rng(7))
    assert signs.dtype == np.int8
    np.testing.assert_array_equal(signs / math.sqrt(1 - eps), weights)


def test_sign_frequencies_follow_the_law():
    eps, size = 0.7, 200_000
    signs = sample_ternary_signs(size, eps, np.random.default_rng(8))
    counts = np.array([np.sum(signs == v) for v in (-1, 0, 1)])
    expected = size * np.array([(1 - eps) / 2, eps, (1 - eps) / 2])
    # Each count is binomial: 5 standard deviations.
    assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected))


def test_sign_sampling_rejects_bad_input():
    rng = np.random.default_rng(0)
    for eps in (-0.1, 1.0, math.nan):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            sample_ternary_signs((2, 2), eps, rng)
    with pytest.raises(TypeError, match="Generator"):
        sample_ternary_signs((2, 2), 0.5, 0)


# -- TernaryMatrix -------------------------------------------------------------------------------

def test_packed_form_is_sorted_csr_and_round_trips():
    signs = np.array([[1, 0, -1, 1], [0, 0, 0, 0], [-1, -1, 1, 0]], dtype=np.int8)
    T = TernaryMatrix(signs, 2.0)
    assert T.shape == (3, 4) and T.nnz == 6 and T.scale == 2.0
    np.testing.assert_array_equal(T.plus_indptr, [0, 2, 2, 3])
    np.testing.assert_array_equal(T.plus_indices, [0, 3, 2])
    np.testing.assert_array_equal(T.minus_indptr, [0, 1, 1, 3])
    np.testing.assert_array_equal(T.minus_indices, [2, 0, 1])
    assert T.plus_indices.dtype == np.int32 and T.minus_indices.dtype == np.int32
    np.testing.assert_array_equal(T.to_signs(), signs)
    np.testing.assert_array_equal(T.to_dense(), 2.0 * signs)
    assert T.to_dense(np.float32).dtype == np.float32
    # Two int64 row pointers of 4 entries, 6 int32 indices, one float64 scale.
    assert T.nbytes == 2 * 4 * 8 + 6 * 4 + 8


@settings(max_examples=80, deadline=None)
@given(d_out=st.integers(1, 40), d_in=st.integers(1, 40), n=st.integers(0, 50),
       eps=st.sampled_from(EPS), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_equals_the_dense_product(d_out, d_in, n, eps, dtype, seed):
    rng = np.random.default_rng(seed)
    T = TernaryMatrix(sample_ternary_signs((d_out, d_in), eps, rng), 1 / math.sqrt(1 - eps))
    X = rng.standard_normal((d_in, n)).astype(dtype)
    Y = T.matmul(X)
    assert Y.dtype == dtype and Y.shape == (d_out, n) and Y.flags.c_contiguous
    assert_product_close(T, X, Y)


@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_at_a_realistic_size(eps, dtype):
    rng = np.random.default_rng(9)
    T = TernaryMatrix(sample_ternary_signs((300, 500), eps, rng), 1 / math.sqrt(1 - eps))
    X = rng.standard_normal((500, 257)).astype(dtype)
    assert_product_close(T, X, T.matmul(X))


def test_matmul_is_exact_on_small_integers():
    # Integer sums below 2^24 are exact in float32: any error would be a kernel bug.
    rng = np.random.default_rng(10)
    signs = sample_ternary_signs((64, 129), 0.3, rng)
    X = rng.integers(-50, 50, size=(129, 33)).astype(np.float32)
    Y = TernaryMatrix(signs, 1.0).matmul(X)
    np.testing.assert_array_equal(Y, signs.astype(np.float32) @ X)


def test_matmul_accepts_views_and_promotes_other_dtypes():
    rng = np.random.default_rng(11)
    T = TernaryMatrix(sample_ternary_signs((20, 30), 0.5, rng), 1.5)
    X = rng.standard_normal((60, 40))
    view = X[::2, ::-3]
    np.testing.assert_allclose(T.matmul(view), T.to_dense() @ view, rtol=1e-12, atol=1e-12)
    Xi = rng.integers(-3, 3, size=(30, 5))
    Y = T.matmul(Xi)
    assert Y.dtype == np.float64
    np.testing.assert_allclose(Y, T.to_dense() @ Xi, rtol=1e-12, atol=1e-12)


def test_ternary_matrix_rejects_bad_input():
    good = np.array([[1, 0], [0, -1]], dtype=np.int8)
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}"):
        TernaryMatrix(np.array([[2, 0]]), 1.0)
    with pytest.raises(ValueError, match="integer"):
        TernaryMatrix(good.astype(float), 1.0)
    with pytest.raises(ValueError, match="2-D"):
        TernaryMatrix(np.array([1, 0, -1]), 1.0)
    with pytest.raises(ValueError, match="2-D"):
        TernaryMatrix(np.zeros((0, 3), dtype=np.int8), 1.0)
    for scale in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="scale"):
            TernaryMatrix(good, scale)
    T = TernaryMatrix(good, 1.0)
    with pytest.raises(ValueError, match="d_in = 2"):
        T.matmul(np.ones((3, 4)))
    with pytest.raises(ValueError, match="d_in = 2"):
        T.matmul(np.ones(2))
    with pytest.raises(ValueError, match="real"):
        T.matmul(np.ones((2, 2), dtype=complex))


# -- networks ------------------------------------------------------------------------------------

def plain_forward(X, weights, acts, centring):
    """Sigma_L by the definition, with dense float64 weights."""
    S = X
    for W, act, m in zip(weights, acts, centring, strict=True):
        S = (np.asarray(act.fn(W @ S), dtype=np.float64) - m) / math.sqrt(W.shape[0])
    return S


@pytest.fixture(scope="module")
def data():
    X = np.random.default_rng(12).standard_normal((40, 25)) / math.sqrt(40)
    return X, math.sqrt(np.mean(np.sum(X**2, axis=0)))


@pytest.mark.parametrize("eps", EPS)
def test_features_equal_a_plain_forward_with_the_dense_weights(data, eps):
    X, tau0 = data
    net = CompressedNetwork.random(40, (60, 50, 30), ["relu", STEP4, STEP3], eps, tau0, seed=1)
    dense = [W.to_dense() for W in net.weights]
    ref = plain_forward(X, dense, net.activations, net.centring)
    np.testing.assert_allclose(net.features(X, np.float64), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.ck(X, np.float64), ref.T @ ref, rtol=1e-12, atol=1e-12)
    F32 = net.features(X)
    assert F32.dtype == np.float32 and F32.shape == (30, 25)
    # A step output lies on its levels (minus m, over sqrt d); a float32 rounding of the input
    # could move it to a neighbouring level only by landing exactly on a threshold.
    levels = (np.array([-1.0, 0.0, 1.0]) - net.centring[-1]) / math.sqrt(30)
    assert np.all(np.min(np.abs(F32[..., None] - levels), axis=-1) < 1e-6)
    assert np.mean(ref.astype(np.float32) == F32) > 0.99


def test_random_network_reproduces_network_kernels_weight_for_weight(data):
    X, tau0 = data
    acts = [STEP4, "tanh"]
    net = CompressedNetwork.random(40, (70, 80), acts, 0.9, tau0, seed=5)
    ck_ref, _ = network_kernels(X, acts, "ternary:0.9", np.random.default_rng(5),
                                width=(70, 80), tau0=tau0, ntk=False)
    np.testing.assert_allclose(net.ck(X, np.float64), ck_ref, rtol=1e-12, atol=1e-12)
    one = empirical_kernels(X, acts, width=(70, 80), draws=1, weights="ternary:0.9", seed=5,
                            tau0=tau0, ntk=False, progress=False)
    np.testing.assert_allclose(net.ck(X, np.float64), one.ck, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.ck(X), ck_ref, rtol=1e-4, atol=1e-5)
    assert net.centring == tuple(c.m0 for c in tau_chain(net.activations, tau0))
    assert net.seed == 5 and net.widths == (70, 80) and net.input_dim == 40


def test_mean_ck_matches_empirical_kernels_within_monte_carlo_noise(data):
    # Independent draws on both sides: the means agree up to their split-half noise (about
    # 3 % each here, so the comparison resolves a few-percent difference of law).
    X, tau0 = data
    acts, widths, draws = ["relu", STEP3], (600, 600), 100
    cks = [CompressedNetwork.random(40, widths, acts, 0.5, tau0, seed=1000 + r).ck(X, np.float64)
           for r in range(draws)]
    ours = np.mean(cks, axis=0)
    half = np.mean(cks[0::2], axis=0) - np.mean(cks[1::2], axis=0)
    ours_noise = np.linalg.norm(half, 2) / (2 * np.linalg.norm(ours, 2))
    ref = empirical_kernels(X, acts, width=widths, draws=draws, weights="ternary:0.5", seed=3,
                            tau0=tau0, ntk=False, progress=False)
    rel = np.linalg.norm(ours - ref.ck, 2) / np.linalg.norm(ref.ck, 2)
    assert rel <= 4 * math.hypot(ours_noise, ref.ck_noise)
    assert max(ours_noise, ref.ck_noise) < 0.05


def test_dense_network_reproduces_network_kernels_in_float32(data):
    X, tau0 = data
    acts = ["relu", "relu"]
    net = DenseNetwork.random(40, (70, 60), acts, tau0, seed=4)
    assert all(W.dtype == np.float32 for W in net.weights)
    ck_ref, _ = network_kernels(X, acts, "gaussian", np.random.default_rng(4), width=(70, 60),
                                tau0=tau0, ntk=False, dtype=np.float32)
    np.testing.assert_allclose(net.ck(X), ck_ref, rtol=1e-4, atol=1e-5)
    ref = plain_forward(X, [W.astype(np.float64) for W in net.weights], net.activations,
                        net.centring)
    np.testing.assert_allclose(net.features(X, np.float64), ref, rtol=1e-12, atol=1e-12)
    assert net.widths == (70, 60) and net.input_dim == 40


def test_network_construction_rejects_bad_input(data):
    _, tau0 = data
    W1 = TernaryMatrix(np.ones((3, 4), dtype=np.int8), 1.0)
    W2 = TernaryMatrix(np.ones((2, 3), dtype=np.int8), 1.0)
    with pytest.raises(ValueError, match="expects 4 inputs"):
        CompressedNetwork((W1, W1), ("relu", "relu"), (0.0, 0.0), 0.5)
    with pytest.raises(ValueError, match="as many activations"):
        CompressedNetwork((W1, W2), ("relu",), (0.0, 0.0), 0.5)
    with pytest.raises(ValueError, match="as many activations"):
        CompressedNetwork((W1, W2), "relu,relu", (0.0,), 0.5)
    with pytest.raises(ValueError, match="finite"):
        CompressedNetwork((W1, W2), "relu,relu", (0.0, math.nan), 0.5)
    with pytest.raises(ValueError, match="eps"):
        CompressedNetwork((W1, W2), "relu,relu", (0.0, 0.0), 1.0)
    with pytest.raises(ValueError, match="TernaryMatrix"):
        CompressedNetwork((np.ones((3, 4)),), ("relu",), (0.0,), 0.5)
    with pytest.raises(ValueError, match="at least one layer"):
        CompressedNetwork((), (), (), 0.5)
    with pytest.raises(ValueError, match="unknown activation"):
        CompressedNetwork((W1,), ("nope",), (0.0,), 0.5)
    with pytest.raises(ValueError, match="expects 4 inputs"):
        DenseNetwork((np.ones((3, 4)), np.ones((2, 4))), ("relu", "relu"), (0.0, 0.0))
    with pytest.raises(ValueError, match="widths"):
        CompressedNetwork.random(40, (10, 0), "relu,relu", 0.5, tau0)
    with pytest.raises(ValueError, match="2 widths for 1"):
        CompressedNetwork.random(40, (10, 10), "relu", 0.5, tau0)
    with pytest.raises(ValueError, match="tau0"):
        DenseNetwork.random(40, (10,), "relu", -1.0)


def test_features_reject_bad_input(data):
    X, tau0 = data
    net = CompressedNetwork.random(40, (10,), [STEP3], 0.5, tau0)
    with pytest.raises(ValueError, match="p = 40"):
        net.features(X[:30])
    with pytest.raises(ValueError, match="p = 40"):
        net.features(X[:, 0])
    bad = X.copy()
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        net.features(bad)
    with pytest.raises(ValueError, match="dtype"):
        net.ck(X, np.float16)
