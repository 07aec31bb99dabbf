"""Loaders for MNIST, Fashion-MNIST (IDX `.gz` files) and CIFAR-10 (python pickle batches).

Files are looked up, in order, in the `data_dir` argument (the data set's folder itself or a
data root holding it), in `$NTKLC_DATA/<folder>`, then in the user cache
`pooch.os_cache("ntklc")/<folder>`; when none has them they are downloaded into the cache and
checked against the SHA-256 digests of `nets.datasets`. Every file read is checked too, so a
truncated or corrupted copy is reported instead of being parsed into garbage.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import logging
import math
import os
import pickle
import struct
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pooch
import requests

from nets.datasets import CACHE_NAME, DATA_ENV, URL_ENV, DatasetInfo, RemoteFile, get_dataset_info
from ntklc.errors import DataNotFoundError, InputError

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CIFAR_SIDE = 32
_DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20

# IDX type codes (third magic byte); all multi-byte values are big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of an image-classification data set, held in memory as read-only arrays.

    Attributes:
        name: Canonical data set name ("mnist", "fashion-mnist", "cifar-10").
        split: "train" or "test".
        images: uint8 pixels in [0, 255]; shape (N, 28, 28) for MNIST and Fashion-MNIST
            (row-major, as in the IDX files) and (N, 32, 32, 3) for CIFAR-10 (height, width,
            RGB channel last).
        labels: int64 class indices in [0, len(classes)), shape (N,).
        classes: Class names; label `k` means `classes[k]`.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.labels.dtype != np.int64:
            raise TypeError(
                f"{self.name}: images must be uint8 and labels int64, "
                f"got {self.images.dtype} and {self.labels.dtype}"
            )
        if self.labels.ndim != 1 or self.images.shape[0] != self.labels.shape[0]:
            raise InputError(
                f"{self.name}: {self.images.shape[0]} images but labels of shape "
                f"{self.labels.shape}"
            )
        if self.labels.size and not 0 <= self.labels.min() <= self.labels.max() < len(self.classes):
            raise InputError(
                f"{self.name}: labels outside [0, {len(self.classes)}): "
                f"min {self.labels.min()}, max {self.labels.max()}"
            )
        # A frozen dataclass whose arrays could be edited in place would not be frozen.
        self.images.flags.writeable = False
        self.labels.flags.writeable = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def as_float(images: np.ndarray, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """Scale uint8 pixels to floats in [0, 1]: x / 255, same shape.

    Args:
        images: uint8 array of any shape, e.g. `Dataset.images`.
        dtype: Floating type of the result (float32 for training, float64 for theory).

    Returns:
        A new array of `dtype` with the shape of `images`.

    Raises:
        TypeError: If `images` is not uint8 (scaling anything else by 1/255 is a silent bug).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"as_float expects uint8 pixels, got {images.dtype}")
    return np.true_divide(images, 255, dtype=dtype)


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an (uncompressed) IDX file.

    The header is two zero bytes, a type code, the number of dimensions `d`, then `d`
    big-endian uint32 sizes; the big-endian values follow in row-major order.

    Args:
        raw: The whole file content.
        source: Name used in error messages.

    Returns:
        A writable array in native byte order with the shape given by the header.

    Raises:
        InputError: If the magic number is wrong or the length disagrees with the header.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise InputError(f"{source}: not an IDX file (magic bytes {raw[:4].hex() or 'none'})")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise InputError(f"{source}: IDX header truncated ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = offset + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise InputError(
            f"{source}: IDX header {shape} needs {expected} bytes but the file has {len(raw)} "
            "(truncated or corrupted)"
        )
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed when its name ends in `.gz`; no hash check.

    Args:
        path: File to read.

    Returns:
        The decoded array (see `parse_idx`).

    Raises:
        InputError: If the file is not a valid (gzip-compressed) IDX file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = _gunzip(raw, path)
    return parse_idx(raw, str(path))


def default_cache_dir() -> Path:
    """Return the per-user download cache, `pooch.os_cache("ntklc")` (not created here)."""
    return Path(pooch.os_cache(CACHE_NAME))


