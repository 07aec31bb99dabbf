"""GMM statistics estimated from a labelled data set, for the equivalents on real data.

The equivalents (``ntk.ck_equivalent``, ``ntk.ntk_equivalent``) need, for a sample X (p, n),
the statistics of spec section 1: tau0, t, T, J, psi and V. On real data the class means and
covariances are unknown; they are estimated on a training set and the sample's statistics are
computed against them, so that the equivalents run on real data exactly as on a GMM draw.

Preprocessing (the paper's convention, also
``validation.experiments.realdata.prepare_vectors``): with the training columns x_1..x_N,

    x -> (x - xbar) / s,   xbar = mean_i x_i,   s = sqrt(mean_i ||x_i - xbar||^2),

so that tau0 = sqrt(mean_i ||x_i||^2) estimated on the training set is exactly 1. The same
(xbar, s) are applied to every sample drawn from that data set.

Model units: data are x = (mu_a + w)/sqrt(p), w ~ N(0, C_a), so for the preprocessed data with
class mean m_a and class covariance Sigma_a (of x):

    mu_a = sqrt(p) m_a,   C_a = p Sigma_a,   c_a = N_a / N (training class frequencies).

Estimators, from the N_a training columns of class a (S_a: sample covariance, ddof = 1):

* tr(C_a)/p = tr(Sigma_a) by tr(S_a) (unbiased);
* T_ab = tr(C_a C_b)/p = p tr(Sigma_a Sigma_b) by p tr(S_a S_b) for a != b (unbiased: the
  classes are independent samples);
* T_aa by p times the distribution-free unbiased estimator of tr(Sigma_a^2) (Himeno and
  Yamada 2014; Srivastava, Yanagihara and Kubokawa 2014), with m = N_a and
  Q = sum_i ||x_i - m_a||^4 / (m - 1):

      tr(Sigma^2)^ = (m - 1) / (m (m - 2) (m - 3)) [(m - 1)(m - 2) tr(S^2) + tr(S)^2 - m Q].

  The plug-in p tr(S_a^2) is biased upwards by about p tr(Sigma_a)^2 / N_a =
  tr(C_a)^2 / (p N_a), which is O(p/N_a) relative to T_aa (13 % at p = 64, N_a = 500); this
  estimator needs no Gaussian assumption (real images are not Gaussian) and N_a >= 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntklc.errors import InputError
from rmt.gmm import GaussianMixture, GMMSample, GMMStatistics, estimate_tau0, sample_gmm

__all__ = [
    "FittedMixture",
    "Preprocessing",
    "balanced_indices",
    "fit_mixture",
    "fit_preprocessing",
    "sample_matched_gmm",
    "sample_statistics",
]

_MIN_CLASS_SIZE = 4  # the unbiased estimator of tr(Sigma^2) divides by (m - 2)(m - 3)


def _as_columns(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise InputError(f"{name} must be a 2-D array (p, n) with p, n >= 1, got shape "
                         f"{X.shape}")
    if not np.all(np.isfinite(X)):
        raise InputError(f"{name} must be finite (it contains NaN or inf)")
    return X


def _as_labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise InputError(f"labels must have shape ({n},), one per column, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be integers, got dtype {labels.dtype}")
    return labels


@dataclass(frozen=True)
class Preprocessing:
    """Centring and scaling fitted on a training set (see the module docstring).

    Attributes:
        mean: (p,) training mean xbar.
        scale: s = sqrt(mean_i ||x_i - xbar||^2) over the training columns, > 0.
    """

    mean: np.ndarray
    scale: float

    def apply(self, X: np.ndarray) -> np.ndarray:
        """(X - xbar) / s for X of shape (p, n); float64 (p, n)."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[0] != self.mean.shape[0]:
            raise InputError(f"X must have shape ({self.mean.shape[0]}, n), got {X.shape}")
        return (X - self.mean[:, None]) / self.scale


def fit_preprocessing(X: np.ndarray) -> Preprocessing:
    """The preprocessing that centres the training columns and gives them tau0 = 1.

    Args:
        X: (p, N) training data, one sample per column, finite.

    Raises:
        InputError: malformed X, or all columns equal (no scale).
    """
    X = _as_columns(X)
    mean = X.mean(axis=1)
    scale = math.sqrt(float(np.mean(np.sum((X - mean[:, None]) ** 2, axis=0))))
    if not scale > 0:
        raise InputError("all training samples are equal: there is no scale to normalise by")
    return Preprocessing(mean=mean, scale=scale)


