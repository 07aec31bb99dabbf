"""Numerical rank search for low-rank factorisation under a first-order loss model (LLC).

For a layer's weights W = U diag(s) V^T (one SVD) and the loss gradient G = dL/dW, replacing W
by its rank-r truncation W_r changes the weights by N_r = W_r - W = -sum_{i > r} s_i u_i v_i^T,
and the total differential predicts the loss change

    dL(r) = <G, N_r> = -sum_{i > r} c_i,      c_i = s_i u_i^T G v_i,

with ||N_r||_F^2 = sum_{i > r} s_i^2. Every rank's prediction and noise size follow from one SVD
and one projection by suffix sums: no SVD per candidate rank. The first-order model holds only
in a neighbourhood of W (``max_relative_noise``, ~0.2 for weights in the LLC seed); the search
returns the smallest rank whose truncation stays inside it and whose predicted |dL| is at most
``tolerance`` (or, with ``require_descent``, dL <= 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntklc.errors import InputError

__all__ = ["RankSearch", "rank_profile", "search_rank"]


@dataclass(frozen=True)
class RankSearch:
    """Result of :func:`search_rank`.

    Attributes:
        rank: the chosen rank r (``full_rank`` when none qualifies).
        full_rank: min(W.shape).
        predicted_change: dL(r) of the first-order model.
        relative_noise: ||W - W_r||_F / ||W||_F.
        parameters: r (m + n), the entries of the two factors (against m n).
    """

    rank: int
    full_rank: int
    predicted_change: float
    relative_noise: float
    parameters: int


def rank_profile(W: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Predicted loss change and relative noise of every rank r = 0..min(m, n).

    Args:
        W: (m, n) weights.
        G: (m, n) gradient of the loss with respect to W.

    Returns:
        ``(dL (k + 1,), relative_noise (k + 1,), (U, s, Vt))`` with k = min(m, n).
    """
    W = np.asarray(W, dtype=float)
    G = np.asarray(G, dtype=float)
    if W.ndim != 2 or W.size == 0:
        raise InputError(f"W must be a non-empty 2-D array, got shape {W.shape}")
    if G.shape != W.shape:
        raise InputError(f"G must have the shape of W {W.shape}, got {G.shape}")
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    c = s * np.einsum("mi,mn,ni->i", U, G, Vt.T)  # c_i = s_i u_i^T G v_i
    # Suffix sums: entry r holds the sum over i >= r (0-based), i.e. the discarded part.
    tail_c = np.concatenate([np.cumsum(c[::-1])[::-1], [0.0]])
    tail_s2 = np.concatenate([np.cumsum((s * s)[::-1])[::-1], [0.0]])
    total = tail_s2[0]
    return -tail_c, np.sqrt(tail_s2 / total) if total > 0 else tail_s2, (U, s, Vt)


def search_rank(W: np.ndarray, G: np.ndarray, *, tolerance: float,
                max_relative_noise: float = 0.2, require_descent: bool = False) -> RankSearch:
    """Smallest rank inside the neighbourhood whose predicted loss change is acceptable.

    Args:
        W, G: (m, n) weights and loss gradient.
        tolerance: largest accepted |dL(r)| (ignored with ``require_descent``), >= 0.
        max_relative_noise: neighbourhood of the first-order model, ||W - W_r|| / ||W||.
        require_descent: accept only ranks with dL(r) <= 0 (noise opposed to the gradient).
    """
    if tolerance < 0 or max_relative_noise < 0:
        raise InputError("tolerance and max_relative_noise must be non-negative")
    change, noise, _ = rank_profile(W, G)
    full = change.size - 1
    ok = noise <= max_relative_noise
    ok &= (change <= 0) if require_descent else (np.abs(change) <= tolerance)
    ok[full] = True  # the full rank changes nothing
    r = int(np.argmax(ok))
    m, n = np.shape(W)
    return RankSearch(rank=r, full_rank=full, predicted_change=float(change[r]),
                      relative_noise=float(noise[r]), parameters=r * (m + n))
