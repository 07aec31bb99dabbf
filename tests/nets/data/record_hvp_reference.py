"""Record loss, gradient and Hessian-vector products of the cases of tests/nets/hvp_cases.py.

Run: ``PYTHONPATH=tests/nets .venv/bin/python tests/nets/data/record_hvp_reference.py OUT.npz``.
Each case is recorded at the model's weights (state 0) and after ``perturb`` (state 1), on a
fresh ``LossCurvature`` each time. ``hvp_reference.npz`` was written by the R-operator of
commit 3977a5e, before the products reused the forward pass.
"""

import sys

import numpy as np
from hvp_cases import CASES, build, directions, indices, perturb

from nets import LossCurvature

out = {}
for case in CASES:
    model, X, y, kwargs = build(case)
    for state in (0, 1):
        if state:
            perturb(model)
        curv = LossCurvature(model, X, y, **kwargs)
        idx = indices(curv.shapes)
        key = f"{case}/{state}"
        out[f"{key}/loss"] = np.array(curv.loss())
        out[f"{key}/gradient"] = curv.gradient()[idx]
        out[f"{key}/hvp"] = np.stack([curv.hvp(v)[idx] for v in directions(curv.n, case,
                                                                             state)])
        print(key, curv.n, idx.size, flush=True)
np.savez_compressed(sys.argv[1], **out)
