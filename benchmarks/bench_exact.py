"""Exact kernels on real images against a Gaussian mixture of the same size, measured in one run.

Run: ``.venv/bin/python benchmarks/bench_exact.py [--n 2000] [--data-dir DIR]`` (in ``make
bench``). Needs MNIST (``NTKLC_DATA`` or ``--data-dir``).

Rows (ReLU, L = 3, CK + NTK):
  1. n MNIST training images (centred, tau0 = 1)  /  a GMM draw of the same n and p   (goal <= 3)
  2. the same MNIST call with one shared series for every pair (T_0 forced to the largest
     T_ij, as before per-pair tails), to show what the per-pair terms save
  3. the time of the close pairs' 2-D quadrature inside row 1, and their number
  4. the MNIST call with T_0 forced to a few fixed values: the chosen T_0 should sit near the
     fastest (checks the cost model of ``ntk.exact.bulk_terms``)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _machine import best_time, cpu_name

import ntk.exact as exact
from nets.data import load_dataset
from rmt import gaussian_mixture, sample_gmm


def mnist_sample(n: int, data_dir) -> np.ndarray:
    """(784, n) random training images, centred by the training mean, scaled to tau0 = 1."""
    images = load_dataset("mnist", "train", data_dir).images
    X = images.reshape(len(images), -1).astype(float) / 255
    idx = np.random.default_rng(0).choice(len(X), n, replace=False)
    Z = (X[idx] - X.mean(axis=0)).T
    return Z / np.sqrt(np.mean(np.sum(Z * Z, axis=0)))


def timed_with(bulk, fn) -> float:
    """Time of ``fn`` with ``bulk_terms`` returning ``bulk(chosen)``."""
    original = exact.bulk_terms
    exact.bulk_terms = lambda rho, tol: bulk(original(rho, tol))
    try:
        return best_time(fn, repeat=1)
    finally:
        exact.bulk_terms = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    acts = ["relu"] * 3
    Z = mnist_sample(args.n, args.data_dir)
    g = sample_gmm(gaussian_mixture(Z.shape[0]), args.n, seed=0)

    t_gmm = best_time(lambda: exact.exact_kernels(g.X, acts))
    t_mnist = best_time(lambda: exact.exact_kernels(Z, acts))
    result = exact.exact_kernels(Z, acts)
    t_plain = timed_with(lambda chosen: exact.MAX_TERMS, lambda: exact.exact_kernels(Z, acts))

    spent = []
    original = exact._close_pair_update

    def close_timed(*a):
        start = time.perf_counter()
        out = original(*a)
        spent.append(time.perf_counter() - start)
        return out

    exact._close_pair_update = close_timed
    try:
        exact.exact_kernels(Z, acts)
    finally:
        exact._close_pair_update = original
    chosen = []
    timed_with(lambda c: chosen.append(c) or c, lambda: exact.exact_kernels(Z, acts))
    sweep = {t0: timed_with(lambda c, t0=t0: t0, lambda: exact.exact_kernels(Z, acts))
             for t0 in (8, 16, 32, 64, 128)}

    print(f"machine: {cpu_name()}; exact CK + NTK, ReLU L = 3, n = {args.n}, p = {Z.shape[0]}")
    print()
    print("| measurement | time | baseline | ratio | goal |")
    print("|---|---:|---:|---:|---:|")
    print(f"| MNIST (terms {result.terms}, close pairs {result.close_pairs}) | {t_mnist:.3f} s | "
          f"GMM {t_gmm:.3f} s | {t_mnist / t_gmm:.2f} | <= 3 |")
    print(f"| MNIST, one shared series of {exact.MAX_TERMS} terms | {t_plain:.3f} s | "
          f"per-pair terms {t_mnist:.3f} s | {t_plain / t_mnist:.2f} | - |")
    print(f"| MNIST, 2-D quadrature of {sum(result.close_pairs)} close pairs | {sum(spent):.3f} s"
          f" | whole call {t_mnist:.3f} s | {sum(spent) / t_mnist:.2f} | - |")
    print()
    print(f"shared terms T_0 chosen per layer: {chosen}; MNIST time with T_0 forced to "
          + ", ".join(f"{t0}: {t:.3f} s" for t0, t in sweep.items()))


if __name__ == "__main__":
    main()
