"""Record compress_network results for every catalogue activation at L = 1..4.

Run: ``.venv/bin/python tests/solvers/data/record_solver_reference.py OUT.json [TAU0,...]``.
"""

import json
import sys
import time

from ntk.activations import CATALOGUE
from solvers.ternarize import compress_network

taus = [float(t) for t in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1.0]
out = {}
for tau0 in taus:
    for act in CATALOGUE:
        for L in range(1, 5):
            key = f"{act}|{L}|{tau0}"
            t0 = time.perf_counter()
            try:
                r = compress_network([act] * L, tau0)
                out[key] = {"layers": [{"n_levels": s.step.n_levels, "family": s.step.family,
                                        "thresholds": list(s.step.thresholds),
                                        "levels": list(s.step.levels),
                                        "residuals": s.residuals} for s in r.layers],
                            "delta": r.delta}
            except ValueError as exc:
                out[key] = {"error": str(exc)}
            out[key]["time"] = time.perf_counter() - t0
            print(key, round(out[key]["time"], 3),
                  [s["n_levels"] for s in out[key].get("layers", [])] or out[key].get("error"),
                  flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
