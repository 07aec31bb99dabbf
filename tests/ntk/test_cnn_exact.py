"""Exact CNN kernels against an independent dense reference (tests/ntk/cnn_reference.py), the
fully connected exact kernels (1 x 1 filters), and their own structural properties."""

import itertools
import math
import warnings

import numpy as np
import pytest
from cnn_reference import (
    erf_map,
    gelu_map,
    reference_kernels,
    relu_map,
    sign_map,
    sin_map,
    step_map,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate

from ntk.activations import step_activation
from ntk.cnn_architecture import ConvArchitecture
from ntk.cnn_exact import cnn_kernels
from ntk.exact import exact_kernels

# Relative to the kernel scale (the largest |entry| of the reference).
TOL = 1e-12
CLOSED_FORMS = {"relu": relu_map, "erf": erf_map, "sin": sin_map, "sign": sign_map}


def images_with_duplicates(n=4, channels=2, size=6, seed=0, noise=1e-3):
    """Random images; the last is an exact copy of the first and image 2 is image 1 plus
    noise of relative size ``noise`` (a near-duplicate: 1 - rho ~ noise^2 / 2 per patch)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, channels, size, size))
    x[-1] = x[0]
    x[2] = x[1] + noise * rng.standard_normal(x[1].shape)
    return x


def assert_close(got, want, tol=TOL):
    scale = np.max(np.abs(want))
    assert np.max(np.abs(got - want)) <= tol * scale, np.max(np.abs(got - want)) / scale


def architectures():
    for layers, padding, readout, pool in itertools.product(
            (1, 2, 3), ("same", "circular", "valid"), ("flatten", "gap"), ((), (1,), (2,))):
        try:
            arch = ConvArchitecture(layers, 3, padding, pool, readout)
            arch.grids(6, 6)
        except ValueError:
            continue
        yield arch


@pytest.mark.parametrize("act", sorted(CLOSED_FORMS))
@pytest.mark.parametrize("arch", list(architectures()), ids=lambda a: a.describe())
def test_matches_dense_reference(act, arch):
    """Every padding, readout, pooling and depth, CK and NTK, duplicates included."""
    x = images_with_duplicates()
    ntk = act != "sign"
    got = cnn_kernels(x, [act] * arch.layers, padding=arch.padding, pool=arch.pool,
                      readout=arch.readout, ntk=ntk, progress=False)
    ck, nt = reference_kernels(x, arch, [CLOSED_FORMS[act]] * arch.layers, ntk=ntk)
    assert_close(got.ck, ck)
    if ntk:
        assert_close(got.ntk, nt)
    else:
        assert got.ntk is None


def quadrature_reference(x, arch, mp, ntk):
    # The reference's adaptive integrals warn about roundoff at tolerances they still meet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return reference_kernels(x, arch, [mp] * arch.layers, ntk=ntk)


THRESHOLDS, LEVELS = [-0.4, 0.1, 0.7], [-1.0, -0.2, 0.5, 1.5]


def test_step_matches_quadrature():
    """A 4-level step: orthant probabilities for the near-duplicate's close patch pairs,
    closed-form Hermite series for the others. A step's kernel moves like sqrt(1 - |rho|), so
    the rounding of 1 - |rho| (1e-16) costs 1e-16 / sqrt(1 - |rho|): the near-duplicate is
    kept at 1 - rho ~ 1e-5 (still far beyond the series' reach, 0.058), where that is 3e-14."""
    arch = ConvArchitecture(2, 3, "same", (), "flatten")
    x = images_with_duplicates(n=3, channels=1, size=3, noise=5e-3)
    got = cnn_kernels(x, [step_activation(THRESHOLDS, LEVELS)] * 2, ntk=False, progress=False)
    ck, _ = quadrature_reference(x, arch, step_map(THRESHOLDS, LEVELS), False)
    assert_close(got.ck, ck)
    assert got.close_pairs[0] > 0  # the orthant-probability path was exercised


def test_gelu_matches_quadrature():
    arch = ConvArchitecture(2, 2, "same", (1,), "gap")
    x = images_with_duplicates(n=3, channels=1, size=4)
    got = cnn_kernels(x, ["gelu"] * 2, filter_size=2, pool=(1,), readout="gap",
                      progress=False)
    ck, nt = quadrature_reference(x, arch, gelu_map, True)
    assert_close(got.ck, ck)
    assert_close(got.ntk, nt)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in architectures() if a.layers <= 2],
                         ids=lambda a: a.describe())
