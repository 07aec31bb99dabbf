"""Empirical kernels of finite random CNNs, checked against independent computations.

* CK and NTK of one network against a direct forward pass written here (shifted copies of the
  maps, no im2col) and J J^T with J the central-difference gradient of f in every filter entry,
  for every padding, with and without pooling, both readouts;
* the adjoint of the padding against ``ConvArchitecture.padded``;
* the Monte-Carlo mean against the exact kernels (ntk.cnn_exact): entry by entry in
  units of its standard error (one hidden layer, where the mean is unbiased for Gaussian
  filters, every architecture), and the error's fall like channels^-1/2 (two hidden layers,
  Gaussian and ternary:0.5 filters);
* bad input.
"""

import functools
import math

import numpy as np
import pytest
from scipy import special

import nets.cnn_kernels as cnn_kernels_module
from nets.cnn_kernels import (
    _pad_adjoint,
    cnn_network_kernels,
    empirical_cnn_kernels,
)
from ntk.cnn_architecture import PADDINGS, ConvArchitecture
from ntk.cnn_exact import cnn_kernels
from ntk.empirical import EmpiricalKernels
from ntk.weights import sample_weights

# Activations written out here, independently of ntk.activations.
PLAIN = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "erf": special.erf,
    "gelu": lambda z: z * special.ndtr(z),
}


def _shift(x, di, dj, padding):
    """s[..., a, b] = x[..., a + di, b + dj]: modulo the grid (circular) or zero outside."""
    if padding == "circular":
        return np.roll(x, (-di, -dj), axis=(-2, -1))
    H, W = x.shape[-2:]
    out = np.zeros_like(x)
    out[..., max(0, -di):min(H, H - di), max(0, -dj):min(W, W - dj)] = \
        x[..., max(0, di):min(H, H + di), max(0, dj):min(W, W + dj)]
    return out


