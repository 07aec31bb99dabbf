"""The NTK-LC real-data experiment: its pieces, and a small run on the offline MNIST."""

import math
from pathlib import Path

import numpy as np
import pytest
from offline_data import needs_mnist

from validation.experiments.realdata import (
    _prune,
    _pruning_fraction,
    _quantize,
    ntklc_real_experiment,
    prepare_images,
    ridge_readout,
)


def test_prepare_images_sets_tau0_to_one():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (50, 4, 4), dtype=np.uint8)
    test = rng.integers(0, 256, (7, 4, 4), dtype=np.uint8)
    Xtr, Xte = prepare_images(train, test)
    assert Xtr.shape == (16, 50) and Xte.shape == (16, 7)
    assert math.sqrt(np.mean(np.sum(Xtr**2, axis=0))) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(Xtr.mean(axis=1), 0, atol=1e-6)


@pytest.mark.parametrize("bits", [0.3, 0.57, 2.0])
def test_pruning_fraction_solves_the_memory_equation(bits):
    f = _pruning_fraction(bits)
    h = -(f * math.log2(f) + (1 - f) * math.log2(1 - f))
    assert 32 * f + h == pytest.approx(bits, rel=1e-9)


def test_prune_and_quantize():
    W = np.random.default_rng(1).standard_normal((40, 50)).astype(np.float32)
    P = _prune(W, 0.1)
    assert np.count_nonzero(P) == 200
    kept = np.abs(W[P != 0]).min()
    assert kept >= np.abs(W[P == 0]).max()
    assert np.mean(P * P) == pytest.approx(1.0, rel=1e-5)
    for bits in (1, 2, 4):
        assert np.unique(_quantize(W, bits)).size <= 2**bits


def test_ridge_readout_separates_gaussian_classes():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 200)
    means = rng.standard_normal((3, 20)) * 3
    F = (means[y] + rng.standard_normal((600, 20))).T
    pred, lam = ridge_readout(F[:, ::2], y[::2], F[:, 1::2], 3)
    assert np.mean(pred == y[1::2]) > 0.95 and lam > 0


@needs_mnist
def test_small_run_on_mnist():
    r = ntklc_real_experiment("mnist", widths=(200, 200, 100), eps_values=(0.9,), bits=(1,),
                              n_train=3000)
    rows = {(row["method"], row["setting"].split(" ")[0]): row for row in r.rows}
    dense = rows["dense", "float32"]
    ntklc = rows["ntk-lc", "eps=0.9"]
    # Random features with a ridge readout on 3000 images: far above chance (10 %).
    assert dense["accuracy"]["all 10"] > 0.6
    assert ntklc["factor"] > 40
    assert abs(ntklc["accuracy"]["classes 0-4"] - dense["accuracy"]["classes 0-4"]) < 0.05
    assert set(r.as_dict()) >= {"rows", "rule", "widths"}


def _fake_cifar_folder(root: Path, per_batch: int = 40) -> Path:
    """The extracted CIFAR-10 layout with tiny random batches (exact pickle format)."""
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch).tolist()
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": b"fake", b"data": data, b"labels": labels}, f,
                        protocol=2)
    return folder


def test_cifar_pipeline_on_generated_batches(tmp_path):
    from validation.experiments.realdata import cnn_features_experiment

    folder = _fake_cifar_folder(tmp_path)
    r = cnn_features_experiment("cifar-10", epochs=1, widths=(64, 64, 32), eps_values=(0.9,),
                                bits=(1,), data_dir=folder)
    payload = r.as_dict()
    assert payload["data"] == "cifar-10 (CNN features)"
    assert payload["n_train"] == 200 and payload["n_test"] == 40
    assert {row["method"] for row in payload["rows"]} == {"dense", "ntk-lc", "pruning",
                                                           "quantization"}
