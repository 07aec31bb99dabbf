"""Spectral experiments: deterministic equivalents against exact and finite-network kernels.

Each experiment is a function that returns a frozen result object; figures are drawn from the
result by ``validation.report.figures``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ntk import parse_activations, parse_weight_law
from ntk.empirical import empirical_kernels
from ntk.equivalents import ck_coefficients, ck_equivalent, ntk_coefficients, ntk_equivalent
from ntk.exact import exact_kernels
from ntk.progress import progress_bar
from ntk.tiles import kernel_matrix, kernel_plan
from ntklc.errors import InputError
from rmt import gaussian_mixture, rel_spectral_error, sample_gmm, top_eigenpairs
from rmt.spectral import (
    SpectralComparison,
    compare_full_spectra,
    comparison_from_pairs,
    subspace_alignment,
)
from validation.data.datasource import DataSource, TrainingSet
from validation.data.kernel_store import tiled_exact_kernels

__all__ = [
    "ConvergenceResult",
    "KurtosisResult",
    "SpectrumResult",
    "assumption_diagnostics",
    "convergence_error",
    "convergence_experiment",
    "data_convergence_errors",
    "kurtosis_experiment",
    "network_activations",
    "require_network_memory",
    "spectrum_experiment",
    "spectrum_path",
    "storage_options",
]

KERNELS = ("ck", "ntk")
REFERENCES = ("exact", "mc")
SPECTRUM_PATHS = ("auto", "dense", "lanczos", "disk")
#: Largest n for which ``path="auto"`` computes every eigenvalue (the dense path: 48 s and two
#: n x n arrays at n = 6400, growing like n^3).
DENSE_SPECTRUM_MAX = 6400
# Peak resident memory of the in-memory Lanczos path in float64 n x n arrays (measured by
# /usr/bin/time at n = 25600: 11.0 GB for the CK and the NTK, one kernel and the data), and the
# share of the machine's memory it may take before "auto" goes to disk.
_PEAK_KERNEL_ARRAYS = 2.2
_MEMORY_SHARE = 0.8


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def require_network_memory(n: int, p: int, width: int, layers: int) -> None:
    """Refuse, before any work, finite networks that could not fit in this machine's memory.

    The float64 arrays one network on n samples needs at least: its weights, width x p and
    (layers - 1) x width^2, and three n x width feature maps (a layer's input and output and
    the NTK's derivative).

    Raises:
        InputError: they exceed the machine's physical memory.
    """
    needed = 8.0 * (width * p + (layers - 1) * width**2 + 3 * n * width)
    if needed > _physical_memory():
        raise InputError(f"networks of width {width} on n = {n} samples of dimension {p} need "
                          f"at least {needed / 2**30:.3g} GiB, more than this machine's "
                          f"{_physical_memory() / 2**30:.3g} GiB; try a smaller width")


def spectrum_path(path: str, n: int) -> str:
    """The path ``spectrum_experiment`` takes: ``dense`` up to n = DENSE_SPECTRUM_MAX,
    ``lanczos`` while its exact kernels fit in 80 % of this machine's memory, ``disk``
    beyond; a path other than ``auto`` as given."""
    if path != "auto":
        return path
    if n <= DENSE_SPECTRUM_MAX:
        return "dense"
    fits = _PEAK_KERNEL_ARRAYS * 8.0 * n * n <= _MEMORY_SHARE * _physical_memory()
    return "lanczos" if fits else "disk"


def network_activations(acts, layers: int | None = None) -> list:
    """Per-layer activations: one activation repeated ``layers`` times, or one per layer.

    Raises:
        InputError: layers < 1, or a list whose length differs from ``layers``.
    """
    parsed = parse_activations(acts)
    if layers is None:
        return parsed
    if layers < 1:
        raise InputError(f"the network needs at least one layer (L >= 1), got {layers}")
    if len(parsed) == 1:
        return parsed * layers
    if len(parsed) != layers:
        raise InputError(f"{len(parsed)} activations given for {layers} layers")
    return parsed


def _check_size(n: int, p: int) -> None:
    if n <= 0 or p <= 0:
        raise InputError(f"n and p must be positive, got n={n}, p={p}")


def _coefficients(kernel: str, acts, tau0: float) -> dict[str, float]:
    if kernel == "ck":
        last = ck_coefficients(acts, tau0)[-1]
        return {"a1": last.a1, "a2": last.a2, "a3": last.a3, "tau2": last.tau2}
    last = ntk_coefficients(acts, tau0)[-1]
    return {"b1": last.b1, "b2": last.b2, "b3": last.b3, "kappa2": last.kappa2}


@dataclass(frozen=True)
class SpectrumResult:
    """Equivalent vs reference kernel on one GMM draw.

    Attributes:
        comparison: operator-norm error, top eigenvalues, alignments.
        eigs_theory, eigs_reference: all eigenvalues (n,), ascending; ``None`` on the
            Lanczos path (``path="lanczos"``), which computes only the top of the spectra.
        vectors_reference: (n, 2) top eigenvectors of the reference kernel (each with its
            largest-magnitude entry positive); (n, max(k, 2)) on the Lanczos and disk paths.
        labels: (n,) classes.
        noise: relative Monte-Carlo noise of the reference (``None`` for exact kernels).
        source: for real data (``data=`` given): the data set, classes, p, training counts
            and seed; ``None`` on the built-in GMM.
        twin: for real data: the same comparison on the sample's matched-GMM twin.
        twin_agreement: for real data off the dense path: the top-k eigenvalues and
            eigenvectors of the sample's exact kernel against its twin's (``eig_rel_err``,
            ``alignment``, ``subspace_alignment``).
        storage: on the disk path: the tile folder, tile counts, bytes on disk, kernel time.
    """

    acts: tuple[str, ...]
    kernel: str
    reference: str
    n: int
    p: int
    tau0: float
    coefficients: dict[str, float]
    comparison: SpectralComparison
    eigs_theory: np.ndarray | None
    eigs_reference: np.ndarray | None
    vectors_reference: np.ndarray
    labels: np.ndarray
    noise: float | None
    weights: str
    seconds: float
    source: dict | None = None
    twin: SpectrumResult | None = None
    twin_agreement: dict | None = None
    storage: dict | None = None

    def as_dict(self) -> dict:
        """The JSON of ``ntklc spectrum``; on real data the real sample's numbers stay at the
        top level and also sit under ``real``, the twin's under ``gmm``."""
        out = {
            "activations": list(self.acts), "kernel": self.kernel,
            "reference": self.reference, "weights": self.weights, "n": self.n, "p": self.p,
            **self.comparison.as_dict(), "tau0": self.tau0,
            "coefficients": self.coefficients, "mc_noise": self.noise,
            "path": ("dense" if self.eigs_theory is not None
                     else "lanczos" if self.storage is None else "disk"),
            "seconds": self.seconds,
        }
        if self.storage is not None:
            out["storage"] = self.storage
        if self.twin is None:
            return out
        out = _with_twin(out, self.source, self.twin.as_dict())
        if self.twin_agreement is not None:
            out["real_vs_gmm"] = self.twin_agreement
        return out


def _with_twin(real: dict, source: dict, twin: dict) -> dict:
    """Real-data payload: the real numbers at the top level and under ``real``, the twin's
    under ``gmm``, the data description (data, classes, seed, ...) at the top level."""
    return {**real, **source, "real": dict(real), "gmm": twin}


def _check_p(p, data) -> None:
    if data is not None and p is not None:
        raise InputError("p is fixed by the data; do not give p with data")


def spectrum_experiment(acts, n: int = 800, p: int | None = None, *, kernel: str = "ck",
                        reference: str = "exact", weights: str = "gaussian",
                        width: int = 1000, draws: int = 10, seed: int = 0,
                        k: int | None = None, progress: bool = False,
                        data: DataSource | None = None, path: str = "auto",
                        storage: dict | None = None) -> SpectrumResult:
    """Compare the equivalent of ``acts`` with the exact or a Monte-Carlo kernel.

    Data: the 2-class GMM of spec section 6 (||mu_1 - mu_2|| = 3, t = (-2, 2), identity
    covariance structure, equal proportions), ``p = n // 2`` by default; or, with ``data``, a
    class-balanced sample of n columns of a labelled data set (statistics estimated on its
    training set, ``validation.data.datasource``), and the same comparison on its matched-GMM twin
    in ``result.twin``.

    Args:
        acts: per-layer activations.
        n, p: sample size and dimension (p is the data's with ``data``).
        kernel: ``ck`` or ``ntk``.
        reference: ``exact`` (infinite width, no Monte Carlo) or ``mc`` (finite networks).
        weights, width, draws: weight law, hidden width and draws of the ``mc`` reference.
        seed: seeds the data and the networks.
        k: number of top eigenpairs compared (default 5, 20 on the disk path).
        data: a labelled data set instead of the built-in GMM.

    Cost rule (spectra): compute only what is reported or drawn, in float64, once. Each kernel
    gets one Householder tridiagonalization, the O(n^3) step of an eigenvalue-only
    decomposition; all n eigenvalues (for the histogram) and the top max(k, 2) eigenpairs
    (reported numbers and the figure's two reference eigenvectors) come from it in O(n^2 k), so
    no other eigenvectors are computed. ||K_ref||_2 is read off the eigenvalues; ||K_ref -
    K||_2 is Lanczos on the difference, formed in place in the triangle the reduction leaves
    untouched. The kernels are reduced in their own memory (no n x n copy) and dropped when
    reduced; the reference is built before the equivalent. Float32 would not pay here: the
    reported numbers need float64, and the float64 reduction gives the histogram for O(n^2),
    while a float32 one would be a second O(n^3) pass. Cost at n = 6400: the two reductions
    plus the kernels and about 60 half-matrix products (``benchmarks/bench_spectrum.py``).

    Path (``path``): "dense" is the rule above (every eigenvalue, for the histogram); "lanczos"
    computes only the reported numbers, by Lanczos on the equivalent as an operator
    (``operator=True``) and on the reference, with the difference an operator too: one n x n
    kernel in memory (the reference), O(n^2) per product instead of O(n^3) in all, and no
    histogram (``eigs_*`` are ``None``). "disk" is "lanczos" with the exact kernel computed in
    tiles under ``storage`` (:func:`storage_options`: folder, tile, dtype, workers, dask
    scheduler; ``validation.data.kernel_store``) and streamed from disk by every product: no n x n
    array in memory. "auto": :func:`spectrum_path`. On real data the sample's kernel goes to
    ``<root>/real``, its twin's to ``<root>/gmm``, and the top-k eigenpairs of the two exact
    kernels are compared too (``SpectrumResult.twin_agreement``).
    """
    start = time.perf_counter()
    _check_p(p, data)
    if data is None:
        p = n // 2 if p is None else p
        _check_size(n, p)
    elif n <= 0:
        raise InputError(f"n must be positive, got n={n}")
    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if reference not in REFERENCES:
        raise InputError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if path not in SPECTRUM_PATHS:
        raise InputError(f"path must be one of {SPECTRUM_PATHS}, got {path!r}")
    acts = parse_activations(acts)
    _coefficients(kernel, acts, 1.0)  # validates (e.g. NTK of a step) early
    parse_weight_law(weights)  # validated even where the exact reference does not use it
    if width < 1 or draws < 1:
        raise InputError(f"width and draws must be >= 1, got {width} and {draws}")
    mode = spectrum_path(path, n)
    k = (20 if mode == "disk" else 5) if k is None else k
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    if mode == "disk":
        if reference != "exact":
            raise InputError("the disk path stores exact kernels: use reference 'exact'")
        _need_store(n, storage)
    else:
        storage = None
    options = {"kernel": kernel, "reference": reference, "weights": weights, "width": width,
               "draws": draws, "seed": seed, "k": k, "progress": progress, "mode": mode}
    if data is None:
        g = sample_gmm(gaussian_mixture(p), n, seed=seed)
        return _spectrum(g.X, g.stats, g.labels, acts, start=start,
                         storage=_named(storage, "kernel"), **options)
    training = data.load()
    sample = training.sample(n, seed)
    twin = _spectrum(sample.twin.X, sample.twin.stats, sample.twin_labels, acts,
                     start=time.perf_counter(), storage=_named(storage, "gmm"), **options)
    real = _spectrum(sample.X, sample.stats, sample.labels, acts, start=start,
                     storage=_named(storage, "real"), **options)
    return replace(real, source={**training.as_dict(), "seed": seed,
                                 **assumption_diagnostics(training, sample)}, twin=twin,
                   twin_agreement=_twin_agreement(real, twin) if mode != "dense" else None)


def _named(storage: dict | None, name: str) -> dict | None:
    return None if storage is None else {**storage, "root": storage["root"] / name}


def _twin_agreement(real: SpectrumResult, twin: SpectrumResult) -> dict:
    """The top-k exact eigenpairs of the real sample against its twin's: both have the same
    class counts in the same column order, so eigenvectors carrying the class structure
    align where the twin reproduces it."""
    vals_r, vals_g = real.comparison.top_eigs_reference, twin.comparison.top_eigs_reference
    k = vals_r.size
    U, V = real.vectors_reference[:, :k], twin.vectors_reference[:, :k]
    return {"eig_rel_err": (np.abs(vals_g - vals_r) / np.abs(vals_r)).tolist(),
            "alignment": np.abs(np.sum(U * V, axis=0)).tolist(),
            "subspace_alignment": subspace_alignment(U, V)}


def assumption_diagnostics(training, sample) -> dict:
    """How far the data sit from the theorem's assumptions (spec section 1): t and T should
    be O(1) and ||C_a|| bounded, i.e. each class's effective dimension
    d_a = tr(C_a)^2 / tr(C_a^2) = p (tr C_a / p)^2 / T_aa comparable with p."""
    fitted = training.fitted
    d_eff = training.dim * fitted.traces**2 / np.diag(fitted.T)
    return {"t": sample.stats.t.tolist(), "T": sample.stats.T.tolist(),
            "effective_dimension": d_eff.tolist()}


def _spectrum(X, stats, labels, acts, *, kernel, reference, weights, width, draws, seed, k,
              progress, start, mode, storage) -> SpectrumResult:
    """The comparison of ``spectrum_experiment`` on one data matrix X (p, n)."""
    p, n = X.shape
    if reference == "mc":
        require_network_memory(n, p, width, len(acts))
    lanczos = mode != "dense"
    stored = None
    coefficients = _coefficients(kernel, acts, stats.tau0)
    # Stages: reference, equivalent, spectra (the Monte-Carlo reference has its own bar).
    # The Monte-Carlo reference and the disk path have bars of their own.
    steps = progress_bar(total=3, desc="spectrum", leave=False,
                         disable=not progress or reference != "exact" or storage is not None)
    noise = None
    # The reference first: its construction has the largest working memory, so the
    # equivalent (n x n) is not alive yet at that peak.
    if storage is not None:
        stored = _stored_kernels(X, acts, stats.tau0, kernel, storage, progress)
        ref = stored.ck if kernel == "ck" else stored.ntk
        products = progress_bar(desc="products with the stored kernel", unit="vector",
                                disable=not progress)
        ref.on_product = products.update
    elif reference == "exact":
        ref = _exact_kernel(X, acts, stats.tau0, kernel)
    else:
        emp = empirical_kernels(X, acts, width=width, draws=draws, weights=weights,
                                seed=seed + 1, tau0=stats.tau0, ntk=kernel == "ntk",
                                progress=progress)
        ref, noise = (emp.ck, emp.ck_noise) if kernel == "ck" else (emp.ntk, emp.ntk_noise)
        del emp
    steps.update()
    equivalent = (ck_equivalent if kernel == "ck" else ntk_equivalent)(X, stats, acts,
                                                                       operator=lanczos)
    steps.update()
    if lanczos:
        vals_r, vecs_r = top_eigenpairs(ref, max(k, 2))
        vals_t, vecs_t = top_eigenpairs(equivalent, k)
        # Kernels are positive semi-definite: ||K_ref|| is its top eigenvalue.
        error = rel_spectral_error(equivalent, ref, ref_norm=vals_r[0])
        comparison = comparison_from_pairs(error, vals_t, vecs_t, vals_r[:k], vecs_r[:, :k])
        vectors = vecs_r
        eigs_theory = eigs_reference = None
    else:
        full = compare_full_spectra(equivalent, ref, k=k, vectors=2, overwrite=True)
        comparison, vectors = full.comparison, full.vectors_reference
        eigs_theory, eigs_reference = full.eigs_theory, full.eigs_reference
    del equivalent, ref
    steps.update()
    steps.close()
    if stored is not None:
        products.close()
    return SpectrumResult(
        acts=tuple(a.name for a in acts), kernel=kernel, reference=reference, n=n, p=p,
        tau0=stats.tau0, coefficients=coefficients, comparison=comparison,
        eigs_theory=eigs_theory, eigs_reference=eigs_reference,
        vectors_reference=vectors, labels=labels, noise=noise,
        weights=weights if reference == "mc" else "gaussian",
        seconds=time.perf_counter() - start, storage=_storage_report(stored))


def _storage_report(stored) -> dict | None:
    """What the disk path stored: folder, tiles, bytes, time of the kernel."""
    if stored is None:
        return None
    store = stored.store
    return {"folder": str(store.root), "tile": store.tile, "dtype": store.meta["dtype"],
            "tiles": len(store.blocks), "tiles_computed": stored.computed,
            "tiles_damaged": list(stored.removed), "disk_bytes": store.disk_bytes(),
            "kernel_seconds": stored.seconds}


@dataclass(frozen=True)
class ConvergenceResult:
    """Relative spectral error of the equivalent vs the exact kernel over n.

    Attributes:
        ns: sample sizes (p = n // 2 on the built-in GMM; the data's p on real data).
        errors: (len(ns), seeds) errors, one column per data seed.
        slope, intercept: least-squares fit of log(mean error) = intercept + slope log(n).
        source: for real data: data set, classes, p, training counts; else ``None``.
        twin: for real data: the same on the matched-GMM twins of the samples.
    """

    acts: tuple[str, ...]
    kernel: str
    ns: tuple[int, ...]
    errors: np.ndarray
    slope: float
    intercept: float
    seconds: float
    source: dict | None = None
    twin: ConvergenceResult | None = None

    def as_dict(self) -> dict:
        out = {"activations": list(self.acts), "kernel": self.kernel, "ns": list(self.ns),
               "errors": self.errors.mean(axis=1).tolist(),
               "errors_per_seed": self.errors.tolist(), "slope": self.slope,
               "intercept": self.intercept, "seconds": self.seconds}
        return out if self.twin is None else _with_twin(out, self.source, self.twin.as_dict())


def _check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def _equivalent_error(X: np.ndarray, stats, acts, kernel: str, storage: dict | None = None
                      ) -> float:
    """||K_eq - K||_2 / ||K||_2 against the exact kernel of X (p, n), by Lanczos with the
    equivalent as an operator: no n x n array besides the exact kernels, and none at all with
    ``storage`` (the exact kernels in tiles on disk, :func:`_stored_kernels`)."""
    if storage is None:
        ref = _exact_kernel(X, acts, stats.tau0, kernel)
    else:
        stored = _stored_kernels(X, acts, stats.tau0, kernel, storage)
        ref = stored.ck if kernel == "ck" else stored.ntk
    equivalent = (ck_equivalent if kernel == "ck" else ntk_equivalent)(X, stats, acts,
                                                                       operator=True)
    return rel_spectral_error(equivalent, ref)


def _exact_kernel(X, acts, tau0, kernel: str) -> np.ndarray:
    """The exact CK or NTK of X as one n x n array: the NTK assembled from tiles
    (``ntk.kernel_matrix``), so that the CK it needs is never held whole beside it."""
    if kernel == "ck":
        return exact_kernels(X, acts, tau0, ntk=False).ck
    return kernel_matrix(X, kernel_plan(X, acts, tau0, ntk=True), "ntk")


def _stored_kernels(X, acts, tau0, kernel, storage, progress=False):
    """The exact kernels of X in tiles in ``storage["root"]`` (``tiled_exact_kernels``)."""
    return tiled_exact_kernels(X, acts, storage["root"], tau0=tau0, ntk=kernel == "ntk",
                               tile=storage["tile"], dtype=storage["dtype"],
                               workers=storage["workers"], scheduler=storage["scheduler"],
                               progress=progress)


def storage_options(store: str | Path | None, *, tile: int = 4096, dtype: str = "float64",
                    workers: int = 1, scheduler: str | None = None) -> dict | None:
    """Where and how the disk path computes its tiles (``None``: no folder given)."""
    if store is None:
        return None
    return {"root": Path(store), "tile": tile, "dtype": dtype, "workers": workers,
            "scheduler": scheduler}


def _need_store(n: int, storage: dict | None) -> None:
    if storage is None:
        raise InputError(f"n = {n}: the exact kernel ({8.0 * n * n / 1e9:.1f} GB in float64) "
                         "is computed in tiles on disk; give a folder for them (--out)")


def convergence_error(acts, n: int, *, kernel: str = "ck", seed: int = 0,
                      storage: dict | None = None) -> float:
    """Relative spectral error ||K_eq - K||_2 / ||K||_2 of the equivalent against the exact
    kernel on one GMM draw (spec section 6 mixture, p = n // 2, data seed ``seed``); the
    exact kernel in tiles on disk with ``storage`` (:func:`storage_options`)."""
    _check_kernel(kernel)
    _check_size(n, n // 2)
    acts = parse_activations(acts)
    g = sample_gmm(gaussian_mixture(n // 2), n, seed=seed)
    return _equivalent_error(g.X, g.stats, acts, kernel, storage)


def data_convergence_errors(acts, n: int, training: TrainingSet, *, kernel: str = "ck",
                            seed: int = 0, storage: dict | None = None
                            ) -> tuple[float, float]:
    """``(real, gmm)``: the error of :func:`convergence_error` on a class-balanced sample of n
    columns of ``training`` (seed ``seed``) and on its matched-GMM twin (tiles in
    ``storage``'s ``real`` and ``gmm`` folders when given)."""
    _check_kernel(kernel)
    acts = parse_activations(acts)
    sample = training.sample(n, seed)
    return (_equivalent_error(sample.X, sample.stats, acts, kernel, _named(storage, "real")),
            _equivalent_error(sample.twin.X, sample.twin.stats, acts, kernel,
                              _named(storage, "gmm")))


def _fit_slope(ns, errors) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(ns), np.log(errors.mean(axis=1)), 1)
    return float(slope), float(intercept)


def convergence_experiment(acts, ns=(200, 400, 800, 1600), *, kernel: str = "ck",
                           seeds: int = 1, progress: bool = False,
                           data: DataSource | None = None,
                           storage: dict | None = None) -> ConvergenceResult:
    """Error of the equivalent against the exact kernel for each n, with a log-log fit.

    Expect a slope near -1/2 (spec section 6). With ``data``: class-balanced samples of a
    labelled data set (seed s for the s-th column of errors) and, in ``result.twin``, their
    matched-GMM twins; the training set is loaded once. Each exact kernel is in memory while
    it fits (:func:`spectrum_path`), beyond in tiles under ``storage`` (from
    :func:`storage_options`; ``<root>/n<n>_seed<s>[/real|/gmm]``), kept for a rerun.
    """
    start = time.perf_counter()
    _check_kernel(kernel)
    ns = tuple(int(n) for n in ns)
    if len(ns) < 2:
        raise InputError("a convergence sweep needs at least two sample sizes")
    for n in ns:
        _check_size(n, n // 2)
    if seeds < 1:
        raise InputError(f"seeds must be >= 1, got {seeds}")
    acts = parse_activations(acts)
    _coefficients(kernel, acts, 1.0)
    on_disk = {n for n in ns if spectrum_path("auto", n) == "disk"}
    for n in on_disk:
        _need_store(n, storage)
    training = None
    if data is not None:
        training = data.load()
        training.check_size(max(ns))
    errors = np.empty((len(ns), seeds))
    errors_gmm = np.empty((len(ns), seeds))
    jobs = [(i, n, s) for i, n in enumerate(ns) for s in range(seeds)]
    for i, n, s in progress_bar(jobs, desc="convergence", disable=not progress, leave=False):
        where = _named(storage, f"n{n}_seed{s}") if n in on_disk else None
        if training is None:
            errors[i, s] = convergence_error(acts, n, kernel=kernel, seed=s, storage=where)
        else:
            errors[i, s], errors_gmm[i, s] = data_convergence_errors(
                acts, n, training, kernel=kernel, seed=s, storage=where)
    names = tuple(a.name for a in acts)
    twin = None
    source = None if training is None else {**training.as_dict(), "seeds": list(range(seeds))}
    if training is not None:
        slope, intercept = _fit_slope(ns, errors_gmm)
        twin = ConvergenceResult(acts=names, kernel=kernel, ns=ns, errors=errors_gmm,
                                 slope=slope, intercept=intercept,
                                 seconds=time.perf_counter() - start,
                                 source={**source, "twin": True})
    slope, intercept = _fit_slope(ns, errors)
    return ConvergenceResult(acts=names, kernel=kernel, ns=ns, errors=errors, slope=slope,
                             intercept=intercept, seconds=time.perf_counter() - start,
                             source=source, twin=twin)


@dataclass(frozen=True)
class KurtosisResult:
    """Measured vs predicted weight-kurtosis term of a first-layer CK (spec section 6).

    With P = (k4/4) d2^2 offdiag[(X o X)^T (X o X)] and Delta_r = CK_r - CK_exact of draw r,
    ``ratio`` is the mean over draws of <Delta_r, P>_F / <P, P>_F (1 when the prediction holds,
    0 when the effect is absent) and ``standard_error`` its standard error over draws.
    On real data, ``source`` describes the data and ``twin`` is the same measurement on the
    sample's matched-GMM twin.
    """

    weights: str
    excess_kurtosis: float
    activation: str
    p: int
    n: int
    width: int
    draws: int
    ratio: float
    standard_error: float
    predicted_rel_norm: float
    seconds: float
    source: dict | None = None
    twin: KurtosisResult | None = None

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("source", "twin")}
        return out if self.twin is None else _with_twin(out, self.source, self.twin.as_dict())


def kurtosis_experiment(weights: str = "rademacher", act: str = "relu", *,
                        p: int | None = None, n: int = 800, width: int = 2500, draws: int = 30,
                        seed: int = 0, progress: bool = False,
                        data: DataSource | None = None) -> KurtosisResult:
    """Measure the excess-kurtosis term of the first-layer CK under a non-Gaussian weight law.

    Data: X with i.i.d. N(0, 1/p) entries (p, n), p = 200 by default; or, with ``data``, a
    class-balanced sample of n columns of a labelled data set (p is the data's) and, in
    ``result.twin``, its matched-GMM twin. The exact kernel is the Gaussian-weight
    infinite-width CK (``exact_kernels``); the per-draw projections on P give the ratio and its
    standard error. ``predicted_rel_norm`` = ||P||_2 / ||CK_exact||_2 says how large the effect
    is compared with the kernel.
    """
    start = time.perf_counter()
    _check_p(p, data)
    p = 200 if p is None and data is None else p
    _check_size(n, 1 if data is not None else p)
    if width < 1 or draws < 2:
        raise InputError(f"need width >= 1 and draws >= 2, got {width}, {draws}")
    law = parse_weight_law(weights)
    act = parse_activations(act)[0]
    options = {"law": law, "act": act, "width": width, "draws": draws, "progress": progress}
    if data is None:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((p, n)) / np.sqrt(p)
        return _kurtosis(X, rng=rng, start=start, **options)
    training = data.load()
    sample = training.sample(n, seed)
    # The same network draws for the sample and its twin: a paired comparison.
    twin = _kurtosis(sample.twin.X, rng=np.random.default_rng([seed, 1]),
                     start=time.perf_counter(), **options)
    real = _kurtosis(sample.X, rng=np.random.default_rng([seed, 1]), start=start, **options)
    return replace(real, source={**training.as_dict(), "seed": seed}, twin=twin)


def _kurtosis(X, *, law, act, width, draws, rng, progress, start) -> KurtosisResult:
    """The measurement of ``kurtosis_experiment`` on X (p, n), networks drawn from ``rng``."""
    from ntk import activation_constants, network_kernels
    from rmt import operator_norm

    p, n = X.shape
    require_network_memory(n, p, width, 1)
    exact = exact_kernels(X, [act], ntk=False)
    d2 = activation_constants(act, exact.tau0).d2
    X2 = X * X
    P = law.excess_kurtosis / 4 * d2**2 * (X2.T @ X2)
    np.fill_diagonal(P, 0.0)
    norm2 = float(np.sum(P * P))
    if not norm2 > 0:
        raise InputError(f"no kurtosis term to measure: k4 d2 = 0 for {law} and {act.name}")
    ratios = []
    for _ in progress_bar(range(draws), desc="draws", disable=not progress, leave=False):
        ck, _ = network_kernels(X, [act], law, rng, width=width, tau0=exact.tau0, ntk=False)
        ratios.append(float(np.sum((ck - exact.ck) * P)) / norm2)
    return KurtosisResult(
        weights=str(law), excess_kurtosis=law.excess_kurtosis, activation=act.name, p=p, n=n,
        width=width, draws=draws, ratio=float(np.mean(ratios)),
        standard_error=float(np.std(ratios, ddof=1) / np.sqrt(draws)),
        predicted_rel_norm=operator_norm(P) / operator_norm(exact.ck),
        seconds=time.perf_counter() - start)
