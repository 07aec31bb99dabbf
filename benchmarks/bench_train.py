"""Training throughput of the project's engine against PyTorch (CPU) on the same models.

Run: ``.venv/bin/python benchmarks/bench_train.py [--threads 1 2] [--repeat R]
[--mlp-samples N] [--cnn-samples N]`` (a benchmark run on demand, not a test; about a minute
with the defaults on 2 cores). PyTorch is not a dependency of the project: install it with
``.venv/bin/pip install torch==2.13.0`` (the script says so and exits 0 without it).

Models, identical on both sides (float32, softmax cross-entropy, Adam lr 1e-3, batch 128):

* MLP 784-1024-1024-10 with ReLU (``nets.mlp(784)``), on 12800 random MNIST-shaped samples;
* small CNN (``nets.small_cnn()``): conv(1->32, 3x3, pad 1) relu maxpool 2,
  conv(32->64, 3x3, pad 1) relu maxpool 2, dense(64*7*7 -> 128) relu, dense(128 -> 10),
  on 3200 random (1, 28, 28) samples.

What is timed: one epoch (a fresh shuffle, then per batch forward, loss, backward and an Adam
step), after one warm-up batch that compiles the Numba kernels and allocates the optimiser
state. Project: wall time of ``Sequential.fit(..., epochs=1, progress=False)`` with
``nets.Adam``. PyTorch: the equivalent loop with ``torch.nn`` layers and ``torch.optim.Adam``
(default implementation), also summing the loss and the hits of each batch as ``fit`` does.
With ``--repeat R`` the two run alternately R times and the best epoch of each is kept, so a
background load hits both alike.

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

from nets import Adam, mlp, small_cnn

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


class ProjectRunner:
    """A project model and its Adam state; ``epoch(X, y)`` returns the seconds of one epoch."""

    def __init__(self, model):
        self.model, self.opt = model, Adam(lr=LR)

    def epoch(self, X, y, seed: int = 0) -> float:
        start = time.perf_counter()
        self.model.fit(X, y, epochs=1, batch_size=BATCH, optimizer=self.opt, rng=seed,
                       progress=False)
        return time.perf_counter() - start


class TorchRunner:
    """The same for a ``torch.nn`` model: shuffle, then forward, loss, backward, Adam step."""

    def __init__(self, torch, model):
        self.torch, self.model = torch, model
        self.opt = torch.optim.Adam(model.parameters(), lr=LR)
        self.loss_fn = torch.nn.CrossEntropyLoss()

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
        return time.perf_counter() - start


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
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # keep stdout in order with the stderr progress
    if min(args.threads) < 1 or args.repeat < 1 or min(args.mlp_samples, args.cnn_samples) < 1:
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
                torch.manual_seed(0)
                runners = {"project": ProjectRunner(make_project()),
                           "torch": TorchRunner(torch, make_torch(torch.nn))}
                best = best_epochs(runners, X, y, args.repeat)
                rate = {k: X.shape[0] / t for k, t in best.items()}
                rows.append((name, n_threads, X.shape[0], rate["project"], rate["torch"]))
                print(f"  done: {name}, {n_threads} thread(s)", file=sys.stderr, flush=True)

    print("| model | threads | samples | project (samples/s) | torch (samples/s) "
          "| project / torch |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n_threads, n, ours, theirs in rows:
        print(f"| {name} | {n_threads} | {n} | {ours:,.0f} | {theirs:,.0f} "
              f"| {ours / theirs:.2f} |")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nload average {load} (after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
