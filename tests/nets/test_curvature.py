"""Exact Hessian-vector products of a model's loss: finite differences, a closed-form Hessian,
the spectral tools of ``solvers.hessian`` on them, batching, float32 models, and errors."""

import itertools

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator

from nets.curvature import DENSE_HESSIAN_MAX, LossCurvature
from nets.layers import Activation, AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d
from nets.model import Sequential
from ntk.activations import activation, step_activation
from solvers.hessian import extreme_eigenpairs, hutchinson_trace, slq_density

F64 = np.float64


def tanh_mlp(rng, sizes=(6, 8, 3), act="tanh", loss="cross_entropy"):
    layers = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(sizes)):
        if i:
            layers.append(Activation(act))
        layers.append(Dense(d_in, d_out, rng=rng, init="glorot", dtype=F64))
    model = Sequential(layers, loss=loss)
    for layer in model.layers[::2]:
        layer.b[:] = 0.1 * rng.standard_normal(layer.b.shape)  # non-zero biases
    return model


def small_cnn(rng):
    """Conv(2->3, pad 1) relu maxpool, conv(3->4) gelu avgpool, flatten, dense: 184 params."""
    return Sequential([
        Conv2d(2, 3, 3, padding=1, rng=rng, dtype=F64), Activation("relu"), MaxPool2d(2),
        Conv2d(3, 4, 3, rng=rng, dtype=F64), Activation("gelu"), AvgPool2d(2), Flatten(),
        Dense(4, 3, rng=rng, dtype=F64)])


def weights(curv):
    return curv.flatten([a for i in curv.layers for a in curv._weights[i][:2]])


def hvp_fd_error(curv, seed=1, h=1e-5):
    """Relative error of H v against central differences of the gradient along unit v.

    Truncation h^2 |D^3 L| / 6 ~ 1e-10 and rounding 1e-16 |g| / h ~ 1e-11 relative: 1e-5
    leaves room. (With ReLU and max pooling, h is small enough that no kink is crossed.)
    """
    v = np.random.default_rng(seed).standard_normal(curv.n)
    v /= np.linalg.norm(v)
    theta = weights(curv)
    fd = (curv.gradient(theta + h * v) - curv.gradient(theta - h * v)) / (2 * h)
    hv = curv.hvp(v)
    return np.linalg.norm(hv - fd) / np.linalg.norm(hv)


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6))
    labels = rng.integers(0, 3, 20)
    targets = rng.standard_normal((20, 3))
    Xc = rng.standard_normal((10, 2, 9, 9))
    yc = rng.integers(0, 3, 10)
    return {
        "mlp_ce": (tanh_mlp(rng), X, labels, {}),
        "mlp_mse": (tanh_mlp(rng, (6, 7, 5, 3), act="swish", loss="mse"), X, targets, {}),
        "cnn": (small_cnn(rng), Xc, yc, {}),
        "cnn_one_layer": (small_cnn(rng), Xc, yc, {"layers": [3]}),
        "cnn_batches": (small_cnn(rng), Xc, yc, {"batch_size": 3}),
    }


@pytest.mark.parametrize("case", ["mlp_ce", "mlp_mse", "cnn", "cnn_one_layer", "cnn_batches"])
def test_hvp_matches_finite_differences_of_gradient(cases, case):
    model, X, y, kwargs = cases[case]
    curv = LossCurvature(model, X, y, **kwargs)
    for seed in (1, 2):
        assert hvp_fd_error(curv, seed) < 1e-5


@pytest.mark.parametrize("case", ["mlp_ce", "mlp_mse", "cnn", "cnn_one_layer"])
def test_gradient_matches_finite_differences_of_loss(cases, case):
    model, X, y, kwargs = cases[case]
    curv = LossCurvature(model, X, y, **kwargs)
    theta = weights(curv)
    h = 1e-6
    idx = np.random.default_rng(3).choice(curv.n, size=min(curv.n, 40), replace=False)
    fd = np.array([(curv.loss(theta + h * e) - curv.loss(theta - h * e)) / (2 * h)
                   for e in np.eye(curv.n)[idx]])
    g = curv.gradient()
    assert np.linalg.norm(g[idx] - fd) / np.linalg.norm(fd) < 1e-6
    assert curv.loss() == pytest.approx(model.evaluate(X, y)[0], rel=1e-13)


