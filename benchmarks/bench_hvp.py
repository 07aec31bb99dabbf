"""Exact Hessian-vector products: against a gradient of the same loss, with and without the
reuse of the forward pass, and against PyTorch's kept-graph products (PyHessian's method).

Run: ``.venv/bin/python benchmarks/bench_hvp.py [--threads 1 2] [--repeat R] [--products P]``
(a benchmark run on demand, not a test; a few minutes with the defaults on 2 cores).

Table 1, project only: MLP 784-1024-1024-10 (1024 samples) and the small CNN (256 samples),
random MNIST-shaped inputs, all weights selected, float64 passes of ``nets.LossCurvature``.
"HVP, recomputed" is a product with ``max_cache_bytes=0``: each product redoes the forward
pass and the back-propagation of g before its R-passes (the cost of every product before the
reuse); "HVP, reused" is a later product of an object that keeps them (``hvp`` at fixed
weights, the default).

Table 2, project against PyTorch (float64 on both sides, the same weights, data, directions
and probes), MLP 784-256-256-10 with ReLU on 512 random MNIST-shaped samples:

* gradient: ``LossCurvature.gradient`` / ``torch.autograd.grad(loss, params)``;
* HVP, first: a new ``LossCurvature`` and one ``hvp`` / the gradient with
  ``create_graph=True`` and one product;
* HVP, next: one more product: ``hvp`` / ``torch.autograd.grad(grads, params,
  grad_outputs=v, retain_graph=True)`` on the kept graph, as PyHessian does;
* Lanczos: the top-5 Ritz values of P fully reorthogonalised Lanczos steps from the same start
  vector, including the first product's set-up (``solvers.top_ritz_pairs`` / the same
  algorithm in torch);
* Hutchinson: tr(H) from P Rademacher probes, set-up included (``solvers.hutchinson_trace`` /
  the same probes in torch).

The torch model is the functional twin ``h = relu(x W + b)`` on tensors laid out as the
project's (W is (in, out)), so flat vectors mean the same on both sides. Each measurement
runs the two sides alternately, best of ``--repeat``, after a warm-up call; a background load
hits both alike. Threads: each block uses the same count N on both sides
(``threadpoolctl.threadpool_limits(N)``, ``numba.set_num_threads(N)`` and
``torch.set_num_threads(N)``). The script sets ``OPENBLAS_THREAD_TIMEOUT=4`` before NumPy
loads, as the ``ntklc`` command does. PyTorch is not a dependency of the project: without it
table 2 is skipped with a message.
"""

from __future__ import annotations

import os

# Before NumPy loads OpenBLAS: idle OpenBLAS workers yield at once instead of spinning on a
# core the other side's threads need (what the ntklc command does too; see nets.layers).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import platform
import sys

import numba
import numpy as np
import threadpoolctl
from _machine import cpu_name, interleaved_best

from nets import LossCurvature, mlp, small_cnn
from solvers import hutchinson_trace, top_ritz_pairs

INSTALL_HINT = ("PyTorch is not importable, so the comparison with its kept-graph products is "
                "skipped: install it into the venv with `.venv/bin/pip install torch==2.13.0` "
                "(a CPU wheel), then run this again.")
TOP = 5  # Ritz values compared


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def project_table(rng, repeat: int) -> None:
    """Table 1: gradient, recomputed and reused products of the project."""
    cases = [("MLP 784-1024-1024-10", mlp(784), (1024, 784)),
             ("small CNN", small_cnn(), (256, 1, 28, 28))]
    print("| model | samples | parameters | gradient | HVP, recomputed | HVP, reused "
          "| kept memory | reused / gradient | reused / recomputed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, model, shape in cases:
        X = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, 10, shape[0])
        kept = LossCurvature(model, X, y)
        fresh = LossCurvature(model, X, y, max_cache_bytes=0)
        v = rng.standard_normal(kept.n)
        t = interleaved_best({"gradient": kept.gradient,
                        "recomputed": lambda c=fresh, v=v: c.hvp(v),
                        "reused": lambda c=kept, v=v: c.hvp(v)}, repeat)
        print(f"| {name} | {shape[0]} | {kept.n:,} | {ms(t['gradient'])} "
              f"| {ms(t['recomputed'])} | {ms(t['reused'])} "
              f"| {kept.cache_bytes / 2**20:.0f} MB | {t['reused'] / t['gradient']:.2f} "
              f"| {t['reused'] / t['recomputed']:.2f} |")


