"""The "expanded" convolutional recursion: the CNN analogue of the deterministic equivalents.

The fully connected equivalents (``ntk.equivalents``, spec section 4-5) come from expanding the
bivariate map of each layer around small correlations and around the chain's variance tau^2:
off the diagonal E[f(u) f(v)] = d1^2 c + (d2^2 / 2) c^2 + (d2^2 / 4)(q_i - tau^2)(q_j - tau^2)
+ ..., on it tau_next^2 + (d3 / 2)(q - tau^2) + ..., with the constants d1, d2, d3, E[sigma'^2]
of ``ntk.constants`` along the scalar chain. In a convolutional network the map acts on one
patch of C k^2 numbers at a time, so this expansion is accurate when C k^2 is large and the
patches of different images (and positions) are weakly correlated, the many-channel regime of
``../shared/spec/cnn-kernels.md``; on raw images (C = 1 or 3, strongly correlated patches) its
error is what the CNN experiments measure. :func:`cnn_equivalent` runs the recursion of
``ntk.cnn_exact`` with this map (``ntk.cnn_maps.ExpandedMap``) in place of the exact one, with
the centred activations the expansion assumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ntk.activations import Activation
from ntk.cnn_exact import DEFAULT_MEMORY, CNNKernels, compute_kernels
from ntk.cnn_maps import ExpandedMap
from ntk.constants import tau_chain

__all__ = ["cnn_equivalent"]


def cnn_equivalent(images, acts: str | Sequence[str | Activation | Callable], *,
                   filter_size: int = 3, padding: str = "same", pool: Sequence[int] = (),
                   readout: str = "flatten", ntk: bool = True, memory: int = DEFAULT_MEMORY,
                   progress: bool = True) -> CNNKernels:
    """CK and NTK of the expanded recursion (module docstring), for comparison with
    ``ntk.cnn_exact.cnn_kernels(..., centring=True)``.

    The chain starts at tau0^2 = the mean over images and positions of the first layer's
    variance q_1, as the centring of the exact kernels does; each layer's constants are those
    of ``ntk.constants.tau_chain``. Arguments and errors as for ``cnn_kernels``.

    Returns:
        :class:`~ntk.cnn_exact.CNNKernels` (``terms`` and ``close_pairs`` are zeros).
    """
    def maps(layers, tau0):
        chain = tau_chain(layers, tau0)
        return [ExpandedMap(c, ntk) for c in chain], [c.m0 for c in chain]

    return compute_kernels(images, acts, maps, filter_size=filter_size, padding=padding,
                           pool=pool, readout=readout, ntk=ntk, memory=memory,
                           progress=progress)
