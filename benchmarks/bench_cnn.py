"""Speed of the exact CNN kernels, as ratios to the fully connected kernels in the same run.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench_cnn.py [--repeat R]``); needs the
offline MNIST (``NTKLC_DATA``).

Rows:
  1. exact CK + NTK of a CNN (relu, 2 x conv3 "same", flatten) on n = 256 MNIST images at
     28 x 28: its cost per entry, time / (n^2 H W L) (one bivariate map per image pair,
     position and layer), against the floor, the fully connected ``exact_kernels``' cost per
     entry, time / (n^2 L), for the same activation and depth on 2048 MNIST images flattened
     (goal <= 2). The two alternate over the rounds (best of each), so other load on the
     machine slows both alike.
  2. the same CNN's peak memory (tracemalloc, the NumPy arrays allocated by the call).
  3. the global-average-pooling readout (every position pair) at n = 64 on 14 x 14 images.
  4. optional: neural-tangents (``stax``, float64, ``nt.batch`` 8, warm) on the inputs of rows
     1 and 3, when ``--neural-tangents PYTHON`` names an interpreter with neural-tangents and
     jax installed (its own environment: see docs/cnn.md), and the agreement of the kernels;
     and their agreement on 4 random 2-channel 6 x 6 images (one an exact copy, one a
     near-copy) for relu, erf, gelu and sign (CK only), 1 and 2 layers, every padding, both
     readouts, with and without pooling after layer 1.
"""

from __future__ import annotations

import argparse
import os

# Before NumPy loads OpenBLAS, as the ntklc command does (validation/__init__.py).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from _machine import cpu_name, interleaved_best

from nets.data import as_float, load_dataset
from ntk import cnn_kernels, exact_kernels

_NT_AGREEMENT = """
import json, sys
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
from neural_tangents import stax
x = np.transpose(np.load(sys.argv[1]), (0, 2, 3, 1))
acts = {"relu": stax.Relu, "erf": stax.Erf, "gelu": lambda: stax.Gelu(approximate=False),
        "sign": stax.Sign}
out = {}
for case in json.loads(sys.argv[2]):
    act, padding, layers, pool, readout = case
    net = []
    for layer in range(1, layers + 1):
        net += [stax.Conv(1, (3, 3), padding=padding.upper(), W_std=1.0, b_std=None),
                acts[act]()]
        if layer in pool:
            net.append(stax.AvgPool((2, 2), strides=(2, 2)))
    net += [stax.Flatten() if readout == "flatten" else stax.GlobalAvgPool(),
            stax.Dense(1, W_std=1.0, b_std=None)]
    k = stax.serial(*net)[2](x, None, ("nngp", "ntk"))
    out[json.dumps(case)] = [np.asarray(k.nngp).tolist(), np.asarray(k.ntk).tolist()]
print(json.dumps(out))
"""

_NT_SCRIPT = """
import json, sys, time
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
import neural_tangents as nt
from neural_tangents import stax
x = np.load(sys.argv[1])
readout = sys.argv[2]
layers = []
for _ in range(2):
    layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=1.0, b_std=None), stax.Relu()]
layers += [stax.Flatten() if readout == "flatten" else stax.GlobalAvgPool(),
           stax.Dense(1, W_std=1.0, b_std=None)]
_, _, kernel_fn = stax.serial(*layers)
fn = nt.batch(kernel_fn, batch_size=8)
xs = np.transpose(x, (0, 2, 3, 1))
times = []
for _ in range(int(sys.argv[3]) + 1):
    start = time.perf_counter()
    k = fn(xs, None, ("nngp", "ntk"))
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    times.append(time.perf_counter() - start)
np.save(sys.argv[4], np.stack([nngp, ntk]))
print(json.dumps({"first": times[0], "warm": min(times[1:])}))
"""


def mnist(n: int, size: int = 28) -> np.ndarray:
    """The first n MNIST training images in [0, 1], (n, 1, size, size) float64 (block means
    for a smaller size)."""
    x = as_float(load_dataset("mnist", "train").images[:n], np.float64)[:, None]
    f = 28 // size
    return x.reshape(n, 1, size, f, size, f).mean(axis=(3, 5))


def neural_tangents(python: str, x: np.ndarray, readout: str, repeat: int
                    ) -> tuple[dict, np.ndarray]:
    """Timings of neural-tangents in its own interpreter, and its (nngp, ntk) kernels."""
    with tempfile.TemporaryDirectory() as tmp:
        images, kernels = Path(tmp) / "x.npy", Path(tmp) / "k.npy"
        np.save(images, x)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([python, "-c", _NT_SCRIPT, str(images), readout, str(repeat),
                               str(kernels)], capture_output=True, text=True, env=env,
                              check=True)
        return json.loads(done.stdout.strip().splitlines()[-1]), np.load(kernels)