class TorchCurvature:
    """PyHessian's kept-graph products for the functional twin of ``nets.mlp`` (float64).

    ``setup()`` evaluates the gradient with ``create_graph=True``; ``hvp(v)`` then
    back-propagates through that graph once per flat (n,) torch vector.
    """

    def __init__(self, torch, model, X, y):
        self.torch = torch
        self.params = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)
                       for a in model.params()]
        self.sizes = [p.numel() for p in self.params]
        self.X = torch.tensor(np.asarray(X, dtype=np.float64))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.grads = None

    def loss(self):
        h = self.X
        last = len(self.params) - 2
        for k in range(0, len(self.params), 2):
            h = h @ self.params[k] + self.params[k + 1]
            if k < last:
                h = self.torch.relu(h)
        return self.torch.nn.functional.cross_entropy(h, self.y)

    def gradient(self):
        return self.torch.cat([g.reshape(-1) for g in self.torch.autograd.grad(
            self.loss(), self.params)])

    def setup(self):
        self.grads = self.torch.autograd.grad(self.loss(), self.params, create_graph=True)

    def hvp(self, v):
        pieces = [p.reshape(q.shape) for p, q in zip(self.torch.split(v, self.sizes),
                                                     self.params, strict=True)]
        out = self.torch.autograd.grad(self.grads, self.params, grad_outputs=pieces,
                                       retain_graph=True)
        return self.torch.cat([h.reshape(-1) for h in out])

    def lanczos(self, v0: np.ndarray, steps: int):
        """Top Ritz values of ``steps`` fully reorthogonalised Lanczos steps (the algorithm of
        ``solvers.hessian``, in torch)."""
        torch = self.torch
        self.setup()
        n = v0.size
        Q = torch.zeros((steps, n), dtype=torch.float64)
        alpha = torch.zeros(steps, dtype=torch.float64)
        beta = torch.zeros(steps - 1, dtype=torch.float64)
        q = torch.from_numpy(v0 / np.linalg.norm(v0))
        for j in range(steps):
            Q[j] = q
            w = self.hvp(q)
            alpha[j] = q @ w
            w -= Q[: j + 1].T @ (Q[: j + 1] @ w)
            if j == steps - 1:
                break
            beta[j] = torch.linalg.norm(w)
            q = w / beta[j]
        T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
        return torch.linalg.eigvalsh(T).numpy()[::-1][:TOP].copy()

    def hutchinson(self, n: int, samples: int, seed: int) -> float:
        """Mean of z^T H z over the Rademacher probes of ``solvers.hutchinson_trace``."""
        self.setup()
        rng = np.random.default_rng(seed)
        total = 0.0
        for _ in range(samples):
            z = self.torch.from_numpy(rng.choice([-1.0, 1.0], size=n))
            total += float(z @ self.hvp(z))
        return total / samples


def torch_table(torch, rng, repeat: int, products: int) -> None:
    """Table 2: the project against PyTorch's kept-graph products on MLP 784-256-256-10."""
    model = mlp(784, (256, 256), rng=0)
    X = rng.standard_normal((512, 784)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    curv = LossCurvature(model, X, y)
    twin = TorchCurvature(torch, model, X, y)
    n = curv.n
    v = rng.standard_normal(n)
    vt = torch.from_numpy(v)
    v0 = np.random.default_rng(1).standard_normal(n)

    twin.setup()
    hv, hv_torch = curv.hvp(v), twin.hvp(vt).numpy()
    grad_diff = np.linalg.norm(curv.gradient() - twin.gradient().numpy()) / np.linalg.norm(
        curv.gradient())
    top = top_ritz_pairs(curv.hvp, n, k=TOP, steps=products, seed=1)[0]
    top_torch = twin.lanczos(v0, products)
    trace = hutchinson_trace(curv.hvp, n, samples=products, seed=2)[0]
    trace_torch = twin.hutchinson(n, products, seed=2)

    def first_torch():
        twin.setup()
        twin.hvp(vt)

    rows = [
        ("gradient", curv.gradient, twin.gradient),
        ("HVP, first (set-up + 1 product)", lambda: LossCurvature(model, X, y).hvp(v),
         first_torch),
        ("HVP, next (1 product)", lambda: curv.hvp(v), lambda: twin.hvp(vt)),
        (f"Lanczos top-{TOP}, {products} products",
         lambda: top_ritz_pairs(LossCurvature(model, X, y).hvp, n, k=TOP, steps=products,
                                seed=1),
         lambda: twin.lanczos(v0, products)),
        (f"Hutchinson trace, {products} probes",
         lambda: hutchinson_trace(LossCurvature(model, X, y).hvp, n, samples=products,
                                  seed=2),
         lambda: twin.hutchinson(n, products, seed=2)),
    ]
    print(f"MLP 784-256-256-10 (relu, cross-entropy), 512 samples, {n:,} parameters, float64")
    print("| measurement | project | torch kept graph | project / torch |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        t = interleaved_best({"project": ours, "torch": theirs}, repeat)
        print(f"| {name} | {ms(t['project'])} | {ms(t['torch'])} "
              f"| {t['project'] / t['torch']:.2f} |")
    hv_diff = np.linalg.norm(hv - hv_torch) / np.linalg.norm(hv)
    print(f"\nagreement: gradient {grad_diff:.1e}, H v {hv_diff:.1e} (relative norms); "
          f"top Ritz value {top[0]:.10g} (project) vs {top_torch[0]:.10g} "
          f"(torch), top-{TOP} max relative difference "
          f"{np.max(np.abs(top - top_torch) / np.abs(top)):.1e}; Hutchinson trace "
          f"{trace:.10g} vs {trace_torch:.10g}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts, one block of tables per count (default 1 2)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed calls per side, alternating; best kept (default 3)")
    parser.add_argument("--products", type=int, default=100,
                        help="Lanczos steps and Hutchinson probes (default 100)")
    args = parser.parse_args()
    if min(args.threads) < 1 or args.repeat < 1 or args.products < TOP:
        parser.error(f"--threads and --repeat must be positive, --products at least {TOP}")
    try:
        import torch
    except ImportError:
        torch = None

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"machine: {platform.platform()}; {cpu_name()}, {os.cpu_count()} logical CPUs; "
          f"load average {load} (before)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch "
          f"{torch.__version__ if torch else 'absent'}; best of {args.repeat}, alternating")
    for n_threads in args.threads:
        print(f"\n### {n_threads} thread(s)\n")
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(n_threads)
        with threadpoolctl.threadpool_limits(n_threads):
            project_table(np.random.default_rng(0), args.repeat)
            print()
            if torch is None:
                print(INSTALL_HINT)
            else:
                torch_table(torch, np.random.default_rng(0), args.repeat, args.products)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nload average {load} (after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
