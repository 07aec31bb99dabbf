"""Labelled data for the theory commands: a training set, its estimated GMM statistics,
class-balanced samples and their matched-GMM twins.

Sources (``--data``): ``mnist``, ``fashion-mnist`` and ``cifar10`` (raw pixels of the training
split scaled to [0, 1], read by ``nets.data.load_dataset`` from local files only), or a
``PATH.npz`` holding ``X`` of shape (N, p), (N, H, W) or (N, H, W, C) and integer ``y`` of
shape (N,); its rows are the training set. ``--features PATH.npz`` (same format) replaces the
inputs by features, e.g. the penultimate layer of the project's CNN.

Pipeline, the same for every command (``rmt.estimate`` states the conventions):

1. keep the training samples of the chosen classes (all classes by default);
2. preprocess them: minus their mean, divided by their root mean square norm, so that tau0
   estimated on this training set is 1 (``rmt.fit_preprocessing``);
3. estimate the class means, covariances and T on all of them (``rmt.fit_mixture``);
4. per seed: a class-balanced sample of n columns without replacement (with n the size of the
   training set: all of it), its statistics against the training estimates
   (``rmt.sample_statistics``), and its Gaussian twin with the same means, covariances and
   class counts (``rmt.sample_matched_gmm``), both drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nets.data import as_float, find_dataset, load_dataset
from ntklc.errors import DataNotFoundError, InputError
from rmt import (
    FittedMixture,
    GMMSample,
    GMMStatistics,
    Preprocessing,
    balanced_indices,
    fit_mixture,
    fit_preprocessing,
    sample_matched_gmm,
    sample_statistics,
)

__all__ = ["DATA_SETS", "DataSample", "DataSource", "TrainingSet", "parse_classes", "read_npz"]

#: ``--data`` names of the image data sets -> ``nets.data`` names.
DATA_SETS = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar-10",
             "cifar-10": "cifar-10"}


def parse_classes(text: str | None) -> tuple[int, ...] | None:
    """``"0,1,7"`` -> (0, 1, 7); ``None`` or ``""`` -> ``None`` (all classes).

    Raises:
        InputError: not a comma list of distinct integers.
    """
    if text is None or not str(text).strip():
        return None
    try:
        classes = tuple(int(t) for t in str(text).split(","))
    except ValueError:
        raise InputError(f"classes must be a comma list of integers, got {text!r}") from None
    if len(set(classes)) != len(classes):
        raise InputError(f"classes must be distinct, got {text!r}")
    return classes


def load_npz_arrays(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of a ``.npz`` file, without pickles.

    Raises:
        FileNotFoundError: no such file.
        InputError: not a readable .npz file, or a key missing (the message lists what the
            file has).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file")
    # np.load would take any other file for a pickle (or a bare .npy) and say so confusingly.
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as f:
            names = list(f.files)
            arrays = {k: f[k] for k in keys if k in names}
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    except ValueError as exc:  # e.g. object arrays, which need pickle
        raise InputError(f"{path}: {exc}".replace("\n", " ")) from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise InputError(f"{path}: no array {' or '.join(missing)} (the .npz needs "
                         f"{' and '.join(keys)}; it has {', '.join(names) or 'nothing'})")
    return arrays


def read_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a labelled ``.npz``: ``X`` (N, p), (N, H, W) or (N, H, W, C), integer ``y`` (N,).

    Returns:
        ``(X, y)``: float64 rows (N, p) (images flattened) and int64 labels (N,).

    Raises:
        FileNotFoundError: no such file.
        InputError: not a readable .npz, missing keys, a wrong shape or type, NaN or inf.
    """
    path = Path(path)
    arrays = load_npz_arrays(path, ("X", "y"))
    X, y = arrays["X"], arrays["y"]
    if X.ndim not in (2, 3, 4) or 0 in X.shape:
        raise InputError(f"{path}: X must have shape (N, p), (N, H, W) or (N, H, W, C) with "
                         f"no empty axis, got {X.shape}")
    if not (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)):
        raise InputError(f"{path}: X must hold real numbers, got dtype {X.dtype}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise InputError(f"{path}: y must have shape ({X.shape[0]},), one label per row of X, "
                         f"got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{path}: y must hold integer class labels, got dtype {y.dtype}")
    X = X.reshape(X.shape[0], -1).astype(np.float64)
    bad = ~np.isfinite(X)
    if np.any(bad):
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise InputError(f"{path}: X contains NaN or inf ({int(bad.sum())} entries, first in "
                         f"row {row})")
    return X, y.astype(np.int64)