def agreement_cases() -> list[tuple]:
    """(act, padding, layers, pool, readout) of row 4's small-image comparison."""
    cases = []
    for act in ("relu", "erf", "gelu", "sign"):
        for padding in ("same", "circular", "valid"):
            for layers in (1, 2):
                for pool in ((), (1,)):
                    if padding == "valid" and layers == 2 and pool:
                        continue  # 6 -> 4 -> 2 -> 0: no grid left
                    for readout in ("flatten", "gap"):
                        cases.append((act, padding, layers, list(pool), readout))
    return cases


def neural_tangents_agreement(python: str) -> dict[str, float]:
    """Largest |ntklc - neural-tangents| / max |neural-tangents| per activation and kernel
    over :func:`agreement_cases`."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 6, 6))
    x[3] = x[0]
    x[2] = x[1] + 1e-3 * rng.standard_normal(x[1].shape)
    cases = agreement_cases()
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "x.npy"
        np.save(images, x)
        done = subprocess.run([python, "-c", _NT_AGREEMENT, str(images), json.dumps(cases)],
                              capture_output=True, text=True, check=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    worst: dict[str, float] = {}
    for case in cases:
        act, padding, layers, pool, readout = case
        nngp, ntk = (np.array(k) for k in theirs[json.dumps(case)])
        ours = cnn_kernels(x, [act] * layers, padding=padding, pool=pool, readout=readout,
                           ntk=act != "sign", progress=False)
        pairs = [("CK", ours.ck, nngp)] + ([] if act == "sign" else [("NTK", ours.ntk, ntk)])
        for name, mine, ref in pairs:
            key = f"{act} {name}" + (" (pool)" if act == "sign" and pool and layers == 2
                                     else "")
            worst[key] = max(worst.get(key, 0.0),
                             float(np.abs(mine - ref).max() / np.abs(ref).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (best of each)")
    parser.add_argument("--neural-tangents", default=None, metavar="PYTHON",
                        help="an interpreter with neural-tangents installed, for row 4")
    args = parser.parse_args()
    print(f"# {cpu_name()}, {os.cpu_count()} cores, numba threads "
          f"{os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    x = mnist(256)
    X = mnist(2048).reshape(2048, -1).T
    layers = ["relu", "relu"]
    n, hw = x.shape[0], x.shape[2] * x.shape[3]
    cnn_kernels(x[:4], layers, progress=False)  # compile
    best = interleaved_best({
        "cnn": lambda: cnn_kernels(x, layers, progress=False),
        "fc": lambda: exact_kernels(X, layers)}, args.repeat)
    cnn_entry = best["cnn"] / (n * n * hw * len(layers))
    fc_entry = best["fc"] / (X.shape[1] ** 2 * len(layers))
    print("1. exact CK + NTK, relu, 2 x conv3 same, flatten, n = 256 MNIST at 28 x 28")
    print(f"   CNN  {best['cnn']:.3f} s = {1e9 * cnn_entry:.1f} ns per (pair, position, layer)")
    print(f"   FC   {best['fc']:.3f} s = {1e9 * fc_entry:.1f} ns per (pair, layer), "
          f"n = {X.shape[1]}")
    print(f"   ratio {cnn_entry / fc_entry:.2f} (goal <= 2)")
    tracemalloc.start()
    cnn = cnn_kernels(x, layers, progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"2. peak memory of the call: {peak / 2**20:.0f} MiB")
    small = mnist(64, 14)
    cnn_kernels(small[:2], layers, readout="gap", progress=False)
    start = time.perf_counter()
    gap = cnn_kernels(small, layers, readout="gap", progress=False)
    print(f"3. global average pooling, n = 64 at 14 x 14: {time.perf_counter() - start:.2f} s")
    if args.neural_tangents:
        for name, images, ours, seconds in (("flatten", x, cnn, best["cnn"]),
                                            ("gap", small, gap, None)):
            timing, (nngp, ntk) = neural_tangents(args.neural_tangents, images, name,
                                                  args.repeat)
            if seconds is None:
                start = time.perf_counter()
                ours = cnn_kernels(images, layers, readout="gap", progress=False)
                seconds = time.perf_counter() - start
            scale = np.abs(nngp).max()
            print(f"4. neural-tangents {name}: warm {timing['warm']:.2f} s (first "
                  f"{timing['first']:.2f} s); ntklc {seconds:.2f} s, ratio "
                  f"{seconds / timing['warm']:.2f}; max |CK - nngp| / max |nngp| "
                  f"{np.abs(ours.ck - nngp).max() / scale:.1e}, NTK "
                  f"{np.abs(ours.ntk - ntk).max() / np.abs(ntk).max():.1e}")
        print("4. agreement with neural-tangents on small images (largest difference / "
              "largest entry):")
        for key, value in neural_tangents_agreement(args.neural_tangents).items():
            print(f"   {key:<16} {value:.1e}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
