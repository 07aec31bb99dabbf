"""Open Question 2 of the NTK-LC paper: can the compression be extended to CNNs?

Five measurements, each a sweep task registered in ``validation.experiments.tasks`` (so ``ntklc
sweep``, the cache and ``ntklc reproduce`` work), on raw images (MNIST and Fashion-MNIST
averaged to 14 x 14, CIFAR-10 to 16 x 16) and on Gaussian-mixture "feature maps" (8 x 8, C
channels, each position's C-vector drawn from the image's class of
``rmt.gmm.gaussian_mixture(C)``: the many-channel regime). Networks are
``ntk.cnn_architecture``'s: 3 x 3 convolutions, zero ("same") or circular padding, L = 1..3,
flatten or global-average-pooling readout. Images are centred by the training mean image and
scaled so that the mean first-layer variance q_1 is 1 (tau0 = 1), so that one NTK-LC solution
(``solvers.compress_network(acts, 1.0)``, memoised) serves every sample; the kernels are centred
by the scalar chain (``cnn_kernels(..., centring=True)``), the convention under which the NTK-LC
conditions are stated. Zero padding gives the border positions a smaller variance than the
chain's tau (their windows reach fewer inputs), circular padding does not: the two separate what
the borders cost.

* ``cnn-compressed`` (a): the exact CNN CK with the dense activations against the same network
  with NTK-LC's quantized activations, relative spectral error ||K_c - K|| / ||K||. The NTK of a
  step network is undefined (E[sigma'^2] = inf), so only the CK is compared.
* ``cnn-equivalent`` (b): the exact kernels against the expanded recursion
  (``ntk.cnn_equivalent``), CK and NTK.
* ``cnn-hermite`` (c): quantized activations matching the first K Hermite coefficients and the
  variance (``solvers.hermite_steps``) in every layer, the CK error and what each K costs.
* ``cnn-finite`` (d): Monte-Carlo means of finite CNNs (``nets.cnn_kernels``) with Gaussian or
  sparse ternary filters against the exact kernels, and at L = 1 the weight-kurtosis term
  measured against its prediction.
* ``cnn-accuracy`` (e): a random-feature CNN (two convolutions with pooling, ridge readout) on
  MNIST-type data, dense vs NTK-LC vs pruning vs uniform quantization at matched memory, and
  the kernel-regression accuracy of the exact dense CNN kernel on a subset.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from ntk import cnn_equivalent, cnn_kernels, hermite_coefficients, parse_activations
from ntk.cnn_architecture import ConvArchitecture
from ntklc.errors import InputError
from rmt import rel_spectral_error, subspace_alignment, top_eigenpairs
from rmt.estimate import balanced_indices

__all__ = ["ACTIVATIONS", "DEFAULT_SIZE", "REAL_DATA", "accuracy_task", "cnn_images",
           "compressed_task", "equivalent_task", "finite_task", "gmm_feature_maps",
           "hermite_task", "kernel_summary", "kurtosis_term", "read_images"]

#: Dense activations of the study.
ACTIVATIONS = ("relu", "tanh", "gelu")
#: Raw-image data sets (their ``ntklc`` names).
REAL_DATA = ("mnist", "fashion-mnist", "cifar10")
#: Image side of each source for the kernel parts (a)-(d).
DEFAULT_SIZE = {"mnist": 14, "fashion-mnist": 14, "cifar10": 16, "gmm": 8}
# Truncation tolerance of the Hermite series: far below every error these parts measure.
_TOL = 1e-10
_FILTER = 3
_LOADER_NAMES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar-10"}


# -- data ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _training_images(data: str, size: int, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Training images (N, C, size, size) float32, block-averaged from the original grid and
    centred by their mean image, and their labels; once per process."""
    from nets.data import as_float, load_dataset

    train = load_dataset(_LOADER_NAMES[data], "train", data_dir or None)
    x = as_float(train.images)
    x = x[:, None] if x.ndim == 3 else np.moveaxis(x, 3, 1)
    side = x.shape[2]
    if side % size:
        raise InputError(f"{data} images are {side}x{side}: the size must divide {side}, "
                         f"got {size}")
    f = side // size
    x = x.reshape(x.shape[0], x.shape[1], size, f, size, f).mean(axis=(3, 5))
    x -= x.mean(axis=0)
    return np.ascontiguousarray(x), train.labels


