"""The experiments a sweep can run: each one a pure task ``(params, seed) -> metrics``.

A task takes a dict of plain parameters (declared with their types and defaults in
``EXPERIMENTS``) and an integer seed, and returns a flat dict of metrics: numbers, strings,
booleans, ``None``, or short lists and dicts (stored as JSON in the CSV table). The same function
serves one command line run and one task of a sweep, so a number has one code path.

``version`` is part of every cache key: bump it when a change to the code behind an experiment
changes its numbers, and the cached results of the old code are no longer used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ntklc.errors import InputError

__all__ = ["EXPERIMENTS", "Experiment", "Param", "experiment"]


@dataclass(frozen=True)
class Param:
    """One parameter of an experiment.

    Attributes:
        kind: ``int``, ``float``, ``str`` or ``bool``.
        default: value when the spec does not set it.
        help: one line for the documentation and error messages.
    """

    kind: type
    default: object
    help: str = ""

    def check(self, name: str, value):
        """The value converted to ``kind`` (an int is accepted for a float).

        Raises:
            TypeError: the value has another type.
        """
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        wrong_bool = isinstance(value, bool) and self.kind is not bool
        if wrong_bool or not isinstance(value, self.kind):
            raise TypeError(f"parameter {name!r} must be {self.kind.__name__}, got "
                            f"{type(value).__name__} {value!r}")
        return value


@dataclass(frozen=True)
class Experiment:
    """A registered task function with its parameters, code version and one-line summary."""

    name: str
    run: Callable[[dict, int], dict]
    params: dict[str, Param] = field(default_factory=dict)
    version: str = "1"
    summary: str = ""


def _acts(params: dict):
    from validation.experiments.spectra import network_activations

    return network_activations(params["act"], params["layers"])


def _source(params: dict):
    """The labelled data of ``data``/``classes``, or ``None`` for ``data = "gmm"`` (the
    built-in GMM, whose p is set by the parameters)."""
    from validation.data.datasource import DataSource, parse_classes

    classes = None if params["classes"] == "all" else parse_classes(params["classes"])
    if params["data"] == "gmm":
        if classes is not None:
            raise InputError("classes needs data other than gmm")
        return None
    return DataSource(data=params["data"], classes=classes)


def _with_gmm(metrics: dict, twin_metrics: dict | None) -> dict:
    """On real data: the twin's metrics too, prefixed ``gmm_``."""
    if twin_metrics is None:
        return metrics
    return {**metrics, **{f"gmm_{k}": v for k, v in twin_metrics.items()}}


def _spectrum(params: dict, seed: int) -> dict:
    from validation.experiments.spectra import spectrum_experiment

    data = _source(params)
    r = spectrum_experiment(_acts(params), params["n"],
                            None if data is not None else params["p"] or None,
                            kernel=params["kernel"], reference=params["reference"],
                            weights=params["weights"], width=params["width"],
                            draws=params["draws"], seed=seed, k=params["k"], data=data)

    def metrics(r):
        c = r.comparison
        return {"rel_spectral_error": c.rel_spectral_error,
                "top_eig_rel_err": float(c.eig_rel_err[0]),
                "top_alignment": float(c.alignment[0]), "mc_noise": r.noise, "tau0": r.tau0}

    return _with_gmm(metrics(r), None if r.twin is None else metrics(r.twin))


def _convergence(params: dict, seed: int) -> dict:
    from validation.experiments.spectra import convergence_error, data_convergence_errors

    data = _source(params)
    if data is None:
        error = convergence_error(_acts(params), params["n"], kernel=params["kernel"],
                                  seed=seed)
        return {"rel_spectral_error": error}
    real, gmm = data_convergence_errors(_acts(params), params["n"], data.load(),
                                        kernel=params["kernel"], seed=seed)
    return {"rel_spectral_error": real, "gmm_rel_spectral_error": gmm}


