"""The convolutional networks of the CNN kernels: layers, padding, pooling, readout, grids.

The convention is neural-tangents' ``stax`` in the NTK parameterisation (see
``../shared/spec/cnn-kernels.md``): images are NCHW arrays used as given, and a network is

    [Conv(k x k, stride 1, padding), activation, optional AvgPool(2 x 2, stride 2)] x L,
    readout R (flatten or global average pooling), Dense(1),

with i.i.d. standard weights, no bias and every layer divided by the square root of its fan-in
(C_in k^2 for a convolution, the feature count for the Dense). The exact kernels
(``ntk.cnn_exact``), the finite networks (``nets.cnn_kernels``) and the compressed CNN
(``nets.compressed_cnn``) all take their architecture from :class:`ConvArchitecture`, which
checks it against an image size once and says what each layer's grid is.

Convolution windows: a "same" or "circular" output pixel a reads the inputs a + d for
d = -(k - 1) // 2 .. k // 2 in each direction (symmetric for odd k; for even k one more on the
far side, as ``lax.conv`` with "SAME" pads), zero outside the grid for "same" and modulo the
grid for "circular"; a "valid" output pixel a reads a + d for d = 0 .. k - 1, and the grid
shrinks by k - 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntklc.errors import InputError

__all__ = ["PADDINGS", "READOUTS", "ConvArchitecture", "check_images", "fan_in_scale"]

#: Padding modes of the convolutions.
PADDINGS = ("same", "circular", "valid")
#: Readouts: flatten (every position a feature) or global average pooling.
READOUTS = ("flatten", "gap")


def check_images(images) -> np.ndarray:
    """``images`` as a float64 (n, C, H, W) array, checked.

    Raises:
        InputError: not a real 4-D array with n, C, H, W >= 1, or not finite.
    """
    x = np.asarray(images)
    if x.ndim != 4 or min(x.shape) < 1:
        raise InputError(f"images must be a 4-D array (n, C, H, W) with every size >= 1, got "
                         f"shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise InputError(f"images must be real numbers, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError("images must be finite (they contain NaN or inf)")
    return x


@dataclass(frozen=True)
class ConvArchitecture:
    """L convolutions with an activation each, optional 2 x 2 average pooling, a readout.

    Attributes:
        layers: L >= 1, the number of convolutions (one activation each).
        filter_size: k >= 1, the side of every filter.
        padding: one of :data:`PADDINGS`.
        pool: the layers (1-based, ascending) whose activation is followed by a 2 x 2 average
            pooling of stride 2.
        readout: one of :data:`READOUTS`.
    """

    layers: int
    filter_size: int = 3
    padding: str = "same"
    pool: tuple[int, ...] = ()
    readout: str = "flatten"

    def __post_init__(self):
        for name in ("layers", "filter_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.padding not in PADDINGS:
            raise InputError(f"unknown padding {self.padding!r}; choose from "
                             f"{', '.join(PADDINGS)}")
        if self.readout not in READOUTS:
            raise InputError(f"unknown readout {self.readout!r}; choose from "
                             f"{', '.join(READOUTS)}")
        pool = tuple(self.pool) if isinstance(self.pool, list | tuple) else None
        if pool is None or any(isinstance(v, bool) or not isinstance(v, int | np.integer)
                               for v in pool):
            raise InputError(f"pool must list integer layer numbers, got {self.pool!r}")
        pool = tuple(sorted({int(v) for v in pool}))
        bad = [v for v in pool if not 1 <= v <= self.layers]
        if bad:
            raise InputError(f"pool lists layers {bad} outside 1..{self.layers}")
        object.__setattr__(self, "pool", pool)

    @property
    def offsets(self) -> range:
        """The window offsets d of one direction (see the module docstring)."""
        k = self.filter_size
        if self.padding == "valid":
            return range(0, k)
        return range(-((k - 1) // 2), k // 2 + 1)

    def grids(self, height: int, width: int) -> tuple[tuple[int, int], ...]:
        """The (H, W) grid of the input and of every layer's output (after its pooling).

        Returns:
            L + 1 pairs: the input grid, then layer 1's, ..., layer L's.

        Raises:
            InputError: a "valid" filter larger than its input, pooling a grid of odd size, or
                pooling a 1 x 1 grid.
        """
        grids = [(int(height), int(width))]
        h, w = grids[0]
        for layer in range(1, self.layers + 1):
            if self.padding == "valid":
                if self.filter_size > min(h, w):
                    raise InputError(f"layer {layer}: a {self.filter_size}x{self.filter_size} "
                                     f"filter does not fit its {h}x{w} input under 'valid' "
                                     "padding")
                h, w = h - self.filter_size + 1, w - self.filter_size + 1
            if layer in self.pool:
                if h == 1 and w == 1:
                    raise InputError(f"layer {layer}: cannot pool past a 1x1 grid")
                if h % 2 or w % 2:
                    raise InputError(f"layer {layer}: 2x2 pooling needs an even grid, got "
                                     f"{h}x{w}")
                h, w = h // 2, w // 2
            grids.append((h, w))
        return tuple(grids)

    def padded(self, x: np.ndarray) -> np.ndarray:
        """The (n, C, H, W) feature maps padded so that a "valid" convolution of stride 1 with
        a k x k filter gives this architecture's output grid (zeros for "same", the wrapped
        grid for "circular", nothing for "valid")."""
        if self.padding == "valid":
            return x
        lo = (self.filter_size - 1) // 2
        hi = self.filter_size // 2
        mode = "wrap" if self.padding == "circular" else "constant"
        return np.pad(x, ((0, 0), (0, 0), (lo, hi), (lo, hi)), mode=mode)

    def features(self, channels: int, height: int, width: int) -> int:
        """Number of readout features of a network with ``channels`` in its last layer."""
        h, w = self.grids(height, width)[-1]
        return channels * (h * w if self.readout == "flatten" else 1)

    def describe(self) -> str:
        """One line, e.g. ``"2 x conv3 same, pool after 1, flatten"``."""
        pool = f", pool after {','.join(map(str, self.pool))}" if self.pool else ""
        return (f"{self.layers} x conv{self.filter_size} {self.padding}{pool}, "
                f"{self.readout} readout")


def fan_in_scale(channels: int, filter_size: int) -> float:
    """1 / sqrt(C k^2), the NTK-parameterisation factor of a convolution's output."""
    return 1.0 / math.sqrt(channels * filter_size * filter_size)