def load_dataset(
    name: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None
) -> Dataset:
    """Load one split of MNIST, Fashion-MNIST or CIFAR-10, downloading it if needed.

    Lookup order: `data_dir` (the data set's folder itself, or a root holding `mnist/`,
    `fashion-mnist/`, `cifar-10/`), then `$NTKLC_DATA/<folder>`, then the user cache
    `default_cache_dir()/<folder>`. MNIST-type folders hold the four standard IDX `.gz` files;
    a CIFAR-10 folder holds `cifar-10-python.tar.gz` or the extracted `cifar-10-batches-py/`.
    Missing files are downloaded into the cache from the hosts of `nets.datasets` (or from
    `$NTKLC_DATA_URL/<folder>/`), and only kept when their SHA-256 matches.

    Args:
        name: "mnist", "fashion-mnist" or "cifar-10".
        split: "train" (60000 or 50000 images) or "test" (10000 images).
        data_dir: Optional folder searched first.

    Returns:
        The split as a `Dataset` (see its docstring for the array layouts).

    Raises:
        InputError: Unknown name or split, a file whose SHA-256 does not match the registry
            (the message names the file and the expected digest), or malformed content.
        DataNotFoundError: The files are nowhere and could not be downloaded; the message
            lists the folders searched and the expected layout.
    """
    info = get_dataset_info(name)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {SPLITS}")
    folders = _search_folders(info, data_dir)
    if info.name == "cifar-10":
        images, labels = _load_cifar(info, split, folders)
    else:
        images, labels = _load_idx_pair(info, split, folders)
    return Dataset(info.name, split, images, labels, info.classes)


def find_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The local folder holding both splits of a data set, or ``None``; never downloads.

    Searches as :func:`load_dataset` does (``data_dir``, ``$NTKLC_DATA``, the user cache), so
    a caller can skip an experiment on a machine without the files instead of waiting for a
    download that cannot succeed.
    """
    info = get_dataset_info(name)
    for folder in _search_folders(info, data_dir):
        if info.name == "cifar-10":
            batches = [b for split in SPLITS for b in _CIFAR_BATCHES[split]]
            if (folder / info.files["archive"].name).is_file() or _extracted_cifar(folder,
                                                                                   batches):
                return folder
        elif _holds(folder, [e.name for e in info.files.values()]):
            return folder
    return None


def _holds(folder: Path, names: Sequence[str]) -> bool:
    """Every one of the files ``names`` is in ``folder``."""
    return all((folder / name).is_file() for name in names)


def _extracted_cifar(folder: Path, batches: Sequence[str]) -> Path | None:
    """The extracted `cifar-10-batches-py/` holding ``batches``: ``folder`` itself or inside."""
    return next((d for d in (folder / _CIFAR_DIR, folder) if _holds(d, batches)), None)


def _search_folders(info: DatasetInfo, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Folders that may hold the data set, in lookup order; the cache (download target) last."""
    folders = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        folders += [root, root / info.folder]
    env_root = os.environ.get(DATA_ENV)
    if env_root:
        folders.append(Path(env_root).expanduser() / info.folder)
    folders.append(default_cache_dir() / info.folder)
    return folders


def _load_idx_pair(
    info: DatasetInfo, split: str, folders: Sequence[Path]
) -> tuple[np.ndarray, np.ndarray]:
    image_file = info.files[f"{split}_images"]
    label_file = info.files[f"{split}_labels"]
    wanted = (image_file, label_file)
    folder = next((f for f in folders if _holds(f, [e.name for e in wanted])), None)
    if folder is None:
        folder = folders[-1]
        _download(info, wanted, folder, folders, split)
    logger.info("loading %s %s from %s", info.name, split, folder)
    images = parse_idx(_verified_gunzip(folder / image_file.name, image_file), image_file.name)
    labels = parse_idx(_verified_gunzip(folder / label_file.name, label_file), label_file.name)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
        raise InputError(
            f"{folder}: expected uint8 images (N, H, W) and labels (N,), got {images.dtype} "
            f"{images.shape} and {labels.shape}"
        )
    return images, labels.astype(np.int64)


