"""ntklc compress and the dense-vs-compressed spectral check."""

import json

import pytest

from ntk import ck_coefficients
from validation.cli import main
from validation.experiments.compression import compression_spectra


def run_json(capsys, argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_compress_json_contract(capsys):
    payload = run_json(capsys, ["compress", "--act", "relu", "--layers", "2", "--eps", "0.9",
                                "--p", "50", "--width", "300", "--classes", "3"])
    assert set(payload) >= {"layers", "dense", "alphas", "delta", "tau0", "memory", "eps"}
    for layer in payload["layers"]:
        assert set(layer) >= {"family", "params", "thresholds", "levels", "tau_in", "d1", "d2",
                              "d3", "tau2_next", "residual", "gauge"}
        assert layer["thresholds"] == sorted(layer["thresholds"])
        assert len(layer["levels"]) == len(layer["thresholds"]) + 1
        assert layer["residual"] < 1e-10
    # Anyone can re-derive the constants from the canonical form: do it here.
    from ntk import step_activation

    acts = [step_activation(layer["thresholds"], layer["levels"]) for layer in payload["layers"]]
    last = ck_coefficients(acts, payload["tau0"])[-1]
    dense = payload["alphas"]["dense"]
    assert last.a1 == pytest.approx(dense["a1"], rel=1e-8)
    assert last.a3 == pytest.approx(dense["a3"], rel=1e-8)
    assert last.tau2 == pytest.approx(dense["tau2"], rel=1e-8)
    mem = payload["memory"]
    assert mem["dense_hidden_bits"] == 32 * (300 * 50 + 300 * 300)
    assert "rule" in mem and mem["hidden_factor_coded"] > 40


def test_compress_with_capped_levels_reports_delta(capsys):
    payload = run_json(capsys, ["compress", "--layers", "3", "--max-levels", "4", "--p", "20",
                                "--width", "50"])
    assert payload["delta"] > 1e-3
    alphas = payload["alphas"]
    assert alphas["compressed"]["tau2"] - alphas["dense"]["tau2"] == pytest.approx(
        payload["delta"], rel=1e-8)


@pytest.mark.parametrize("argv, message", [
    (["compress", "--eps", "1.0"], "eps must lie in [0, 1)"),
    (["compress", "--eps", "-0.1"], "eps must lie"),
    (["compress", "--layers", "0"], "at least one layer"),
    (["compress", "--tau0", "0"], "positive number"),
    (["compress", "--act", "softplus"], "unknown activation"),
    (["compress", "--max-levels", "1"], "max_levels"),
])
def test_compress_bad_input(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects malformed numbers itself
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0


def test_compressed_ck_matches_dense_within_noise_small():
    # Small and fast: n = 200. Centred kernels must agree within 3 x the combined half-split
    # noise of the two averages for eps <= 0.9 (the kurtosis term lives in the removed
    # constant direction); the top eigenvector stays aligned.
    res = compression_spectra(["relu"] * 2, n=200, eps_values=(0.0, 0.9), width=300,
                              draws=8)
    for row in res.rows:
        assert row["centred_error"] < 3 * row["noise"], row
        assert row["alignment"][0] > 0.8


@pytest.mark.slow
def test_compressed_ck_matches_dense_within_noise():
    # The acceptance check at n = 800 (p = 400), width 1000, 30 draws per network.
    res = compression_spectra(["relu"] * 3, n=800, eps_values=(0.0, 0.5, 0.9), width=1000,
                              draws=30)
    for row in res.rows:
        assert row["centred_error"] < 2 * row["noise"], row
        assert row["top_eig_rel_err"][0] < 0.05 and row["alignment"][0] > 0.95


def test_compare_json_and_figure(capsys, tmp_path):
    payload = run_json(capsys, ["compare", "--act", "tanh", "--layers", "2", "--n", "120",
                                "--width", "150", "--draws", "4", "--eps", "0,0.9",
                                "--out", str(tmp_path)])
    assert [row["eps"] for row in payload["rows"]] == [0.0, 0.9]
    for row in payload["rows"]:
        assert row["noise"] > 0 and row["centred_error"] < 3 * row["noise"]
    assert (tmp_path / "compression_spectra.png").stat().st_size > 10_000
