"""Training throughput of the project's engine against PyTorch (CPU) on the same models.

Run: ``.venv/bin/python benchmarks/bench_train.py [--threads 1 2] [--repeat R]
[--mlp-samples N] [--cnn-samples N] [--mnist-samples N]`` (a benchmark run on demand, not a
test; a few minutes with the defaults on 2 cores). PyTorch is not a dependency of the
project: install it with ``.venv/bin/pip install torch==2.13.0`` (the script says so and
exits 0 without it).

Models, identical on both sides and started from the same initial weights (the project's,
copied into the torch twin); float32, softmax cross-entropy, Adam lr 1e-3, batch 128:

* MLP 784-1024-1024-10 with ReLU (``nets.mlp(784)``), on 12800 random MNIST-shaped samples;
* small CNN (``nets.small_cnn()``): conv(1->32, 3x3, pad 1) relu maxpool 2,
  conv(32->64, 3x3, pad 1) relu maxpool 2, dense(64*7*7 -> 128) relu, dense(128 -> 10),
  on 3200 random (1, 28, 28) samples;
* the same small CNN on the first 6400 MNIST training images (pixels / 255), when MNIST is
  found offline (``$NTKLC_DATA/mnist`` or the user cache, as ``nets.find_dataset`` looks; it
  is never downloaded here), then scored on the first 2000 test images.

What is timed: one epoch (a fresh shuffle, then per batch forward, loss, backward and an Adam
step), after one warm-up batch that compiles the Numba kernels and allocates the optimiser
state. Project: wall time of ``Sequential.fit(..., epochs=1, progress=False)`` with
``nets.Adam``. PyTorch: the equivalent loop with ``torch.nn`` layers and ``torch.optim.Adam``
(default implementation), also summing the loss and the hits of each batch as ``fit`` does.
With ``--repeat R`` the two run alternately R times and the best epoch of each is kept, so a
background load hits both alike. Both sides see the same samples in the same order (one
permutation per epoch from the same seed).

Same accuracy: each row also gives, for both sides, the mean training loss and accuracy of
the last timed epoch, and on MNIST the test accuracy after the R epochs and the warm-up
batch. Same weights, samples and order: the two differ only by float32 rounding, which
the training amplifies over the steps (random labels are memorised, so their loss there
may lie far from log 10 = 2.30).

Threads: each row uses the same count N on both sides: ``torch.set_num_threads(N)`` for
PyTorch; ``threadpoolctl.threadpool_limits(N)`` (BLAS) and ``numba.set_num_threads(N)`` for the
project (which splits convolution and pooling batches over its N threads). The script sets
``OPENBLAS_THREAD_TIMEOUT=4`` before NumPy loads, as the ``ntklc`` command does (a value in the
environment wins). The table gives samples/s of each and the ratio project / torch (> 1: the
project is faster).
"""

from __future__ import annotations

import os

# Before NumPy loads OpenBLAS: idle OpenBLAS workers yield at once instead of spinning on a
# core the engine's own threads need (what the ntklc command does too; see nets.layers).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import math
import platform
import sys
import time

import numba
import numpy as np
import threadpoolctl
from _machine import cpu_name

from nets import Adam, as_float, find_dataset, load_dataset, mlp, small_cnn

#: Batch size, learning rate and number of classes of both models.
BATCH, LR, CLASSES = 128, 1e-3, 10
INSTALL_HINT = ("PyTorch is not importable: install it into the venv with "
                "`.venv/bin/pip install torch==2.13.0` (a CPU wheel), then run this again.")


def torch_mlp(nn):
    """The PyTorch twin of ``nets.mlp(784)``."""
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, CLASSES))


def torch_cnn(nn):
    """The PyTorch twin of ``nets.small_cnn()``."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, CLASSES),
    )


def copy_weights(torch, model, net) -> None:
    """Give the torch twin ``net`` the initial weights of the project ``model``, so that both
    sides start from the same point (a torch ``Linear`` stores the transpose of ``Dense.W``)."""
    theirs = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    ours = [layer for layer in model.layers if layer.params()]
    with torch.no_grad():
        for layer, m in zip(ours, theirs, strict=True):
            W = layer.W.T if isinstance(m, torch.nn.Linear) else layer.W
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            m.bias.copy_(torch.from_numpy(layer.b))


class ProjectRunner:
    """A project model and its Adam state; ``epoch(X, y)`` returns the seconds of one epoch
    and keeps that epoch's mean loss and accuracy in ``last``."""

    def __init__(self, model):
        self.model, self.opt = model, Adam(lr=LR)
        self.last = (math.nan, math.nan)

    def epoch(self, X, y, seed: int = 0) -> float:
        start = time.perf_counter()
        history = self.model.fit(X, y, epochs=1, batch_size=BATCH, optimizer=self.opt,
                                 rng=seed, progress=False)
        seconds = time.perf_counter() - start
        self.last = (history["loss"][0], history["accuracy"][0])
        return seconds

    def test_accuracy(self, X, y) -> float:
        return self.model.evaluate(X, y)[1]


