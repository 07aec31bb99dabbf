"""The ntklc command line: JSON contracts, figures, one-line errors with exit code 2."""

import json
import math
import subprocess
import sys

import pytest

from ntk import activation_constants
from validation.cli import main


def run_json(capsys, argv):
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_constants_json(capsys):
    payload = run_json(capsys, ["constants", "--act", "relu", "--tau", "2"])
    assert payload["d2"] == pytest.approx(1 / (2 * math.sqrt(2 * math.pi)), rel=1e-13)
    assert payload["activation"] == "relu" and payload["method"] == "quad"
    payload = run_json(capsys, ["constants", "--act", "sign", "--method", "symbolic"])
    assert payload["esp2"] is None
    assert payload["d1"] == pytest.approx(activation_constants("sign", 1.0, "mpmath").d1,
                                          abs=1e-13)


def test_parser_choices_are_the_library_ones():
    # The parser spells its choices out so that it imports nothing heavy (fast start-up).
    from ntk.constants import METHODS
    from solvers.ternarize import FAMILIES
    from validation.cli import parser as cli
    from validation.data import kernel_store
    from validation.experiments import spectra as experiments

    assert cli.METHODS == METHODS and cli.FAMILIES == FAMILIES
    assert cli.KERNELS == experiments.KERNELS and cli.REFERENCES == experiments.REFERENCES
    assert cli.SPECTRUM_PATHS == experiments.SPECTRUM_PATHS
    assert cli.TILE_DTYPES == kernel_store.TILE_DTYPES


def test_spectrum_json_and_figure(capsys, tmp_path):
    payload = run_json(capsys, ["spectrum", "--act", "relu", "--layers", "2", "--n", "120",
                                "--out", str(tmp_path)])
    for key in ("rel_spectral_error", "top_eigs_theory", "top_eigs_reference", "eig_rel_err",
                "alignment", "tau0", "coefficients", "seconds"):
        assert key in payload
    assert set(payload["coefficients"]) == {"a1", "a2", "a3", "tau2"}
    assert 0 < payload["rel_spectral_error"] < 0.3
    assert (tmp_path / "spectrum.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "spectrum.json").read_text())["n"] == 120


def test_spectrum_monte_carlo(capsys):
    payload = run_json(capsys, ["spectrum", "--act", "tanh", "--kernel", "ntk", "--n", "80",
                                "--reference", "mc", "--weights", "ternary:0.5",
                                "--width", "200", "--draws", "4"])
    assert set(payload["coefficients"]) == {"b1", "b2", "b3", "kappa2"}
    assert payload["weights"] == "ternary:0.5" and payload["mc_noise"] > 0


def test_convergence_json(capsys, tmp_path):
    payload = run_json(capsys, ["convergence", "--act", "relu", "--ns", "60,120,240",
                                "--out", str(tmp_path)])
    assert len(payload["errors"]) == 3
    assert -1.0 < payload["slope"] < 0.0
    assert (tmp_path / "convergence.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["constants", "--act", "softplus"], "unknown activation"),
    (["constants", "--act", "lrelu:a=x"], "must be a number"),
    (["constants", "--act", "relu", "--tau", "0"], "positive number"),
    (["spectrum", "--n", "0"], "positive integer"),
    (["spectrum", "--p", "-3"], "positive integer"),
    (["spectrum", "--layers", "0"], "at least one layer"),
    (["spectrum", "--kernel", "ntk", "--act", "binary"], "NTK undefined"),
    (["spectrum", "--act", "relu,tanh", "--layers", "3"], "2 activations given for 3"),
    (["spectrum", "--reference", "mc", "--weights", "ternary:1.5", "--n", "10"], "eps"),
    (["convergence", "--ns", "100"], "at least two"),
])
def test_bad_input_one_line_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ntklc: error:")
    assert message in err


def test_console_script_exit_code():
    proc = subprocess.run([sys.executable, "-m", "validation.cli", "constants", "--act", "nope"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("ntklc: error: unknown activation")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_kurtosis_json(capsys):
    # Rademacher weights, k4 = -2: the measured projection on the predicted term is ~1
    # (spec section 6); with this small run the standard error is ~0.03, hence 5 of them.
    payload = run_json(capsys, ["kurtosis", "--weights", "rademacher", "--p", "100",
                                "--n", "300", "--width", "1000", "--draws", "10"])
    assert payload["excess_kurtosis"] == -2
    assert abs(payload["ratio"] - 1) < 0.05 + 5 * payload["standard_error"]
    assert payload["standard_error"] < 0.1


def test_unwritable_output_folder_is_one_line(tmp_path, capsys):
    """An --out that cannot be created (here below a regular file: as root, a read-only
    folder would still be writable) ends with one line and exit 2, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["spectrum", "--n", "40", "--act", "relu", "--out",
                 str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err and "Not a directory" in err
