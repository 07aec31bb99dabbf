"""The disk path of spectrum and convergence: exact kernels in tiles on disk, streamed by
Lanczos, against the in-memory paths and independent eigendecompositions."""

import numpy as np
import pytest

from ntk.exact import exact_kernels
from validation.cli import main
from validation.data.datasource import DataSource
from validation.experiments import spectra as experiments
from validation.experiments.spectra import (
    convergence_experiment,
    spectrum_experiment,
    spectrum_path,
    storage_options,
)


def test_disk_path_reports_the_lanczos_numbers(tmp_path):
    acts = ["relu", "tanh"]
    lanczos = spectrum_experiment(acts, 700, path="lanczos", k=5)
    disk = spectrum_experiment(acts, 700, path="disk", k=5,
                               storage=storage_options(tmp_path, tile=256))
    a, b = lanczos.comparison, disk.comparison
    assert b.rel_spectral_error == pytest.approx(a.rel_spectral_error, rel=1e-8)
    np.testing.assert_allclose(b.top_eigs_reference, a.top_eigs_reference, rtol=1e-10)
    np.testing.assert_allclose(b.alignment, a.alignment, atol=1e-8)
    payload = disk.as_dict()
    assert payload["path"] == "disk"
    assert payload["storage"]["tiles"] == payload["storage"]["tiles_computed"] == 6
    # A rerun reads the tiles back.
    again = spectrum_experiment(acts, 700, path="disk", k=5,
                                storage=storage_options(tmp_path, tile=256))
    assert again.storage["tiles_computed"] == 0
    assert again.comparison.rel_spectral_error == b.rel_spectral_error


def _labelled_npz(path, n=360, p=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((3, p))[y] * 2 + rng.standard_normal((n, p))
    np.savez(path, X=X, y=y)
    return path


def test_real_data_compares_the_top_eigenpairs_with_the_twin(tmp_path):
    source = DataSource(data=str(_labelled_npz(tmp_path / "d.npz")))
    r = spectrum_experiment("relu", 240, data=source, path="disk", k=4,
                            storage=storage_options(tmp_path / "tiles", tile=100))
    # Independently: both exact kernels in memory, a full eigendecomposition each.
    sample = source.load().sample(240, 0)
    tops = []
    for X, stats in ((sample.X, sample.stats), (sample.twin.X, sample.twin.stats)):
        vals, vecs = np.linalg.eigh(exact_kernels(X, ["relu"], stats.tau0, ntk=False).ck)
        tops.append((vals[::-1][:4], vecs[:, ::-1][:, :4]))
    (vr, ur), (vg, ug) = tops
    agreement = r.as_dict()["real_vs_gmm"]
    np.testing.assert_allclose(agreement["eig_rel_err"], np.abs(vg - vr) / vr, atol=1e-9)
    np.testing.assert_allclose(agreement["alignment"], np.abs(np.sum(ur * ug, axis=0)),
                               atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "tiles").iterdir()) == ["gmm", "real"]


def test_disk_path_needs_a_folder_and_the_exact_reference():
    with pytest.raises(ValueError, match="give a folder"):
        spectrum_experiment("relu", 100, path="disk")
    with pytest.raises(ValueError, match="stores exact kernels"):
        spectrum_experiment("relu", 100, path="disk", reference="mc",
                            storage=storage_options("unused"))


def test_auto_path_follows_the_memory(monkeypatch):
    monkeypatch.setattr(experiments, "_physical_memory", lambda: 24 * 2**30)
    assert spectrum_path("auto", 6400) == "dense"
    assert spectrum_path("auto", 25600) == "lanczos"
    assert spectrum_path("auto", 60000) == "disk"
    assert spectrum_path("lanczos", 60000) == "lanczos"


def test_convergence_goes_to_disk_beyond_memory(monkeypatch, tmp_path):
    memory_errors = convergence_experiment("relu", (200, 400), kernel="ntk").errors
    # A machine where no kernel fits: every n goes to disk.
    monkeypatch.setattr(experiments, "DENSE_SPECTRUM_MAX", 100)
    monkeypatch.setattr(experiments, "_physical_memory", lambda: 2**16)
    with pytest.raises(ValueError, match="give a folder"):
        convergence_experiment("relu", (200, 400), kernel="ntk")
    disk = convergence_experiment("relu", (200, 400), kernel="ntk",
                                  storage=storage_options(tmp_path, tile=128))
    np.testing.assert_allclose(disk.errors, memory_errors, rtol=1e-8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n200_seed0", "n400_seed0"]


def test_cli_disk_path_without_out_is_one_line(capsys):
    assert main(["spectrum", "--n", "100", "--path", "disk"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give a folder for them (--out)" in err
