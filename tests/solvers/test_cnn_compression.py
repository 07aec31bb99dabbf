"""The CNN input scale against a literal loop over images, positions, offsets and channels, and
the CNN solver hook against the fully connected solver at that scale."""

import math

import numpy as np
import pytest

from ntk.cnn_architecture import PADDINGS, ConvArchitecture
from solvers import cnn_compression
from solvers.cnn_compression import cnn_input_scale, compress_cnn
from solvers.ternarize import compress_network


def literal_scale(x, k, padding):
    """sqrt of the mean over images i and output positions a of
    q_i(a) = (1/k^2) sum_d (1/C) sum_c x_ic(a + d)^2, one term at a time."""
    n, C, H, W = x.shape
    if padding == "valid":
        positions = [(r, q) for r in range(H - k + 1) for q in range(W - k + 1)]
        offsets = range(k)
    else:
        positions = [(r, q) for r in range(H) for q in range(W)]
        offsets = range(-((k - 1) // 2), k // 2 + 1)
    total = 0.0
    for i in range(n):
        for r, q in positions:
            q_a = 0.0
            for di in offsets:
                for dj in offsets:
                    for c in range(C):
                        u, v = r + di, q + dj
                        if padding == "circular":
                            u, v = u % H, v % W
                        if 0 <= u < H and 0 <= v < W:
                            q_a += x[i, c, u, v] ** 2 / C
            total += q_a / k**2
    return math.sqrt(total / (n * len(positions)))


def test_one_pixel_image_by_hand():
    # "same" sees the pixel in one of the k^2 = 9 window slots: q = 4/9; "circular" in every
    # slot (the grid wraps onto itself): q = 4; "valid" with k = 1: q = 4.
    x = np.full((1, 1, 1, 1), 2.0)
    for padding, k, tau0 in (("same", 3, 2.0 / 3.0), ("circular", 3, 2.0), ("valid", 1, 2.0)):
        assert literal_scale(x, k, padding) == pytest.approx(tau0, rel=1e-15)
        assert cnn_input_scale(x, ConvArchitecture(1, k, padding)) == pytest.approx(tau0,
                                                                                    rel=1e-15)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_input_scale_against_literal_loops(padding, k):
    rng = np.random.default_rng(k)
    # Non-square, non-centred images whose pixels differ in scale across the grid.
    x = rng.standard_normal((3, 2, 5, 6)) * np.linspace(0.5, 2.0, 6) + 0.3
    arch = ConvArchitecture(2, k, padding)
    assert cnn_input_scale(x, arch) == pytest.approx(literal_scale(x, k, padding), rel=1e-13)


def test_circular_padding_gives_the_mean_pixel_energy():
    # Every pixel sits in exactly k^2 windows: tau0^2 = mean_i ||x_i||^2 / (C H W).
    x = np.random.default_rng(5).standard_normal((4, 3, 6, 5))
    expected = math.sqrt(np.mean(np.sum(x**2, axis=(1, 2, 3))) / (3 * 6 * 5))
    assert cnn_input_scale(x, ConvArchitecture(1, 3, "circular")) == pytest.approx(expected,
                                                                                   rel=1e-14)


def test_input_scale_does_not_depend_on_blocks_or_dtype(monkeypatch):
    x = np.random.default_rng(6).standard_normal((5, 1, 4, 4)).astype(np.float32)
    arch = ConvArchitecture(1, 3, "same")
    whole = cnn_input_scale(x, arch)
    monkeypatch.setattr(cnn_compression, "_BLOCK", 2)
    assert cnn_input_scale(x, arch) == pytest.approx(whole, rel=1e-14)
    assert cnn_input_scale(x.astype(np.float64), arch) == pytest.approx(whole, rel=1e-14)


def test_compress_cnn_is_compress_network_at_the_cnn_scale():
    x = np.random.default_rng(7).standard_normal((4, 2, 6, 6)) * 1.7
    arch = ConvArchitecture(2, 3, "same", pool=(1,))
    result = compress_cnn(["relu", "relu"], x, arch, max_levels=16)
    tau0 = literal_scale(x, 3, "same")
    assert result.tau0 == pytest.approx(tau0, rel=1e-13)
    direct = compress_network(["relu", "relu"], result.tau0, max_levels=16)
    assert [a.name for a in result.activations] == [a.name for a in direct.activations]


def test_rejects_bad_input():
    arch = ConvArchitecture(2, 3, "valid")
    x = np.ones((2, 1, 6, 6))
    with pytest.raises(ValueError, match="2 layers, got 3 activations"):
        compress_cnn("relu,relu,relu", x, arch)
    with pytest.raises(ValueError, match="ConvArchitecture"):
        cnn_input_scale(x, "valid")
    with pytest.raises(ValueError, match="does not fit"):
        cnn_input_scale(np.ones((2, 1, 6, 2)), arch)
    for bad in (np.ones((1, 6, 6)), np.ones((0, 1, 6, 6))):
        with pytest.raises(ValueError, match="4-D"):
            cnn_input_scale(bad, arch)
    y = x.copy()
    y[1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        cnn_input_scale(y, arch)
    with pytest.raises(ValueError, match="tau0"):
        compress_cnn("relu,relu", np.zeros((2, 1, 6, 6)), arch)