def _conv(x, W, padding):
    """z = conv(W, x) / sqrt(C k^2) by the definition: the filter entry (i, j) multiplies the
    input at offset (i - (k-1)//2, j - (k-1)//2) ("same", "circular") or (i, j) ("valid"),
    a cross-correlation as in nets.layers.Conv2d."""
    k = W.shape[-1]
    H, Wd = x.shape[-2:]
    z = 0.0
    for i in range(k):
        for j in range(k):
            if padding == "valid":
                window = x[:, :, i:i + H - k + 1, j:j + Wd - k + 1]
            else:
                window = _shift(x, i - (k - 1) // 2, j - (k - 1) // 2, padding)
            z = z + np.einsum("oc,ncab->noab", W[:, :, i, j], window)
    return z / math.sqrt(W.shape[1] * k * k)


def _features(x, acts, Ws, arch, m):
    """Readout features F (n, P) of the network with filters Ws."""
    y = x
    for layer, (name, W, m_l) in enumerate(zip(acts, Ws, m, strict=True), start=1):
        y = PLAIN[name](_conv(y, W, arch.padding)) - m_l
        if layer in arch.pool:
            n, c, h, w = y.shape
            y = y.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    n, c = y.shape[:2]
    if arch.readout == "flatten":
        return y.reshape(n, -1) / math.sqrt(y[0].size)
    return y.mean(axis=(2, 3)) / math.sqrt(c)


def _direct_kernels(x, acts, arch, channels, law, seed, m, dtype=np.float64, h=1e-5):
    """CK = F F^T and NTK = F F^T + J J^T, J the central-difference gradient of f = v . F in
    every filter entry, for the filters and v drawn in the order cnn_network_kernels
    documents (computed in float64 whatever their dtype)."""
    rng = np.random.default_rng(seed)
    Ws, prev = [], x.shape[1]
    for c in channels:
        Ws.append(sample_weights(law, (c, prev, arch.filter_size, arch.filter_size), rng,
                                 dtype).astype(np.float64))
        prev = c
    F = _features(x, acts, Ws, arch, m)
    v = rng.standard_normal(F.shape[1], dtype=dtype).astype(np.float64)
    columns = []
    for W in Ws:
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + h
            up = _features(x, acts, Ws, arch, m) @ v
            W[idx] = old - h
            down = _features(x, acts, Ws, arch, m) @ v
            W[idx] = old
            columns.append((up - down) / (2 * h))
    J = np.array(columns).T
    return F @ F.T, F @ F.T + J @ J.T


def _rel(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)


def _opnorm_rel(A, B):
    return np.linalg.norm(A - B, 2) / np.linalg.norm(B, 2)


# -- one network --------------------------------------------------------------------------------

# (padding, k, image grid, pool, readout): every padding with and without pooling and both
# readouts; non-square grids, so that a height/width mix-up shows; an even k (asymmetric
# window); k = 5 circular on the 2 x 2 grid of layer 2 (the padding wraps around twice);
# pooling after both layers.
ARCHITECTURES = [
    ("same", 3, (4, 6), (), "flatten"),
    ("same", 3, (4, 6), (1,), "gap"),
    ("same", 2, (4, 6), (1,), "flatten"),
    ("same", 3, (4, 4), (1, 2), "flatten"),
    ("circular", 3, (4, 6), (), "gap"),
    ("circular", 3, (4, 6), (1,), "flatten"),
    ("circular", 2, (4, 6), (2,), "gap"),
    ("circular", 5, (4, 4), (1,), "flatten"),
    ("valid", 3, (6, 8), (), "flatten"),
    ("valid", 2, (5, 7), (1,), "gap"),
    ("valid", 2, (5, 7), (1,), "flatten"),
]


@pytest.mark.parametrize(("padding", "k", "grid", "pool", "readout"), ARCHITECTURES)
def test_kernels_match_direct_forward_and_finite_differences(padding, k, grid, pool, readout):
    # Smooth activations: central differences with h = 1e-5 are then exact up to ~1e-10
    # (O(h^2) and rounding). Unequal channel counts, so that a C_l / C_{l-1} mix-up cannot
    # cancel.
    acts, channels = ["tanh", "gelu"], (3, 2)
    x = np.random.default_rng(1).standard_normal((3, 2, *grid))
    arch = ConvArchitecture(2, k, padding, pool, readout)
    ck, ntk = cnn_network_kernels(x, acts, "gaussian", np.random.default_rng(5),
                                  channels=channels, filter_size=k, padding=padding, pool=pool,
                                  readout=readout)
    ck_ref, ntk_ref = _direct_kernels(x, acts, arch, channels, "gaussian", 5, (0.0, 0.0))
    assert ck.shape == ntk.shape == (3, 3) and ck.dtype == ntk.dtype == np.float64
    assert _rel(ck, ck_ref) < 1e-12
    assert _rel(ntk, ntk_ref) < 1e-7
    np.testing.assert_array_equal(ntk, ntk.T)


def test_relu_centring_and_weight_law_reach_the_network():
    # ReLU is piecewise linear: central differences are exact unless a pre-activation lies
    # within h of 0 (none does for these seeds; a miss would show as a large error).
    acts, channels, m = ["relu", "relu"], (4, 3), (0.3, -0.2)
    x = np.random.default_rng(2).standard_normal((3, 2, 4, 6))
    arch = ConvArchitecture(2, 3, "same", (1,), "gap")
    ck, ntk = cnn_network_kernels(x, "relu,relu", "ternary:0.5", np.random.default_rng(7),
                                  channels=channels, pool=[1], readout="gap", centring=m)
    ck_ref, ntk_ref = _direct_kernels(x, acts, arch, channels, "ternary:0.5", 7, m)
    assert _rel(ck, ck_ref) < 1e-12
    assert _rel(ntk, ntk_ref) < 1e-7


def test_float32_matches_float64_computation_of_the_same_weights():
    # float32 draws differ from float64 ones, so the reference uses the float32 filters in
    # float64 arithmetic; the difference is float32 rounding (~1e-7 per operation).
    acts, channels = ["tanh", "gelu"], (5, 4)
    x = np.random.default_rng(3).standard_normal((4, 2, 4, 6))
    arch = ConvArchitecture(2, 3, "circular", (1,), "flatten")
    ck, ntk = cnn_network_kernels(x, acts, "gaussian", np.random.default_rng(8),
                                  channels=channels, padding="circular", pool=(1,),
                                  dtype=np.float32)
    assert ck.dtype == ntk.dtype == np.float32
    ck_ref, ntk_ref = _direct_kernels(x, acts, arch, channels, "gaussian", 8, (0.0, 0.0),
                                      dtype=np.float32)
    assert _rel(ck, ck_ref) < 1e-5
    assert _rel(ntk, ntk_ref) < 1e-5


def test_channel_blocks_give_the_same_kernels(monkeypatch):
    # A budget of one byte makes every input channel its own block (patches, weight gradients
    # and back-propagation are then assembled from pieces).
    x = np.random.default_rng(5).standard_normal((3, 3, 4, 6))
    kwargs = {"channels": (4, 5), "padding": "circular", "pool": (1,)}
    whole = cnn_network_kernels(x, "tanh,relu", "gaussian", np.random.default_rng(1), **kwargs)
    monkeypatch.setattr(cnn_kernels_module, "_BLOCK_BYTES", 1)
    assert len(cnn_kernels_module._channel_blocks(np.zeros((3, 4, 6, 8)), 5, 3)) == 4
    pieces = cnn_network_kernels(x, "tanh,relu", "gaussian", np.random.default_rng(1), **kwargs)
    for a, b in zip(whole, pieces, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_ck_only_skips_v_and_allows_step_activations():
    x = np.random.default_rng(4).standard_normal((3, 1, 4, 4))
    ck, ntk = cnn_network_kernels(x, "relu", "gaussian", np.random.default_rng(0), channels=6,
                                  ntk=False)
    ck_full, _ = cnn_network_kernels(x, "relu", "gaussian", np.random.default_rng(0),
                                     channels=6)
    assert ntk is None
    np.testing.assert_allclose(ck, ck_full, rtol=1e-12)
    ck_sign, _ = cnn_network_kernels(x, "sign", "gaussian", np.random.default_rng(0),
                                     channels=6, ntk=False)
    # sign(z)^2 = 1 (z = 0 has probability 0): every diagonal entry is exactly mean 1 = 1.
    np.testing.assert_allclose(np.diag(ck_sign), 1.0, rtol=1e-12)


@pytest.mark.parametrize(("padding", "k", "grid"), [
    (padding, k, grid) for padding in PADDINGS for k in (1, 2, 3, 5) for grid in ((2, 3), (4, 5))
    if padding != "valid" or k <= min(grid)])
def test_pad_adjoint_is_the_adjoint_of_padding(padding, k, grid):
    # <pad(x), y> = <x, pad^T(y)> for all x, y; k = 5 on a 2 x 3 grid wraps more than once.
    arch = ConvArchitecture(1, k, padding)
    rng = np.random.default_rng(k)
    x = rng.standard_normal((2, 3, *grid))
    padded = arch.padded(x)
    y = rng.standard_normal(padded.shape)
    back = _pad_adjoint(y, arch, *grid)
    assert back.shape == x.shape
    assert np.vdot(padded, y) == pytest.approx(np.vdot(x, back), rel=1e-12)


# -- Monte-Carlo mean against the exact kernels -------------------------------------------------

@functools.cache
def _exact_of(key, acts, arch):
    x = _IMAGES[key]
    exact = cnn_kernels(x, list(acts), filter_size=arch.filter_size, padding=arch.padding,
                        pool=arch.pool, readout=arch.readout, progress=False)
    return exact.ck, exact.ntk


def _exact(key, acts, arch):
    """(CK, NTK) of the infinitely wide network (ntk.cnn_exact) on the images _IMAGES[key]."""
    return _exact_of(key, tuple(acts), arch)


# Images of the Monte-Carlo tests: n = 4, C_0 = 3 (a first-layer fan-in of 27 with 3 x 3
# filters), non-square for the one-layer and two-layer checks.
_IMAGES = {
    "wide": np.random.default_rng(1).standard_normal((4, 3, 6, 8)),
    "square": np.random.default_rng(1).standard_normal((4, 3, 6, 6)),
}


# One hidden layer: (padding, k, pool, readout). With Gaussian filters the first layer's
# pre-activations are exactly Gaussian and CK, NTK are means of i.i.d. channel terms, so the
# Monte-Carlo mean is unbiased at any channel count.
ONE_LAYER = [
    ("same", 3, (), "flatten"),
    ("same", 3, (1,), "flatten"),
    ("same", 3, (), "gap"),
    ("circular", 3, (), "flatten"),
    ("circular", 3, (1,), "flatten"),
    ("circular", 5, (), "gap"),
    ("valid", 3, (), "flatten"),
    ("valid", 3, (1,), "flatten"),
    ("same", 2, (1,), "flatten"),
    ("circular", 2, (1,), "gap"),
]


def _max_z(acts, arch, channels, draws, seed):
    """max over the entries of CK and NTK of |mean - exact| / (standard error of the mean)."""
    x = _IMAGES["wide"]
    rng = np.random.default_rng(seed)
    kernels = np.array([cnn_network_kernels(x, acts, "gaussian", rng, channels=channels,
                                            filter_size=arch.filter_size,
                                            padding=arch.padding, pool=arch.pool,
                                            readout=arch.readout)
                        for _ in range(draws)])
    mean = kernels.mean(axis=0)
    se = kernels.std(axis=0, ddof=1) / math.sqrt(draws)
    upper = np.triu_indices(x.shape[0])
    z = (mean - np.array(_exact("wide", acts, arch))) / se
    return np.abs(z[:, upper[0], upper[1]]).max()


@pytest.mark.parametrize(("padding", "k", "pool", "readout"), ONE_LAYER)
def test_mean_of_one_layer_networks_is_the_exact_kernel(padding, k, pool, readout):
    # Each z is Student-t with 31 degrees of freedom: P(|z| > 5) = 2e-5, so 5 is crossed by
    # one of the 20 entries with probability 4e-4 when the code is right (max |z| is 0.8-3.5
    # here). The standard error is 0.3-0.6 % of an entry (512 channels, 32 draws): a
    # convention error of 2 % (window, padding, pooling or readout) is 4-5 standard errors
    # away; the mirrored window of an even filter, for one, fails.
    arch = ConvArchitecture(1, k, padding, pool, readout)
    assert _max_z(["relu"], arch, channels=512, draws=32, seed=11) < 5.0


@pytest.mark.parametrize(("padding", "pool", "readout"),
                         [("circular", (1,), "gap"), ("valid", (), "flatten")])
def test_mean_of_two_layer_networks_is_the_exact_kernel(padding, pool, readout):
    # Two layers add a bias of order 1/channels; at 256 channels and 16 draws it is a
    # fraction of the standard error (max |z| over 5 seeds was 1.3-3.3 in 5 architectures), so
    # the threshold of Student-t with 15 degrees of freedom, P(|z| > 5) = 1.6e-4 per entry,
    # stays honest.
    arch = ConvArchitecture(2, 3, padding, pool, readout)
    assert _max_z(["erf", "relu"], arch, channels=256, draws=16, seed=12) < 5.0


CHANNELS = (16, 64, 256)
SEEDS = 32


@pytest.mark.parametrize("law", ["gaussian", "ternary:0.5"])
def test_mean_converges_like_channels_to_minus_half(law):
    """The acceptance criterion: the error of the Monte-Carlo mean falls like channels^-1/2.

    Two ReLU layers, "same" padding, pooling after layer 1, flatten readout. At every channel
    count C the error is that of the mean of 2 draws, relative in operator norm, its root mean
    square taken over 32 seeds; the slope of log(rms) against log(C) is fitted.

    Tolerances. The error is dominated by one direction (the overall scale of the kernel), so
    each seed gives about one degree of freedom: sd(log rms) = 1/sqrt(2 x 32) and the fitted
    slope over C = 16, 64, 256 has sd 0.51 / 8 = 0.064; measured over 20 independent sets of
    32 seeds, 0.055-0.077 around means -0.49 to -0.51 (CK and NTK, both laws; the seeds here
    give -0.66 and -0.63 for Gaussian, -0.55 and -0.50 for ternary filters). The test allows
    4 sd, 0.3. At 256 channels the mean of all 64 networks must lie within 4 of its own
    standard errors (estimated from the spread of the 32 means around their grand mean, so a
    bias cannot inflate it) and below 5 % (its rms error is 1-1.2 %).

    Ternary filters. The first layer's pre-activation sums only C_0 k^2 = 27 weights, so with
    a weight kurtosis k4 = -1 it stays non-Gaussian however many channels the layer has: the
    finite-width mean keeps an O(k4 / (C_0 k^2)) offset from the exact kernel. It is ReLU's
    that is small here (measured with 8192 channels x 100 draws: 0.17 % in CK, 0.11 % in NTK,
    one layer), not erf's (1.1 % in CK): positive homogeneity makes E[relu(u)^2] = E[u^2]/2
    for any symmetric law, so ReLU's diagonal carries no kurtosis term, whereas erf's diagonal
    E[erf(u)^2] reads the fourth moment of u. The leading-order argument that favours odd
    activations (d2 = 0 kills the off-diagonal kurtosis term) is the fully connected one, for
    large fan-ins; at a 27-weight fan-in the diagonal term dominates. The ReLU offset is a
    seventh of the grand mean's noise at 256 channels and 1/35 of a 2-draw mean's, so neither
    tolerance needs to account for it.
    """
    x = _IMAGES["square"]
    arch = ConvArchitecture(2, 3, "same", (1,), "flatten")
    exact = _exact("square", ["relu", "relu"], arch)
    # means[c, seed, kernel]: the (CK, NTK) means of 2 draws.
    means = np.array([[_means(x, channels, law, seed) for seed in range(SEEDS)]
                      for channels in CHANNELS])
    errors = np.linalg.norm(means - np.array(exact), 2, axis=(-2, -1)) \
        / np.linalg.norm(np.array(exact), 2, axis=(-2, -1))
    rms = np.sqrt(np.mean(errors**2, axis=1))
    slopes = np.array([np.polyfit(np.log(CHANNELS), np.log(rms[:, j]), 1)[0]
                       for j in range(2)])
    assert np.all(np.abs(slopes + 0.5) < 0.3), slopes
    widest = means[-1]
    grand = widest.mean(axis=0)
    spread = np.sqrt(np.sum(np.linalg.norm(widest - grand, 2, axis=(-2, -1)) ** 2, axis=0)
                     / (SEEDS - 1))
    error = np.linalg.norm(grand - np.array(exact), 2, axis=(-2, -1))
    assert np.all(error < 4 * spread / math.sqrt(SEEDS)), (error, spread)
    assert np.all(error < 0.05 * np.linalg.norm(np.array(exact), 2, axis=(-2, -1))), error


def _means(x, channels, law, seed):
    result = empirical_cnn_kernels(x, "relu,relu", channels=channels, draws=2, weights=law,
                                   seed=seed, pool=(1,), progress=False)
    return result.ck, result.ntk


def test_empirical_means_noise_and_float32():
    x = np.random.default_rng(6).standard_normal((3, 2, 4, 4))
    rng = np.random.default_rng(9)
    draws = [cnn_network_kernels(x, "erf,relu", "gaussian", rng, channels=(5, 4))
             for _ in range(3)]
    result = empirical_cnn_kernels(x, "erf,relu", channels=(5, 4), draws=3, seed=9,
                                   progress=False)
    assert isinstance(result, EmpiricalKernels)
    assert result.draws == 3 and result.width == (5, 4)
    np.testing.assert_allclose(result.ck, np.mean([d[0] for d in draws], axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.ntk, np.mean([d[1] for d in draws], axis=0), rtol=1e-12)
    # Split-half noise with 2 even and 1 odd draws: ||(A0 + A2)/2 - A1||_2 / (2 ||mean||_2).
    diff = (draws[0][0] + draws[2][0]) / 2 - draws[1][0]
    assert result.ck_noise == pytest.approx(
        np.linalg.norm(diff, 2) / (2 * np.linalg.norm(result.ck, 2)), rel=1e-10)
    single = empirical_cnn_kernels(x, "erf", channels=5, draws=1, ntk=False,
                                   dtype=np.float32, progress=False)
    assert single.ntk is None and single.ntk_noise is None and math.isnan(single.ck_noise)
    assert single.ck.dtype == np.float64


# -- bad input ------------------------------------------------------------------------------------

_X = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
_NAN = _X.copy()
_NAN[0, 0, 0, 0] = np.nan


@pytest.mark.parametrize(("images", "kwargs", "match"), [
    (_X[0], {}, "4-D"),
    (_NAN, {}, "finite"),
    (_X, {"channels": 0}, "channel count"),
    (_X, {"channels": 2.5}, "channel count"),
    (_X, {"channels": (4,), "acts": "relu,relu"}, "entries"),
    (_X, {"draws": 0}, "draws"),
    (_X, {"dtype": np.float16}, "dtype"),
    (_X, {"dtype": "no such type"}, "dtype"),
    (_X, {"padding": "reflect"}, "unknown padding"),
    (_X, {"readout": "max"}, "unknown readout"),
    (_X, {"pool": (1, 2, 3), "acts": "relu,relu,relu"}, "even grid"),
    (_X, {"pool": (3,), "acts": "relu,relu"}, "outside"),
    (_X, {"pool": 1}, "pool"),
    (_X, {"padding": "valid", "filter_size": 7}, "does not fit"),
    (_X, {"acts": "sign"}, "NTK undefined"),
    (_X, {"acts": "unknown"}, "unknown activation"),
    (_X, {"weights": "cauchy"}, "unknown weight law"),
    (_X, {"centring": (0.1, 0.2)}, "centring"),
    (_X, {"centring": (math.inf,)}, "centring"),
])
def test_bad_input_raises_one_line(images, kwargs, match):
    kwargs = {"acts": "relu", "channels": 4, "draws": 2, "progress": False} | kwargs
    with pytest.raises(ValueError, match=match) as info:
        empirical_cnn_kernels(images, **kwargs)
    assert "\n" not in str(info.value)