def test_step_and_gelu_every_architecture(arch):
    """The two quadrature checks above for every architecture (a few minutes)."""
    x = images_with_duplicates(n=3, channels=1, size=6)
    got = cnn_kernels(x, [step_activation(THRESHOLDS, LEVELS)] * arch.layers,
                      padding=arch.padding, pool=arch.pool, readout=arch.readout, ntk=False,
                      progress=False)
    assert_close(got.ck, quadrature_reference(x, arch, step_map(THRESHOLDS, LEVELS), False)[0])
    got = cnn_kernels(x, ["gelu"] * arch.layers, padding=arch.padding, pool=arch.pool,
                      readout=arch.readout, progress=False)
    ck, nt = quadrature_reference(x, arch, gelu_map, True)
    assert_close(got.ck, ck)
    assert_close(got.ntk, nt)


def test_zero_patches_match_reference():
    """All-zero regions (as in MNIST) give zero-variance positions: sigma(0) is a constant."""
    x = images_with_duplicates(n=3, channels=1, size=6, seed=3)
    x[:, :, :3] = 0.0
    x[1, :, :, 4:] = 0.0
    for act in ("relu", "erf", "sign"):
        ntk = act != "sign"
        for arch in (ConvArchitecture(2, 3, "same", (), "flatten"),
                     ConvArchitecture(2, 3, "valid", (2,), "gap")):
            got = cnn_kernels(x, [act] * 2, padding=arch.padding, pool=arch.pool,
                              readout=arch.readout, ntk=ntk, progress=False)
            ck, nt = reference_kernels(x, arch, [CLOSED_FORMS[act]] * 2, ntk=ntk)
            assert_close(got.ck, ck)
            if ntk:
                assert_close(got.ntk, nt)


@settings(max_examples=25, deadline=None)
@given(layers=st.integers(1, 2), k=st.integers(1, 3),
       padding=st.sampled_from(["same", "circular", "valid"]),
       readout=st.sampled_from(["flatten", "gap"]), pool_first=st.booleans(),
       n=st.integers(1, 3), channels=st.integers(1, 2), height=st.integers(2, 5),
       width=st.integers(2, 5), act=st.sampled_from(["relu", "erf", "sin"]),
       seed=st.integers(0, 2**16))
def test_random_architectures(layers, k, padding, readout, pool_first, n, channels, height,
                              width, act, seed):
    arch = ConvArchitecture(layers, k, padding, (1,) if pool_first else (), readout)
    try:
        arch.grids(height, width)
    except ValueError:
        assume(False)
    # A patch holding one number (C k^2 = 1, or one pixel of a 2 x 2 corner window under zero
    # padding) is exactly parallel to every other such patch. The reference's angle, from
    # rounded covariances, is then off by ~1e-8 (the engine's comes from the patches: see
    # test_scaled_duplicates_match_fully_connected).
    assume(channels * k * k > 1 and not (channels == 1 and k == 2 and padding == "same"))
    x = np.random.default_rng(seed).standard_normal((n, channels, height, width))
    got = cnn_kernels(x, [act] * layers, filter_size=k, padding=padding, pool=arch.pool,
                      readout=readout, progress=False)
    ck, nt = reference_kernels(x, arch, [CLOSED_FORMS[act]] * layers)
    assert_close(got.ck, ck)
    assert_close(got.ntk, nt)


ONE_BY_ONE = ["tanh", "swish", "sigmoid", "cos", "abs", "lrelu", "quad", "binary", "ternary"]


@pytest.mark.parametrize("act", ONE_BY_ONE)
def test_one_by_one_filters_are_the_fully_connected_kernel(act):
    """k = 1 on 1 x 1 images is the fully connected network on the C-vectors x / sqrt(C)
    (``ntk.exact``: per-pair Hermite series and 2-D quadrature, an independent path), centred
    by the same scalar chain."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 1, 1))
    x[4] = x[0]
    x[5] = x[1] * (1 + 1e-9)
    ntk = act not in ("binary", "ternary")
    got = cnn_kernels(x, [act] * 2, filter_size=1, centring=True, ntk=ntk, progress=False)
    want = exact_kernels(x.reshape(6, 5).T / math.sqrt(5), [act] * 2, ntk=ntk)
    assert got.tau0 == pytest.approx(want.tau0, rel=1e-14)
    assert_close(got.ck, want.ck, 1e-11)
    if ntk:
        assert_close(got.ntk, want.ntk, 1e-11)


@pytest.mark.parametrize("act", ["relu", "abs", "lrelu", "quad", "sign", "tanh", "ternary"])
def test_scaled_duplicates_match_fully_connected(act):
    """Exactly parallel samples of different norms and signs (x, 2x, -x/2): their correlation
    stays exactly +-1 through every layer of a homogeneous activation, which only a
    cancellation-free 1 - |rho| keeps (the fully connected kernels of ``ntk.exact`` carry it
    by quadrature, an independent path). A near-proportional pair (1 + 1e-12) is left to the
    smooth activation: steps amplify any rounding of 1 - |rho| like its square root per layer,
    so no method resolves it in double precision."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3, 1, 1))
    x[1], x[2] = 2 * x[0], -0.5 * x[0]
    if act == "tanh":
        x[4] = x[3] * (1 + 1e-12)
    ntk = act not in ("sign", "ternary")
    for layers in (2, 3):
        got = cnn_kernels(x, [act] * layers, filter_size=1, centring=True, ntk=ntk,
                          progress=False)
        want = exact_kernels(x.reshape(6, 3).T / math.sqrt(3), [act] * layers, ntk=ntk)
        assert_close(got.ck, want.ck, 1e-11)
        if ntk:
            assert_close(got.ntk, want.ntk, 1e-11)


