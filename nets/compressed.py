"""Compressed random-features networks: sparse ternary weights, quantized activations.

The network of spec section 2 with W_l = s S_l, S_l in {-1, 0, +1}^(d_l x d_{l-1}) drawn from
the sparse ternary law (0 w.p. eps, +-1 w.p. (1 - eps)/2 each) and s = 1/sqrt(1 - eps), so that
the entries of W_l have mean 0 and variance 1:

    Sigma_0 = X (p x n),   Sigma_l = (sigma_l(W_l Sigma_{l-1}) - m_l) / sqrt(d_l),
    CK = Sigma_L^T Sigma_L  (n x n).

Inference never forms W_l: :class:`TernaryMatrix` keeps the column indices of the +1 and of the
-1 entries of each row (CSR, int32), and W Sigma costs one addition per non-zero weight and
batch column instead of a multiply-add per weight. :class:`DenseNetwork` is the float32
Gaussian network with the same interface, for the comparisons of random-features experiments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass, field

import numba
import numpy as np

from ntk.activations import Activation, parse_activations
from ntk.constants import tau_chain
from ntk.weights import sample_weights
from ntklc.errors import InputError

__all__ = ["CompressedNetwork", "DenseNetwork", "TernaryMatrix", "sample_ternary_signs"]

# Below this many additions a product takes well under a millisecond on one thread, less than
# waking the thread pool costs on a loaded machine.
_PARALLEL_MIN_ADDS = 1 << 20


def sample_ternary_signs(shape, eps: float, rng: np.random.Generator) -> np.ndarray:
    """Signs of sparse ternary weights: 0 w.p. eps, -1 and +1 w.p. (1 - eps)/2 each.

    Consumes ``rng`` exactly as ``ntk.weights.sample_weights("ternary:eps", shape, rng)`` does,
    so that from the same generator state ``sample_weights(...) == signs / sqrt(1 - eps)``.

    Args:
        shape: shape of the result, e.g. ``(d_l, d_{l-1})``.
        eps: sparsity in [0, 1).
        rng: the only source of randomness.

    Returns:
        int8 array of ``shape`` with values in {-1, 0, 1}.

    Raises:
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
        InputError: eps outside [0, 1).
    """
    eps = _check_eps(eps)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    u = rng.random(shape)
    # u < eps: zero; the remaining mass splits evenly, -1 first, as in ntk.weights.
    signs = np.ones(u.shape, dtype=np.int8)
    signs[u < (1.0 + eps) / 2.0] = -1
    signs[u < eps] = 0
    return signs


@numba.njit(inline="always")
def _add_rows(out_row, X, indices, start, stop, sign):
    """out_row += sign * sum_k X[indices[k]] over k in [start, stop), four rows per pass.

    Summing four input rows per pass loads and stores the output row once per four additions
    instead of once per addition: 1.6x faster on one thread at eps = 0.9 and 0.99 (AMD EPYC,
    2000 x 2000, n = 1000). Eight per pass gained nothing more; tiling the batch axis (so a
    block of X stays in L2 across output rows) was slower at every tile width tried, 128 to
    512 columns: the full contiguous row streams well and keeps the loop overhead per index
    small.
    """
    k = start
    while k + 4 <= stop:
        x0 = X[indices[k]]
        x1 = X[indices[k + 1]]
        x2 = X[indices[k + 2]]
        x3 = X[indices[k + 3]]
        if sign > 0:
            for c in range(out_row.shape[0]):
                out_row[c] += (x0[c] + x1[c]) + (x2[c] + x3[c])
        else:
            for c in range(out_row.shape[0]):
                out_row[c] -= (x0[c] + x1[c]) + (x2[c] + x3[c])
        k += 4
    while k < stop:
        x0 = X[indices[k]]
        if sign > 0:
            for c in range(out_row.shape[0]):
                out_row[c] += x0[c]
        else:
            for c in range(out_row.shape[0]):
                out_row[c] -= x0[c]
        k += 1


@numba.njit(inline="always")
def _product_row(plus_indptr, plus_indices, minus_indptr, minus_indices, X, scale, out, i):
    """out[i] = scale * (sum_{j in plus(i)} X[j] - sum_{j in minus(i)} X[j])."""
    row = out[i]
    row[:] = 0
    _add_rows(row, X, plus_indices, plus_indptr[i], plus_indptr[i + 1], 1)
    _add_rows(row, X, minus_indices, minus_indptr[i], minus_indptr[i + 1], -1)
    for c in range(row.shape[0]):
        row[c] *= scale


@numba.njit(parallel=True, cache=True)
def _ternary_matmul(plus_indptr, plus_indices, minus_indptr, minus_indices, X, scale, out):
    """Every row of the product, rows spread over threads.

    X (d_in, n) and out (d_out, n) are C-contiguous: each X[j] is a contiguous batch row, so
    the inner loops are unit-stride and vectorise; accumulation is in X's precision.
    """
    for i in numba.prange(out.shape[0]):
        _product_row(plus_indptr, plus_indices, minus_indptr, minus_indices, X, scale, out, i)


@numba.njit(cache=True)
def _ternary_matmul_serial(plus_indptr, plus_indices, minus_indptr, minus_indices, X, scale,
                           out):
    """The same on the calling thread, for products too small to repay a parallel region."""
    for i in range(out.shape[0]):
        _product_row(plus_indptr, plus_indices, minus_indptr, minus_indices, X, scale, out, i)


def _csr(rows: np.ndarray, cols: np.ndarray, d_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pointers (d_out + 1,) int64 and column indices int32 of row-sorted (rows, cols)."""
    indptr = np.zeros(d_out + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=d_out), out=indptr[1:])
    return indptr, cols.astype(np.int32)


