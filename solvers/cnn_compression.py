"""The NTK-LC solver for CNNs: the fully connected equations at the first convolution's scale.

The solver (``solvers.ternarize``) matches activation constants along one scalar chain
tau_0, tau_1, ..., tau_L. A CNN has one pre-activation variance per image and position: for the
first convolution (``../shared/spec/cnn-kernels.md``)

    q_1(a) = (1/k^2) sum_d (1/C_0) ||x(a + d)||^2

over the window offsets d of output position a (zeros outside the grid for "same" padding,
the wrapped grid for "circular", the valid windows only for "valid"). The CNN's tau_0 is the
root of their mean over images and positions, tau_0^2 = mean_{i, a} q_1,i(a): the chain of the
flatten readout with the per-position variances averaged. The solver then works on the fully
connected tau chain from this tau_0. The per-position variances differ from it (zero padding
lowers them at the border, pooling averages positions, image content varies across the grid),
so the compressed CNN matches the dense one's constants only on average over positions; how
much that costs is what the CNN experiments measure.
"""

from __future__ import annotations

import math

import numpy as np

from ntk.activations import parse_activations
from ntk.cnn_architecture import ConvArchitecture, check_images
from ntklc.errors import InputError
from solvers.ternarize import CompressionResult, compress_network

__all__ = ["cnn_input_scale", "compress_cnn"]

#: Images per block of :func:`cnn_input_scale`, so that its float64 work arrays stay small
#: whatever the data set's size.
_BLOCK = 1024


def cnn_input_scale(images, arch: ConvArchitecture) -> float:
    """tau_0 = sqrt(mean_{i, a} q_1,i(a)), the first convolution's pre-activation scale.

    q_1,i(a) = (1/k^2) sum_d (1/C_0) ||x_i(a + d)||^2 is the variance of the first
    pre-activation of image i at output position a (module docstring); the mean runs over the
    n images and the H_1' x W_1' output positions of the first convolution.

    Args:
        images: (n, C_0, H, W) real, finite images.
        arch: the architecture; it must fit the images' grid.

    Returns:
        tau_0 >= 0 (0 only for all-zero images).

    Raises:
        InputError: images not a non-empty 4-D real finite array, ``arch`` not a
            :class:`ConvArchitecture`, or an architecture that does not fit the images.
    """
    if not isinstance(arch, ConvArchitecture):
        raise InputError(f"arch must be a ConvArchitecture, got {type(arch).__name__}")
    x = np.asarray(images)
    if x.ndim != 4 or x.size == 0:
        raise InputError(f"images must be a non-empty 4-D array (n, C, H, W), got shape "
                         f"{x.shape}")
    arch.grids(x.shape[2], x.shape[3])
    k = arch.filter_size
    total, positions = 0.0, 0
    for start in range(0, x.shape[0], _BLOCK):
        block = check_images(x[start:start + _BLOCK])
        # Per-position input variance (1/C_0) ||x(a)||^2, padded as the images would be: zero
        # and wrapped padding commute with the channel sum of squares.
        s = arch.padded(np.mean(block * block, axis=1, keepdims=True))[:, 0]
        h, w = s.shape[1] - k + 1, s.shape[2] - k + 1
        windows = np.zeros((s.shape[0], h, w))
        for i in range(k):
            for j in range(k):
                windows += s[:, i:i + h, j:j + w]
        total += float(windows.sum())
        positions += windows.size
    return math.sqrt(total / (k * k * positions))


def compress_cnn(acts, images, arch: ConvArchitecture, **kwargs) -> CompressionResult:
    """``compress_network(acts, cnn_input_scale(images, arch), **kwargs)``.

    The quantized activations solve the fully connected NTK-LC equations along the tau chain
    from the CNN's averaged first-layer scale (module docstring): per-position variances
    differ from that chain, and the result makes no claim about them.

    Args:
        acts: one activation per convolution (``arch.layers`` of them).
        images: (n, C_0, H, W) images that set tau_0 (e.g. the training set).
        arch: the architecture.
        **kwargs: passed to :func:`solvers.ternarize.compress_network` (``max_levels``,
            ``hidden_family``, ``hidden_max_levels``, ``progress``).

    Returns:
        The :class:`CompressionResult`; its ``tau0`` is the CNN's input scale.

    Raises:
        InputError: as :func:`cnn_input_scale` and ``compress_network``, or a number of
            activations other than ``arch.layers``.
    """
    n_acts = len(parse_activations(acts))
    if isinstance(arch, ConvArchitecture) and n_acts != arch.layers:
        raise InputError(f"the architecture has {arch.layers} layers, got {n_acts} activations")
    return compress_network(acts, cnn_input_scale(images, arch), **kwargs)
