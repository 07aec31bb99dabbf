"""Exact infinite-width kernels of convolutional networks (CNN-GP and CNTK), any activation.

The recursion of ``../shared/spec/cnn-kernels.md`` (the convention of neural-tangents' ``stax``
in the NTK parameterisation; architecture in ``ntk.cnn_architecture``): with
K_0,ij(a, b) = (1/C) sum_c x_ic(a) x_jc(b), for every layer l = 1..L

    S_l = A[K_(l-1)],   A[K](a, b) = (1/k^2) sum_d K(a + d, b + d)      (the window average),
    q_i(a) = S_l,ii(a, a),
    K_l,ij(a, b)  = E[(sigma(u) - m_l)(sigma(v) - m_l)],   Kd_l,ij(a, b) = E[sigma'(u) sigma'(v)],
        (u, v) centred Gaussian, variances q_i(a), q_j(b), covariance S_l,ij(a, b),
    Theta_1 = S_1,   N_l = K_l + Kd_l o Theta_l,   Theta_(l+1) = A[N_l],

then 2 x 2 average pooling P of K_l and N_l after the layers in ``pool``, and the readout
R = mean_a K(a, a) (flatten) or mean_(a, b) K(a, b) (global average pooling): CK = R[K_L],
NTK = R[N_L].

Planes. Both A and the bivariate map act on position pairs with a fixed offset e = b - a, and
pooling maps offsets e' of the coarse grid to the nine offsets 2 e' + {-1, 0, 1}^2 of the fine
one. So each image pair carries, per layer, only the planes K(a, a + e) of the offsets its
readout needs, found backwards from the readout: {0} for flatten (the spec's cost
O(n^2 H W k^2 L) without pooling; pooling multiplies the planes of the layers below it by 9),
all (2H - 1)(2W - 1) offsets for global average pooling (the full cost O(n^2 (H W)^2 L): small
images only). The bivariate map is ``ntk.cnn_maps``'s exact strategy for the activation, at
any correlation, so nearly parallel patches (common in images) and duplicates are exact.

Order of work. A self pass first gives every image's variances q_l at every layer (and the
per-sample data of each layer's map: scales, Hermite coefficients); then the image pairs
i >= j run through all layers in blocks sized to a memory budget, so memory is O(budget +
n H W T) whatever n. At the first layer, 1 - |rho| of nearly parallel patch pairs is computed
from the patches, ||p_i/|p_i| - sgn p_j/|p_j| ||^2 / 2, so that the kernels of activations
with kinks and jumps (which depend on sqrt(1 - |rho|)) stay exact there; at deeper layers it
is 1 - |rho| of the covariances, exact for duplicates and accurate to ~1e-16 otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numba
import numpy as np

from ntk.activations import Activation, parse_activations
from ntk.angular import angular_kernel
from ntk.cnn_architecture import ConvArchitecture, check_images
from ntk.cnn_maps import (
    _ACOS_MAX,
    AngularMap,
    PlaneBlock,
    SeriesMap,
    _partner,
    _span,
    _zero_outside,
)
from ntk.constants import tau_chain
from ntk.progress import progress_bar
from ntk.step_kernels import step_levels
from ntk.tiles import sample_indices
from ntklc.errors import InputError

__all__ = ["CNNKernels", "CNNPlan", "cnn_kernels", "cnn_plan", "compute_kernels"]

#: Default memory budget of the pair planes of one block, in bytes: blocks of a few tens of
#: MB reuse the same heap pages, where fresh 100 MB arrays cost page faults (measured: 15 % of
#: the relu benchmark's time at 256 MB).
DEFAULT_MEMORY = 64 * 2**20
# Arrays of one plane size alive at once in a block: input K and N, S, Theta, delta, K, N,
# the close-pair marks, and the pooling outputs.
_ARRAYS_PER_PLANE = 9
# Seconds before the progress bar shows.
_PROGRESS_DELAY = 2.0


@dataclass(frozen=True, eq=False)
class CNNKernels:
    """Exact kernels of a convolutional network on a set of images.

    Attributes:
        ck: (n, n) CK (CNN-GP kernel) of the readout.
        ntk: (n, n) NTK (CNTK), or ``None`` when not requested.
        arch: the architecture.
        activations: the canonical names of the layers' activations.
        centring: m_l of each layer (zeros when uncentred).
        tau0: input scale of the centring chain (the root mean first-layer variance).
        terms: largest number of Hermite terms of a sample at each layer (0: angular map).
        close_pairs: position pairs computed by the close-pair path at each layer.
    """

    ck: np.ndarray
    ntk: np.ndarray | None
    arch: ConvArchitecture
    activations: tuple[str, ...]
    centring: tuple[float, ...]
    tau0: float
    terms: tuple[int, ...]
    close_pairs: tuple[int, ...]


def cnn_kernels(images, acts: str | Sequence[str | Activation | Callable], *,
                filter_size: int = 3, padding: str = "same", pool: Sequence[int] = (),
                readout: str = "flatten", ntk: bool = True,
                centring: bool | Sequence[float] = False, tol: float = 1e-13,
                memory: int = DEFAULT_MEMORY, progress: bool = True) -> CNNKernels:
    """Exact CK and NTK of an infinitely wide CNN on ``images`` (module docstring).

    The network is, in neural-tangents' ``stax`` (NHWC images, float64)::

        stax.serial(*[stax.serial(stax.Conv(1, (k, k), padding=P, W_std=1.0, b_std=None),
                                  Act, *([stax.AvgPool((2, 2), strides=(2, 2))]
                                         if l in pool else [])) for l, Act in layers],
                    stax.Flatten() or stax.GlobalAvgPool(), stax.Dense(1, W_std=1.0,
                                                                        b_std=None))

    with P = "SAME", "CIRCULAR" or "VALID" and Act the activation (stax.Relu, stax.Erf, ...;
    any catalogue activation here, multi-level steps included).

    Cost: flatten without pooling evaluates the bivariate map once per (image pair, position,
    layer), O(n^2 H W (C + k^2 + t) L) with t the cost of one entry (two Chebyshev sums for
    relu-type activations, a Hermite series of the pair's length otherwise); each pooled layer
    multiplies the work of the layers below it by up to 9. Global average pooling needs every
    position pair: O(n^2 (H W)^2 L), for small images only.

    Args:
        images: (n, C, H, W), finite.
        acts: one activation per convolution, as for ``ntk.exact.exact_kernels``.
        filter_size: k, the side of every filter.
        padding: "same" (zeros), "circular" or "valid".
        pool: the layers (1-based) whose activation is followed by 2 x 2 average pooling.
        readout: "flatten" or "gap" (global average pooling).
        ntk: also compute the NTK (undefined for activations with jumps).
        centring: ``False`` (uncentred, neural-tangents' convention), ``True`` (the scalar
            centring of the fully connected kernels: m_l = E[sigma_l(tau_(l-1) xi)] along
            ``ntk.constants.tau_chain`` from tau0^2 = the mean of q_1 over images and
            positions), or the m_l themselves.
        tol: truncation tolerance of the Hermite series relative to the kernel scale.
        memory: bytes of pair planes held at once.
        progress: a progress bar on stderr for calls longer than a few seconds.

    Returns:
        :class:`CNNKernels`.

    Raises:
        InputError: bad images (rank, NaN/inf), architecture (unknown padding or readout, a
            filter larger than the image under "valid", pooling an odd grid or past 1 x 1),
            activations, NTK requested for an activation with jumps, bad centring or tol.
    """
    plan = cnn_plan(images, acts, filter_size=filter_size, padding=padding, pool=pool,
                    readout=readout, ntk=ntk, centring=centring, tol=tol, memory=memory)
    return plan.kernels(progress)


@dataclass(frozen=True, eq=False)
class CNNPlan:
    """Everything but the image pairs: the architecture, the layers' maps and the per-image
    states of the self pass (variances, coefficients). Any block of image pairs then runs
    through :meth:`tile` independently, e.g. as the tiles of ``validation.data.kernel_store``.

    A plan pickles by its arguments and is rebuilt where it lands (a worker process or a dask
    worker), at the cost of the self pass, O(n) of the O(n^2) pair work; the rebuilt plan is
    the same (the self pass is deterministic).

    Attributes:
        n: the number of images.
        ntk: whether the NTK is computed.
    """

    engine: _Engine
    maps: tuple
    centring: tuple[float, ...]
    tau0: float
    layers: tuple[Activation, ...]
    arguments: tuple

    @property
    def n(self) -> int:
        return self.engine.x.shape[0]

    @property
    def ntk(self) -> bool:
        return self.engine.ntk

    def __reduce__(self):
        return (_rebuilt_plan, self.arguments)

    def tile(self, rows, cols) -> tuple[np.ndarray, np.ndarray | None]:
        """The block (rows, cols) of the CK and the NTK (``None`` without it), each
        (len(rows), len(cols)); rows and cols are image indices (arrays or slices)."""
        rows, cols = sample_indices(self.n, rows), sample_indices(self.n, cols)
        ii = np.repeat(rows, cols.size)
        jj = np.tile(cols, rows.size)
        ck = np.empty(ii.size)
        nt = np.empty(ii.size) if self.ntk else None
        for start in range(0, ii.size, self.engine.block):
            sl = slice(start, start + self.engine.block)
            ck[sl], nt_b, _ = self.engine._forward(ii[sl], jj[sl], True, self.maps, stop=None)
            if self.ntk:
                nt[sl] = nt_b
        shape = (rows.size, cols.size)
        return ck.reshape(shape), (nt.reshape(shape) if self.ntk else None)

    def kernels(self, progress: bool = False) -> CNNKernels:
        """The whole kernels (every pair i >= j once, mirrored)."""
        ck, nt, close = self.engine.run(self.maps, progress)
        return CNNKernels(ck=ck, ntk=nt, arch=self.engine.arch,
                          activations=tuple(a.name for a in self.layers),
                          centring=self.centring, tau0=self.tau0,
                          terms=tuple(mp.terms for mp in self.maps), close_pairs=tuple(close))


def _rebuilt_plan(images, names, options) -> CNNPlan:
    return cnn_plan(images, names, **options)


def cnn_plan(images, acts: str | Sequence[str | Activation | Callable], *,
             filter_size: int = 3, padding: str = "same", pool: Sequence[int] = (),
             readout: str = "flatten", ntk: bool = True,
             centring: bool | Sequence[float] = False, tol: float = 1e-13,
             memory: int = DEFAULT_MEMORY) -> CNNPlan:
    """The :class:`CNNPlan` of ``cnn_kernels`` with the same arguments (the self pass done,
    no image pair computed).

    Raises:
        InputError: as :func:`cnn_kernels`.
    """
    if not (0 < tol < 1):
        raise InputError(f"tol must lie in (0, 1), got {tol}")

    def maps(layers, tau0):
        m = _centring(centring, layers, tau0)
        return [_layer_map(act, m_l, tol, ntk) for act, m_l in zip(layers, m, strict=True)], m

    architecture = {"filter_size": filter_size, "padding": padding, "pool": tuple(pool),
                    "readout": readout, "ntk": ntk, "memory": memory}
    plan = _prepared(images, acts, maps, **architecture)
    # What rebuilds the plan elsewhere (activations by name: __reduce__).
    options = {**architecture, "tol": tol,
               "centring": centring if isinstance(centring, bool) else tuple(centring)}
    return replace(plan, arguments=(plan.engine.x, [a.name for a in plan.layers], options))


def compute_kernels(images, acts, make_maps: Callable, *, filter_size: int, padding: str,
                    pool: Sequence[int], readout: str, ntk: bool, memory: int,
                    progress: bool) -> CNNKernels:
    """The recursion of the module docstring with the per-layer maps of ``make_maps(layers,
    tau0) -> (maps, centring)`` (the exact ones, or ``ntk.cnn_equivalent``'s expansion)."""
    return _prepared(images, acts, make_maps, filter_size=filter_size, padding=padding,
                     pool=pool, readout=readout, ntk=ntk, memory=memory).kernels(progress)


def _prepared(images, acts, make_maps: Callable, *, filter_size: int, padding: str,
              pool: Sequence[int], readout: str, ntk: bool, memory: int) -> CNNPlan:
    """The plan of :func:`compute_kernels` (``arguments`` empty: not picklable)."""
    x = check_images(images)
    layers = parse_activations(acts)
    arch = ConvArchitecture(len(layers), filter_size, padding, tuple(pool), readout)
    grids = arch.grids(x.shape[2], x.shape[3])
    if ntk:
        jumpy = [a.name for a in layers if a.has_jumps]
        if jumpy:
            raise InputError(f"NTK undefined for activations with jumps ({', '.join(jumpy)}): "
                             "E[sigma'^2] is infinite; request the CK only (ntk=False)")
    engine = _Engine(x, arch, grids, ntk, memory)
    tau0 = math.sqrt(float(np.mean(engine.first_variances())))
    maps, m = make_maps(layers, tau0)
    engine.prepare(maps)
    return CNNPlan(engine=engine, maps=tuple(maps), centring=tuple(m), tau0=tau0,
                   layers=tuple(layers), arguments=())


def _centring(centring, layers: list[Activation], tau0: float) -> list[float]:
    if centring is False or centring is None:
        return [0.0] * len(layers)
    if centring is True:
        if not (math.isfinite(tau0) and tau0 > 0):
            raise InputError("centring needs images with a positive first-layer variance")
        return [c.m0 for c in tau_chain(layers, tau0)]
    m = [float(v) for v in centring]
    if len(m) != len(layers) or not all(math.isfinite(v) for v in m):
        raise InputError(f"centring must be a bool or {len(layers)} finite numbers, got "
                         f"{centring!r}")
    return m


def _layer_map(act: Activation, m: float, tol: float, ntk: bool):
    """The exact strategy of ``ntk.cnn_maps`` for ``act``."""
    kernel = angular_kernel(act)
    if kernel is not None:
        return AngularMap(kernel, m, ntk)
    return SeriesMap(act, m, tol, ntk, step_levels(act))


def _offsets(arch: ConvArchitecture, grids) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, the offsets e of the planes on its convolution's output grid (module
    docstring), found backwards from the readout."""
    circular = arch.padding == "circular"

    def canonical(offs, H, W):
        if circular:
            offs = {(a % H, b % W) for a, b in offs}
        else:
            offs = {(a, b) for a, b in offs if abs(a) < H and abs(b) < W}
        return sorted(offs)

    H, W = grids[-1]
    if arch.readout == "flatten":
        need = [(0, 0)]
    else:
        rng_h = range(H) if circular else range(-H + 1, H)
        rng_w = range(W) if circular else range(-W + 1, W)
        need = [(a, b) for a in rng_h for b in rng_w]
    out = []
    for layer in range(arch.layers, 0, -1):
        Hc, Wc = _conv_grid(arch, grids, layer)
        if layer in arch.pool:
            need = canonical([(2 * a + u, 2 * b + v) for a, b in need for u in (-1, 0, 1)
                              for v in (-1, 0, 1)], Hc, Wc)
        else:
            need = canonical(need, Hc, Wc)
        out.append((np.array([a for a, _ in need], dtype=np.int64),
                    np.array([b for _, b in need], dtype=np.int64)))
    return out[::-1]


def _conv_grid(arch: ConvArchitecture, grids, layer: int) -> tuple[int, int]:
    """The grid of layer ``layer``'s convolution output, before its pooling."""
    H, W = grids[layer]
    return (2 * H, 2 * W) if layer in arch.pool else (H, W)


class _Engine:
    """The planes recursion over blocks of image pairs."""

    def __init__(self, x: np.ndarray, arch: ConvArchitecture, grids, ntk: bool, memory: int):
        if isinstance(memory, bool) or not isinstance(memory, int | np.integer) or memory < 1:
            raise InputError(f"memory must be a positive number of bytes, got {memory!r}")
        self.x = x
        self.arch = arch
        self.grids = grids
        self.ntk = ntk
        self.offsets = _offsets(arch, grids)
        self.circular = arch.padding == "circular"
        self.k = arch.filter_size
        self.lo = 0 if arch.padding == "valid" else (self.k - 1) // 2
        # Padded images for the first layer's 1 - |rho| from the patches.
        self.padded = np.ascontiguousarray(arch.padded(x))
        per_pair = max(len(eh) * max(_conv_grid(arch, grids, layer)[0] * _conv_grid(
            arch, grids, layer)[1], grids[layer - 1][0] * grids[layer - 1][1])
            for layer, (eh, _) in enumerate(self.offsets, start=1))
        self.block = max(1, int(memory) // (8 * _ARRAYS_PER_PLANE * per_pair))
        self.states: list = []
        self.variances: list[np.ndarray] = []

    def first_variances(self) -> np.ndarray:
        """q_1 of every image and position, (n, H, W)."""
        return self._variances(1, [])

    def _variances(self, layer: int, maps) -> np.ndarray:
        n = self.x.shape[0]
        Hc, Wc = _conv_grid(self.arch, self.grids, layer)
        q = np.empty((n, Hc, Wc))
        for start in range(0, n, self.block):
            idx = np.arange(start, min(n, start + self.block))
            S = self._forward(idx, idx, True, maps, stop=layer)[0]
            zero = self._zero_index(layer)
            q[idx] = S[:, zero]
        return q

    def _zero_index(self, layer: int) -> int:
        eh, ew = self.offsets[layer - 1]
        return int(np.flatnonzero((eh == 0) & (ew == 0))[0])

    def prepare(self, maps) -> None:
        """The self pass: every image's variances and the maps' per-image states."""
        self.states = []
        self.variances = []
        for layer, mp in enumerate(maps, start=1):
            q = self._variances(layer, maps)
            self.variances.append(q)
            self.states.append(mp.prepare(q))

    def run(self, maps, progress: bool):
        n = self.x.shape[0]
        ii, jj = np.tril_indices(n)
        ck = np.empty((n, n))
        nt = np.empty((n, n)) if self.ntk else None
        close = np.zeros(len(maps), dtype=np.int64)
        with progress_bar(total=ii.size, desc="image pairs", unit="pair",
                          disable=not progress, delay=_PROGRESS_DELAY, leave=False) as bar:
            for start in range(0, ii.size, self.block):
                sl = slice(start, start + self.block)
                ck_b, nt_b, close_b = self._forward(ii[sl], jj[sl], True, maps, stop=None)
                ck[ii[sl], jj[sl]] = ck_b
                ck[jj[sl], ii[sl]] = ck_b
                if self.ntk:
                    nt[ii[sl], jj[sl]] = nt_b
                    nt[jj[sl], ii[sl]] = nt_b
                close += close_b
                bar.update(ii[sl].size)
        return ck, nt, close.tolist()

    def _forward(self, ii, jj, diag, maps, stop):
        """Run a block of pairs through the layers: the readouts, or at ``stop`` the
        pre-activation planes S of that layer (with an empty second entry)."""
        ii = np.ascontiguousarray(ii, dtype=np.int64)
        jj = np.ascontiguousarray(jj, dtype=np.int64)
        eh, ew = self.offsets[0]
        H0, W0 = self.grids[0]
        K = np.empty((ii.size, eh.size, H0, W0))
        _input_planes(self.x, ii, jj, eh, ew, self.circular, K)
        N = None
        # 1 - |rho'| of the previous layer's outputs (None after pooling: recomputed from S).
        D_prev = None
        close = np.zeros(len(maps), dtype=np.int64)
        for layer in range(1, self.arch.layers + 1):
            eh, ew = self.offsets[layer - 1]
            Hc, Wc = _conv_grid(self.arch, self.grids, layer)
            S = np.empty((ii.size, eh.size, Hc, Wc))
            _window(K, self.k, self.lo, eh, ew, self.circular, S)
            if stop == layer:
                return S, None, close
            theta = np.empty((1, 1, 1, 1))
            if self.ntk:
                if layer == 1:
                    theta = S
                else:
                    theta = np.empty_like(S)
                    _window(N, self.k, self.lo, eh, ew, self.circular, theta)
            delta = np.empty_like(S)
            if layer == 1:
                _patch_delta(self.padded, ii, jj, eh, ew, self.circular, self.k, S,
                             self.variances[0], delta)
            elif D_prev is not None:
                _window_delta(K, D_prev, maps[layer - 2].diagonal(self.states[layer - 2]),
                              self.variances[layer - 1], ii, jj, eh, ew, self.k, self.lo,
                              self.circular, S, delta)
            else:
                delta.fill(-1.0)
            K = np.empty_like(S)
            N = np.empty_like(S) if self.ntk else np.empty((1, 1, 1, 1))
            # The outputs' 1 - |rho'| feed the next convolution's close pairs; a pooled or the
            # last layer has no use for them.
            pooled = layer in self.arch.pool
            D_prev = None if pooled or layer == self.arch.layers else np.empty_like(S)
            block = PlaneBlock(ii, jj, eh, ew, self.circular, diag, S, theta, delta)
            close[layer - 1] += maps[layer - 1].evaluate(self.states[layer - 1], block, K, N,
                                                         D_prev)
            if pooled:
                K, N = self._pool(layer, K, N)
        return self._readout(K), (self._readout(N) if self.ntk else None), close

    def _pool(self, layer: int, K, N):
        fine_h, fine_w = self.offsets[layer - 1]
        if layer < self.arch.layers:
            eh, ew = self.offsets[layer]
        else:
            eh, ew = (np.zeros(1, np.int64), np.zeros(1, np.int64)) \
                if self.arch.readout == "flatten" else self._readout_offsets()
        H, W = self.grids[layer]
        table = _pool_table(fine_h, fine_w, eh, ew, 2 * H, 2 * W, self.circular)
        out_k = np.empty((K.shape[0], eh.size, H, W))
        _pool_planes(K, table, out_k)
        out_n = None
        if self.ntk:
            out_n = np.empty_like(out_k)
            _pool_planes(N, table, out_n)
        return out_k, out_n

    def _readout_offsets(self):
        H, W = self.grids[-1]
        if self.circular:
            hh, ww = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
        else:
            hh, ww = np.meshgrid(np.arange(-H + 1, H), np.arange(-W + 1, W), indexing="ij")
        return hh.ravel().astype(np.int64), ww.ravel().astype(np.int64)

    def _readout(self, K: np.ndarray) -> np.ndarray:
        H, W = self.grids[-1]
        if self.arch.readout == "flatten":
            if self.arch.layers in self.arch.pool:
                zero = 0
            else:
                eh, ew = self.offsets[-1]
                zero = int(np.flatnonzero((eh == 0) & (ew == 0))[0])
            return K[:, zero].reshape(K.shape[0], -1).mean(axis=1)
        return K.reshape(K.shape[0], -1).sum(axis=1) / (H * W) ** 2


def _pool_table(fine_h, fine_w, eh, ew, Hf, Wf, circular) -> np.ndarray:
    """table[e', uh, uw, vh, vw]: the fine plane of offset 2 e' + v - u (-1 if not held)."""
    index = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(fine_h, fine_w, strict=True))}
    table = np.full((eh.size, 2, 2, 2, 2), -1, dtype=np.int64)
    for k, (a, b) in enumerate(zip(eh, ew, strict=True)):
        for uh in (0, 1):
            for uw in (0, 1):
                for vh in (0, 1):
                    for vw in (0, 1):
                        fa, fb = 2 * a + vh - uh, 2 * b + vw - uw
                        if circular:
                            fa, fb = fa % Hf, fb % Wf
                        table[k, uh, uw, vh, vw] = index.get((int(fa), int(fb)), -1)
    return table