def test_one_by_one_filters_average_the_positions():
    """k = 1 with the flatten readout: the mean over positions of the fully connected kernels
    of each position's C-vectors, all centred by the CNN's scalar chain."""
    x = np.random.default_rng(8).standard_normal((4, 3, 2, 3))
    got = cnn_kernels(x, ["tanh", "gelu"], filter_size=1, centring=True, progress=False)
    parts = [exact_kernels(x[:, :, a, b].T / math.sqrt(3), ["tanh", "gelu"], got.tau0)
             for a in range(2) for b in range(3)]
    assert_close(got.ck, np.mean([p.ck for p in parts], axis=0), 1e-11)
    assert_close(got.ntk, np.mean([p.ntk for p in parts], axis=0), 1e-11)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_symmetric_and_positive_semidefinite(act):
    x = images_with_duplicates(n=5, channels=1, size=6, seed=4)
    r = cnn_kernels(x, [act] * 2, pool=(1,), progress=False)
    for K in (r.ck, r.ntk):
        np.testing.assert_array_equal(K, K.T)
        assert np.linalg.eigvalsh(K).min() >= -1e-13 * np.abs(K).max()
    # Duplicates: rows 0 and 4 are equal (up to the order of the sums: a pair (i, j) is
    # computed with i >= j, so image 4 and its copy 0 meet image 1 from opposite sides).
    np.testing.assert_allclose(r.ck[0], r.ck[4], rtol=1e-15, atol=0)


def test_circular_gap_is_shift_invariant():
    """With circular padding and global average pooling the kernel does not see where an
    image is on the torus."""
    x = images_with_duplicates(n=3, channels=2, size=6, seed=5)
    shifted = np.roll(x, (2, -1), axis=(2, 3))
    a = cnn_kernels(x, ["relu", "erf"], padding="circular", readout="gap", progress=False)
    b = cnn_kernels(np.concatenate([x[:1], shifted[1:]]), ["relu", "erf"], padding="circular",
                    readout="gap", progress=False)
    assert_close(b.ck, a.ck)
    assert_close(b.ntk, a.ntk)


def test_relu_kernels_scale_quadratically():
    x = images_with_duplicates(n=3, channels=1, size=5, seed=6)
    a = cnn_kernels(x, ["relu"] * 2, progress=False)
    b = cnn_kernels(3.0 * x, ["relu"] * 2, progress=False)
    assert_close(b.ck, 9.0 * a.ck)
    assert_close(b.ntk, 9.0 * a.ntk)


def test_blocks_do_not_change_the_result():
    x = images_with_duplicates(n=5, channels=1, size=6, seed=9)
    a = cnn_kernels(x, ["tanh", "relu"], pool=(1,), progress=False)
    b = cnn_kernels(x, ["tanh", "relu"], pool=(1,), memory=1, progress=False)
    np.testing.assert_array_equal(a.ck, b.ck)
    np.testing.assert_array_equal(a.ntk, b.ntk)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"images": np.zeros((2, 6, 6))}, "4-D"),
    ({"images": np.full((2, 1, 6, 6), np.nan)}, "finite"),
    ({"padding": "valid", "filter_size": 7}, "does not fit"),
    ({"pool": (1, 2), "acts": ["relu"] * 2, "images": np.ones((2, 1, 6, 6))}, "even grid"),
    ({"pool": (1, 2, 3), "acts": ["relu"] * 3, "images": np.ones((2, 1, 4, 4))}, "1x1"),
    ({"acts": ["sign"]}, "NTK undefined"),
    ({"padding": "reflect"}, "unknown padding"),
    ({"readout": "max"}, "unknown readout"),
    ({"pool": (2,)}, "outside"),
    ({"centring": [0.1, 0.2]}, "centring"),
    ({"tol": 0.0}, "tol"),
])
def test_bad_input_is_one_clear_error(kwargs, message):
    args = {"images": np.ones((2, 1, 6, 6)), "acts": ["relu"], **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        cnn_kernels(args.pop("images"), args.pop("acts"), progress=False, **args)
    assert "\n" not in str(info.value)