@dataclass(frozen=True)
class FittedMixture:
    """A Gaussian mixture estimated from labelled training data, in the model's units.

    Attributes:
        model: the estimated mixture: means (K, p) mu_a = sqrt(p) m_a, covariances (K, p, p)
            C_a = p S_a, proportions (K,) training class frequencies.
        classes: (K,) the original class labels; row a of the model is class ``classes[a]``.
        counts: (K,) training samples per class.
        T: (K, K) unbiased estimate of tr(C_a C_b)/p (see the module docstring); use it
            instead of ``model.statistics()``, whose plug-in diagonal is biased.
    """

    model: GaussianMixture
    classes: np.ndarray
    counts: np.ndarray
    T: np.ndarray

    @property
    def traces(self) -> np.ndarray:
        """(K,) tr(C_a)/p = tr(S_a), the class noise energies ||z||^2 expected per sample."""
        return np.trace(self.model.covariances, axis1=1, axis2=2) / self.model.dim

    def class_index(self, labels) -> np.ndarray:
        """(n,) row of each label in ``classes``.

        Raises:
            InputError: a label is not one of ``classes``.
        """
        labels = np.asarray(labels)
        order = np.argsort(self.classes)
        pos = np.searchsorted(self.classes, labels, sorter=order)
        pos = order[np.minimum(pos, len(order) - 1)]
        unknown = self.classes[pos] != labels
        if np.any(unknown):
            raise InputError(f"label {labels[unknown][0]} is not one of the fitted classes "
                             f"{self.classes.tolist()}")
        return pos


def _trace_sq_unbiased(S: np.ndarray, norms4: float, m: int) -> float:
    """Distribution-free unbiased tr(Sigma^2) from S (ddof 1), sum_i ||x_i - xbar||^4, m."""
    tr_s2 = float(np.sum(S * S))
    tr_s = float(np.trace(S))
    q = norms4 / (m - 1)
    return (m - 1) / (m * (m - 2) * (m - 3)) * ((m - 1) * (m - 2) * tr_s2 + tr_s**2 - m * q)


def fit_mixture(X: np.ndarray, labels) -> FittedMixture:
    """Estimate class means, covariances, proportions and T from labelled training data.

    Args:
        X: (p, N) preprocessed training data (see :func:`fit_preprocessing`).
        labels: (N,) integer class labels; every distinct label is a class (sorted).

    Returns:
        :class:`FittedMixture` (memory K p^2 floats for the covariances).

    Raises:
        InputError: malformed X or labels, or a class with fewer than 4 samples.
    """
    X = _as_columns(X)
    p, _ = X.shape
    labels = _as_labels(labels, X.shape[1])
    classes, counts = np.unique(labels, return_counts=True)
    small = counts < _MIN_CLASS_SIZE
    if np.any(small):
        raise InputError(f"class {classes[small][0]} has {counts[small][0]} training samples; "
                         f"estimating its covariance needs at least {_MIN_CLASS_SIZE}")
    k = classes.size
    means = np.empty((k, p))
    cov = np.empty((k, p, p))
    T = np.empty((k, k))
    for a, cls in enumerate(classes):
        Xa = X[:, labels == cls]
        means[a] = Xa.mean(axis=1)
        Z = Xa - means[a][:, None]
        S = Z @ Z.T / (Z.shape[1] - 1)
        cov[a] = p * 0.5 * (S + S.T)
        norms4 = float(np.sum(np.sum(Z * Z, axis=0) ** 2))
        T[a, a] = p * _trace_sq_unbiased(S, norms4, Z.shape[1])
    for a in range(k):
        for b in range(a):
            T[a, b] = T[b, a] = float(np.sum(cov[a] * cov[b])) / p
    model = GaussianMixture(means=math.sqrt(p) * means, covariances=cov,
                            proportions=counts / counts.sum())
    return FittedMixture(model=model, classes=classes, counts=counts, T=T)