def _load_cifar(
    info: DatasetInfo, split: str, folders: Sequence[Path]
) -> tuple[np.ndarray, np.ndarray]:
    batches = _CIFAR_BATCHES[split]
    archive = info.files["archive"]
    raw_batches = None
    for folder in folders:
        extracted = _extracted_cifar(folder, batches)
        if extracted is not None:
            logger.info("loading %s %s from %s", info.name, split, extracted)
            raw_batches = {b: (extracted / b).read_bytes() for b in batches}
            break
        if (folder / archive.name).is_file():
            raw_batches = _read_cifar_archive(folder / archive.name, archive, batches)
            break
    if raw_batches is None:
        _download(info, (archive,), folders[-1], folders, split)
        raw_batches = _read_cifar_archive(folders[-1] / archive.name, archive, batches)
    parsed = [_parse_cifar_batch(raw_batches[b], b) for b in batches]
    flat = np.concatenate([data for data, _ in parsed])
    labels = np.concatenate([lab for _, lab in parsed])
    # Each row is three 32x32 planes (R, G, B); channel-last is what image code expects.
    images = flat.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_cifar_archive(path: Path, entry: RemoteFile, batches: Sequence[str]) -> dict[str, bytes]:
    _verify_file(path, entry)
    logger.info("reading %s from %s", ", ".join(batches), path)
    wanted = {f"{_CIFAR_DIR}/{b}": b for b in batches}
    found = {}
    # One sequential pass: seeking back in a gzip stream would decompress it again.
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                stream = tar.extractfile(member)
                if stream is not None:
                    found[wanted[member.name]] = stream.read()
    missing = [b for b in batches if b not in found]
    if missing:
        raise InputError(f"{path}: archive lacks {', '.join(f'{_CIFAR_DIR}/{b}' for b in missing)}")
    return found


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds only NumPy arrays, lists and bytes.

    A pickle can run arbitrary code; the CIFAR-10 batches need nothing beyond array
    reconstruction, so any other global is refused.
    """

    # The callable NumPy itself uses to rebuild arrays, found without naming `numpy.core`
    # (deprecated in NumPy 2) or `numpy._core` (absent in NumPy 1).
    _RECONSTRUCT = np.empty(0).__reduce__()[0]
    _ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 protocol-2 pickles encode bytes through codecs.encode.
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _parse_cifar_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR-10 batch: a dict with b"data" (N, 3072) uint8 and b"labels" (N,)."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError) as error:
        raise InputError(f"{source}: not a CIFAR-10 batch ({error})") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise InputError(f"{source}: not a CIFAR-10 batch (no b'data' and b'labels' keys)")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _CIFAR_SIDE**2:
        raise InputError(
            f"{source}: b'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise InputError(f"{source}: {data.shape[0]} images but {labels.shape} labels")
    return data, labels


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _corrupt(path: Path, entry: RemoteFile, reason: str) -> InputError:
    expected = f"sha256 {entry.sha256}"
    if entry.content_sha256 is not None:
        expected += f" (or decompressed content sha256 {entry.content_sha256})"
    return InputError(
        f"{path}: corrupted or truncated file ({reason}); expected {expected}. "
        "Delete it to download it again, or replace it with the official file."
    )


def _verify_file(path: Path, entry: RemoteFile) -> None:
    actual = _sha256(path)
    if actual != entry.sha256:
        raise _corrupt(path, entry, f"sha256 is {actual}")


def _gunzip(raw: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{path}: not a complete gzip file ({error})") from error


def _verified_gunzip(path: Path, entry: RemoteFile) -> bytes:
    """Return the decompressed content of `path` after checking it against the registry.

    The file passes if it is the published file or, for re-compressed copies, if its
    decompressed content is the published content.
    """
    raw = path.read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if actual == entry.sha256:
        return _gunzip(raw, path)
    try:
        content = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise _corrupt(path, entry, f"sha256 is {actual}, not a complete gzip file") from error
    content_hash = hashlib.sha256(content).hexdigest()
    if content_hash != entry.content_sha256:
        raise _corrupt(path, entry, f"sha256 is {actual}, decompressed sha256 is {content_hash}")
    return content


def _base_urls(info: DatasetInfo) -> tuple[str, ...]:
    override = os.environ.get(URL_ENV)
    if override:
        return (f"{override.rstrip('/')}/{info.folder}/",)
    return info.urls


def _download(
    info: DatasetInfo,
    entries: Sequence[RemoteFile],
    target: Path,
    searched: Sequence[Path],
    split: str,
) -> None:
    """Download the files missing from `target`, trying each base URL in turn.

    pooch writes to a temporary file in `target` and moves it into place only when its
    SHA-256 matches, so a failed or corrupted download leaves nothing behind.
    """
    downloader = pooch.HTTPDownloader(progressbar=False, timeout=_DOWNLOAD_TIMEOUT_S)
    for entry in entries:
        if (target / entry.name).is_file():
            continue
        failures = []
        for base in _base_urls(info):
            url = base + entry.name
            logger.info("downloading %s into %s", url, target)
            try:
                pooch.retrieve(
                    url,
                    known_hash=f"sha256:{entry.sha256}",
                    fname=entry.name,
                    path=target,
                    downloader=downloader,
                )
                break
            except ValueError as error:
                raise InputError(
                    f"{url}: downloaded {entry.name} does not match the expected sha256 "
                    f"{entry.sha256} (truncated or corrupted); nothing was kept"
                ) from error
            except (requests.RequestException, OSError) as error:
                logger.warning("download of %s failed: %s", url, error)
                failures.append(f"{url}: {error}")
        else:
            raise DataNotFoundError(_missing_message(info, split, searched, failures))


def _missing_message(
    info: DatasetInfo, split: str, searched: Sequence[Path], failures: Sequence[str]
) -> str:
    if info.name == "cifar-10":
        expected = f"{info.files['archive'].name} or the extracted {_CIFAR_DIR}/ folder"
    else:
        expected = ", ".join(info.files[f"{split}_{kind}"].name for kind in ("images", "labels"))
    folders = ", ".join(str(f) for f in dict.fromkeys(searched))
    return (
        f"{info.name} {split} data not found and not downloadable. Put {expected} in one of: "
        f"{folders} (or set {DATA_ENV} to a folder holding {info.folder}/). "
        f"Download errors: {'; '.join(failures)}"
    )
