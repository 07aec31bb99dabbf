"""Labelled data for the theory commands: .npz checks, the pipeline, and the commands on data.

The .npz files are written to tmp_path (no data set needed); the MNIST / Fashion-MNIST tests
need the offline copies (NTKLC_DATA).
"""

import json
import math

import numpy as np
import pytest
from offline_data import needs_data

from rmt import estimate_tau0, gaussian_mixture, sample_gmm, sample_statistics
from validation.cli import main
from validation.data.datasource import DataSource, parse_classes, read_npz
from validation.experiments.tasks import EXPERIMENTS


@pytest.fixture(scope="module")
def gmm_npz(tmp_path_factory):
    """A 3-class GMM (p = 30) saved as float32 'images' X (N, 5, 6) with labels 2, 5, 7."""
    g = sample_gmm(gaussian_mixture(30, n_classes=3, t=(-1.0, 0.0, 1.0)), 600, seed=0,
                   sort=False)
    path = tmp_path_factory.mktemp("npz") / "gmm.npz"
    np.savez(path, X=g.X.T.reshape(600, 5, 6).astype(np.float32),
             y=np.array([2, 5, 7])[g.labels])
    return path


def _write(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("ntklc: error:")
    assert message in captured.err


# -- reading and checking .npz files ---------------------------------------------------------

def test_read_npz_flattens_images(gmm_npz):
    X, y = read_npz(gmm_npz)
    assert X.shape == (600, 30) and X.dtype == np.float64
    assert y.dtype == np.int64 and sorted(set(y.tolist())) == [2, 5, 7]


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.zeros(10), "y": np.zeros(10, int)}, "X must have shape"),
    ({"X": np.zeros((2, 2, 2, 2, 2)), "y": np.zeros(2, int)}, "X must have shape"),
    ({"X": np.zeros((0, 4)), "y": np.zeros(0, int)}, "X must have shape"),
    ({"X": np.array([[0.0, np.nan], [1.0, 2.0]]), "y": np.zeros(2, int)}, "NaN or inf"),
    ({"X": np.array([[0.0, 1.0], [np.inf, 2.0]]), "y": np.zeros(2, int)}, "first in row 1"),
    ({"X": np.zeros((3, 4)), "y": np.zeros(3)}, "integer class labels"),
    ({"X": np.zeros((3, 4)), "y": np.zeros(2, int)}, "one label per row"),
    ({"X": np.zeros((3, 4)), "y": np.zeros((3, 1), int)}, "one label per row"),
    ({"X": np.array([["a", "b"]]), "y": np.zeros(1, int)}, "real numbers"),
    ({"X": np.zeros((3, 4))}, "no array y"),
])
def test_read_npz_rejects_bad_files(tmp_path, arrays, message):
    with pytest.raises(ValueError, match=message):
        read_npz(_write(tmp_path / "bad.npz", **arrays))