def test_batches_and_layer_selection_are_consistent(cases):
    model, X, y, _ = cases["cnn"]
    full = LossCurvature(model, X, y)
    v = np.random.default_rng(4).standard_normal(full.n)
    batched = LossCurvature(model, X, y, batch_size=3).hvp(v)
    np.testing.assert_allclose(batched, full.hvp(v), rtol=1e-12, atol=1e-14)
    # Restricting to layer 3 gives the diagonal block of the full Hessian for its W and b.
    part = LossCurvature(model, X, y, layers=[3])
    assert part.shapes == ((4, 3, 3, 3), (4,))
    start = 3 * 2 * 9 + 3  # W and b of layer 0 come first
    block = slice(start, start + part.n)
    u = np.zeros(full.n)
    u[block] = v[:part.n]
    np.testing.assert_allclose(part.hvp(v[:part.n]), full.hvp(u)[block], rtol=1e-12,
                               atol=1e-14)


def test_flatten_round_trip(cases):
    model, X, y, _ = cases["mlp_ce"]
    curv = LossCurvature(model, X, y)
    assert curv.shapes == ((6, 8), (8,), (8, 3), (3,))
    assert curv.n == 6 * 8 + 8 + 8 * 3 + 3
    theta = np.arange(curv.n, dtype=float)
    parts = curv.unflatten(theta)
    assert [p.shape for p in parts] == list(curv.shapes)
    np.testing.assert_array_equal(curv.flatten(parts), theta)
    np.testing.assert_array_equal(weights(curv), np.concatenate(
        [a.ravel() for a in model.params()]))


def closed_form_hessian(model, X, T):
    """Hessian of (1/(N c)) sum ||tanh(x W1 + b1) W2 + b2 - t||^2, derived by hand.

    With extended inputs xe = [x, 1], A = [W1; b1] (d+1, h), se = [tanh(xe A), 1], B = [W2; b2]
    (h+1, c), z = se B, r = z - t, kappa = 2 / (N c), the Hessian in the order (A, B) (which is
    W1, b1, W2, b2 raveled) is kappa sum_n (J^T J + sum_k r_k d^2 z_k), with
      dz_k/dA_ij = B_jk s'_j xe_i,  dz_k/dB_jl = se_j delta_kl,
      d^2 z_k/dA_ij dA_i'j' = delta_jj' B_jk s''_j xe_i xe_i',
      d^2 z_k/dA_ij dB_j'l = delta_jj' delta_kl s'_j xe_i  (j' < h),  d^2 z/dB^2 = 0.
    """
    W1, b1, W2, b2 = model.params()
    N, d = X.shape
    h, c = W2.shape
    A, B = np.vstack([W1, b1]), np.vstack([W2, b2])
    nA, nB = A.size, B.size
    H = np.zeros((nA + nB, nA + nB))
    for x, t in zip(X, T, strict=True):
        xe = np.append(x, 1.0)
        s = np.tanh(xe @ A)
        d1, d2 = 1 - s**2, -2 * s * (1 - s**2)
        se = np.append(s, 1.0)
        r = se @ B - t
        J = np.zeros((c, nA + nB))
        J[:, :nA] = np.einsum("jk,j,i->kij", B[:h], d1, xe).reshape(c, nA)
        J[:, nA:] = np.einsum("j,kl->kjl", se, np.eye(c)).reshape(c, nB)
        H += J.T @ J
        H[:nA, :nA] += np.kron(np.outer(xe, xe), np.diag(d2 * (B[:h] @ r)))
        AB = np.zeros((d + 1, h, h + 1, c))
        AB[:, np.arange(h), np.arange(h), :] = np.einsum("i,j,l->ijl", xe, d1, r)
        H[:nA, nA:] += AB.reshape(nA, nB)
        H[nA:, :nA] += AB.reshape(nA, nB).T
    return 2 / (N * c) * H


