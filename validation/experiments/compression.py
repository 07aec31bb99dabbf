"""NTK-LC compression experiments: the compressed network's report and its CK spectra.

``compression_report`` solves the activations (``solvers.ternarize``) and counts memory
(``nets.memory``). ``compression_spectra`` is the paper's first experiment: on GMM data, the
dense network's CK and the compressed network's CK (empirical, averaged over draws) against
their common equivalent.

Kernels are compared as they are and centred (P K P, P = I - 1 1^T / n). Centring removes
the constant direction, which a readout with a bias ignores and where sparse ternary weights
put their excess-kurtosis term (k4/4) d2^2 offdiag[(X o X)^T (X o X)] (spec section 6; k4 =
1/(1 - eps) - 3, so 97 at eps = 0.99): the raw error shows that term, the centred one what is
left. The Monte-Carlo noise of each averaged kernel is its half-split estimate; the noise of a
difference of two independent averages is the root sum of squares of theirs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from nets import CompressedNetwork, memory_report
from ntk import ck_equivalent, empirical_kernels, parse_activations
from ntk.progress import progress_bar
from ntklc.errors import InputError
from rmt import compare_spectra, gaussian_mixture, rel_spectral_error, sample_gmm
from solvers.ternarize import CompressionResult, compress_network
from validation.data.datasource import DataSource
from validation.experiments.spectra import require_network_memory

__all__ = ["CompressionSpectra", "check_eps", "compression_report", "compression_spectra"]


def check_eps(eps: float) -> float:
    """Sparsity of the ternary law, in [0, 1)."""
    eps = float(eps)
    if not 0.0 <= eps < 1.0:
        raise InputError(f"eps must lie in [0, 1), got {eps}")
    return eps


def compression_report(acts, tau0: float = 1.0, *, eps: float = 0.9, max_levels: int = 32,
                       hidden_family: str = "auto", p: int = 784, width: int = 2000,
                       classes: int = 10, seed: int = 0, progress: bool = False
                       ) -> tuple[CompressionResult, dict]:
    """Solve the compression of ``acts`` and count the memory of a network of that shape.

    Args:
        acts: dense per-layer activations.
        tau0: data scale.
        eps: sparsity of the ternary weights.
        max_levels: cap on the output layer's levels.
        hidden_family: see ``solvers.ternarize.FAMILIES``.
        p, width, classes: input dimension, hidden width and readout outputs of the network
            whose memory is counted (weights drawn from the ternary law with ``seed``).
        progress: a progress bar over the layers on stderr.

    Returns:
        ``(result, payload)`` with the JSON payload of ``ntklc compress``.
    """
    eps = check_eps(eps)
    if min(p, width, classes) < 1:
        raise InputError("p, width and classes must be positive")
    result = compress_network(acts, tau0, max_levels=max_levels, hidden_family=hidden_family,
                              progress=progress)
    widths = (width,) * len(result.layers)
    network = CompressedNetwork.random(p, widths, result.activations, eps, tau0, seed=seed)
    memory = memory_report(network, readout_shape=(classes, width))
    payload = {**result.as_dict(), "eps": eps, "memory": memory.as_dict()}
    return result, payload


@dataclass(frozen=True)
class CompressionSpectra:
    """Dense vs compressed empirical CK against the equivalent, for several eps.

    Attributes:
        rows: one dict per eps with raw and centred errors, noises, top eigenvalues and the
            top-eigenvector alignment between compressed and dense.
        dense_eigs: eigenvalues (n,) of the centred dense CK.
        compressed_eigs: eps -> eigenvalues (n,) of the centred compressed CK.
        equivalent_eigs: eigenvalues (n,) of the centred equivalent.
        source: for real data: data set, classes, p, training counts and seed; else ``None``.
        twin: for real data: the same comparison on the sample's matched-GMM twin.
    """

    dense: tuple[str, ...]
    compressed: tuple[str, ...]
    n: int
    p: int
    width: int
    draws: int
    rows: tuple[dict, ...]
    dense_noise: float
    dense_vs_equivalent: float
    dense_eigs: np.ndarray
    compressed_eigs: dict[float, np.ndarray]
    equivalent_eigs: np.ndarray
    delta: float
    seconds: float
    source: dict | None = None
    twin: CompressionSpectra | None = None

    def as_dict(self) -> dict:
        """The JSON of ``ntklc compare``; on real data the real sample's numbers stay at the
        top level and also sit under ``real``, the twin's under ``gmm``."""
        out = {"dense": list(self.dense), "compressed": list(self.compressed), "n": self.n,
               "p": self.p, "width": self.width, "draws": self.draws,
               "dense_noise": self.dense_noise,
               "dense_vs_equivalent_centred": self.dense_vs_equivalent,
               "delta": self.delta, "rows": list(self.rows), "seconds": self.seconds}
        if self.twin is None:
            return out
        return {**out, **self.source, "real": dict(out), "gmm": self.twin.as_dict()}