def _compare(params: dict, seed: int) -> dict:
    from validation.experiments.compression import compression_spectra

    r = compression_spectra(_acts(params), n=params["n"], eps_values=[params["eps"]],
                            width=params["width"], draws=params["draws"], seed=seed,
                            data=_source(params))

    def metrics(r):
        row = r.rows[0]
        return {"raw_error": row["raw_error"], "centred_error": row["centred_error"],
                "noise": row["noise"], "top_alignment": row["alignment"][0],
                "compressed_vs_equivalent": row["compressed_vs_equivalent_centred"],
                "dense_vs_equivalent": r.dense_vs_equivalent, "dense_noise": r.dense_noise}

    return {**_with_gmm(metrics(r), None if r.twin is None else metrics(r.twin)),
            "compressed": "/".join(r.compressed), "delta": r.delta}


def _kurtosis(params: dict, seed: int) -> dict:
    from validation.experiments.spectra import kurtosis_experiment

    data = _source(params)
    r = kurtosis_experiment(params["weights"], params["act"],
                            p=None if data is not None else params["p"], n=params["n"],
                            width=params["width"], draws=params["draws"], seed=seed, data=data)

    def metrics(r):
        return {"ratio": r.ratio, "standard_error": r.standard_error,
                "excess_kurtosis": r.excess_kurtosis, "predicted_rel_norm": r.predicted_rel_norm}

    twin = None if r.twin is None else metrics(r.twin)
    if twin is not None:
        del twin["excess_kurtosis"]  # a property of the weight law, the same for both
    return _with_gmm(metrics(r), twin)


def _compress(params: dict, seed: int) -> dict:
    from validation.experiments.compression import compression_report

    result, payload = compression_report(
        _acts(params), params["tau0"], eps=params["eps"], max_levels=params["max_levels"],
        hidden_family=params["hidden_family"], p=params["p"], width=params["width"],
        classes=params["classes"], seed=seed)
    mem = payload["memory"]
    return {"levels": [layer.step.n_levels for layer in result.layers],
            "max_residual": max(layer.residual for layer in result.layers),
            "delta": result.delta, "hidden_factor_coded": mem["hidden_factor_coded"],
            "total_factor_coded": mem["total_factor_coded"]}


def _constants(params: dict, seed: int) -> dict:
    """Constants by every applicable method and their largest disagreement, relative to the
    largest constant of the activation."""
    from ntk import activation, activation_constants

    act = activation(params["act"])
    keys = ("m0", "d1", "d2", "d3", "tau2_next", "esp2")
    methods = ["quad", "mpmath"] + (["symbolic"] if act.has_symbolic else [])
    values = {m: activation_constants(act, params["tau"], m) for m in methods}
    finite = [k for k in keys  # esp2 of a step is infinite by every method
              if not all(math.isinf(getattr(values[m], k)) for m in methods)]
    # Relative to the activation's largest constant: a constant that is exactly 0 (d2 of an
    # odd activation) comes out as 0 or 1e-18 depending on the method, which is agreement.
    scale = max(abs(getattr(values[m], k)) for m in methods for k in finite)
    worst = max(max(getattr(values[m], k) for m in methods)
                - min(getattr(values[m], k) for m in methods) for k in finite) / scale
    quad = values["quad"]
    return {"methods": "/".join(methods), **{k: getattr(quad, k) for k in keys[:5]},
            "esp2": None if math.isinf(quad.esp2) else quad.esp2,
            "max_rel_disagreement": worst}


def _ntklc_real(params: dict, seed: int) -> dict:
    from validation.experiments.realdata import run_ntklc_real

    data = "cifar-10" if params["data"] == "cifar10" else params["data"]
    r = run_ntklc_real(data, quick=params["quick"], seed=seed)
    rows = [dict(row) for row in r.rows]
    dense = next(row for row in rows if row["method"] == "dense")
    return {"rows": rows, "dense_accuracy": dense["accuracy"], "n_train": r.n_train,
            "widths": list(r.widths), "rule": r.rule}


def _activations(params: dict, seed: int) -> dict:
    from validation.experiments.activations import activation_accuracy

    return activation_accuracy(params["data"], params["act"], params["eps"],
                               quick=params["quick"], seed=seed,
                               data_dir=params["data_dir"] or None)


def _universality(params: dict, seed: int) -> dict:
    from validation.experiments.universality import universality_task

    return universality_task({**params, "data_dir": params["data_dir"] or ""}, seed)


