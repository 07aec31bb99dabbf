"""Does the theory hold on real data? The equivalents on real images and on their Gaussian twins.

The NTK-LC theorem (seed 000) is proved for Gaussian mixtures; its Open Question 1 asks how
robust it is to data that are not. This experiment measures it. For a data set, a set of
classes, an activation, a depth L and a sample size n, one task draws a class-balanced sample
of n training images (``validation.data.datasource``: centred by the training mean, scaled to
tau0 = 1, statistics t, T, psi estimated on the whole training set) and its matched GMM (same
class means and covariances, same class counts), and on both compares the deterministic
equivalents (CK and NTK, ``ntk.equivalents``) with the exact infinite-width kernels
(``ntk.exact``):

* ``err_<kernel>_<source>``: relative spectral error ||K_eq - K||_2 / ||K||_2;
* ``align_<kernel>_<source>``: alignment of the top-k eigenspaces (k = number of classes),
  ||U_eq^T U||_F^2 / k in [0, 1] (1: the same subspace; robust to the order of clustered
  eigenvalues, unlike eigenvector-by-eigenvector cosines);
* ``sep_<kernel>_<source>`` and ``sep_eq_<kernel>_<source>``: how separable the classes are in
  the top-k eigenvectors of the exact kernel and of the equivalent: the accuracy of the nearest
  class centroid in those coordinates (1: separable, 1/k: chance);

with source ``real`` or ``gmm`` (the twin). Across n, the log-log slope of the error says
whether it decays (the theorem predicts about n^-1/2 on a GMM) or stalls: the study of
:mod:`validation.report.universality`.
"""

from __future__ import annotations

import functools

import numpy as np

from ntk import ck_equivalent, exact_kernels, ntk_equivalent, parse_activations
from rmt import rel_spectral_error, subspace_alignment, top_eigenpairs
from validation.data.datasource import DataSource, TrainingSet, parse_classes

__all__ = ["ACTIVATIONS", "KERNELS", "SOURCES", "centroid_accuracy", "training_set",
           "universality_task"]

#: Activations of the experiment (smooth and not, odd and not; all with an NTK).
ACTIVATIONS = ("relu", "tanh", "erf", "gelu", "swish", "abs")
KERNELS = ("ck", "ntk")
SOURCES = ("real", "gmm")


@functools.lru_cache(maxsize=2)
def training_set(data: str, classes: str, data_dir: str = "") -> TrainingSet:
    """The preprocessed training set and its estimates, once per process (a sweep worker runs
    many tasks on the same data)."""
    chosen = None if classes == "all" else parse_classes(classes)
    return DataSource(data=data, classes=chosen, data_dir=data_dir or None).load()


def universality_task(params: dict, seed: int) -> dict:
    """One task: the metrics of the module docstring for (data, classes, act, layers, n, seed).

    Args:
        params: ``data``, ``classes`` (``"all"`` or a comma list), ``act``, ``layers``, ``n``,
            ``data_dir`` (``""``: the default search).
        seed: seeds the sample and its twin.
    """
    acts = parse_activations(params["act"]) * int(params["layers"])
    train = training_set(params["data"], params["classes"], params.get("data_dir", ""))
    sample = train.sample(int(params["n"]), seed)
    k = len(train.classes)
    metrics: dict[str, float | int] = {}
    for source, X, stats, labels in (("real", sample.X, sample.stats, sample.labels),
                                     ("gmm", sample.twin.X, sample.twin.stats,
                                      sample.twin_labels)):
        exact = exact_kernels(X, acts, stats.tau0)
        metrics[f"close_pairs_{source}"] = int(sum(exact.close_pairs))
        for kernel, equivalent, reference in (("ck", ck_equivalent, exact.ck),
                                              ("ntk", ntk_equivalent, exact.ntk)):
            K_eq = equivalent(X, stats, acts)
            _, U_eq = top_eigenpairs(K_eq, k)
            _, U = top_eigenpairs(reference, k)
            metrics[f"err_{kernel}_{source}"] = rel_spectral_error(K_eq, reference)
            metrics[f"align_{kernel}_{source}"] = subspace_alignment(U_eq, U)
            metrics[f"sep_{kernel}_{source}"] = centroid_accuracy(U, labels)
            metrics[f"sep_eq_{kernel}_{source}"] = centroid_accuracy(U_eq, labels)
    return metrics


def centroid_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the nearest class centroid on (n, k) ``features`` (rows are samples)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    centroids = np.stack([features[labels == c].mean(axis=0) for c in classes])
    dist = np.sum((features[:, None, :] - centroids[None, :, :]) ** 2, axis=2)
    return float(np.mean(classes[np.argmin(dist, axis=1)] == labels))