@numba.njit(parallel=True, cache=True)
def _input_planes(x, ii, jj, eh, ew, circular, out):
    """out[p, e, a] = (1/C) sum_c x[i, c, a] x[j, c, a + e] (0 outside the grid)."""
    B, n_off, H, W = out.shape
    C = x.shape[1]
    for p in numba.prange(B):
        i = ii[p]
        j = jj[p]
        for e in range(n_off):
            h0, h1 = _span(eh[e], H, circular)
            w0, w1 = _span(ew[e], W, circular)
            _zero_outside(out, p, e, h0, h1, w0, w1)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    hb, wb = _partner(h, w, eh[e], ew[e], H, W, circular)
                    acc = 0.0
                    for c in range(C):
                        acc += x[i, c, h, w] * x[j, c, hb, wb]
                    out[p, e, h, w] = acc / C


@numba.njit(parallel=True, cache=True)
def _window(inp, k, lo, eh, ew, circular, out):
    """out[p, e, a] = (1/k^2) sum_d inp[p, e, a + d - lo] with d in [0, k)^2: zero outside
    the grid ("same"), wrapped ("circular"), or a smaller output grid ("valid", lo = 0).

    Only the positions a whose partner a + e lies on the grid are computed (the others are
    never read: the maps write 0 there), in a rectangle: each plane's rectangle is copied into
    a padded buffer (zeros or wrapped rows and columns) and summed separably, k row sums then
    k column sums per output, with no bounds tests in the loops."""
    B, n_off, H, W = out.shape
    Hi, Wi = inp.shape[2], inp.shape[3]
    scale = 1.0 / (k * k)
    for p in numba.prange(B):
        padded = np.empty((H + k - 1, W + k - 1))
        rows = np.empty((H + k - 1, W))
        for e in range(n_off):
            h0, h1 = _span(eh[e], H, circular)
            w0, w1 = _span(ew[e], W, circular)
            for r in range(h0, h1 + k - 1):
                src = r - lo
                if circular:
                    src %= Hi
                elif src < 0 or src >= Hi:
                    padded[r, w0:w1 + k - 1] = 0.0
                    continue
                for c in range(w0, w1 + k - 1):
                    col = c - lo
                    if circular:
                        padded[r, c] = inp[p, e, src, col % Wi]
                    elif 0 <= col < Wi:
                        padded[r, c] = inp[p, e, src, col]
                    else:
                        padded[r, c] = 0.0
            for r in range(h0, h1 + k - 1):
                for c in range(w0, w1):
                    acc = 0.0
                    for dj in range(k):
                        acc += padded[r, c + dj]
                    rows[r, c] = acc
            for h in range(h0, h1):
                for c in range(w0, w1):
                    acc = 0.0
                    for di in range(k):
                        acc += rows[h + di, c]
                    out[p, e, h, c] = acc * scale