@dataclass(frozen=True, eq=False)
class TernaryMatrix:
    """A matrix ``scale * S`` with S in {-1, 0, +1}^(d_out x d_in), stored as two CSR patterns.

    Build it as ``TernaryMatrix(signs, scale)``. Row i's +1 columns are
    ``plus_indices[plus_indptr[i]:plus_indptr[i + 1]]`` (ascending), likewise for -1.

    Attributes:
        scale: the common magnitude s > 0 of the non-zero entries.
        shape: (d_out, d_in).
        plus_indptr, minus_indptr: (d_out + 1,) int64 row pointers.
        plus_indices, minus_indices: int32 column indices of the +1 and of the -1 entries.
    """

    signs: InitVar[np.ndarray]
    scale: float
    shape: tuple[int, int] = field(init=False)
    plus_indptr: np.ndarray = field(init=False, repr=False)
    plus_indices: np.ndarray = field(init=False, repr=False)
    minus_indptr: np.ndarray = field(init=False, repr=False)
    minus_indices: np.ndarray = field(init=False, repr=False)

    def __post_init__(self, signs):
        signs = np.asarray(signs)
        if signs.ndim != 2 or signs.size == 0:
            raise InputError(f"signs must be a non-empty 2-D array (d_out x d_in), got shape "
                             f"{signs.shape}")
        if not np.issubdtype(signs.dtype, np.integer):
            raise InputError(f"signs must be an integer array with values in {{-1, 0, 1}}, got "
                             f"dtype {signs.dtype}")
        if signs.shape[1] > np.iinfo(np.int32).max:
            raise InputError(f"d_in = {signs.shape[1]} does not fit int32 column indices")
        if signs.min() < -1 or signs.max() > 1:
            raise InputError("signs must take values in {-1, 0, 1}")
        scale = float(self.scale)
        if not (math.isfinite(scale) and scale > 0):
            raise InputError(f"scale must be a positive finite number, got {self.scale}")
        d_out = signs.shape[0]
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "shape", (int(d_out), int(signs.shape[1])))
        # np.nonzero walks in C order: rows ascending, columns ascending within each row.
        for name, mask in (("plus", signs == 1), ("minus", signs == -1)):
            indptr, indices = _csr(*np.nonzero(mask), d_out)
            object.__setattr__(self, f"{name}_indptr", indptr)
            object.__setattr__(self, f"{name}_indices", indices)

    @property
    def nnz(self) -> int:
        """Number of non-zero entries."""
        return int(self.plus_indices.size + self.minus_indices.size)

    @property
    def nbytes(self) -> int:
        """Bytes of the in-memory inference form (index arrays and the float64 scale).

        This is the working format of :meth:`matmul`, not a storage format; storage sizes are
        accounted for by ``nets.memory``.
        """
        arrays = (self.plus_indptr, self.plus_indices, self.minus_indptr, self.minus_indices)
        return sum(a.nbytes for a in arrays) + 8

    def to_signs(self) -> np.ndarray:
        """The sign matrix S, (d_out, d_in) int8."""
        S = np.zeros(self.shape, dtype=np.int8)
        for indptr, indices, value in ((self.plus_indptr, self.plus_indices, 1),
                                       (self.minus_indptr, self.minus_indices, -1)):
            rows = np.repeat(np.arange(self.shape[0]), np.diff(indptr))
            S[rows, indices] = value
        return S

    def to_dense(self, dtype=np.float64) -> np.ndarray:
        """The dense matrix scale * S, (d_out, d_in) of ``dtype`` (for tests and comparisons)."""
        W = self.to_signs().astype(dtype)
        W *= W.dtype.type(self.scale)
        return W

    def matmul(self, X: np.ndarray) -> np.ndarray:
        """The product scale * S X without forming the dense matrix.

        Args:
            X: (d_in, n) real array. float32 stays float32 (and is accumulated in float32);
                any other real dtype is computed in float64.

        Returns:
            (d_out, n) C-contiguous array of X's floating dtype.

        Raises:
            InputError: X is not a real 2-D array with d_in rows.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != self.shape[1]:
            raise InputError(f"X must be a 2-D array with d_in = {self.shape[1]} rows, got "
                             f"shape {X.shape}")
        if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
            raise InputError(f"X must be real, got dtype {X.dtype}")
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        X = np.ascontiguousarray(X, dtype=dtype)
        out = np.empty((self.shape[0], X.shape[1]), dtype=dtype)
        kernel = (_ternary_matmul if self.nnz * X.shape[1] >= _PARALLEL_MIN_ADDS
                  else _ternary_matmul_serial)
        kernel(self.plus_indptr, self.plus_indices, self.minus_indptr,
               self.minus_indices, X, X.dtype.type(self.scale), out)
        return out


def _check_eps(eps) -> float:
    eps = float(eps)
    if not 0.0 <= eps < 1.0:
        raise InputError(f"ternary weights need a sparsity eps in [0, 1), got {eps}")
    return eps


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _check_layers(shapes: Sequence[tuple[int, int]], activations, centring
                  ) -> tuple[tuple[Activation, ...], tuple[float, ...]]:
    """Checked activations and centring of a network whose weight shapes are ``shapes``."""
    if not shapes:
        raise InputError("the network needs at least one layer")
    for layer in range(1, len(shapes)):
        if shapes[layer][1] != shapes[layer - 1][0]:
            raise InputError(f"layer {layer + 1} expects {shapes[layer][1]} inputs but layer "
                             f"{layer} has {shapes[layer - 1][0]} outputs")
    acts = tuple(parse_activations(activations if isinstance(activations, str)
                                   else list(activations)))
    centring = tuple(float(m) for m in centring)
    if not len(acts) == len(centring) == len(shapes):
        raise InputError(f"{len(shapes)} layers need as many activations and centring "
                         f"constants, got {len(acts)} and {len(centring)}")
    if not all(math.isfinite(m) for m in centring):
        raise InputError("centring constants must be finite")
    return acts, centring


def _forward(X, products: Sequence[Callable[[np.ndarray], np.ndarray]], p: int,
             acts: Sequence[Activation], centring: Sequence[float], dtype) -> np.ndarray:
    """Sigma_L of spec section 2, with products[l](Sigma) = W_l Sigma in ``dtype``."""
    dtype = _check_dtype(dtype)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != p:
        raise InputError(f"X must be a 2-D array with p = {p} rows (one sample per column), "
                         f"got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise InputError(f"X must be real, got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise InputError("X contains NaN or infinite entries")
    Sigma = np.asarray(X, dtype=dtype)
    for product, act, m in zip(products, acts, centring, strict=True):
        Z = product(Sigma)
        # Piecewise activations keep float32; callables may return float64: cast back.
        Sigma = np.asarray(act.fn(Z), dtype=dtype)
        Sigma -= dtype.type(m)
        Sigma *= dtype.type(1.0 / math.sqrt(Z.shape[0]))
    return Sigma


class _LayeredNetwork:
    """What both network classes derive from their ``weights`` and ``features``."""

    @property
    def input_dim(self) -> int:
        """p, the number of input features."""
        return self.weights[0].shape[1]

    @property
    def widths(self) -> tuple[int, ...]:
        """(d_1, ..., d_L)."""
        return tuple(W.shape[0] for W in self.weights)

    def ck(self, X, dtype=np.float32) -> np.ndarray:
        """Conjugate kernel Sigma_L^T Sigma_L, (n, n), in ``dtype`` (see ``features``)."""
        Sigma = self.features(X, dtype)
        return Sigma.T @ Sigma


@dataclass(frozen=True, eq=False)
class CompressedNetwork(_LayeredNetwork):
    """A random-features network with sparse ternary weights (spec sections 2 and 7).

    Attributes:
        weights: W_1..W_L as :class:`TernaryMatrix`, W_l of shape (d_l, d_{l-1}).
        activations: sigma_1..sigma_L (names are parsed; e.g. ``ntk.step_activation`` output).
        centring: m_1..m_L, subtracted after each activation.
        eps: sparsity of the weight law the weights were drawn from, in [0, 1).
        seed: the seed that regenerates the weights with :meth:`random`, if known.
    """

    weights: tuple[TernaryMatrix, ...]
    activations: tuple[Activation, ...]
    centring: tuple[float, ...]
    eps: float
    seed: int | None = None

    def __post_init__(self):
        weights = tuple(self.weights)
        if not all(isinstance(W, TernaryMatrix) for W in weights):
            raise InputError("weights must be TernaryMatrix instances")
        acts, centring = _check_layers([W.shape for W in weights], self.activations,
                                       self.centring)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "centring", centring)
        object.__setattr__(self, "eps", _check_eps(self.eps))

    @classmethod
    def random(cls, p: int, widths: Sequence[int], activations, eps: float, tau0: float,
               seed: int = 0) -> CompressedNetwork:
        """Draw a network: W_l = S_l / sqrt(1 - eps), m_l from ``ntk.constants.tau_chain``.

        The signs S_1..S_L are drawn in order by :func:`sample_ternary_signs` from
        ``numpy.random.default_rng(seed)``, which reproduces the weights that
        ``ntk.empirical.network_kernels(X, activations, f"ternary:{eps}", default_rng(seed),
        ...)`` draws.

        Args:
            p: input dimension, >= 1.
            widths: (d_1, ..., d_L), each >= 1.
            activations: one activation per layer (names, :class:`Activation` objects or a
                comma-separated string).
            eps: sparsity in [0, 1).
            tau0: scale of the inputs, sqrt(mean_i ||x_i||^2) (> 0): m_l = E[sigma_l(tau_{l-1}
                xi)] along the chain tau_l^2 = Var[sigma_l(tau_{l-1} xi)].
            seed: seed of the generator.

        Raises:
            InputError: bad p, widths, eps, tau0 or activations.
        """
        acts = parse_activations(activations)
        widths = _check_widths(p, widths, len(acts))
        eps = _check_eps(eps)
        if not (math.isfinite(tau0) and tau0 > 0):
            raise InputError(f"tau0 must be a positive finite number, got {tau0}")
        centring = [c.m0 for c in tau_chain(acts, tau0)]
        rng = np.random.default_rng(seed)
        scale = 1.0 / math.sqrt(1.0 - eps)
        weights = tuple(TernaryMatrix(sample_ternary_signs((d, d_prev), eps, rng), scale)
                        for d_prev, d in zip((p, *widths[:-1]), widths, strict=True))
        return cls(weights, tuple(acts), tuple(centring), eps, seed)

    def features(self, X, dtype=np.float32) -> np.ndarray:
        """Sigma_L, the (d_L, n) random features of the columns of X.

        A step activation is discontinuous: a pre-activation within rounding of a threshold may
        land on either side depending on precision and summation order, so results can differ
        from a dense product in such entries. Inputs from an earlier step layer with round
        levels can make these ties exact.

        Args:
            X: (p, n) real data, one sample per column.
            dtype: float32 (default) or float64; the whole forward pass runs in it.

        Raises:
            InputError: X of the wrong shape, not real or not finite; bad dtype.
        """
        return _forward(X, [W.matmul for W in self.weights], self.input_dim, self.activations,
                        self.centring, dtype)


@dataclass(frozen=True, eq=False)
class DenseNetwork(_LayeredNetwork):
    """The same network with dense float32 weights (the uncompressed baseline).

    Attributes:
        weights: W_1..W_L, float32 arrays of shape (d_l, d_{l-1}).
        activations: sigma_1..sigma_L.
        centring: m_1..m_L.
    """

    weights: tuple[np.ndarray, ...]
    activations: tuple[Activation, ...]
    centring: tuple[float, ...]

    def __post_init__(self):
        weights = tuple(np.asarray(W, dtype=np.float32) for W in self.weights)
        if any(W.ndim != 2 or W.size == 0 for W in weights):
            raise InputError("weights must be non-empty 2-D arrays (d_l x d_{l-1})")
        acts, centring = _check_layers([W.shape for W in weights], self.activations,
                                       self.centring)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "centring", centring)

    @classmethod
    def random(cls, p: int, widths: Sequence[int], activations, tau0: float,
               seed: int = 0) -> DenseNetwork:
        """Draw W_l with i.i.d. N(0, 1) float32 entries; m_l as in
        :meth:`CompressedNetwork.random`.

        The weights are ``ntk.weights.sample_weights("gaussian", (d_l, d_{l-1}), rng,
        np.float32)`` in order from ``numpy.random.default_rng(seed)``, as
        ``ntk.empirical.network_kernels(..., "gaussian", rng, dtype=np.float32)`` draws them.

        Raises:
            InputError: bad p, widths, tau0 or activations.
        """
        acts = parse_activations(activations)
        widths = _check_widths(p, widths, len(acts))
        if not (math.isfinite(tau0) and tau0 > 0):
            raise InputError(f"tau0 must be a positive finite number, got {tau0}")
        centring = [c.m0 for c in tau_chain(acts, tau0)]
        rng = np.random.default_rng(seed)
        weights = tuple(sample_weights("gaussian", (d, d_prev), rng, np.float32)
                        for d_prev, d in zip((p, *widths[:-1]), widths, strict=True))
        return cls(weights, tuple(acts), tuple(centring))

    def features(self, X, dtype=np.float32) -> np.ndarray:
        """Sigma_L, the (d_L, n) random features of the columns of X (see
        :meth:`CompressedNetwork.features`)."""
        dtype = _check_dtype(dtype)
        products = [lambda S, W=W: W.astype(dtype, copy=False) @ S for W in self.weights]
        return _forward(X, products, self.input_dim, self.activations, self.centring, dtype)


def _check_widths(p, widths, layers: int) -> tuple[int, ...]:
    widths = tuple(widths)
    for d in (p, *widths):
        if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
            raise InputError(f"p and every width must be integers >= 1, got p={p!r}, "
                             f"widths={widths!r}")
    if len(widths) != layers:
        raise InputError(f"{len(widths)} widths for {layers} activations")
    return tuple(int(d) for d in widths)