def _compress_compare(params: dict, seed: int) -> dict:
    from validation.experiments.compress_compare import compress_compare

    r = compress_compare(params["data"], params["model"], quick=params["quick"], seed=seed,
                         progress=False)
    return {"rows": list(r.rows), "dense_accuracy": r.dense_accuracy,
            "dense_bytes": r.dense_bytes,
            "neighbourhood_end": r.neighbourhood["neighbourhood_end"], "rule": r.rule}


def _cnn(name: str):
    """The task ``name`` of ``validation.experiments.cnn`` (imported when it runs)."""
    def run(params: dict, seed: int) -> dict:
        from validation.experiments import cnn

        return getattr(cnn, name)({**params, "data_dir": params["data_dir"] or ""}, seed)

    return run


_CNN = {"data": Param(str, "gmm", "gmm (feature maps), mnist, fashion-mnist or cifar10"),
        "act": Param(str, "relu", "activation of every convolution"),
        "layers": Param(int, 1, "convolutions L"),
        "readout": Param(str, "flatten", "flatten or gap"),
        "padding": Param(str, "same", "same (zeros) or circular"),
        "n": Param(int, 64, "images"),
        "channels": Param(int, 16, "channels C of the GMM feature maps"),
        "size": Param(int, 0, "image side (0: 14 for MNIST-type data, 16 CIFAR-10, 8 gmm)"),
        "data_dir": Param(str, "", "folder searched before NTKLC_DATA (empty: none)")}

_NETWORK = {"act": Param(str, "relu", "activation(s), one or a comma list per layer"),
            "layers": Param(int, 1, "depth L")}