def gmm_feature_maps(n: int, channels: int, size: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """n feature maps (n, C, size, size) of two balanced classes: at every position the
    C-vector is mu_y + w, w ~ N(0, (1 + t_y / sqrt(C)) I) i.i.d. over positions, with the
    means of ``rmt.gmm.gaussian_mixture(C, t=(-1, 1))`` (||mu_1 - mu_2|| = 3; t = (-1, 1)
    rather than the spec's (-2, 2) keeps 1 + t / sqrt(C) positive down to C = 4)."""
    from rmt.gmm import gaussian_mixture

    model = gaussian_mixture(channels, t=(-1.0, 1.0))
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    scales = np.sqrt(np.diagonal(model.covariances, axis1=1, axis2=2))[labels]
    noise = rng.standard_normal((n, channels, size, size)) * scales[:, :, None, None]
    return model.means[labels][:, :, None, None] + noise, labels


def cnn_images(data: str, n: int, seed: int, *, channels: int = 16, size: int = 0,
               data_dir: str = "", padding: str = "same") -> tuple[np.ndarray, np.ndarray]:
    """A sample of n images of ``data`` (float64, NCHW) with tau0 = 1, and its labels.

    Real data: a class-balanced sample of the training set (``rmt.estimate.balanced_indices``),
    preprocessed by :func:`_training_images`; ``gmm``: :func:`gmm_feature_maps`. Either is then
    scaled so that the mean over images and positions of the first 3 x 3 convolution's
    variance (with ``padding``) is 1.

    Raises:
        InputError: unknown data, bad n or size; FileNotFoundError (``DataNotFoundError``):
            the data set's files are missing.
    """
    from solvers import cnn_input_scale

    size = size or DEFAULT_SIZE.get(data, 0)
    if data == "gmm":
        x, labels = gmm_feature_maps(n, channels, size, seed)
    elif data in REAL_DATA:
        images, all_labels = _training_images(data, size, data_dir)
        idx = balanced_indices(all_labels, n, np.unique(all_labels), seed)
        x, labels = images[idx].astype(np.float64), all_labels[idx]
    else:
        raise InputError(f"unknown data {data!r}; choose from {', '.join((*REAL_DATA, 'gmm'))}")
    return x / cnn_input_scale(x, ConvArchitecture(1, _FILTER, padding)), labels


def _images(params: dict, seed: int) -> np.ndarray:
    return cnn_images(params["data"], params["n"], seed, channels=params["channels"],
                      size=params["size"], data_dir=params["data_dir"],
                      padding=params["padding"])[0]


def _kernel_options(params: dict) -> dict:
    return {"filter_size": _FILTER, "padding": params["padding"], "readout": params["readout"],
            "progress": False}


def _spectral_metrics(K: np.ndarray, K_ref: np.ndarray, prefix: str) -> dict:
    """Relative spectral error, top-eigenvalue relative error and top-5 subspace alignment."""
    k = min(5, K.shape[0])
    vals, vecs = top_eigenpairs(K, k)
    ref_vals, ref_vecs = top_eigenpairs(K_ref, k)
    return {f"{prefix}_error": rel_spectral_error(K, K_ref),
            f"{prefix}_top_eig": float(abs(vals[0] - ref_vals[0]) / abs(ref_vals[0])),
            f"{prefix}_alignment": subspace_alignment(vecs, ref_vecs)}


# -- (a) dense vs compressed -------------------------------------------------------------------

def compressed_task(params: dict, seed: int) -> dict:
    """(a) CK of the dense CNN vs the NTK-LC-compressed one (module docstring)."""
    from validation.experiments.realdata import ntklc_compression

    start = time.perf_counter()
    acts = parse_activations(params["act"]) * params["layers"]
    result = ntklc_compression([a.name for a in acts])
    x = _images(params, seed)
    dense = cnn_kernels(x, acts, ntk=False, centring=True, tol=_TOL, **_kernel_options(params))
    compressed = cnn_kernels(x, result.activations, ntk=False, centring=True, tol=_TOL,
                             **_kernel_options(params))
    return {**_spectral_metrics(compressed.ck, dense.ck, "ck"),
            "levels": [layer.step.n_levels for layer in result.layers], "delta": result.delta,
            "close_pairs": int(sum(compressed.close_pairs)),
            "seconds": time.perf_counter() - start}


# -- (b) the expanded recursion ----------------------------------------------------------------

def equivalent_task(params: dict, seed: int) -> dict:
    """(b) exact CK and NTK vs the expanded recursion of ``ntk.cnn_equivalent``."""
    start = time.perf_counter()
    acts = parse_activations(params["act"]) * params["layers"]
    x = _images(params, seed)
    exact = cnn_kernels(x, acts, centring=True, tol=_TOL, **_kernel_options(params))
    expanded = cnn_equivalent(x, acts, **_kernel_options(params))
    return {**_spectral_metrics(expanded.ck, exact.ck, "ck"),
            **_spectral_metrics(expanded.ntk, exact.ntk, "ntk"),
            "seconds": time.perf_counter() - start}


# -- (c) Hermite order -------------------------------------------------------------------------

def hermite_task(params: dict, seed: int) -> dict:
    """(c) CK error of quantized activations matching K Hermite coefficients in every layer.

    Layer l's step function is ``solvers.hermite_step(act, tau_(l-1), K)`` at the dense
    network's chain scale (the variance matches, so the chain is the same). Memory: the
    step's levels k cost ceil(log2 k) bits per activation value and 2k - 1 float32
    parameters per layer. When no step function of at most 64 levels matches, the metrics
    are ``None`` and ``infeasible`` says why."""
    from ntk import tau_chain
    from solvers import hermite_step

    start = time.perf_counter()
    acts = parse_activations(params["act"]) * params["layers"]
    chain = tau_chain(acts, 1.0)
    try:
        steps = [hermite_step(a, c.tau, params["order"])
                 for a, c in zip(acts, chain, strict=True)]
    except ValueError as exc:  # no step function of at most 64 levels matches: a finding
        return {"ck_error": None, "ck_top_eig": None, "ck_alignment": None, "levels": None,
                "value_bits": None, "parameter_bits": None, "infeasible": str(exc),
                "seconds": time.perf_counter() - start}
    x = _images(params, seed)
    dense = cnn_kernels(x, acts, ntk=False, centring=True, tol=_TOL, **_kernel_options(params))
    quantized = cnn_kernels(x, [s.activation() for s in steps], ntk=False, centring=True,
                            tol=_TOL, **_kernel_options(params))
    levels = [s.n_levels for s in steps]
    return {**_spectral_metrics(quantized.ck, dense.ck, "ck"), "levels": levels,
            "value_bits": max(math.ceil(math.log2(k)) for k in levels),
            "parameter_bits": sum(32 * (2 * k - 1) for k in levels), "infeasible": None,
            "seconds": time.perf_counter() - start}


# -- (d) finite networks -----------------------------------------------------------------------

def kurtosis_term(x: np.ndarray, act, excess_kurtosis: float, padding: str = "same"
                  ) -> np.ndarray:
    """Predicted first-layer change of the flatten CK under weights of excess kurtosis k4.

    Per position the first layer is a fully connected layer on the patch p = x(a + d) /
    sqrt(C k^2): as for fully connected networks (spec section 6, the fourth-cumulant term of
    E[sigma(w.p_i) sigma(w.p_j)]), (k4 / 4) d2(q_i(a)) d2(q_j(a)) sum_m p_i,m^2 p_j,m^2 with
    d2(q) = E[sigma''(sqrt(q) xi)], averaged over positions; off the diagonal.

    Returns:
        (n, n) predicted term P.
    """
    arch = ConvArchitecture(1, _FILTER, padding)
    n, C, H, W = x.shape
    padded = arch.padded(x)
    patches = np.stack([padded[:, :, i:i + H, j:j + W] for i in range(_FILTER)
                        for j in range(_FILTER)], axis=2).reshape(n, C * _FILTER**2, H * W)
    patches /= math.sqrt(C * _FILTER**2)
    q = np.sum(patches**2, axis=1)
    s = np.sqrt(q).ravel()
    d2 = np.zeros_like(s)
    live = s > 0
    # c_2 of sigma(s xi) is s^2 d2 / sqrt(2) (Stein).
    d2[live] = math.sqrt(2) * hermite_coefficients(act, s[live], 2)[:, 2] / s[live]**2
    d2 = d2.reshape(n, H * W)
    squares = patches**2
    P = np.einsum("ia,ja,ima,jma->ij", d2, d2, squares, squares) * excess_kurtosis / 4
    P /= H * W
    np.fill_diagonal(P, 0.0)
    return P


def finite_task(params: dict, seed: int) -> dict:
    """(d) Monte-Carlo mean of finite CNNs (``width`` channels, ``weights`` law) vs exact.

    Each draw is ``nets.cnn_network_kernels`` with the exact kernel's centring; the mean's
    relative spectral error, its split-half noise (``ntk.empirical``'s estimate) and, at L = 1,
    the per-draw projections of CK - CK_exact on the kurtosis term (ratio 1: as predicted,
    0: no effect), as ``ntklc kurtosis`` does for fully connected networks."""
    from nets import cnn_network_kernels
    from ntk import parse_weight_law
    from ntk.empirical import mean_over_draws

    start = time.perf_counter()
    acts = parse_activations(params["act"]) * params["layers"]
    law = parse_weight_law(params["weights"])
    x = _images(params, seed)
    exact = cnn_kernels(x, acts, centring=True, tol=_TOL, **_kernel_options(params))
    P = (kurtosis_term(x, acts[0], law.excess_kurtosis, params["padding"])
         if params["layers"] == 1 else None)
    ratios = []
    rng = np.random.default_rng([seed, 1])

    def draws():
        for _ in range(params["draws"]):
            ck, nt = cnn_network_kernels(x, acts, law, rng, channels=params["width"],
                                         filter_size=_FILTER, padding=params["padding"],
                                         readout=params["readout"], centring=exact.centring)
            if P is not None and np.any(P):
                ratios.append(float(np.sum((ck - exact.ck) * P) / np.sum(P * P)))
            yield ck, nt

    mean = mean_over_draws(draws(), width=(params["width"],) * params["layers"], ntk=True)
    metrics = {"ck_error": rel_spectral_error(mean.ck, exact.ck), "ck_noise": mean.ck_noise,
               "ntk_error": rel_spectral_error(mean.ntk, exact.ntk),
               "ntk_noise": mean.ntk_noise}
    if ratios:
        metrics["kurtosis_ratio"] = float(np.mean(ratios))
        metrics["kurtosis_se"] = float(np.std(ratios, ddof=1) / math.sqrt(len(ratios)))
        metrics["kurtosis_rel_norm"] = float(np.linalg.norm(P, 2) / np.linalg.norm(exact.ck, 2))
    return {**metrics, "excess_kurtosis": law.excess_kurtosis,
            "seconds": time.perf_counter() - start}


# -- (e) accuracy vs memory --------------------------------------------------------------------

def accuracy_task(params: dict, seed: int) -> dict:
    """(e) accuracy vs memory of random-feature CNNs; see
    ``validation.experiments.cnn_accuracy``."""
    from validation.experiments.cnn_accuracy import cnn_accuracy

    return cnn_accuracy(params["data"], quick=params["quick"], seed=seed,
                        data_dir=params["data_dir"])


# -- ntklc cnn-kernel --------------------------------------------------------------------------

def read_images(path) -> np.ndarray:
    """Images of a ``.npz`` as (n, C, H, W) float64: its array ``X`` of shape (N, H, W) or
    (N, H, W, C), the toolkit's data-file convention (``--data PATH.npz``); labels ``y`` are
    not needed.

    Raises:
        FileNotFoundError: no such file.
        InputError: not a readable .npz, no X, a wrong rank or type, NaN or inf.
    """
    from validation.data.datasource import load_npz_arrays

    X = load_npz_arrays(path, ("X",))["X"]
    if X.ndim not in (3, 4) or 0 in X.shape:
        raise InputError(f"{path}: X must be images (N, H, W) or (N, H, W, C), got shape "
                         f"{X.shape}")
    if not (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)):
        raise InputError(f"{path}: X must hold real numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise InputError(f"{path}: X contains NaN or inf")
    return X[:, None] if X.ndim == 3 else np.moveaxis(X, 3, 1)


def kernel_summary(x: np.ndarray, acts, *, filter_size: int = 3, padding: str = "same",
                   pool=(), readout: str = "flatten", ntk: bool = True, centring: bool = False,
                   compare: str = "none", k: int = 5) -> tuple[dict, dict]:
    """``ntklc cnn-kernel``: exact kernels of images and, on request, how far the expanded
    recursion (``compare="equivalent"``, centred kernels) or NTK-LC's quantized activations
    (``compare="compressed"``, centred CK, activations solved at the images' tau0) are.

    Returns:
        ``(summary, kernels)``: a JSON-ready summary (architecture, time, top-k eigenvalues,
        comparison errors) and the kernel arrays by name.
    """
    options = {"filter_size": filter_size, "padding": padding, "pool": tuple(pool),
               "readout": readout, "progress": True}
    if compare not in ("none", "equivalent", "compressed"):
        raise InputError(f"unknown comparison {compare!r}; choose none, equivalent or "
                         "compressed")
    layers = parse_activations(acts)
    start = time.perf_counter()
    exact = cnn_kernels(x, layers, ntk=ntk, centring=centring or compare != "none",
                        **options)
    kernels = {"ck": exact.ck} if exact.ntk is None else {"ck": exact.ck, "ntk": exact.ntk}
    summary = {"n": int(x.shape[0]), "image_shape": list(x.shape[1:]),
               "architecture": exact.arch.describe(), "activations": list(exact.activations),
               "centring": list(exact.centring), "tau0": exact.tau0,
               "close_pairs": list(exact.close_pairs), "seconds": time.perf_counter() - start,
               "top_eigenvalues": {name: top_eigenpairs(K, min(k, K.shape[0]))[0].tolist()
                                   for name, K in kernels.items()}}
    if compare == "equivalent":
        expanded = cnn_equivalent(x, layers, ntk=ntk, **options)
        kernels["equivalent_ck"] = expanded.ck
        summary["equivalent"] = {"ck_error": rel_spectral_error(expanded.ck, exact.ck)}
        if ntk:
            kernels["equivalent_ntk"] = expanded.ntk
            summary["equivalent"]["ntk_error"] = rel_spectral_error(expanded.ntk, exact.ntk)
    elif compare == "compressed":
        from solvers import compress_network

        result = compress_network(list(layers), exact.tau0)
        compressed = cnn_kernels(x, result.activations, ntk=False, centring=True, **options)
        kernels["compressed_ck"] = compressed.ck
        summary["compressed"] = {"ck_error": rel_spectral_error(compressed.ck, exact.ck),
                                 "levels": [layer.step.n_levels for layer in result.layers],
                                 "delta": result.delta}
    return summary, kernels
