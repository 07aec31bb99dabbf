"""Exact kernels in tiles on disk (validation.data.kernel_store): equal to the whole-matrix kernels,
atomic and resumable, and the same on a process pool and a dask cluster."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from interrupt import kill_mid_run

from ntk.exact import exact_kernels
from rmt import gaussian_mixture, rel_spectral_error, sample_gmm, top_eigenpairs
from validation.data.kernel_store import KernelStore, tiled_cnn_kernels, tiled_exact_kernels

ROOT = Path(__file__).resolve().parents[2]
# Tiles and whole kernel differ by the rounding of X^T X (general product vs rank-k update).
TOL = 1e-14


@pytest.fixture(scope="module")
def data():
    X = sample_gmm(gaussian_mixture(150), 500, seed=2).X.copy()
    X[:, 3] = X[:, 4]  # a duplicate pair: the 2-D quadrature path
    return X, exact_kernels(X, ["relu", "tanh"])


def _dense(op):
    return op @ np.eye(op.shape[0])


def _scale_error(got, want):
    return np.max(np.abs(got - want)) / np.max(np.abs(want))


def test_float64_tiles_equal_the_whole_kernels(data, tmp_path):
    X, whole = data
    res = tiled_exact_kernels(X, ["relu", "tanh"], tmp_path, ntk=True, tile=128)
    assert res.computed == len(res.store.blocks) == 10  # 4 x 4 blocks, lower triangle
    assert _scale_error(_dense(res.ck), whole.ck) <= TOL
    assert _scale_error(_dense(res.ntk), whole.ntk) <= TOL
    # Lanczos on the stored kernel (streamed tiles) = on the matrix.
    assert rel_spectral_error(res.ck, whole.ck) < 1e-12
    vals, _ = top_eigenpairs(res.ntk, 3)
    np.testing.assert_allclose(vals, np.linalg.eigvalsh(whole.ntk)[::-1][:3], rtol=1e-11)


def test_float32_tiles_round_once(data, tmp_path):
    X, whole = data
    res = tiled_exact_kernels(X, ["relu", "tanh"], tmp_path, tile=200, dtype="float32")
    # float32 storage: each entry rounded once (2^-24), products in float32 over 200 terms.
    assert _scale_error(_dense(res.ck), whole.ck) <= 1e-6
    # The lower triangle's tiles: 3 of 200 x 200, 2 of 100 x 200, 1 of 100 x 100, 128-byte
    # .npy headers.
    assert res.store.disk_bytes() == 4 * (3 * 200 * 200 + 2 * 100 * 200 + 100 * 100) + 6 * 128


def test_resume_recomputes_missing_and_damaged_tiles_only(data, tmp_path):
    X, whole = data
    first = tiled_exact_kernels(X, ["relu", "tanh"], tmp_path, tile=128)
    paths = sorted(first.store.tiles().values())
    paths[0].unlink()  # missing
    raw = bytearray(paths[1].read_bytes())
    raw[-5] ^= 0xFF  # one flipped byte in the data
    paths[1].write_bytes(bytes(raw))
    paths[2].write_bytes(paths[2].read_bytes()[:100])  # truncated
    (tmp_path / ".ck_0_0.abc.tmp").write_bytes(b"half a tile")  # a killed write
    kept = {p.name: p.stat().st_ino for p in paths[3:]}
    again = tiled_exact_kernels(X, ["relu", "tanh"], tmp_path, tile=128)
    assert again.computed == 3
    assert len(again.removed) == 2 and all("CRC mismatch" in m for m in again.removed)
    assert not list(tmp_path.glob(".*.tmp"))
    # The good tiles were not rewritten (same inode), and the kernel is whole again.
    assert {p.name: p.stat().st_ino for p in paths[3:]} == kept
    assert _scale_error(_dense(again.ck), whole.ck) <= TOL


def test_a_store_of_other_data_is_refused(data, tmp_path):
    X, _ = data
    tiled_exact_kernels(X[:, :100], "relu", tmp_path, tile=64)
    with pytest.raises(ValueError, match=r"tiles of another kernel.*data_sha256"):
        tiled_exact_kernels(X[:, 1:101], "relu", tmp_path, tile=64)
    with pytest.raises(ValueError, match=r"another kernel.*tile"):
        tiled_exact_kernels(X[:, :100], "relu", tmp_path, tile=32)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a kernel store"):
        KernelStore.open(tmp_path, {"n": 1})


def test_a_kernel_larger_than_the_disk_is_refused(data, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 1000))
    with pytest.raises(ValueError, match=r"need 0\.0 GB, the disk has 0\.0 GB free"):
        tiled_exact_kernels(data[0][:, :100], "relu", tmp_path, tile=64)
    assert not list(tmp_path.glob("*.npy"))


@pytest.mark.parametrize("bad, match", [({"dtype": "float16"}, "dtype"), ({"tile": 0}, "tile"),
                                        ({"workers": 0}, "workers")])
def test_bad_options(data, tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        tiled_exact_kernels(data[0][:, :10], "relu", tmp_path, **bad)


def test_process_pool_gives_the_same_tiles(data, tmp_path):
    X, _ = data
    one = tiled_exact_kernels(X, ["relu", "tanh"], tmp_path / "one", ntk=True, tile=128)
    two = tiled_exact_kernels(X, ["relu", "tanh"], tmp_path / "two", ntk=True, tile=128,
                              workers=2)
    # The same recursion; X_I^T X_J may round differently on one BLAS thread than on two.
    assert _scale_error(_dense(two.ntk), _dense(one.ntk)) <= TOL
    with pytest.raises(ValueError, match="not a catalogue activation"):
        tiled_exact_kernels(X[:, :20], [np.tanh], tmp_path / "three", workers=2)


def test_dask_cluster_gives_the_same_tiles(data, tmp_path):
    distributed = pytest.importorskip("distributed")
    X, _ = data
    one = tiled_exact_kernels(X, ["relu", "tanh"], tmp_path / "one", tile=128)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        two = tiled_exact_kernels(X, ["relu", "tanh"], tmp_path / "two", tile=128,
                                  scheduler=cluster.scheduler_address)
    assert two.computed == 10
    assert _scale_error(_dense(two.ck), _dense(one.ck)) <= TOL


def test_kill_and_resume(tmp_path):
    """SIGKILL a tile computation mid-run; the rerun computes exactly the missing tiles."""
    script = textwrap.dedent(f"""
        import numpy as np
        from rmt import gaussian_mixture, sample_gmm
        from validation.data.kernel_store import tiled_exact_kernels
        X = sample_gmm(gaussian_mixture(100), 2400, seed=0).X
        r = tiled_exact_kernels(X, ["tanh", "tanh"], {str(tmp_path)!r}, tile=100)
        print(r.computed)
    """)
    kill_mid_run([sys.executable, "-c", script],
                 lambda: len(list(tmp_path.glob("ck_*.npy"))) >= 5)
    before = {p.name: p.stat().st_ino for p in tmp_path.glob("ck_*.npy")}
    total = 24 * 25 // 2
    assert 5 <= len(before) < total, "the kill should land mid-run"
    again = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    assert int(again.stdout) == total - len(before)
    assert {p: i for p, i in before.items() if (tmp_path / p).exists()} == before


@pytest.mark.parametrize("workers", [1, 2])
def test_cnn_kernels_in_tiles(tmp_path, workers):
    from ntk.cnn_exact import cnn_kernels

    x = np.random.default_rng(1).standard_normal((30, 2, 6, 6))
    options = {"pool": (1,), "ntk": True}
    whole = cnn_kernels(x, ["relu", "erf"], progress=False, **options)
    res = tiled_cnn_kernels(x, ["relu", "erf"], tmp_path, tile=8, workers=workers, **options)
    assert res.computed == 10 and res.store.meta["architecture"]["pool"] == [1]
    assert _scale_error(_dense(res.ck), whole.ck) <= TOL
    assert _scale_error(_dense(res.ntk), whole.ntk) <= TOL