class TorchRunner:
    """The same for a ``torch.nn`` model: shuffle, then forward, loss, backward, Adam step."""

    def __init__(self, torch, model):
        self.torch, self.model = torch, model
        self.opt = torch.optim.Adam(model.parameters(), lr=LR)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.last = (math.nan, math.nan)

    def epoch(self, X, y, seed: int = 0) -> float:
        torch = self.torch
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        start = time.perf_counter()
        order = torch.from_numpy(np.random.default_rng(seed).permutation(X.shape[0]))
        self.model.train()
        total, hits = 0.0, 0
        for i in range(0, X.shape[0], BATCH):
            idx = order[i:i + BATCH]
            xb, yb = Xt[idx], yt[idx]
            self.opt.zero_grad(set_to_none=True)
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
            loss.backward()
            self.opt.step()
            total += loss.item() * idx.numel()
            hits += int((out.detach().argmax(1) == yb).sum())
        seconds = time.perf_counter() - start
        self.last = (total / X.shape[0], hits / X.shape[0])
        return seconds

    def test_accuracy(self, X, y) -> float:
        self.model.eval()
        with self.torch.no_grad():
            out = self.model(self.torch.from_numpy(X))
        return float((out.argmax(1).numpy() == y).mean())


def best_epochs(runners: dict, X, y, repeat: int) -> dict[str, float]:
    """Warm up every runner on one batch, then the best of ``repeat`` alternating epochs."""
    for runner in runners.values():
        runner.epoch(X[:BATCH], y[:BATCH])
    best = dict.fromkeys(runners, math.inf)
    for r in range(repeat):
        for name, runner in runners.items():
            best[name] = min(best[name], runner.epoch(X, y, seed=r + 1))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts, one table row per model and count (default 1 2)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="timed epochs per side, alternating; best kept (default 1)")
    parser.add_argument("--mlp-samples", type=int, default=12800)
    parser.add_argument("--cnn-samples", type=int, default=3200)
    parser.add_argument("--mnist-samples", type=int, default=6400,
                        help="MNIST training images of the MNIST row (0: no MNIST row)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # keep stdout in order with the stderr progress
    if min(args.threads) < 1 or args.repeat < 1 or min(args.mlp_samples, args.cnn_samples) < 1 \
            or args.mnist_samples < 0:
        parser.error("--threads, --repeat and the sample counts must be positive")
    try:
        import torch
    except ImportError:
        print(INSTALL_HINT)
        return 0

    rng = np.random.default_rng(0)
    data = {
        "MLP 784-1024-1024-10": (
            rng.standard_normal((args.mlp_samples, 784), dtype=np.float32),
            rng.integers(0, CLASSES, args.mlp_samples)),
        "small CNN": (
            rng.standard_normal((args.cnn_samples, 1, 28, 28), dtype=np.float32),
            rng.integers(0, CLASSES, args.cnn_samples)),
    }
    builders = {"MLP 784-1024-1024-10": (lambda: mlp(784, rng=0), torch_mlp),
                "small CNN": (lambda: small_cnn(rng=0), torch_cnn)}
    test_sets = {}
    if args.mnist_samples and find_dataset("mnist") is not None:
        train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
        n = min(args.mnist_samples, train.labels.size)
        # Copies: the data set's arrays are read-only, which torch.from_numpy warns about.
        data["small CNN, MNIST"] = (as_float(train.images[:n])[:, None], train.labels[:n].copy())
        test_sets["small CNN, MNIST"] = (as_float(test.images[:2000])[:, None],
                                         test.labels[:2000].copy())
        builders["small CNN, MNIST"] = builders["small CNN"]
    elif args.mnist_samples:
        print("(no MNIST row: MNIST not found offline; set NTKLC_DATA to a folder holding "
              "mnist/)")

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"machine: {platform.platform()}; {cpu_name()}, {os.cpu_count()} logical CPUs; "
          f"load average {load} (before)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba "
          f"{numba.__version__}, threadpoolctl {threadpoolctl.__version__}, torch "
          f"{torch.__version__}")
    libs = sorted({f"{i['prefix']} ({i['internal_api']} {i.get('version') or '?'})"
                   for i in threadpoolctl.threadpool_info()})
    print(f"thread pools: {'; '.join(libs)}")
    print(f"float32, batch {BATCH}, Adam lr {LR}; one epoch after one warm-up batch, best of "
          f"{args.repeat}\n")

    rows = []
    for n_threads in args.threads:
        torch.set_num_threads(n_threads)
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
        with threadpoolctl.threadpool_limits(n_threads):
            for name, (X, y) in data.items():
                make_project, make_torch = builders[name]
                model, net = make_project(), make_torch(torch.nn)
                copy_weights(torch, model, net)
                runners = {"project": ProjectRunner(model), "torch": TorchRunner(torch, net)}
                best = best_epochs(runners, X, y, args.repeat)
                rate = {k: X.shape[0] / t for k, t in best.items()}
                fit = "; ".join(f"{r.last[0]:.3f}, {r.last[1]:.3f}" for r in runners.values())
                test = "; ".join(f"{r.test_accuracy(*test_sets[name]):.4f}"
                                 for r in runners.values()) if name in test_sets else "-"
                rows.append((name, n_threads, X.shape[0], rate["project"], rate["torch"], fit,
                             test))
                print(f"  done: {name}, {n_threads} thread(s)", file=sys.stderr, flush=True)

    print("| model | threads | samples | project (samples/s) | torch (samples/s) "
          "| project / torch | last epoch loss, acc (project; torch) "
          "| test acc (project; torch) |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for name, n_threads, n, ours, theirs, fit, test in rows:
        print(f"| {name} | {n_threads} | {n} | {ours:,.0f} | {theirs:,.0f} "
              f"| {ours / theirs:.2f} | {fit} | {test} |")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nload average {load} (after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