def test_read_npz_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_npz(tmp_path / "absent.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        read_npz(garbage)


def test_parse_classes():
    assert parse_classes("0,1,7") == (0, 1, 7)
    assert parse_classes("") is None and parse_classes(None) is None
    with pytest.raises(ValueError, match="integers"):
        parse_classes("0,a")
    with pytest.raises(ValueError, match="distinct"):
        parse_classes("1,1")


# -- the pipeline ----------------------------------------------------------------------------

def test_training_set_and_sample(gmm_npz):
    training = DataSource(str(gmm_npz), classes=(7, 2)).load()
    assert training.classes == (7, 2) and training.dim == 30
    assert set(training.labels.tolist()) == {2, 7} and training.X.shape == (30, 400)
    # The paper's convention: the training set of the chosen classes has tau0 = 1, mean 0.
    assert estimate_tau0(training.X) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(training.X.mean(axis=1), 0.0, atol=1e-12)
    s = training.sample(51, seed=4)
    assert s.X.shape == (30, 51) and s.seed == 4
    # Class-balanced, grouped in the order of the classes asked for, distinct columns.
    np.testing.assert_array_equal(s.labels, np.repeat([7, 2], [26, 25]))
    assert len(set(s.indices.tolist())) == 51
    np.testing.assert_array_equal(s.X, training.X[:, s.indices])
    ref = sample_statistics(s.X, s.labels, training.fitted)
    np.testing.assert_array_equal(s.stats.V, ref.V)
    assert s.stats.tau0 == estimate_tau0(s.X)
    # The twin: same size and class counts, drawn from the fitted means and covariances.
    assert s.twin.X.shape == (30, 51)
    assert sorted(np.bincount(s.twin_labels, minlength=8)[[2, 7]].tolist()) == [25, 26]
    np.testing.assert_array_equal(s.twin.model.means, training.fitted.model.means)
    # The seed fixes both draws.
    again = training.sample(51, seed=4)
    np.testing.assert_array_equal(again.indices, s.indices)
    np.testing.assert_array_equal(again.twin.X, s.twin.X)
    assert not np.array_equal(training.sample(51, seed=5).indices, s.indices)


def test_the_whole_unbalanced_training_set(gmm_npz, tmp_path):
    """n = the training set's size takes every column once, grouped by class, whatever the
    class counts; one fewer must be class-balanced and cannot be."""
    with np.load(gmm_npz) as f:
        X, y = f["X"], f["y"]
    keep = (y != 7) | (np.cumsum(y == 7) <= 150)  # 150 of class 7, 200 of class 2
    training = DataSource(_write(tmp_path / "u.npz", X=X[keep], y=y[keep]),
                          classes=(7, 2)).load()
    whole = training.sample(350, seed=0)
    np.testing.assert_array_equal(whole.labels, np.repeat([7, 2], [150, 200]))
    np.testing.assert_array_equal(np.sort(whole.indices), np.arange(350))
    assert np.bincount(whole.twin_labels, minlength=8)[[7, 2]].tolist() == [150, 200]
    with pytest.raises(ValueError, match="class-balanced sample of n=349"):
        training.check_size(349)


def test_source_errors(gmm_npz, tmp_path):
    with pytest.raises(ValueError, match="class 3 is not in"):
        DataSource(str(gmm_npz), classes=(2, 3)).load()
    with pytest.raises(ValueError, match="fewer than the 300"):
        DataSource(str(gmm_npz), classes=(2, 5)).load().sample(600)
    with pytest.raises(ValueError, match="unknown data 'mnsit'"):
        DataSource("mnsit").load()
    with pytest.raises(ValueError, match="needs data"):
        DataSource()


def test_features_replace_the_inputs(gmm_npz):
    training = DataSource("mnist", classes=(5,), features=str(gmm_npz)).load()
    assert training.dim == 30 and training.as_dict()["data"] == "mnist features"


def test_missing_data_set_is_one_clear_line(capsys, tmp_path, monkeypatch):
    # Nothing anywhere: NTKLC_DATA and the user cache point to empty folders.
    monkeypatch.setenv("NTKLC_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _one_line_exit_2(capsys, ["spectrum", "--data", "cifar10", "--n", "10"],
                     "cifar-10 is not on this machine")


# -- the commands on an .npz -----------------------------------------------------------------

_TWO_CLASSES = {"X": np.random.default_rng(0).standard_normal((40, 6)),
                "y": np.repeat([0, 1], 20)}


@pytest.mark.parametrize("arrays, n, classes, message", [
    ({"X": np.zeros((40, 3, 3, 3, 3)), "y": np.zeros(40, int)}, 10, None, "X must have shape"),
    ({"X": np.full((40, 6), np.nan), "y": np.zeros(40, int)}, 10, None, "NaN"),
    ({"X": np.zeros((40, 6)), "y": np.linspace(0, 1, 40)}, 10, None, "integer"),
    (_TWO_CLASSES, 60, None, "class 0 has 20 samples, fewer than the 30"),
    (_TWO_CLASSES, 10, "0,4", "class 4 is not in"),
])
@pytest.mark.parametrize("command", ["spectrum", "convergence", "compare", "kurtosis"])
def test_bad_npz_one_line_exit_2(capsys, tmp_path, arrays, n, classes, message, command):
    path = _write(tmp_path / "data.npz", **arrays)
    argv = [command, "--data", path,
            *(["--ns", f"4,{n}"] if command == "convergence" else ["--n", str(n)]),
            *(["--classes", classes] if classes else [])]
    _one_line_exit_2(capsys, argv, message)


@pytest.mark.parametrize("argv, message", [
    (["spectrum", "--data", "absent.npz", "--n", "10"], "no such file"),
    (["spectrum", "--features", "absent.npz", "--n", "10"], "no such file"),
    (["spectrum", "--classes", "0,1"], "--classes needs --data"),
    (["kurtosis", "--data-dir", "."], "--data-dir needs --data"),
    (["spectrum", "--data", "mnsit"], "unknown data"),
    (["spectrum", "--data", "x.npz", "--classes", "0,zero"], "integers"),
])
def test_bad_data_arguments_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    _one_line_exit_2(capsys, argv, message)


def test_p_is_the_datas(capsys, gmm_npz):
    _one_line_exit_2(capsys, ["spectrum", "--data", str(gmm_npz), "--p", "10", "--n", "10"],
                     "p is fixed by the data")
    _one_line_exit_2(capsys, ["kurtosis", "--data", str(gmm_npz), "--p", "10", "--n", "10"],
                     "p is fixed by the data")


def run_json(capsys, argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _check_real_and_gmm(payload, *, data, classes, seed, metric):
    assert payload["data"] == data and payload["classes"] == classes
    assert payload["seed"] == seed
    assert set(payload) >= {"real", "gmm", "p", "n_train", "train_counts"}
    assert payload[metric] == payload["real"][metric]
    for side in ("real", "gmm"):
        assert "real" not in payload[side] and "gmm" not in payload[side]
        assert math.isfinite(payload[side][metric])


def test_spectrum_on_npz_reports_real_and_gmm(capsys, gmm_npz, tmp_path):
    argv = ["spectrum", "--data", str(gmm_npz), "--classes", "2,5,7", "--n", "90",
            "--act", "relu", "--layers", "2", "--seed", "3"]
    payload = run_json(capsys, [*argv, "--out", str(tmp_path)])
    _check_real_and_gmm(payload, data=str(gmm_npz), classes=[2, 5, 7], seed=3,
                        metric="rel_spectral_error")
    assert payload["n"] == 90 and payload["p"] == 30 and payload["gmm"]["p"] == 30
    # The data are a GMM: the equivalent is as good on them as on their twin (n = 90 at
    # p = 30 is far from the limit; both errors are a few tens of % at most).
    assert 0 < payload["real"]["rel_spectral_error"] < 0.5
    assert 0 < payload["gmm"]["rel_spectral_error"] < 0.5
    assert (tmp_path / "spectrum.png").is_file() and (tmp_path / "spectrum_gmm.png").is_file()
    # The text output names the data, the seed and both checks.
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "real data:" in text and "matched GMM" in text and "seed 3" in text


def test_convergence_compare_kurtosis_on_npz(capsys, gmm_npz):
    payload = run_json(capsys, ["convergence", "--data", str(gmm_npz), "--ns", "30,60",
                                "--seeds", "2"])
    assert payload["seeds"] == [0, 1] and payload["classes"] == [2, 5, 7]
    assert len(payload["errors"]) == len(payload["gmm"]["errors"]) == 2
    assert payload["errors"] == payload["real"]["errors"]
    payload = run_json(capsys, ["compare", "--data", str(gmm_npz), "--n", "60",
                                "--width", "100", "--draws", "2", "--eps", "0.9"])
    _check_real_and_gmm(payload, data=str(gmm_npz), classes=[2, 5, 7], seed=0,
                        metric="dense_vs_equivalent_centred")
    assert payload["p"] == 30 and len(payload["gmm"]["rows"]) == 1
    payload = run_json(capsys, ["kurtosis", "--data", str(gmm_npz), "--n", "60",
                                "--width", "200", "--draws", "3"])
    _check_real_and_gmm(payload, data=str(gmm_npz), classes=[2, 5, 7], seed=0,
                        metric="ratio")
    assert payload["p"] == 30 and payload["gmm"]["excess_kurtosis"] == -2


def test_sweep_tasks_take_data(gmm_npz):
    bookkeeping = {"seed", "status", "error", "seconds", "worker"}
    for name, small in (("spectrum", {"n": 60}), ("convergence", {"n": 60}),
                        ("compare", {"n": 60, "width": 50, "draws": 2}),
                        ("kurtosis", {"n": 60, "width": 100, "draws": 2})):
        exp = EXPERIMENTS[name]
        assert exp.version == "2"
        params = {k: p.default for k, p in exp.params.items()}
        assert params["data"] == "gmm" and params["classes"] == "all"
        metrics = exp.run({**params, **small, "data": str(gmm_npz), "classes": "2,7"}, 1)
        gmm = {k for k in metrics if k.startswith("gmm_")}
        assert gmm and {k.removeprefix("gmm_") for k in gmm} <= set(metrics)
        assert not (set(metrics) & (set(exp.params) | bookkeeping))
        assert not any(k.startswith("gmm_") for k in exp.run({**params, **small}, 1))
    with pytest.raises(ValueError, match="classes needs data other than gmm"):
        EXPERIMENTS["convergence"].run({**{k: p.default for k, p in
                                           EXPERIMENTS["convergence"].params.items()},
                                        "classes": "1"}, 0)


# -- MNIST and Fashion-MNIST (offline copies) ------------------------------------------------

@pytest.mark.parametrize("data", [pytest.param("mnist", marks=needs_data("mnist")),
                                  pytest.param("fashion-mnist", marks=needs_data("fashion-mnist"))])
def test_spectrum_on_image_data(capsys, data):
    payload = run_json(capsys, ["spectrum", "--data", data, "--classes", "0,1", "--n", "200",
                                "--act", "relu", "--layers", "2", "--seed", "2"])
    _check_real_and_gmm(payload, data=data, classes=[0, 1], seed=2,
                        metric="rel_spectral_error")
    assert payload["p"] == 784 and payload["n_train"] == 12000 + (665 if data == "mnist"
                                                                    else 0)
    assert payload["gmm"]["n"] == payload["n"] == 200
    # Centred and scaled on the training set: tau0 of a sample is 1 up to sampling noise.
    assert abs(payload["tau0"] - 1) < 0.1
    for side in ("real", "gmm"):
        assert 0 < payload[side]["rel_spectral_error"] < 1


@pytest.mark.slow
@pytest.mark.parametrize("data", [pytest.param("mnist", marks=needs_data("mnist")),
                                  pytest.param("fashion-mnist", marks=needs_data("fashion-mnist"))])
def test_acceptance_spectrum_n1000(capsys, data):
    payload = run_json(capsys, ["spectrum", "--data", data, "--classes", "0,1", "--n", "1000",
                                "--act", "relu", "--layers", "2"])
    _check_real_and_gmm(payload, data=data, classes=[0, 1], seed=0,
                        metric="rel_spectral_error")
    assert payload["n"] == 1000 and payload["gmm"]["n"] == 1000