# Real data: a class-balanced sample of n columns, statistics estimated on the training set;
# the metrics of the matched-GMM twin are added with the prefix gmm_. (No empty-string
# defaults: the CSV table reads an empty cell back as None.)
_DATA = {"data": Param(str, "gmm", "gmm (built in), mnist, fashion-mnist, cifar10 or PATH.npz"),
         "classes": Param(str, "all", "comma list of classes of data, or all")}

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("spectrum", _spectrum, version="2", params={
        **_NETWORK, "kernel": Param(str, "ck", "ck or ntk"), "n": Param(int, 800, "samples"),
        "p": Param(int, 0, "dimension (0: n/2; GMM only)"),
        "reference": Param(str, "exact", "exact or mc"),
        "weights": Param(str, "gaussian", "weight law of the mc reference"),
        "width": Param(int, 1000, "hidden width of the mc reference"),
        "draws": Param(int, 10, "networks averaged by the mc reference"),
        "k": Param(int, 5, "top eigenpairs compared"), **_DATA},
        summary="equivalent vs exact or Monte-Carlo kernel on a GMM draw or real data"),
    Experiment("convergence", _convergence, version="2", params={
        **_NETWORK, "kernel": Param(str, "ck", "ck or ntk"), "n": Param(int, 400, "samples"),
        **_DATA},
        summary="relative spectral error of the equivalent vs the exact kernel at one n"),
    Experiment("compare", _compare, version="2", params={
        **_NETWORK, "n": Param(int, 800, "samples (p = n/2 on the GMM)"),
        "eps": Param(float, 0.9, "ternary sparsity"), "width": Param(int, 1000, "width"),
        "draws": Param(int, 20, "networks averaged"), **_DATA},
        summary="dense vs NTK-LC compressed empirical CK"),
    Experiment("kurtosis", _kurtosis, version="2", params={
        "weights": Param(str, "rademacher", "non-Gaussian weight law"),
        "act": Param(str, "relu", "activation"), "p": Param(int, 200, "dimension (GMM only)"),
        "n": Param(int, 800, "samples"), "width": Param(int, 2500, "width"),
        "draws": Param(int, 30, "networks"), **_DATA},
        summary="measured vs predicted weight-kurtosis term of the first-layer CK"),
    Experiment("compress", _compress, {
        **_NETWORK, "eps": Param(float, 0.9, "ternary sparsity"),
        "tau0": Param(float, 1.0, "data scale"),
        "max_levels": Param(int, 32, "cap on the output levels"),
        "hidden_family": Param(str, "auto", "auto, levels, symmetric or binary"),
        "p": Param(int, 784, "input dimension (memory)"),
        "width": Param(int, 2000, "hidden width (memory)"),
        "classes": Param(int, 10, "readout outputs (memory)")},
        summary="NTK-LC solver: levels, residuals, delta and memory"),
    Experiment("constants", _constants, version="2", params={
        "act": Param(str, "relu", "activation"), "tau": Param(float, 1.0, "input scale")},
        summary="activation constants by quadrature, mpmath and (where closed) sympy"),
    Experiment("ntklc-real", _ntklc_real, {
        "data": Param(str, "mnist", "mnist, fashion-mnist or cifar-10"),
        "quick": Param(bool, False, "widths 500-500-250, 10000 training images")},
        summary="NTK-LC vs pruning vs quantization of random features on real images"),
    Experiment("activations", _activations, {
        "data": Param(str, "mnist", "mnist or fashion-mnist"),
        "act": Param(str, "relu", "activation of every hidden layer (L = 3)"),
        "eps": Param(float, 0.9, "sparsity of NTK-LC's ternary weights"),
        "quick": Param(bool, False, "widths 200-200-100, 2000 training images"),
        "data_dir": Param(str, "", "folder searched before NTKLC_DATA (empty: none)")},
        summary="dense vs NTK-LC vs matched-memory pruning accuracy of one activation "
                "(Open Question 3)"),
    Experiment("universality", _universality, {
        "data": Param(str, "mnist", "mnist, fashion-mnist, cifar10 or PATH.npz"),
        "classes": Param(str, "all", "comma list of classes, or all"),
        "act": Param(str, "relu", "activation of every layer"),
        "layers": Param(int, 1, "depth L"), "n": Param(int, 1000, "samples"),
        "data_dir": Param(str, "", "folder searched before NTKLC_DATA (empty: none)")},
        summary="CK/NTK equivalents vs exact kernels on real images and their GMM twin "
                "(Open Question 1)"),
    Experiment("compress-compare", _compress_compare, {
        "data": Param(str, "mnist", "mnist, fashion-mnist or cifar-10"),
        "model": Param(str, "mlp", "mlp or cnn"),
        "quick": Param(bool, False, "smoke-test sizes")},
        summary="LLC, CET, L2, pruning and quantization of one trained model"),
    Experiment("cnn-compressed", _cnn("compressed_task"), params=_CNN,
               summary="exact CNN CK: dense vs NTK-LC activations (Open Question 2, a)"),
    Experiment("cnn-equivalent", _cnn("equivalent_task"), params=_CNN,
               summary="exact CNN CK and NTK vs the expanded recursion (Open Question 2, b)"),
    Experiment("cnn-hermite", _cnn("hermite_task"), version="2", params={
        **_CNN, "order": Param(int, 2, "Hermite degrees K matched by the steps")},
        summary="CNN CK error of steps matching K Hermite coefficients (Open Question 2, c)"),
    Experiment("cnn-finite", _cnn("finite_task"), params={
        **_CNN, "weights": Param(str, "gaussian", "filter law"),
        "width": Param(int, 64, "channels of every hidden layer"),
        "draws": Param(int, 8, "networks averaged")},
        summary="finite CNN kernels vs exact, and the kurtosis term (Open Question 2, d)"),
    Experiment("cnn-accuracy", _cnn("accuracy_task"), params={
        "data": Param(str, "mnist", "mnist or fashion-mnist"),
        "quick": Param(bool, False, "channels 8-16, 1000 training images"),
        "data_dir": Param(str, "", "folder searched before NTKLC_DATA (empty: none)")},
        summary="random-feature CNN accuracy vs memory (Open Question 2, e)"),
]}


def experiment(name: str) -> Experiment:
    """The registered experiment ``name``.

    Raises:
        InputError: unknown name (the message lists the known ones).
    """
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise InputError(f"unknown experiment {name!r}; available: "
                         f"{', '.join(EXPERIMENTS)}") from None