def _centre(K: np.ndarray) -> np.ndarray:
    K = K - K.mean(axis=0, keepdims=True)
    return K - K.mean(axis=1, keepdims=True)


def compression_spectra(acts, *, n: int = 800, eps_values=(0.0, 0.5, 0.9, 0.99),
                        width: int = 1000, draws: int = 20, seed: int = 0,
                        result: CompressionResult | None = None, progress: bool = False,
                        data: DataSource | None = None) -> CompressionSpectra:
    """Compare dense (Gaussian weights) and compressed (ternary weights) averaged CKs.

    Data: the 2-class GMM of spec section 6, p = n/2; or, with ``data``, a class-balanced
    sample of n columns of a labelled data set and, in ``result.twin``, the same comparison on
    its matched-GMM twin (same compressed activations, same network seeds). For each eps the
    compressed network uses the solved activations and ternary:eps weights.
    """
    start = time.perf_counter()
    if n < 2:
        raise InputError(f"n must be at least 2, got {n}")
    eps_values = [check_eps(e) for e in eps_values]
    dense = parse_activations(acts)
    options = {"eps_values": eps_values, "width": width, "draws": draws, "seed": seed,
               "progress": progress}
    if data is None:
        g = sample_gmm(gaussian_mixture(n // 2), n, seed=seed)
        if result is None:
            result = compress_network(dense, g.stats.tau0)
        return _spectra(g.X, g.stats, dense, result, start=start, **options)
    training = data.load()
    sample = training.sample(n, seed)
    if result is None:
        result = compress_network(dense, sample.stats.tau0)
    twin = _spectra(sample.twin.X, sample.twin.stats, dense, result,
                    start=time.perf_counter(), **options)
    real = _spectra(sample.X, sample.stats, dense, result, start=start, **options)
    return replace(real, source={**training.as_dict(), "seed": seed}, twin=twin)


def _spectra(X, stats, dense, result, *, eps_values, width, draws, seed, progress, start
             ) -> CompressionSpectra:
    """The comparison of ``compression_spectra`` on X (p, n) with statistics ``stats``."""
    p, n = X.shape
    require_network_memory(n, p, width, len(dense))
    compressed = result.activations
    equivalent = _centre(ck_equivalent(X, stats, dense))
    jobs = [("gaussian", dense)] + [(f"ternary:{e}", compressed) for e in eps_values]
    kernels = {}
    for law, net_acts in progress_bar(jobs, desc="networks", disable=not progress, leave=False):
        kernels[law] = empirical_kernels(X, net_acts, width=width, draws=draws, weights=law,
                                         seed=seed + 1 + len(kernels), tau0=stats.tau0,
                                         ntk=False, progress=False)
    ref = kernels["gaussian"]
    ref_c = _centre(ref.ck)
    rows, comp_eigs = [], {}
    for eps in eps_values:
        emp = kernels[f"ternary:{eps}"]
        emp_c = _centre(emp.ck)
        cmp = compare_spectra(emp_c, ref_c, k=3)
        eq = compare_spectra(equivalent, emp_c, k=3)
        comp_eigs[eps] = np.linalg.eigvalsh(emp_c)
        rows.append({
            "eps": eps,
            "raw_error": rel_spectral_error(emp.ck, ref.ck),
            "centred_error": cmp.rel_spectral_error,
            "noise": math.hypot(emp.ck_noise, ref.ck_noise),
            "compressed_noise": emp.ck_noise,
            "top_eigs_dense": cmp.top_eigs_reference.tolist(),
            "top_eigs_compressed": cmp.top_eigs_theory.tolist(),
            "top_eigs_equivalent": eq.top_eigs_theory.tolist(),
            "top_eig_rel_err": cmp.eig_rel_err.tolist(),
            "alignment": cmp.alignment.tolist(),
            "compressed_vs_equivalent_centred": eq.rel_spectral_error,
        })
    return CompressionSpectra(
        dense=tuple(a.name for a in dense), compressed=tuple(a.name for a in compressed), n=n,
        p=p, width=width, draws=draws, rows=tuple(rows), dense_noise=ref.ck_noise,
        dense_vs_equivalent=rel_spectral_error(equivalent, ref_c),
        dense_eigs=np.linalg.eigvalsh(ref_c), compressed_eigs=comp_eigs,
        equivalent_eigs=np.linalg.eigvalsh(equivalent), delta=result.delta,
        seconds=time.perf_counter() - start)
