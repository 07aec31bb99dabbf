"""Registry of the image data sets: where they come from and what their bytes must hash to.

This is the only module that names download hosts and SHA-256 digests; `nets.data` reads it.
Every data set lives in one folder (`mnist/`, `fashion-mnist/`, `cifar-10/`) under a data root,
and the same layout is used below an overriding download URL (`NTKLC_DATA_URL`), so a local
mirror is a plain copy of a data root served over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from ntklc.errors import InputError

DATA_ENV = "NTKLC_DATA"
"""Environment variable naming a data root that holds `mnist/`, `fashion-mnist/`, `cifar-10/`."""

URL_ENV = "NTKLC_DATA_URL"
"""Environment variable replacing the official hosts; files are fetched from
`$NTKLC_DATA_URL/<folder>/<file name>`."""

CACHE_NAME = "ntklc"
"""Application name of the per-user download cache (`pooch.os_cache(CACHE_NAME)`)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set as its publisher distributes it.

    Attributes:
        name: File name, identical on every mirror and on disk.
        sha256: SHA-256 of the file exactly as published.
        content_sha256: SHA-256 of the decompressed payload of a `.gz` file, or None. Mirrors
            and offline copies often re-compress the same bytes (other gzip header, other
            level), which changes `sha256` but not this digest.
    """

    name: str
    sha256: str
    content_sha256: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """Where a data set comes from and how it is laid out.

    Attributes:
        name: Canonical name, e.g. "mnist".
        folder: Sub-folder of a data root (and of the cache) holding the files.
        urls: Base URLs of the official host and its mirrors, tried in order; each ends in "/".
        files: Files to download, keyed by role ("train_images", "test_labels", "archive").
        classes: Class names; label `k` means `classes[k]`.
    """

    name: str
    folder: str
    urls: tuple[str, ...]
    files: dict[str, RemoteFile]
    classes: tuple[str, ...]


MNIST = DatasetInfo(
    name="mnist",
    folder="mnist",
    # yann.lecun.com is the original host but now often refuses downloads; the two mirrors
    # (PyTorch's and TensorFlow's) serve byte-identical files.
    urls=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    files={
        "train_images": RemoteFile(
            "train-images-idx3-ubyte.gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train_labels": RemoteFile(
            "train-labels-idx1-ubyte.gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "test_images": RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "test_labels": RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    classes=tuple(str(digit) for digit in range(10)),
)

FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    folder="fashion-mnist",
    # The S3 website endpoint is the one Zalando documents; it speaks HTTP only, which is safe
    # because every download is checked against the digests below.
    urls=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
    files={
        "train_images": RemoteFile(
            "train-images-idx3-ubyte.gz",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train_labels": RemoteFile(
            "train-labels-idx1-ubyte.gz",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test_images": RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "test_labels": RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)

CIFAR10 = DatasetInfo(
    name="cifar-10",
    folder="cifar-10",
    urls=("https://www.cs.toronto.edu/~kriz/",),
    files={
        "archive": RemoteFile(
            "cifar-10-python.tar.gz",
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        ),
    },
    classes=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
)

REGISTRY: dict[str, DatasetInfo] = {info.name: info for info in (MNIST, FASHION_MNIST, CIFAR10)}
"""Known data sets by canonical name."""

_ALIASES = {"fashion": "fashion-mnist", "fashion_mnist": "fashion-mnist", "cifar10": "cifar-10"}


def get_dataset_info(name: str) -> DatasetInfo:
    """Return the registry entry of a data set.

    Args:
        name: "mnist", "fashion-mnist" or "cifar-10" (case-insensitive; "fashion_mnist" and
            "cifar10" are accepted too).

    Returns:
        The registry entry.

    Raises:
        InputError: If the name is unknown; the message lists the known names.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise InputError(f"unknown data set {name!r}; known data sets: {known}")
    return REGISTRY[key]