@numba.njit(parallel=True, cache=True)
def _pool_planes(inp, table, out):
    """out[p, e', a'] = (1/16) sum_(u, v) inp[p, table[e', u, v], 2 a' + u]."""
    B, n_off, H, W = out.shape
    for p in numba.prange(B):
        for e in range(n_off):
            for h in range(H):
                for w in range(W):
                    acc = 0.0
                    for uh in range(2):
                        for uw in range(2):
                            for vh in range(2):
                                for vw in range(2):
                                    f = table[e, uh, uw, vh, vw]
                                    if f >= 0:
                                        acc += inp[p, f, 2 * h + uh, 2 * w + uw]
                    out[p, e, h, w] = acc / 16.0


@numba.njit(parallel=True, cache=True)
def _patch_delta(padded, ii, jj, eh, ew, circular, k, S, q, delta):
    """1 - |rho| of the first layer's close patch pairs, ||p_i/|p_i| -+ p_j/|p_j| ||^2 / 2.

    p_i is the (C, k, k) patch of the padded image i at the output position (|p_i|^2 =
    C k^2 q_i); only pairs with |rho| above the arccos limit of ``ntk.cnn_maps`` are computed
    (the others get -1; positions whose partner is off the grid are left alone)."""
    B, n_off, H, W = S.shape
    C = padded.shape[1]
    for p in numba.prange(B):
        i = ii[p]
        j = jj[p]
        for e in range(n_off):
            h0, h1 = _span(eh[e], H, circular)
            w0, w1 = _span(ew[e], W, circular)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    delta[p, e, h, w] = -1.0
                    hb, wb = _partner(h, w, eh[e], ew[e], H, W, circular)
                    qi = q[i, h, w]
                    qj = q[j, hb, wb]
                    if qi == 0.0 or qj == 0.0:
                        continue
                    rho = S[p, e, h, w] / math.sqrt(qi * qj)
                    if abs(rho) <= _ACOS_MAX:
                        continue
                    sgn = 1.0 if rho > 0 else -1.0
                    ni = math.sqrt(qi * C) * k
                    nj = math.sqrt(qj * C) * k
                    acc = 0.0
                    for c in range(C):
                        for di in range(k):
                            for dj in range(k):
                                diff = (padded[i, c, h + di, w + dj] / ni
                                        - sgn * padded[j, c, hb + di, wb + dj] / nj)
                                acc += diff * diff
                    delta[p, e, h, w] = min(0.5 * acc, 1.0)


