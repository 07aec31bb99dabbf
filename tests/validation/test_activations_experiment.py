"""ntklc experiment activations (Open Question 3): the quick run, its sweep task, infeasible
activations, and the relu path it shares with ntklc-real."""

import itertools
import json

import numpy as np
import pytest
from offline_data import needs_mnist

from nets import CompressedNetwork, DenseNetwork
from solvers import compress_network
from validation.cli import main
from validation.experiments import realdata
from validation.experiments.activations import EPS_VALUES, QUICK_ACTIVATIONS, activation_accuracy
from validation.experiments.realdata import (
    TASKS,
    prepare_vectors,
    random_features_experiment,
    ridge_readout,
)
from validation.experiments.tasks import EXPERIMENTS
from validation.sweeps import parse_spec, run_sweep

#: Columns the sweep table adds to every row; a metric of the same name would overwrite them.
_RESERVED = {"seed", "status", "error", "seconds", "worker"}


@needs_mnist
def test_quick_run_writes_table_json_and_figure(capsys, tmp_path):
    assert main(["experiment", "activations", "--data", "mnist", "--quick", "--json",
                 "--out", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = payload["rows"]
    assert [(r["act"], r["eps"]) for r in rows] == list(
        itertools.product(QUICK_ACTIVATIONS, EPS_VALUES))
    for r in rows:
        assert r["feasible"] and r["infeasible_reason"] == ""
        for key in ("dense_accuracy", "ntklc_accuracy", "pruned_accuracy"):
            assert 0.0 <= r[key] <= 1.0
        # Random features with a ridge readout on 2000 images: far above chance (10 %).
        assert r["dense_accuracy"] > 0.5
        assert r["memory_factor"] > 20
    for act in QUICK_ACTIVATIONS:
        own = [r for r in rows if r["act"] == act]
        # Each eps is a separate task that rebuilds the dense network: the same network,
        # the same accuracy.
        assert len({r["dense_accuracy"] for r in own}) == 1
        # Sparser weights, less memory: a larger factor and fewer kept pruned weights.
        assert np.all(np.diff([r["memory_factor"] for r in own]) > 0)
        assert np.all(np.diff([r["pruned_keep"] for r in own]) < 0)
    assert json.loads((tmp_path / "activations.json").read_text()) == payload
    for name in ("activations.png", "activations.pdf", "table.txt", "sweep/results.csv"):
        assert (tmp_path / name).is_file(), name


@needs_mnist
@pytest.mark.slow
def test_relu_rows_match_the_ntklc_real_path():
    """The activations task at act = relu (one eps, one readout task per call) gives the
    numbers of the relu default of ntklc-real (every eps and both tasks in one call)."""
    reference = realdata.ntklc_real_experiment("mnist", widths=(200, 200, 100),
                                               eps_values=(0.0, 0.99), bits=(), n_train=2000)
    rows = {(r["method"], r["setting"].split(" ")[-1].strip("()")): r["accuracy"]["all 10"]
            for r in reference.rows}
    for eps in (0.0, 0.99):
        m = activation_accuracy("mnist", "relu", eps, quick=True)
        assert m["dense_accuracy"] == rows["dense", "float32"]
        assert m["ntklc_accuracy"] == rows["ntk-lc", f"eps={eps:g}"]
        assert m["pruned_accuracy"] == rows["pruning", f"eps={eps:g}"]


@pytest.fixture
def infeasible_solver(monkeypatch):
    """A solver that finds no solution, with the memo emptied before and after."""
    def no_solution(acts, tau0):
        raise ValueError("layer 2: tau_l^2 = 0.01 cannot be matched with at most 32 levels")

    realdata._solve.cache_clear()
    monkeypatch.setattr(realdata, "compress_network", no_solution)
    yield
    realdata._solve.cache_clear()


@needs_mnist
def test_infeasible_activation_is_reported_not_raised(infeasible_solver):
    m = activation_accuracy("mnist", "tanh", 0.9, quick=True)
    assert m["feasible"] is False
    assert "cannot be matched" in m["infeasible_reason"]
    assert m["dense_accuracy"] > 0.5
    assert m["ntklc_accuracy"] is m["pruned_accuracy"] is m["memory_factor"] is None


@needs_mnist
@pytest.mark.slow
def test_swish_is_infeasible_at_three_layers():
    """A real infeasible case of the solver (its second layer's variance is below what 32
    levels can match), reported with the dense accuracy."""
    m = activation_accuracy("mnist", "swish", 0.9, quick=True)
    assert m["feasible"] is False and "cannot be matched" in m["infeasible_reason"]
    assert 0.5 < m["dense_accuracy"] <= 1.0 and m["ntklc_accuracy"] is None


@needs_mnist
def test_task_is_registered_and_cached_by_the_sweep_layer(tmp_path):
    exp = EXPERIMENTS["activations"]
    assert set(exp.params) == {"data", "act", "eps", "quick", "data_dir"}

    def spec(eps):
        return parse_spec({"experiment": "activations", "fixed": {"quick": True},
                           "grid": {"act": ["erf"], "eps": eps}}, name="act")

    first = run_sweep(spec([0.9, 0.99]), tmp_path, workers=1, progress=False)
    assert len(first.computed) == 2 and not first.failed
    again = run_sweep(spec([0.9, 0.99]), tmp_path, workers=1, progress=False)
    assert again.computed == [] and len(again.cached) == 2
    volatile = ("seconds", "worker")
    assert ([{k: v for k, v in r.items() if k not in volatile} for r in again.rows]
            == [{k: v for k, v in r.items() if k not in volatile} for r in first.rows])
    for entry in (tmp_path / "cache" / "activations").glob("*.json"):
        metrics = json.loads(entry.read_text())["metrics"]
        assert not set(metrics) & (set(exp.params) | _RESERVED)


@pytest.mark.parametrize(("args", "message"), [
    (["--acts", "relu,nope"], "unknown activation 'nope'"),
    (["--eps", "0.5,1.5"], "eps values must lie in [0, 1)"),
    (["--data", "cifar10"], "unknown data set 'cifar10'"),
])
def test_bad_arguments_are_one_line(capsys, args, message):
    assert main(["experiment", "activations", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


# --- the relu default path of random_features_experiment, without data files ---------------


@pytest.fixture(scope="module")
def blobs():
    """Prepared inputs of 10 Gaussian blobs in 20 dimensions (300 train, 100 test)."""
    rng = np.random.default_rng(0)
    centres = 2 * rng.standard_normal((10, 20))
    y_train, y_test = rng.integers(0, 10, 300), rng.integers(0, 10, 100)
    F_train, F_test = prepare_vectors(centres[y_train] + rng.standard_normal((300, 20)),
                                      centres[y_test] + rng.standard_normal((100, 20)))
    return F_train, y_train, F_test, y_test


def test_default_activation_is_relu_built_by_hand(blobs):
    """The default path against the same networks built directly from nets and solvers."""
    X_train, y_train, X_test, y_test = blobs
    # One layer: the relu solve takes ~1 s (3 layers: ~5 s), twice here.
    widths, eps = (48,), 0.9
    r = random_features_experiment("blobs", X_train, y_train, X_test, y_test, 10,
                                   widths=widths, eps_values=(eps,), bits=(), seed=3)
    assert [row["method"] for row in r.rows] == ["dense", "ntk-lc", "pruning"]
    assert set(r.rows[0]["accuracy"]) == set(TASKS)
    solved = compress_network(["relu"], 1.0)
    nets = {"dense": DenseNetwork.random(20, widths, ["relu"], 1.0, seed=3),
            "ntk-lc": CompressedNetwork.random(20, widths, solved.activations, eps, 1.0,
                                               seed=3)}
    for row in r.rows[:2]:
        net = nets[row["method"]]
        pred, _ = ridge_readout(net.features(X_train), y_train, net.features(X_test), 10)
        assert row["accuracy"]["all 10"] == np.mean(pred == y_test)


def test_task_subset_and_activation(blobs):
    X_train, y_train, X_test, y_test = blobs
    r = random_features_experiment("blobs", X_train, y_train, X_test, y_test, 10,
                                   widths=(32, 16), eps_values=(), bits=(1,), act="tanh",
                                   tasks=("all 10",))
    assert [set(row["accuracy"]) for row in r.rows] == [{"all 10"}, {"all 10"}]
    dense = DenseNetwork.random(20, (32, 16), ["tanh"] * 2, 1.0, seed=0)
    pred, _ = ridge_readout(dense.features(X_train), y_train, dense.features(X_test), 10)
    assert r.rows[0]["accuracy"]["all 10"] == np.mean(pred == y_test)
    with pytest.raises(ValueError, match="tasks must be"):
        random_features_experiment("blobs", X_train, y_train, X_test, y_test, 10,
                                   widths=(8,), eps_values=(), bits=(), tasks=("all 3",))


def test_blocked_features_equal_one_pass():
    """The ternary forward pass in column blocks is the one-pass product, bit for bit."""
    solved = compress_network(["tanh"], 1.0)
    net = CompressedNetwork.random(30, (40,), solved.activations, 0.5, 1.0, seed=1)
    X = np.random.default_rng(2).standard_normal((30, 2 * realdata._BLOCK + 7))
    X = X.astype(np.float32) / np.float32(np.sqrt(30))
    np.testing.assert_array_equal(realdata._features(net, X), net.features(X))


def test_ridge_readout_is_the_ridge_solution(blobs):
    """Predictions at the chosen penalty equal an independent numpy solve of the ridge
    normal equations (features plus an intercept row)."""
    F_train, y_train, F_test, _ = blobs
    pred, lam = ridge_readout(F_train, y_train, F_test, 10)
    A = np.vstack([F_train, np.ones((1, F_train.shape[1]))])
    G = A @ A.T
    W = np.linalg.solve(G + lam * np.trace(G) / G.shape[0] * np.eye(G.shape[0]),
                        A @ np.eye(10)[y_train])
    np.testing.assert_array_equal(pred, np.argmax(W[:-1].T @ F_test + W[-1][:, None], axis=0))
