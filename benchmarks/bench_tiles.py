"""Exact kernels in tiles on disk against the whole-matrix computation, measured in one run.

Run: ``.venv/bin/python benchmarks/bench_tiles.py [--n 8000] [--tile 2048] [--data-dir DIR]``
(in ``make bench``). Uses MNIST when it is found (``NTKLC_DATA`` or ``--data-dir``), else a
GMM draw with p = 784.

Rows (ReLU, L = 2, CK):
  1. ``tiled_exact_kernels`` in this process (float64 tiles written to a temporary folder,
     each flushed to disk) / ``exact_kernels`` in memory (the tiles compute the diagonal
     tiles whole, about n / tile more work, and write n^2 / 2 floats);
  2. the same tiles computed without a store (``kernel_plan`` and ``kernel_tile`` of every
     lower tile) / ``exact_kernels``: the computation alone, row 1 less the disk;
  3. row 1 on a pool of 2 single-threaded processes / ``exact_kernels``;
  4. one product of the stored kernel with a vector (streamed from the page cache) / reading
     the tile files once with ``numpy.fromfile`` (the floor of a product out of core);
  5. the same product with float32 tiles / the same floor.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _machine import best_time, cpu_name

from ntk.exact import exact_kernels
from ntk.tiles import kernel_plan, kernel_tile
from rmt import gaussian_mixture, sample_gmm
from validation.data.kernel_store import tiled_exact_kernels


def data(n: int, data_dir) -> tuple[np.ndarray, str]:
    try:
        from validation.data.datasource import DataSource

        training = DataSource("mnist", data_dir=data_dir).load()
        return training.sample(n, 0).X, "MNIST"
    except FileNotFoundError:
        return sample_gmm(gaussian_mixture(784), n, seed=0).X, "GMM (p = 784)"


def read_floor(folder: Path) -> float:
    """Seconds to read every tile file of ``folder`` once."""
    files = sorted(folder.glob("ck_*.npy"))
    return best_time(lambda: [np.fromfile(f, dtype=np.uint8) for f in files])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--tile", type=int, default=2048)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    X, name = data(args.n, args.data_dir)
    acts = ["relu", "relu"]
    print(f"# {cpu_name()}; {name}, n = {args.n}, relu L = 2, CK, tile {args.tile}")
    dense = best_time(lambda: exact_kernels(X, acts, ntk=False), repeat=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        counter = iter(range(100))

        def tiled(workers: int, dtype: str = "float64"):
            return tiled_exact_kernels(X, acts, tmp / f"{dtype}-{workers}-{next(counter)}",
                                       tile=args.tile, dtype=dtype, workers=workers)

        local = best_time(lambda: tiled(1), repeat=1)

        def computed():
            plan = kernel_plan(X, acts, ntk=False)
            for r0 in range(0, args.n, args.tile):
                for c0 in range(0, r0 + 1, args.tile):
                    kernel_tile(X, plan, slice(r0, r0 + args.tile), slice(c0, c0 + args.tile))

        alone = best_time(computed, repeat=1)
        pool = best_time(lambda: tiled(2), repeat=1)
        v = np.random.default_rng(0).standard_normal(args.n)
        rows = [("tiles, this process / in memory", local, dense),
                ("tiles computed, no store / in memory", alone, dense),
                ("tiles, pool of 2 / in memory", pool, dense)]
        for dtype in ("float64", "float32"):
            stored = tiled(1, dtype)
            product = best_time(lambda stored=stored: stored.ck @ v)
            rows.append((f"one product, {dtype} tiles / reading them", product,
                         read_floor(stored.store.root)))
    print(f"{'row':<42} {'measured (s)':>13} {'baseline (s)':>13} {'ratio':>7}")
    for label, measured, base in rows:
        print(f"{label:<42} {measured:13.3f} {base:13.3f} {measured / base:7.2f}")


if __name__ == "__main__":
    main()