@dataclass(frozen=True)
class DataSource:
    """Where labelled data come from: plain parameters, turned into data by :meth:`load`.

    Attributes:
        data: ``mnist``, ``fashion-mnist``, ``cifar10`` or a ``PATH.npz`` (optional when
            ``features`` is given, then only a label).
        classes: the classes to use, in order; ``None`` for every class in the data.
        features: a ``PATH.npz`` of features used instead of the inputs of ``data``.
        data_dir: folder searched before ``$NTKLC_DATA`` for the named data sets.
    """

    data: str | None = None
    classes: tuple[int, ...] | None = None
    features: str | None = None
    data_dir: str | None = None

    def __post_init__(self):
        if not self.data and not self.features:
            raise InputError("a data source needs data (mnist, fashion-mnist, cifar10 or "
                             "PATH.npz) or features (PATH.npz)")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
            if not self.classes:
                raise InputError("classes must name at least one class")

    @property
    def label(self) -> str:
        """The data's name for tables and JSON."""
        if self.features:
            return f"{self.data} features" if self.data else "features"
        return DATA_SETS.get(self.data.lower(), self.data)

    def _chosen(self, present: np.ndarray) -> tuple[int, ...]:
        """The classes to use, checked against the sorted labels ``present`` in the data."""
        if self.classes is None:
            return tuple(int(c) for c in present)
        unknown = [c for c in self.classes if c not in set(present.tolist())]
        if unknown:
            raise InputError(f"class {unknown[0]} is not in {self.label} (classes present: "
                             f"{', '.join(map(str, present.tolist()))})")
        return self.classes

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Training inputs (N, p) float64 of the chosen classes and their labels."""
        if self.features:
            return read_npz(self.features)
        name = DATA_SETS.get(self.data.lower())
        if name is None:
            if self.data.endswith(".npz") or Path(self.data).exists():
                return read_npz(self.data)
            raise InputError(f"unknown data {self.data!r}: use mnist, fashion-mnist, cifar10 "
                             "or a PATH.npz")
        if find_dataset(name, self.data_dir) is None:
            # Theory commands read local files only: a download attempt would print its own
            # log lines (and may hang on a firewall) before failing.
            raise DataNotFoundError(
                f"{name} is not on this machine: put it in --data-dir or in $NTKLC_DATA/"
                f"{name} (ntklc train --data {self.data} downloads it when online)")
        train = load_dataset(name, "train", self.data_dir)
        self._chosen(np.arange(len(train.classes)))
        # Select before converting: all of CIFAR-10 in float64 is 1.2 GB.
        keep = (np.ones(len(train), bool) if self.classes is None
                else np.isin(train.labels, self.classes))
        images = train.images[keep]
        return (as_float(images, np.float64).reshape(images.shape[0], -1),
                train.labels[keep])

    def load(self) -> TrainingSet:
        """Read, select, preprocess and fit (steps 1-3 of the module docstring).

        Raises:
            FileNotFoundError: a missing file or data set.
            InputError: malformed data, an unknown class, a class with fewer than 4 samples.
        """
        X, y = self._rows()
        classes = self._chosen(np.unique(y))
        keep = np.isin(y, classes)
        X, y = X[keep].T, y[keep]
        prep = fit_preprocessing(X)
        X = prep.apply(X)
        return TrainingSet(source=self, X=X, labels=y, classes=classes, preprocessing=prep,
                           fitted=fit_mixture(X, y))

    def as_dict(self) -> dict:
        return {"data": self.label, "features": self.features,
                "classes": None if self.classes is None else list(self.classes)}


@dataclass(frozen=True)
class TrainingSet:
    """The preprocessed training set of a :class:`DataSource` and its GMM estimates.

    Attributes:
        X: (p, N) preprocessed training columns (tau0 = 1).
        labels: (N,) their class labels.
        classes: the classes used, in the order samples are grouped.
        preprocessing: the fitted centring and scale.
        fitted: class means, covariances, proportions and T (``rmt.fit_mixture``).
    """

    source: DataSource
    X: np.ndarray
    labels: np.ndarray
    classes: tuple[int, ...]
    preprocessing: Preprocessing
    fitted: FittedMixture

    @property
    def dim(self) -> int:
        return self.X.shape[0]

    def check_size(self, n: int) -> None:
        """Raise the error :meth:`sample` would raise for n, before any work is done."""
        self._indices(n, 0)

    def sample(self, n: int, seed: int = 0) -> DataSample:
        """A class-balanced sample of n training columns and its matched-GMM twin; with n the
        size of the training set, all of it (grouped by class, its own class counts).

        Raises:
            InputError: n smaller than the number of classes, or a class with fewer samples
                than its share of n.
        """
        rng = np.random.default_rng(seed)
        idx = self._indices(n, rng)
        X, labels = self.X[:, idx], self.labels[idx]
        stats = sample_statistics(X, labels, self.fitted)
        twin = sample_matched_gmm(self.fitted, labels, seed=rng)
        return DataSample(X=X, labels=labels, stats=stats, twin=twin,
                          twin_labels=self.fitted.classes[twin.labels], indices=idx, seed=seed)

    def _indices(self, n: int, rng) -> np.ndarray:
        if n == self.labels.size:
            return np.concatenate([np.flatnonzero(self.labels == c) for c in self.classes])
        return balanced_indices(self.labels, n, self.classes, rng)

    def as_dict(self) -> dict:
        return {**self.source.as_dict(), "classes": list(self.classes), "p": self.dim,
                "n_train": int(self.X.shape[1]),
                "train_counts": self.fitted.counts.tolist(),
                "scale": self.preprocessing.scale}


@dataclass(frozen=True)
class DataSample:
    """n columns of real data with their statistics, and their Gaussian twin.

    Attributes:
        X: (p, n) preprocessed sample, grouped by class.
        labels: (n,) original class labels.
        stats: statistics of X against the training estimates (``rmt.sample_statistics``).
        twin: the matched-GMM draw of the same size and class counts (its ``labels`` index
            the sorted classes).
        twin_labels: (n,) original class labels of the twin's columns.
        indices: (n,) columns of the training set drawn.
        seed: the seed of the draw (sample and twin).
    """

    X: np.ndarray
    labels: np.ndarray
    stats: GMMStatistics
    twin: GMMSample
    twin_labels: np.ndarray
    indices: np.ndarray
    seed: int
