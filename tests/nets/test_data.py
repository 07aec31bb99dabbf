"""Data loaders: the real offline MNIST copies, round trips through fake files in the exact
formats, and the download path against a local HTTP server (no network)."""

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

import nets.data
from nets.data import (
    DataNotFoundError,
    as_float,
    find_dataset,
    load_dataset,
    parse_idx,
    read_idx,
)
from nets.datasets import DATA_ENV, REGISTRY, URL_ENV, RemoteFile, get_dataset_info

# Class counts of the official MNIST test set (LeCun et al.).
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the user's data root, cache or hosts; downloads can only hit 127.0.0.1."""
    real_root = os.environ.get(DATA_ENV)
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{_closed_port()}")
    cache = tmp_path / "cache"
    monkeypatch.setattr(nets.data, "default_cache_dir", lambda: cache)
    return real_root, cache


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _fake_mnist(folder: Path, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write gzip IDX files of `split` under `folder`; return what they hold."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    return images, labels


def _trust_files(monkeypatch, name: str, folder: Path) -> None:
    """Point the registry's digests at the fake files in `folder`."""
    info = REGISTRY[name]
    files = {}
    for role, entry in info.files.items():
        path = folder / entry.name
        digest = _sha256(path.read_bytes()) if path.is_file() else entry.sha256
        files[role] = dataclasses.replace(entry, sha256=digest, content_sha256=None)
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(info, files=files))


def _cifar_batch(n: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray, np.ndarray]:
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    # Protocol 2 and bytes keys, like the official Python 2 pickles read with encoding="bytes".
    raw = pickle.dumps({b"batch_label": b"fake", b"data": data, b"labels": labels}, protocol=2)
    return raw, data, np.array(labels)


