"""The real-data universality experiment: its metrics' invariants, the task on data drawn from a
known GMM (where real and twin must agree), and the quick command on MNIST."""

import json

import numpy as np
from offline_data import needs_mnist

from rmt import gaussian_mixture, sample_gmm
from validation.cli import main
from validation.experiments.universality import centroid_accuracy, universality_task
from validation.report.universality import universality_table


def test_centroid_accuracy_separable_and_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat([3, 7, 9], 200)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    separable = centres[np.searchsorted([3, 7, 9], labels)] + rng.standard_normal((600, 2))
    assert centroid_accuracy(separable, labels) == 1.0
    # Features independent of the labels: chance, 1/3, within 4 standard errors.
    noise = rng.standard_normal((600, 2))
    assert abs(centroid_accuracy(noise, labels) - 1 / 3) < 4 * np.sqrt(2 / 9 / 600) + 0.05


def test_task_on_gmm_data_agrees_with_its_twin(tmp_path):
    """Data drawn from a GMM within the theorem's assumptions, saved as an .npz: the estimated
    twin is the same model, so real and twin errors agree within sampling noise, and both are
    small (the equivalent holds: ntklc convergence gives 4 % for the CK and 7 % for the NTK of
    the built-in GMM at this n)."""
    model = gaussian_mixture(200, n_classes=2, structure="ar1:0.4")
    g = sample_gmm(model, 6000, seed=1, sort=False)
    path = tmp_path / "gmm.npz"
    np.savez(path, X=g.X.T, y=g.labels)
    params = {"data": str(path), "classes": "all", "act": "relu", "layers": 2, "n": 400,
              "data_dir": ""}
    m = universality_task(params, seed=0)
    for kernel in ("ck", "ntk"):
        real, twin = m[f"err_{kernel}_real"], m[f"err_{kernel}_gmm"]
        assert real < 0.15 and twin < 0.15
        # Same law: the two errors are draws of one statistic (seed-to-seed spread ~15 %).
        assert abs(real - twin) < 0.5 * max(real, twin)
        assert m[f"sep_{kernel}_real"] > 0.9 and m[f"align_{kernel}_real"] > 0.5
    assert m["close_pairs_real"] == 0 and m["close_pairs_gmm"] == 0


def test_table_reports_decay_and_stall():
    """Synthetic rows: errors ~ n^-1/2 decay, constant errors stall."""
    rows = []
    for n in (500, 1000, 2000, 4000):
        for seed in (0, 1):
            noise = 1 + 0.01 * (seed - 0.5)
            rows.append({"status": "ok", "data": "d", "act": "relu", "layers": 1, "n": n,
                         "seed": seed, **{f"{m}_{k}_{s}": 0.5 for m in ("align", "sep")
                                          for k in ("ck", "ntk") for s in ("real", "gmm")},
                         **{f"sep_eq_{k}_{s}": 0.5 for k in ("ck", "ntk")
                            for s in ("real", "gmm")},
                         "err_ck_real": 0.2 * noise, "err_ck_gmm": 3 * noise / np.sqrt(n),
                         "err_ntk_real": 0.3 * noise, "err_ntk_gmm": 0.3 * noise})
    header, table = universality_table(rows)
    trend_real, trend_twin = header.index("trend real"), header.index("trend twin")
    ck, ntk = table
    assert ck[trend_real].startswith("stalls") and ck[trend_twin].startswith("decays n^-0.50")
    assert ntk[trend_real].startswith("stalls") and ntk[trend_twin].startswith("stalls")


@needs_mnist
def test_unknown_class_is_one_line(capsys):
    code = main(["experiment", "universality", "--data", "mnist", "--classes", "0,42"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "42" in err


@needs_mnist
def test_quick_command(tmp_path, capsys):
    code = main(["experiment", "universality", "--quick", "--json", "--out", str(tmp_path),
                 "--workers", "1"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    rows = payload["rows"]
    assert len(rows) == 8 and len(payload["table"]) == 8  # relu, tanh x L = 1, 2 x CK, NTK
    for r in rows:
        for key, value in r.items():
            if key.startswith(("align_", "sep_")):
                assert 0.0 <= value <= 1.0 + 1e-12
            if key.startswith("err_"):
                assert 0.0 < value < 1.0
    # Real images have near-duplicates: the exact kernels took the high-correlation path.
    assert sum(r["close_pairs_real"] for r in rows) > 0
    for name in ("universality_errors_mnist", "universality_spectrum_mnist"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        assert (tmp_path / f"{name}.pdf").stat().st_size > 0
