"""The one parser of the ``ntklc`` command: every subcommand, its options and the function
that runs it. Building it imports only the standard library and the command modules (which
import what they run when they run), so ``ntklc --help`` starts at once."""

from __future__ import annotations

import argparse
import math

from validation.cli import experiment, sweeps, theory
from validation.cli.common import DATA_NAMES

__all__ = ["build_parser"]

# Choices of the parser, spelled out here so that building it imports nothing heavy;
# tests/validation/test_cli.py checks that they equal the library's own tuples.
METHODS = ("auto", "quad", "symbolic", "mpmath")  # ntk.constants.METHODS


FAMILIES = ("auto", "levels", "symmetric", "binary")  # solvers.ternarize.FAMILIES


KERNELS = ("ck", "ntk")  # validation.experiments.spectra.KERNELS


REFERENCES = ("exact", "mc")  # validation.experiments.spectra.REFERENCES


# validation.experiments.spectra.SPECTRUM_PATHS
SPECTRUM_PATHS = ("auto", "dense", "lanczos", "disk")


TILE_DTYPES = ("float64", "float32")  # validation.data.kernel_store.TILE_DTYPES


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"ntklc: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def int_list(text: str) -> list[int]:
    return [positive_int(t) for t in text.split(",")]


def str_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def float_list(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of numbers, got {text!r}"
                                         ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ntklc", description="Verify, simulate and apply NTK-LC compression.")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an internal error (or set NTKLC_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("constants", help="activation constants m0, d1, d2, d3, tau2, esp2")
    p.add_argument("--act", required=True, help="activation, e.g. relu or lrelu:a=0.2")
    p.add_argument("--tau", type=positive_float, default=1.0, help="input scale (default 1)")
    p.add_argument("--method", choices=METHODS, default="auto")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=theory.constants_command)

    def network_args(p):
        p.add_argument("--act", default="relu",
                       help="activation(s): one for all layers or a comma list, one per layer")
        p.add_argument("--layers", type=int, default=None, help="depth L (default: 1 or the "
                       "number of activations)")
        p.add_argument("--kernel", choices=KERNELS, default="ck")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        p.add_argument("--out", help="folder for figures and results JSON")

    def data_args(p):
        p.add_argument("--data", default=None,
                       help="real data instead of the built-in GMM: mnist, fashion-mnist, "
                            "cifar10 or PATH.npz (X (N, p) or (N, H, W[, C]), integer y); "
                            "the result also holds the same check on its matched GMM")
        p.add_argument("--classes", default=None,
                       help="comma list of classes of --data (default: all)")
        p.add_argument("--features", default=None,
                       help="PATH.npz of features (X, y) used instead of the inputs of --data")
        p.add_argument("--data-dir", default=None, help="folder searched before NTKLC_DATA")

    def tile_args(p):
        p.add_argument("--tile", type=positive_int, default=4096,
                       help="disk path (kernels beyond memory, in OUT/kernels): tile side "
                            "(default 4096)")
        p.add_argument("--tile-dtype", choices=TILE_DTYPES, default="float64",
                       help="disk path: storage of the tiles (default float64)")
        p.add_argument("--workers", type=positive_int, default=1,
                       help="disk path: processes computing tiles (default 1: this process, "
                            "every core)")
        p.add_argument("--scheduler", default=None,
                       help="disk path: dask.distributed scheduler address "
                            "(tcp://host:8786) computing the tiles instead")

    p = sub.add_parser("spectrum", help="equivalent vs exact or Monte-Carlo kernel spectrum")
    network_args(p)
    data_args(p)
    p.add_argument("--n", type=positive_int, default=800, help="samples (default 800)")
    p.add_argument("--p", type=positive_int, default=None,
                   help="dimension (default n/2; the data's with --data)")
    p.add_argument("--reference", choices=REFERENCES, default="exact")
    # None: not given, so that the exact reference can say it ignores them.
    p.add_argument("--weights", default=None,
                   help="weight law of the mc reference: gaussian (default), rademacher, "
                        "uniform, student:NU, ternary:EPS")
    p.add_argument("--width", type=positive_int, default=None,
                   help="hidden width of the mc reference (default 1000)")
    p.add_argument("--draws", type=positive_int, default=None,
                   help="networks drawn by the mc reference (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--path", choices=SPECTRUM_PATHS, default="auto",
                   help="dense: every eigenvalue (histogram), O(n^3); lanczos: the top of the "
                        "spectra and the error only, by Lanczos with the equivalent as an "
                        "operator, one n x n kernel in memory; disk: lanczos with the exact "
                        "kernel in tiles in OUT/kernels, none in memory (resumable); auto "
                        "(default): dense up to n = 6400, lanczos while the kernel fits in "
                        "memory, disk beyond")
    p.add_argument("--k", type=positive_int, default=None,
                   help="top eigenpairs compared (default 5; 20 on the disk path)")
    tile_args(p)
    p.set_defaults(func=theory.spectrum_command)

    p = sub.add_parser("convergence", help="error of the equivalent vs n, with a fitted slope")
    network_args(p)
    data_args(p)
    p.add_argument("--ns", type=int_list, default=[200, 400, 800, 1600],
                   help="comma list of n (default 200,400,800,1600)")
    p.add_argument("--seeds", type=positive_int, default=1, help="data draws per n")
    tile_args(p)
    p.set_defaults(func=theory.convergence_command)

    p = sub.add_parser("compress", help="solve the NTK-LC quantized activations, count memory")
    p.add_argument("--act", default="relu", help="dense activation(s)")
    p.add_argument("--layers", type=int, default=None, help="depth L")
    p.add_argument("--eps", type=float, default=0.9, help="ternary sparsity in [0, 1)")
    p.add_argument("--max-levels", type=int, default=32, help="cap on the output levels")
    p.add_argument("--hidden-family", choices=FAMILIES, default="auto",
                   help="hidden-layer family (binary: the spec's two-level family, matched "
                        "up to the gauge only)")
    p.add_argument("--tau0", type=positive_float, default=1.0, help="data scale")
    p.add_argument("--p", type=positive_int, default=784, help="input dimension (memory)")
    p.add_argument("--width", type=positive_int, default=2000, help="hidden width (memory)")
    p.add_argument("--classes", type=positive_int, default=10, help="readout outputs")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=theory.compress_command)

    p = sub.add_parser("compare", help="dense vs compressed CK spectra against the equivalent")
    p.add_argument("--act", default="relu", help="dense activation(s)")
    p.add_argument("--layers", type=int, default=None, help="depth L")
    data_args(p)
    p.add_argument("--n", type=positive_int, default=800,
                   help="samples (p = n/2; the data's with --data)")
    p.add_argument("--eps", type=float_list, default=[0.0, 0.5, 0.9, 0.99],
                   help="comma list of ternary sparsities")
    p.add_argument("--width", type=positive_int, default=1000)
    p.add_argument("--draws", type=positive_int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--out", help="folder for the figure and results JSON")
    p.set_defaults(func=theory.compare_command)

    p = sub.add_parser("kurtosis", help="measure the weight-kurtosis term of the first-layer CK")
    p.add_argument("--weights", default="rademacher", help="non-Gaussian weight law")
    p.add_argument("--act", default="relu", help="activation (needs d2 != 0)")
    data_args(p)
    p.add_argument("--p", type=positive_int, default=None,
                   help="dimension (default 200; the data's with --data)")
    p.add_argument("--n", type=positive_int, default=800)
    p.add_argument("--width", type=positive_int, default=2500)
    p.add_argument("--draws", type=positive_int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=theory.kurtosis_command)

    p = sub.add_parser("cnn-kernel", help="exact CNN-GP / CNTK kernels of images (optionally "
                       "against the expanded recursion or NTK-LC's activations)")
    p.add_argument("--images", default=None,
                   help="PATH.npz with X of shape (N, H, W) or (N, H, W, C)")
    p.add_argument("--data", choices=[*sorted(DATA_NAMES), "gmm"], default=None,
                   help="a data set instead of --images (class-balanced sample, centred, "
                        "scaled to tau0 = 1; gmm: Gaussian-mixture feature maps)")
    p.add_argument("--n", type=positive_int, default=64, help="images of --data (default 64)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="image side of --data (default 14 MNIST-type, 16 CIFAR-10, 8 gmm)")
    p.add_argument("--channels", type=positive_int, default=16, help="channels of --data gmm")
    p.add_argument("--data-dir", default=None, help="folder searched before NTKLC_DATA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--act", default="relu",
                   help="activation(s): one for all layers or a comma list, one per layer")
    p.add_argument("--layers", type=int, default=None, help="convolutions L (default: 1 or "
                   "the number of activations)")
    p.add_argument("--filter-size", type=positive_int, default=3)
    p.add_argument("--padding", choices=("same", "circular", "valid"), default="same")
    p.add_argument("--pool", type=int_list, default=[],
                   help="comma list of the layers followed by 2x2 average pooling")
    p.add_argument("--readout", choices=("flatten", "gap"), default="flatten")
    p.add_argument("--kernel", choices=("ck", "both"), default="both",
                   help="ck: the CK only (needed for step activations, whose NTK is undefined)")
    p.add_argument("--centring", action="store_true",
                   help="centre every activation by the scalar tau chain (the fully connected "
                        "kernels' convention; default: uncentred, as neural-tangents)")
    p.add_argument("--compare", choices=("none", "equivalent", "compressed"), default="none",
                   help="also the expanded recursion or NTK-LC's quantized activations, and "
                        "their relative spectral error (implies --centring)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--out", help="folder for kernels.npz and the results JSON")
    p.set_defaults(func=theory.cnn_kernel_command)

    p = sub.add_parser("train", help="train the MLP or CNN of nets/ on an image data set")
    p.add_argument("--data", choices=sorted(DATA_NAMES), default="mnist")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--hidden", type=int_list, default=[1024, 1024], help="MLP widths")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--lr-decay", type=positive_float, default=0.8,
                   help="learning-rate factor applied after every epoch (default 0.8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--data-dir", default=None, help="folder searched before NTKLC_DATA")
    p.add_argument("--out", default=None, help="folder for model.npz")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=experiment.train_command)

    p = sub.add_parser("experiment", help="run a paper experiment end to end "
                       "(ntklc-real, compress-compare, activations, universality, cnn)")
    p.add_argument("name", help="experiment name: ntklc-real, compress-compare, activations, "
                   "universality or cnn")
    p.add_argument("--data", choices=[*sorted(DATA_NAMES), "gmm"], default=None,
                   help="data set (default mnist; universality: mnist and fashion-mnist; cnn: "
                        "every data set found and gmm, the Gaussian-mixture feature maps)")
    p.add_argument("--classes", default=None,
                   help="universality: comma list of classes (default all)")
    p.add_argument("--data-dir", default=None, help="folder searched before NTKLC_DATA")
    p.add_argument("--quick", action="store_true",
                   help="widths 500-500-250, 10000 training images, 1 CNN epoch (activations: "
                        "200-200-100, 2000 images, relu and tanh; universality: MNIST 0/1, "
                        "relu and tanh, L = 1, 2, n = 200, 400; cnn: 7x7 images, tiny n)")
    p.add_argument("--cnn-epochs", type=positive_int, default=10,
                   help="CIFAR-10: epochs of the CNN that provides the features")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                   help="compress-compare: the trained model to compress")
    p.add_argument("--model-path", default=None,
                   help="compress-compare: a model.npz from 'ntklc train --out' (else trained)")
    p.add_argument("--acts", type=str_list, default=None,
                   help="activations: comma list (default relu,tanh,erf,gelu,swish,abs)")
    p.add_argument("--eps", type=float_list, default=None,
                   help="activations: NTK-LC sparsities (default 0,0.9,0.99)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="activations, universality, cnn: local processes (activations: "
                        "default 1 with --quick, else the cores up to 4; others: the cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--out", help="folder for the figure and results JSON")
    p.set_defaults(func=experiment.experiment_command)

    p = sub.add_parser("sweep", help="run a grid of tasks of one experiment (TOML spec), "
                       "cached and resumable, on local processes or a dask cluster")
    p.add_argument("spec", nargs="?", help="TOML spec file (see sweeps/ for examples)")
    p.add_argument("--list", action="store_true",
                   help="list the experiments and their parameters, then exit")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None,
                   help="dask.distributed scheduler address, e.g. tcp://HOST:8786")
    p.add_argument("--out", default=None, help="output folder (default runs/SPEC-NAME)")
    p.add_argument("--cache", default=None, help="cache folder (default OUT/cache)")
    p.add_argument("--retry-failed", action="store_true", help="rerun tasks cached as failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="one JSON summary on stdout")
    p.set_defaults(func=sweeps.sweep_command)

    p = sub.add_parser("plot", help="draw a sweep's results table (mean ± s.e. over seeds)")
    p.add_argument("results", help="a sweep's output folder, results.json or results.csv")
    p.add_argument("--x", default=None, help="column on the x axis")
    p.add_argument("--y", default=None, help="metric on the y axis")
    p.add_argument("--hue", default=None, help="parameter that colours the lines; other "
                   "varying parameters make panels")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="keep only rows with this value (repeatable)")
    p.add_argument("--out", default=None, help="folder for PNG + PDF (default RESULTS/figures)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=sweeps.plot_command)

    p = sub.add_parser("reproduce", help="run the built-in sweeps that reproduce the papers' "
                       "claims; write report.md, report.html, results/ and figures/")
    p.add_argument("--quick", action="store_true", help="smaller sizes (under 10 minutes)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.add_argument("--out", default="reproduction", help="output folder (default reproduction)")
    p.add_argument("--json", action="store_true", help="one JSON summary on stdout")
    p.set_defaults(func=sweeps.reproduce_command)

    p = sub.add_parser("demo", help="the main job on built-in GMM data: figures and a report")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    p.set_defaults(func=experiment.demo_command)
    return parser
