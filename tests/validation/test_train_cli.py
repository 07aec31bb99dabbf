"""ntklc train and ntklc experiment: JSON contract and errors (offline data via NTKLC_DATA)."""

import json
from pathlib import Path

from offline_data import needs_mnist

from validation.cli import main


@needs_mnist
def test_train_mlp_one_epoch(capsys, tmp_path):
    assert main(["train", "--data", "mnist", "--model", "mlp", "--hidden", "64", "--epochs",
                 "1", "--threads", "1", "--out", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    required = {"test_accuracy", "epochs", "seconds", "samples_per_second", "model_path",
                "peak_memory_mb", "data_and_params_mb"}
    assert set(payload) >= required
    # A 784-64-10 MLP after one Adam epoch on 60000 images is far above chance (10 %).
    assert payload["test_accuracy"] > 0.9
    assert Path(payload["model_path"]).is_file()


def test_missing_data_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NTKLC_DATA", str(tmp_path))
    monkeypatch.setenv("NTKLC_DATA_URL", "http://127.0.0.1:9")  # refused at once, no network
    monkeypatch.setattr("nets.data.default_cache_dir", lambda: tmp_path / "cache")
    assert main(["train", "--data", "fashion-mnist", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntklc: error:") and err.count("\n") == 1


def test_unknown_experiment(capsys):
    assert main(["experiment", "cifar-features"]) == 2
    assert "unknown experiment" in capsys.readouterr().err