def _fake_cifar_archive(path: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write a tiny `cifar-10-python.tar.gz` (3 images per batch); return the batches."""
    rng = np.random.default_rng(seed)
    content = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            raw, data, labels = _cifar_batch(3, rng)
            content[name] = (data, labels)
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(raw)
            tar.addfile(member, io.BytesIO(raw))
    return content


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """Serve tmp_path/served over HTTP on 127.0.0.1 and point NTKLC_DATA_URL at it."""
    root = tmp_path / "served"
    root.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass  # keep pytest output clean; requests are checked through their effects

    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
    yield root
    server.shutdown()
    server.server_close()
    thread.join()


# --- the offline copies of the real data ---------------------------------------------------


def _real_root(isolated) -> Path:
    real_root = isolated[0]
    if not real_root or not (Path(real_root) / "mnist").is_dir():
        pytest.skip(f"offline MNIST copies not found: set {DATA_ENV} to a folder holding mnist/")
    return Path(real_root)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_offline_test_split_parses_with_known_counts(name, isolated, monkeypatch):
    root = _real_root(isolated)
    if not (root / name).is_dir():
        pytest.skip(f"{root / name} not found")
    monkeypatch.setenv(DATA_ENV, str(root))
    data = load_dataset(name, "test")
    assert data.name == name
    assert data.split == "test"
    assert data.images.shape == (10000, 28, 28)
    assert data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64
    assert data.labels.min() == 0
    assert data.labels.max() == 9
    assert len(data.classes) == 10
    expected = MNIST_TEST_COUNTS if name == "mnist" else [1000] * 10
    assert np.bincount(data.labels, minlength=10).tolist() == expected
    # Real digits: mostly background with a bright stroke, not noise.
    assert 0.1 < as_float(data.images).mean() < 0.35
    assert data.images.max() == 255


def test_offline_copy_passes_sha256_and_a_flipped_byte_fails(isolated, tmp_path):
    root = _real_root(isolated)
    info = get_dataset_info("mnist")
    for entry in (info.files["test_images"], info.files["test_labels"]):
        payload = nets.data._verified_gunzip(root / "mnist" / entry.name, entry)
        assert _sha256(payload) == entry.content_sha256
    labels = info.files["test_labels"]
    content = bytearray(gzip.decompress((root / "mnist" / labels.name).read_bytes()))
    content[100] ^= 1
    tampered = tmp_path / labels.name
    tampered.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(ValueError, match=labels.content_sha256):
        nets.data._verified_gunzip(tampered, labels)


def test_explicit_data_dir_accepts_dataset_folder_itself(isolated):
    root = _real_root(isolated)
    data = load_dataset("mnist", "test", data_dir=root / "mnist")
    assert data.images.shape == (10000, 28, 28)


# --- IDX round trips with fake files -------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "code"),
    [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float64, 0x0E)],
)
def test_parse_idx_round_trip_big_endian(dtype, code):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    decoded = parse_idx(_idx(array, code))
    assert decoded.shape == (2, 3, 4)
    assert decoded.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(decoded, array)


def test_parse_idx_rejects_bad_magic_and_truncation():
    raw = _idx(np.arange(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"\x01" + raw[1:], "x.idx")
    with pytest.raises(ValueError, match=r"x.idx: IDX header \(10,\) needs 18 bytes .* 17"):
        parse_idx(raw[:-1], "x.idx")


def test_read_idx_gz(tmp_path):
    images, labels = _fake_mnist(tmp_path, "test", 5, seed=1)
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz"), labels)


@pytest.mark.parametrize("split", ["train", "test"])
def test_fake_mnist_round_trip_through_env_root(split, tmp_path, monkeypatch):
    images, labels = _fake_mnist(tmp_path / "root" / "fashion-mnist", split, 7, seed=2)
    _trust_files(monkeypatch, "fashion-mnist", tmp_path / "root" / "fashion-mnist")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "root"))
    data = load_dataset("Fashion_MNIST", split)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.classes[9] == "Ankle boot"
    assert len(data) == 7
    with pytest.raises(ValueError, match="read-only"):
        data.images[0, 0, 0] = 1


def test_data_dir_comes_before_env_root(tmp_path, monkeypatch):
    first, _ = _fake_mnist(tmp_path / "explicit" / "mnist", "test", 4, seed=3)
    _fake_mnist(tmp_path / "env" / "mnist", "test", 4, seed=4)
    _trust_files(monkeypatch, "mnist", tmp_path / "explicit" / "mnist")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    np.testing.assert_array_equal(
        load_dataset("mnist", "test", data_dir=tmp_path / "explicit").images, first
    )


def test_truncated_gz_names_file_and_expected_hash(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    _fake_mnist(folder, "test", 6, seed=5)
    _trust_files(monkeypatch, "mnist", folder)
    path = folder / "t10k-images-idx3-ubyte.gz"
    expected = REGISTRY["mnist"].files["test_images"].sha256
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match=rf"t10k-images-idx3-ubyte.gz.*{expected}"):
        load_dataset("mnist", "test", data_dir=folder)


# --- CIFAR-10 -----------------------------------------------------------------------------


def test_cifar_archive_round_trip_channel_last(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10"
    folder.mkdir()
    content = _fake_cifar_archive(folder / "cifar-10-python.tar.gz")
    _trust_files(monkeypatch, "cifar-10", folder)
    train = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert train.images.shape == (15, 32, 32, 3)
    flat = np.concatenate([content[f"data_batch_{i}"][0] for i in range(1, 6)])
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
    assert train.images[4, 2, 5, 1] == flat[4, 1024 + 2 * 32 + 5]
    np.testing.assert_array_equal(train.images[:, :, :, 2].reshape(15, -1), flat[:, 2048:])
    np.testing.assert_array_equal(
        train.labels, np.concatenate([content[f"data_batch_{i}"][1] for i in range(1, 6)])
    )
    test = load_dataset("cifar-10", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(test.labels, content["test_batch"][1])
    assert test.classes[0] == "airplane"


def test_cifar_extracted_folder_round_trip(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    content = _fake_cifar_archive(archive, seed=6)
    extracted = tmp_path / "cifar-10" / "cifar-10-batches-py"
    extracted.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        for member in tar:
            (extracted / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    data = load_dataset("cifar-10", "test", data_dir=tmp_path / "cifar-10" / "cifar-10-batches-py")
    data_flat = data.images.transpose(0, 3, 1, 2).reshape(3, -1)
    np.testing.assert_array_equal(data_flat, content["test_batch"][0])


def test_cifar_batch_refuses_foreign_pickle_globals(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(ValueError, match="refusing to load global"):
        load_dataset("cifar-10", "test", data_dir=folder)


# --- downloads from a local server -------------------------------------------------------


def _files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_download_into_cache_then_reuse(http_root, isolated, tmp_path, monkeypatch):
    cache = isolated[1]
    served = http_root / "cifar-10"
    served.mkdir()
    content = _fake_cifar_archive(served / "cifar-10-python.tar.gz", seed=7)
    _trust_files(monkeypatch, "cifar-10", served)
    data = load_dataset("cifar-10", "test")
    np.testing.assert_array_equal(data.labels, content["test_batch"][1])
    assert _files_in(cache) == ["cifar-10-python.tar.gz"]
    (served / "cifar-10-python.tar.gz").unlink()
    again = load_dataset("cifar-10", "test")
    np.testing.assert_array_equal(again.images, data.images)


def test_download_of_mnist_files_uses_folder_layout(http_root, isolated, monkeypatch):
    images, labels = _fake_mnist(http_root / "mnist", "test", 3, seed=8)
    _trust_files(monkeypatch, "mnist", http_root / "mnist")
    data = load_dataset("mnist", "test")
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, labels)
    assert _files_in(isolated[1]) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_bad_download_raises_and_keeps_nothing(damage, http_root, isolated, monkeypatch):
    served = http_root / "cifar-10" / "cifar-10-python.tar.gz"
    served.parent.mkdir()
    _fake_cifar_archive(served, seed=9)
    _trust_files(monkeypatch, "cifar-10", served.parent)
    raw = served.read_bytes()
    if damage == "truncated":
        served.write_bytes(raw[: len(raw) // 2])
    else:
        served.write_bytes(raw[:100] + bytes([raw[100] ^ 0xFF]) + raw[101:])
    expected = REGISTRY["cifar-10"].files["archive"].sha256
    with pytest.raises(ValueError, match=rf"cifar-10-python.tar.gz.*{expected}"):
        load_dataset("cifar-10", "train")
    assert _files_in(isolated[1]) == []


def test_missing_data_without_network_says_where_to_put_files(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as caught:
        load_dataset("mnist", "test", data_dir=tmp_path / "mine")
    message = str(caught.value)
    assert "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in message
    for folder in (tmp_path / "mine", tmp_path / "nowhere" / "mnist", isolated[1] / "mnist"):
        assert str(folder) in message
    assert DATA_ENV in message
    assert "127.0.0.1" in message
    assert "\n" not in message
    assert _files_in(tmp_path) == []


def test_missing_cifar_message_names_archive_and_folder(isolated):
    with pytest.raises(DataNotFoundError, match=r"cifar-10-python\.tar\.gz or the extracted"):
        load_dataset("cifar-10", "test")


# --- registry and helpers ------------------------------------------------------------------


def test_registry_pins_official_files():
    for info in REGISTRY.values():
        assert info.urls
        assert all(url.endswith("/") for url in info.urls)
        for entry in info.files.values():
            assert isinstance(entry, RemoteFile)
            assert len(entry.sha256) == 64
            assert int(entry.sha256, 16) >= 0
    assert REGISTRY["cifar-10"].files["archive"].sha256.startswith("6d958be0")
    assert REGISTRY["mnist"].files["train_images"].sha256.startswith("440fcabf")


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="known data sets: cifar-10, fashion-mnist, mnist"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("mnist", "validation")


def test_as_float_scales_to_unit_interval():
    pixels = np.array([[0, 51, 255]], dtype=np.uint8)
    scaled = as_float(pixels)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[0.0, 0.2, 1.0]])
    assert as_float(pixels, np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="uint8"):
        as_float(scaled)


def test_find_dataset_looks_locally_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("NTKLC_DATA", str(tmp_path / "none"))
    monkeypatch.setattr("nets.data.default_cache_dir", lambda: tmp_path / "cache")
    info = get_dataset_info("mnist")
    folder = tmp_path / "mnist"
    folder.mkdir()
    names = [e.name for e in info.files.values()]
    for name in names[:-1]:
        (folder / name).write_bytes(b"")
    assert find_dataset("mnist", tmp_path) is None  # one file missing
    (folder / names[-1]).write_bytes(b"")
    assert find_dataset("mnist", tmp_path) == folder
    extracted = tmp_path / "cifar-10" / "cifar-10-batches-py"
    extracted.mkdir(parents=True)
    assert find_dataset("cifar-10", tmp_path) is None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (extracted / name).write_bytes(b"")
    assert find_dataset("cifar-10", tmp_path) == tmp_path / "cifar-10"