@numba.njit(parallel=True, cache=True)
def _window_delta(K, D, second, q, ii, jj, eh, ew, k, lo, circular, S, delta):
    """1 - |rho| of the close pairs of a convolution's output, from its inputs' own.

    The convolution's weights are independent across window offsets d, so with
    lambda = sgn(S) sqrt(q_i / q_j) the distance E[(z_i - lambda z_j)^2] = 2 q_i (1 - |rho|)
    is the window average of the inputs' E[(y_i - lambda y_j)^2]. With A, B the inputs'
    second moments, lambda_d = sgn(K_d) sqrt(A / B) and their 1 - |rho_d| = D_d, each term
    is B ((lambda_d - lambda)^2 + 2 lambda lambda_d D_d): non-negative terms when the signs
    agree, so a pair of nearly parallel windows keeps every digit of 1 - |rho| (duplicates
    give 0). A term with A = 0 (a zero input, padding included) is lambda^2 B, with B = 0 it
    is A. Pairs with |rho| at most the arccos limit get -1 (the maps use 1 - |rho| of S);
    positions whose partner is off the grid are left alone."""
    B_, n_off, H, W = S.shape
    Hi, Wi = K.shape[2], K.shape[3]
    for p in numba.prange(B_):
        i = ii[p]
        j = jj[p]
        for e in range(n_off):
            h0, h1 = _span(eh[e], H, circular)
            w0, w1 = _span(ew[e], W, circular)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    delta[p, e, h, w] = -1.0
                    hb, wb = _partner(h, w, eh[e], ew[e], H, W, circular)
                    qi = q[i, h, w]
                    qj = q[j, hb, wb]
                    if qi == 0.0 or qj == 0.0:
                        continue
                    rho = S[p, e, h, w] / math.sqrt(qi * qj)
                    if abs(rho) <= _ACOS_MAX:
                        continue
                    lam = math.sqrt(qi / qj) if rho > 0 else -math.sqrt(qi / qj)
                    acc = 0.0
                    for di in range(k):
                        r = h + di - lo
                        rb = r + eh[e]
                        if circular:
                            r %= Hi
                            rb %= Hi
                        for dj in range(k):
                            c = w + dj - lo
                            cb = c + ew[e]
                            if circular:
                                c %= Wi
                                cb %= Wi
                            inside_i = 0 <= r < Hi and 0 <= c < Wi
                            inside_j = 0 <= rb < Hi and 0 <= cb < Wi
                            a_d = second[i, r, c] if inside_i else 0.0
                            b_d = second[j, rb, cb] if inside_j else 0.0
                            if a_d == 0.0:
                                acc += lam * lam * b_d
                            elif b_d == 0.0:
                                acc += a_d
                            else:
                                lam_d = math.sqrt(a_d / b_d)
                                if K[p, e, r, c] < 0:
                                    lam_d = -lam_d
                                acc += b_d * ((lam_d - lam) ** 2
                                              + 2.0 * lam * lam_d * D[p, e, r, c])
                    delta[p, e, h, w] = min(1.0, max(0.0, acc / (k * k) / (2.0 * qi)))
