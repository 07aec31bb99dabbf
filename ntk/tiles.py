"""Exact kernels by tiles: any block of rows x columns of CK_L and NTK_L, independently.

The recursion of ``ntk.exact`` is entrywise: CK_l(i, j) and NTK_l(i, j) depend on the pair's
own entries at layer l - 1 and on per-sample quantities only (the scales s_i = sqrt(CK_{l-1}(i,
i)), the Hermite coefficients c_k(i), d_k(i) and the diagonal moments). A :class:`KernelPlan`
holds those per-sample quantities of every layer, computed once in O(n M T) without any n x n
array; :func:`kernel_tile` then computes the tile (I, J) from X[:, I], X[:, J] and the plan, so
the tiles of a kernel are independent tasks (``validation.data.kernel_store`` runs them on a process
pool or a dask cluster and stores them on disk).

The plan makes the choices ``exact_kernels`` makes from the whole matrix without it:

- T_0 (the terms every pair shares) is chosen from the same grid of sampled pairs
  (``ntk.exact.sample_grid``), whose entries at layer l come from the tile of that grid at
  layer l - 1;
- every sample gets T_i = ``MAX_TERMS`` coefficients. A pair's series stops at its own T_ij =
  ceil(log(tol) / log |rho_ij|) in both computations (``exact_kernels`` takes T_i >= T_ij for
  every pair of row i), so this costs coefficient memory and quadrature time, not accuracy.

So a tile equals the same block of ``exact_kernels`` up to the rounding of X^T X (a general
product here, symmetric rank-k updates there) carried through the recursion: agreement to
about 1e-15 of the kernel scale, not bit for bit (``tests/ntk/test_tiles.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from ntk.activations import Activation, activation
from ntk.constants import tau_chain
from ntk.exact import (
    MAX_TERMS,
    ClosePairs,
    LayerTerms,
    bulk_terms,
    checked_inputs,
    checked_scales,
    checked_tau0,
    cross_products,
    data_close_pairs,
    grid_correlations,
    hidden_close_pairs,
    layer_terms,
    mirror_lower,
    quadrature_close_pairs,
    sample_grid,
    tile_update,
)
from ntklc.errors import InputError

__all__ = ["FullyConnectedTiles", "KernelPlan", "check_portable", "kernel_matrix",
           "kernel_plan", "kernel_tile", "sample_indices"]


@dataclass(frozen=True, eq=False)
class KernelPlan:
    """Per-sample quantities of every layer of the exact kernels of n samples.

    Attributes:
        acts: the L activations.
        m: (L,) centring constants m_l.
        scales: (L, n) s_i at the input of each layer.
        terms: the L layers' :class:`ntk.exact.LayerTerms`.
        bulk: (L,) T_0 of each layer.
        tau0, tol, ntk: as given to :func:`kernel_plan`.
    """

    acts: tuple[Activation, ...]
    m: tuple[float, ...]
    scales: np.ndarray
    terms: tuple[LayerTerms, ...]
    bulk: tuple[int, ...]
    tau0: float
    tol: float
    ntk: bool

    @property
    def n(self) -> int:
        return self.scales.shape[1]

    def __reduce__(self):
        # Activations travel by name (their functions are closures): a plan pickles, for a
        # worker process or a dask worker, when its activations are catalogue names.
        return (_plan_from_names, ([a.name for a in self.acts], self.m, self.scales, self.terms,
                                   self.bulk, self.tau0, self.tol, self.ntk))


def check_portable(acts: Sequence[Activation]) -> None:
    """Raise ValueError unless the activations travel by name to another process: catalogue
    activations, not user callables."""
    for act in acts:
        try:
            fn = activation(act.name).fn
        except ValueError:
            fn = None
        # The same code: a user callable named like a catalogue entry is not that entry.
        same = fn is act.fn or getattr(fn, "__code__", 0) is getattr(act.fn, "__code__", 1)
        if not same:
            raise InputError(f"activation {act.name!r} is not a catalogue activation; its "
                             "tiles can only be computed in this process (workers = 1)")


@dataclass(frozen=True, eq=False)
class FullyConnectedTiles:
    """The tiles of the exact kernels of the columns of X: the interface of
    ``ntk.cnn_exact.CNNPlan`` (``n``, ``ntk``, ``tau0``, ``tile``) for ``kernel_tile``."""

    X: np.ndarray
    plan: KernelPlan

    @property
    def n(self) -> int:
        return self.plan.n

    @property
    def ntk(self) -> bool:
        return self.plan.ntk

    @property
    def tau0(self) -> float:
        return self.plan.tau0

    def tile(self, rows, cols) -> tuple[np.ndarray, np.ndarray | None]:
        return kernel_tile(self.X, self.plan, rows, cols)


def sample_indices(n: int, index) -> np.ndarray:
    """The int64 sample indices of a tile side given as a slice of range(n) or as indices."""
    return np.arange(n)[index] if isinstance(index, slice) else np.asarray(index, np.int64)


def _plan_from_names(names, *fields) -> KernelPlan:
    return KernelPlan(tuple(activation(name) for name in names), *fields)


def kernel_plan(X: np.ndarray, acts: str | Sequence[str | Activation | Callable],
                tau0: float | None = None, *, ntk: bool = True, tol: float = 1e-13
                ) -> KernelPlan:
    """The :class:`KernelPlan` of the columns of X, with the arguments of
    ``ntk.exact_kernels``.

    Cost: O(n p) for the scales, per layer the quadrature of n samples to ``MAX_TERMS`` terms
    (O(n T) for relu-like activations, O(n M T) with M ~ 1300-7000 nodes otherwise) and one
    tile of at most 256 x 256 sampled pairs. Memory: (n, MAX_TERMS + 1) coefficients per layer
    (twice with the NTK).

    Raises:
        InputError: as ``ntk.exact_kernels``.
    """
    X, layers = checked_inputs(X, acts, tol, ntk)
    sq_norms = np.einsum("ij,ij->j", X, X)
    tau0 = checked_tau0(math.sqrt(sq_norms.mean()) if tau0 is None else tau0)
    consts = tau_chain(layers, tau0)
    n = X.shape[1]
    grid = sample_grid(n)
    row_terms = np.full(n, MAX_TERMS, dtype=np.int64)
    diag = sq_norms
    plan = KernelPlan(acts=tuple(layers), m=tuple(c.m0 for c in consts), scales=np.empty((0, n)),
                      terms=(), bulk=(), tau0=tau0, tol=tol, ntk=ntk)
    for layer, (act, const) in enumerate(zip(layers, consts, strict=True), start=1):
        s = checked_scales(diag, layer)
        # The sampled pairs at this layer's input: the grid's tile of the layers so far.
        K = kernel_tile(X, plan, grid, grid, ntk=False)[0]
        bulk = bulk_terms(grid_correlations(K, s, grid), tol)
        terms = layer_terms(act, s, const.m0, row_terms, bulk, ntk=ntk)
        plan = KernelPlan(acts=plan.acts, m=plan.m, scales=np.vstack([plan.scales, s]),
                          terms=(*plan.terms, terms), bulk=(*plan.bulk, bulk), tau0=tau0,
                          tol=tol, ntk=ntk)
        diag = terms.ck_diag
    return plan


def kernel_tile(X: np.ndarray, plan: KernelPlan, rows, cols, *, ntk: bool | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """The block (rows, cols) of CK_L and NTK_L of the columns of X, for the layers in ``plan``.

    Args:
        X: (p, n) the data the plan was made from.
        plan: from :func:`kernel_plan` (a plan of fewer layers gives those layers' kernels).
        rows, cols: sample indices (int arrays or slices) of the tile's rows and columns.
        ntk: compute the NTK too; default ``plan.ntk``.

    Returns:
        (CK, NTK) tiles of shape (len(rows), len(cols)), C-ordered float64; NTK is ``None``
        when not computed. Cost O(|I| |J| (p + sum_l T_0,l)) plus ~2 ms per pair closer than
        the series' reach (near-duplicates).
    """
    rows, cols = sample_indices(plan.n, rows), sample_indices(plan.n, cols)
    with_ntk = plan.ntk if ntk is None else ntk
    if with_ntk and not plan.ntk:
        raise InputError("this plan was made without the NTK")
    X_rows, X_cols = X[:, rows], X[:, cols]
    K = cross_products(X_rows, X_cols)
    N = np.empty_like(K) if with_ntk else np.empty((0, 0))
    # The column of each row's own sample (its diagonal entry), or -1.
    order = np.argsort(cols, kind="stable")
    pos = np.minimum(np.searchsorted(cols[order], rows), cols.size - 1)
    diag_col = np.where(cols[order][pos] == rows, order[pos], -1).astype(np.int64)
    log_tol, cap = math.log(plan.tol), plan.tol ** (1.0 / MAX_TERMS)
    terms_r = np.full(rows.size, MAX_TERMS, dtype=np.int64)
    terms_c = np.full(cols.size, MAX_TERMS, dtype=np.int64)
    close: ClosePairs | None = None
    for layer, (act, m, s, t) in enumerate(zip(plan.acts, plan.m, plan.scales, plan.terms,
                                               strict=False)):
        s_r, s_c = s[rows], s[cols]
        a, b = _close_in_tile(K, s_r, s_c, diag_col, cap)
        rho = K[a, b] / (s_r[a] * s_c[b])
        close = (data_close_pairs(X_rows, X_cols, a, b, rho) if layer == 0
                 else hidden_close_pairs(a, b, rho, cols.size, close))
        ntk_before = (K if layer == 0 else N)[a, b] if with_ntk else None
        dt = t.deriv_t[:, rows] if with_ntk else np.empty((0, 0))
        dc = t.deriv_t[:, cols] if with_ntk else np.empty((0, 0))
        deriv_r = t.deriv[rows] if with_ntk else np.empty((0, 0))
        deriv_c = t.deriv[cols] if with_ntk else np.empty((0, 0))
        tile_update(K, N, layer == 0, diag_col, s_r, np.ascontiguousarray(t.coef_t[:, rows]),
                     np.ascontiguousarray(dt), t.coef[rows], deriv_r, terms_r, s_c,
                     np.ascontiguousarray(t.coef_t[:, cols]), np.ascontiguousarray(dc),
                     t.coef[cols], deriv_c, terms_c, t.ck_diag[rows], t.sdot_diag[rows],
                     with_ntk, log_tol, cap)
        ck, ntk_values, close = quadrature_close_pairs(act, m, s_r, s_c, t.ck_diag[rows],
                                                       t.ck_diag[cols], close, ntk_before)
        K[a, b] = ck
        if with_ntk:
            N[a, b] = ntk_values
    return K, (N if with_ntk else None)


def kernel_matrix(X: np.ndarray, plan: KernelPlan, kernel: str = "ntk", *, tile: int = 2048
                  ) -> np.ndarray:
    """One of the kernels of the plan as an (n, n) array, assembled from lower tiles.

    ``exact_kernels`` holds CK_l and NTK_l together, two n x n arrays; this holds only the
    one asked for (plus one tile of each), at the cost of computing the diagonal tiles
    whole: about n / tile more work. The result is exactly symmetric.

    Args:
        X, plan: as :func:`kernel_tile`.
        kernel: ``ck`` or ``ntk`` (the latter needs a plan made with ``ntk=True``).
        tile: tile side.
    """
    if kernel not in ("ck", "ntk"):
        raise InputError(f"kernel must be 'ck' or 'ntk', got {kernel!r}")
    n = plan.n
    out = np.empty((n, n))
    for r0 in range(0, n, tile):
        rows = slice(r0, min(n, r0 + tile))
        for c0 in range(0, r0 + 1, tile):
            cols = slice(c0, min(n, c0 + tile))
            ck, ntk = kernel_tile(X, plan, rows, cols, ntk=kernel == "ntk")
            block = ck if kernel == "ck" else ntk
            if r0 == c0:
                # Its entries (i, j) and (j, i) may differ in the last bit (quadrature of
                # a close pair with the scales swapped): the lower triangle decides.
                mirror_lower(block)
            out[rows, cols] = block
            out[cols, rows] = block.T
    return out


@numba.njit(parallel=True, cache=True)
def _close_in_tile(K, s_r, s_c, diag_col, cap):
    """(a, b), row by row, of the tile's entries with |rho| > cap, its diagonal ones left out:
    the rows counted in parallel, then filled in parallel at their offsets."""
    rows, cols = K.shape
    counts = np.zeros(rows, dtype=np.int64)
    for a in numba.prange(rows):
        for b in range(cols):
            if b != diag_col[a] and abs(K[a, b]) / (s_r[a] * s_c[b]) > cap:
                counts[a] += 1
    offsets = np.zeros(rows + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    out_a = np.empty(offsets[rows], dtype=np.int64)
    out_b = np.empty(offsets[rows], dtype=np.int64)
    for a in numba.prange(rows):
        k = offsets[a]
        for b in range(cols):
            if b != diag_col[a] and abs(K[a, b]) / (s_r[a] * s_c[b]) > cap:
                out_a[k] = a
                out_b[k] = b
                k += 1
    return out_a, out_b