def sample_statistics(X: np.ndarray, labels, fitted: FittedMixture) -> GMMStatistics:
    """Statistics of a sample of n columns against the fitted training statistics.

    With c_a the sample's class proportions, C° = sum_a c_a C_a and m_a, S_a the training
    class means and covariances (of x):

        tau0 = sqrt(mean_i ||x_i||^2) (the data estimate, as ``sample_gmm``),
        tau0_model = sqrt(tr(C°)/p),  t_a = tr(C_a - C°)/sqrt(p),  T from ``fitted``,
        psi_i = ||x_i - m_a||^2 - tr(S_a)  (= ||z_i||^2 - tr(C_a)/p),  V = [J/sqrt(p), psi].

    Args:
        X: (p, n) sample, preprocessed like the training data.
        labels: (n,) original class labels of the columns (each one of ``fitted.classes``).
        fitted: the training estimates (:func:`fit_mixture`).

    Returns:
        :class:`rmt.GMMStatistics` (J has one column per fitted class, zero when a class is
        absent from the sample).
    """
    X = _as_columns(X)
    p, n = X.shape
    if p != fitted.model.dim:
        raise InputError(f"X has {p} rows but the mixture was fitted in dimension "
                         f"{fitted.model.dim}")
    idx = fitted.class_index(_as_labels(labels, n))
    k = fitted.model.n_classes
    J = (idx[:, None] == np.arange(k)[None, :]).astype(float)
    c = J.mean(axis=0)
    traces = fitted.traces
    c0 = float(c @ traces)
    t = math.sqrt(p) * (traces - c0)
    m = fitted.model.means[idx].T / math.sqrt(p)
    psi = np.sum((X - m) ** 2, axis=0) - traces[idx]
    V = np.column_stack([J / math.sqrt(p), psi])
    return GMMStatistics(tau0=estimate_tau0(X), tau0_model=math.sqrt(c0), t=t,
                         T=fitted.T.copy(), J=J, psi=psi, V=V)


def balanced_indices(labels, n: int, classes, rng: int | np.random.Generator = 0
                     ) -> np.ndarray:
    """A class-balanced sample of n indices, without replacement, grouped by class.

    Each of the K classes gets n // K samples; the first n % K classes one more.

    Args:
        labels: (N,) integer labels of the pool.
        n: sample size, K <= n.
        classes: the K distinct classes to draw, in the order of the result.
        rng: seed or Generator.

    Returns:
        (n,) int64 indices into ``labels``: the columns of ``classes[0]`` first (each class's
        indices in random order).

    Raises:
        InputError: n < K, an unknown or repeated class, or a class with too few samples.
    """
    labels = np.asarray(labels)
    classes = [int(c) for c in classes]
    k = len(classes)
    if k < 1 or len(set(classes)) != k:
        raise InputError(f"classes must be distinct and at least one, got {classes}")
    if int(n) != n or n < k:
        raise InputError(f"a class-balanced sample of {k} classes needs n >= {k}, got n={n}")
    n = int(n)
    rng = np.random.default_rng(rng)
    present = set(np.unique(labels).tolist())
    sizes = [n // k + (a < n % k) for a in range(k)]
    out = []
    for cls, size in zip(classes, sizes, strict=True):
        if cls not in present:
            raise InputError(f"class {cls} is not in the data (classes present: "
                             f"{', '.join(map(str, sorted(present)))})")
        pool = np.flatnonzero(labels == cls)
        if pool.size < size:
            raise InputError(f"class {cls} has {pool.size} samples, fewer than the {size} a "
                             f"class-balanced sample of n={n} over {k} classes needs")
        out.append(rng.choice(pool, size, replace=False))
    return np.concatenate(out).astype(np.int64)


def sample_matched_gmm(fitted: FittedMixture, labels, *, seed: int | np.random.Generator = 0,
                       dtype=np.float64) -> GMMSample:
    """The Gaussian twin of a sample: the estimated means and covariances, same class counts.

    Draws ``sample_gmm`` from the fitted means and covariances with proportions equal to the
    class proportions of ``labels``, so the twin has exactly the same number of samples of each
    class as the real sample. Its statistics are those of its own (known) model.

    Args:
        fitted: the training estimates.
        labels: (n,) original class labels of the real sample; every fitted class must appear.
        seed: seed or Generator of the draw.
        dtype: float64 or float32 for X.

    Returns:
        :class:`rmt.GMMSample`, columns grouped by class; its ``labels`` index
        ``fitted.classes``.
    """
    labels = np.asarray(labels)
    idx = fitted.class_index(labels)
    counts = np.bincount(idx, minlength=fitted.model.n_classes)
    if np.any(counts == 0):
        missing = fitted.classes[counts == 0].tolist()
        raise InputError(f"classes {missing} are absent from the sample; the twin needs every "
                         "fitted class")
    model = GaussianMixture(means=fitted.model.means, covariances=fitted.model.covariances,
                            proportions=counts / counts.sum())
    return sample_gmm(model, labels.size, seed=seed, dtype=dtype)