def test_dense_hessian_equals_closed_form():
    rng = np.random.default_rng(5)
    model = tanh_mlp(rng, (4, 5, 3), loss="mse")
    X, T = rng.standard_normal((15, 4)), rng.standard_normal((15, 3))
    H = LossCurvature(model, X, T).dense_hessian()
    expected = closed_form_hessian(model, X, T)
    assert np.abs(H - H.T).max() < 1e-12 * np.abs(H).max()
    np.testing.assert_allclose(H, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    # The negative curvature comes from the residual term: the check is not Gauss-Newton only.
    assert np.linalg.eigvalsh(expected)[0] < -1e-3


def test_readout_below_frozen_step_activation_and_float32_model():
    """Random features: a frozen layer and a sign activation below the selected readout.

    For mse on a readout z = f B (f = [features, 1]) the Hessian is (2 / (N c)) F^T F (x) I_c.
    """
    rng = np.random.default_rng(6)
    layers = [Dense(5, 7, rng=rng, trainable=False), Activation(step_activation([0.0],
                                                                                [-1.0, 1.0])),
              Dense(7, 2, rng=rng)]
    model = Sequential(layers, loss="mse")  # float32
    W0 = [a.copy() for a in model.params()]
    X, T = rng.standard_normal((12, 5)).astype(np.float32), rng.standard_normal((12, 2))
    curv = LossCurvature(model, X, T)
    assert curv.layers == (2,)
    F = np.hstack([np.sign(X.astype(F64) @ layers[0].W.astype(F64)), np.ones((12, 1))])
    expected = 2 / (12 * 2) * np.kron(F.T @ F, np.eye(2))
    np.testing.assert_allclose(curv.dense_hessian(), expected, rtol=1e-13, atol=1e-15)
    assert all(np.array_equal(a, b) for a, b in zip(model.params(), W0, strict=True))
    assert model.params()[0].dtype == np.float32


@pytest.fixture(scope="module")
def spectral_case():
    """A tanh MLP 8-14-12-3 with cross-entropy (345 parameters) and its exact spectrum."""
    rng = np.random.default_rng(7)
    model = tanh_mlp(rng, (8, 14, 12, 3))
    X, y = rng.standard_normal((40, 8)), rng.integers(0, 3, 40)
    curv = LossCurvature(model, X, y)
    H = curv.dense_hessian()
    return curv, H, np.linalg.eigvalsh(H)


def test_lanczos_extremes_match_dense_eigh(spectral_case):
    curv, H, spectrum = spectral_case
    assert curv.n == 345
    assert np.abs(H - H.T).max() < 1e-12 * np.abs(H).max()
    scale = np.abs(spectrum).max()
    top, vecs = extreme_eigenpairs(curv.hvp, curv.n, k=5, which="LA")
    np.testing.assert_allclose(top, spectrum[::-1][:5], rtol=1e-8)
    np.testing.assert_allclose(H @ vecs, vecs * top, atol=1e-8 * scale)
    # The bottom eigenvalues are small (negative curvature from the residual term): compare
    # them relative to the spectral norm.
    bottom, _ = extreme_eigenpairs(curv.hvp, curv.n, k=3, which="SA")
    assert bottom[0] < 0
    np.testing.assert_allclose(bottom, spectrum[:3], rtol=0, atol=1e-8 * scale)
    op = curv.operator()
    assert isinstance(op, LinearOperator) and op.shape == (curv.n, curv.n)
    v = np.random.default_rng(8).standard_normal(curv.n)
    np.testing.assert_allclose(op @ v, H @ v, rtol=1e-12, atol=1e-14 * scale)
    np.testing.assert_allclose(op.matvec(v[:, None]).ravel(), H @ v, rtol=1e-12,
                               atol=1e-14 * scale)


def test_hutchinson_and_slq_against_exact_spectrum(spectral_case):
    curv, H, spectrum = spectral_case
    estimate, se = hutchinson_trace(curv.hvp, curv.n, samples=60, seed=1)
    # Fixed seed; 4 standard errors leave a ~6e-5 chance of a false failure.
    assert abs(estimate - np.trace(H)) < 4 * se
    # SLQ, one probe per call so that the probes can be compared. For probe p the Gauss
    # quadrature gives c_p(x) = n sum_{theta_j <= x} w_j; by the Chebyshev-Markov-Stieltjes
    # inequalities it is within b_p(x) = n max(w of the two nodes next to x) of the probe's
    # own count n ||P_{<=x} u_p||^2 (u_p the unit probe), whose mean over probes is the exact
    # count. So |mean c_p - count| <= 4 std(c_p) / sqrt(P) + mean b_p at 4 standard errors.
    # The points avoid the dense cluster of eigenvalues near 0 (rank-deficient Gauss-Newton
    # part), where one node carries ~100 eigenvalues and the bound says nothing.
    probes = 25
    dens = [slq_density(curv.hvp, curv.n, steps=40, probes=1, seed=s) for s in range(probes)]
    for x in np.quantile(spectrum, [0.1, 0.15, 0.85, 0.9]) + 1e-9 * np.abs(spectrum).max():
        counts = np.array([d.cumulative(x) for d in dens])
        bounds = []
        for d in dens:
            order = np.argsort(d.nodes)
            nodes, w = d.nodes[order], d.weights[order]
            j = np.searchsorted(nodes, x, side="right")
            bounds.append(w[max(j - 1, 0):j + 1].max())
        tol = 4 * counts.std(ddof=1) / np.sqrt(probes) + np.mean(bounds)
        exact = np.count_nonzero(spectrum <= x)
        assert abs(counts.mean() - exact) < tol
        assert tol < 0.08 * curv.n  # the test is not vacuous


def test_errors(cases):
    model, X, y, _ = cases["mlp_ce"]
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match="layers is empty"):
        LossCurvature(model, X, y, layers=[])
    with pytest.raises(ValueError, match="only Dense and Conv2d"):
        LossCurvature(model, X, y, layers=[1])
    with pytest.raises(ValueError, match="out of range"):
        LossCurvature(model, X, y, layers=[7])
    with pytest.raises(ValueError, match="repeated"):
        LossCurvature(model, X, y, layers=[0, 0])
    frozen = Sequential([Dense(6, 3, rng=rng, trainable=False, dtype=F64)])
    with pytest.raises(ValueError, match="no trainable"):
        LossCurvature(frozen, X, y)
    empty = Sequential([Flatten()])
    empty.layers = []
    with pytest.raises(ValueError, match="at least one layer"):
        LossCurvature(empty, X, y)
    with pytest.raises(ValueError, match="batch_size"):
        LossCurvature(model, X, y, batch_size=0)
    # Data.
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\) expects samples of shape \(6,\)"):
        LossCurvature(model, X[:, :5], y)
    with pytest.raises(ValueError, match="N >= 1"):
        LossCurvature(model, X[:0], y[:0])
    with pytest.raises(ValueError, match="20 integer labels"):
        LossCurvature(model, X, y[:5])
    with pytest.raises(ValueError, match="integer labels"):
        LossCurvature(model, X, np.zeros((20, 3)))
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        LossCurvature(model, X, y + 3)
    mse_model = tanh_mlp(rng, loss="mse")
    with pytest.raises(ValueError, match=r"mse targets must be numbers of shape \(20, 3\)"):
        LossCurvature(mse_model, X, np.zeros((20, 4)))
    cnn = small_cnn(rng)
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d\) expects samples \(C, H, W\)"):
        LossCurvature(cnn, np.zeros((2, 3, 9, 9)), np.array([0, 1]))
    # Activations above the lowest selected layer need a second derivative.
    for act, message in [(step_activation([0.0], [-1.0, 1.0]), "has jumps"),
                         (activation(np.tanh), "no second derivative")]:
        net = Sequential([Dense(6, 4, rng=rng, dtype=F64), Activation(act),
                          Dense(4, 3, rng=rng, dtype=F64)])
        with pytest.raises(ValueError, match=message):
            LossCurvature(net, X, y)
        assert LossCurvature(net, X, y, layers=[2]).n == 15  # below the selection: fine
    # Vectors.
    curv = LossCurvature(model, X, y)
    with pytest.raises(ValueError, match="length n = 83"):
        curv.hvp(np.zeros(82))
    with pytest.raises(ValueError, match="length n = 83"):
        curv.hvp(np.zeros((83, 1)))
    with pytest.raises(ValueError, match="length n"):
        curv.loss(np.zeros(84))
    with pytest.raises(ValueError, match="expected 4 arrays"):
        curv.flatten([np.zeros((6, 8))])
    with pytest.raises(ValueError, match="shape"):
        curv.flatten([np.zeros((8, 6)), np.zeros(8), np.zeros((8, 3)), np.zeros(3)])
    big = Sequential([Dense(100, 60, rng=rng, dtype=F64)])
    big_curv = LossCurvature(big, np.zeros((2, 100)), np.array([0, 1]))
    assert big_curv.n > DENSE_HESSIAN_MAX
    with pytest.raises(ValueError, match="DENSE_HESSIAN_MAX"):
        big_curv.dense_hessian()
