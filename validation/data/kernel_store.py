"""Exact kernels beyond memory: tiles computed on a process pool or a dask cluster, stored on
disk atomically, and read back as a ``scipy.sparse.linalg.LinearOperator``.

A store is a folder:

- ``meta.json``: what the tiles are the kernels of (n, tile size, storage dtype, kernels,
  activations, tau0, tol and the SHA-256 of the data X). Opening a folder made for other data
  or parameters is an error, never a silent mix.
- ``<kernel>_<I>_<J>.<crc>.npy`` for the tiles I >= J of the lower triangle (rows I * tile ..,
  columns J * tile ..; the kernel is symmetric), ``crc`` the CRC-32 of the file's bytes. Each is
  written to a temporary file, flushed, then renamed, so a tile exists whole or not at all: a
  killed worker or a Ctrl-C loses only unfinished tiles, and a rerun computes only the missing
  ones. A tile whose bytes do not match its CRC (a crash of the disk, a copy) is reported,
  removed and recomputed.

Tiles are computed by ``ntk.tiles.kernel_tile`` from one ``ntk.tiles.KernelPlan``: in this
process (Numba's threads on every core), on a pool of ``workers`` processes (one thread each,
the plan and X sent once per process), or on a ``dask.distributed`` scheduler (plan and X
scattered once to every worker). Tiles come back to this process, which alone writes the
store, so the workers need no shared file system.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import re
import shutil
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ntk import progress_bar
from ntk.cnn_exact import cnn_plan
from ntk.exact import mirror_lower
from ntk.tiles import FullyConnectedTiles, check_portable, kernel_plan
from ntklc.errors import InputError
from validation.data.atomic import atomic_write

__all__ = ["TILE_DTYPES", "KernelStore", "StoredKernel", "TiledKernels", "tiled_cnn_kernels",
           "tiled_exact_kernels", "tiled_kernels"]

_FORMAT = 1
#: Storage types of the tiles.
TILE_DTYPES = ("float64", "float32")
_TILE_NAME = re.compile(r"^(ck|ntk)_(\d+)_(\d+)\.([0-9a-f]{8})\.npy$")


def _crc(path: Path) -> str:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def data_fingerprint(X: np.ndarray) -> str:
    """SHA-256 of the float64 bytes of X (p, n) in C order, and of its shape."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    digest = hashlib.sha256(repr(X.shape).encode())
    for row in X:
        digest.update(row.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class KernelStore:
    """The tile folder ``root`` of the kernels described by ``meta`` (see the module doc)."""

    root: Path
    meta: dict

    @classmethod
    def open(cls, root: str | Path, meta: dict) -> KernelStore:
        """Create the store, or reopen it when it holds the same kernels.

        Raises:
            InputError: ``root`` holds the tiles of other data or parameters, or an unreadable
                ``meta.json``.
        """
        root = Path(root)
        meta = {"format": _FORMAT, **meta}
        path = root / "meta.json"
        if path.exists():
            try:
                found = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"{path}: not a kernel store's meta.json ({exc})") from None
            expected = json.loads(json.dumps(meta))  # as read back (tuples become lists)
            if found != expected:
                differ = sorted(k for k in set(found) | set(expected)
                                if found.get(k) != expected.get(k))
                raise InputError(f"{root} holds the tiles of another kernel (different "
                                 f"{', '.join(differ)}); give another folder or remove it")
        else:
            root.mkdir(parents=True, exist_ok=True)
            atomic_write(path, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
        return cls(root=root, meta=meta)

    @property
    def n(self) -> int:
        return self.meta["n"]

    @property
    def tile(self) -> int:
        return self.meta["tile"]

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """The tiles (I, J), I >= J, of the lower triangle, row by row."""
        count = -(-self.n // self.tile)
        return [(i, j) for i in range(count) for j in range(i + 1)]

    def span(self, block: int) -> slice:
        return slice(block * self.tile, min(self.n, (block + 1) * self.tile))

    def size(self, block: int) -> int:
        """The number of samples in :meth:`span`."""
        return min(self.n, (block + 1) * self.tile) - block * self.tile

    def tiles(self) -> dict[tuple[str, int, int], Path]:
        """The stored tiles by (kernel, I, J), unverified."""
        found = {}
        for path in self.root.iterdir():
            match = _TILE_NAME.match(path.name)
            if match:
                found[(match[1], int(match[2]), int(match[3]))] = path
        return found

    def verify(self) -> tuple[set[tuple[str, int, int]], list[str]]:
        """Check every stored tile against its CRC, shape and dtype; remove the bad ones and
        the temporaries of an interrupted run. One process writes a store at a time.

        Returns:
            The good tiles' keys, and one message per removed tile.
        """
        # Temporaries of a killed run (one writer per store: none is in use now).
        for tmp in self.root.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        good, removed = set(), []
        for key, path in self.tiles().items():
            _, i, j = key
            problem = None
            if _TILE_NAME.match(path.name)[4] != _crc(path):
                problem = "CRC mismatch"
            else:
                try:
                    tile = np.load(path, mmap_mode="r")
                    shape = (self.size(i), self.size(j))
                    if tile.shape != shape or tile.dtype != np.dtype(self.meta["dtype"]):
                        problem = f"shape {tile.shape} {tile.dtype}, expected {shape}"
                    del tile
                except (OSError, ValueError, EOFError) as exc:
                    problem = f"unreadable ({exc})"
            if problem:
                path.unlink(missing_ok=True)
                removed.append(f"{path.name}: {problem}; recomputed")
            else:
                good.add(key)
        return good, removed

    def write(self, kernel: str, i: int, j: int, tile: np.ndarray) -> Path:
        """Store one tile atomically (cast to the store's dtype)."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(tile, dtype=self.meta["dtype"]))
        data = buffer.getbuffer()
        path = self.root / f"{kernel}_{i:04d}_{j:04d}.{zlib.crc32(data):08x}.npy"
        atomic_write(path, data)
        return path

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.tiles().values())


class StoredKernel(LinearOperator):
    """A symmetric kernel stored as tiles, as a LinearOperator: each product streams the tiles
    from disk (one tile in memory at a time, memory-mapped and released), O(n^2) reads.

    Products run in the tiles' dtype and accumulate in float64: with float32 tiles they carry
    ~1e-7 relative rounding, the tiles' own.

    Attributes:
        on_product: called with the number of vectors after each product (e.g. a progress
            bar's ``update``), or ``None``.
    """

    def __init__(self, store: KernelStore, kernel: str):
        super().__init__(dtype=np.float64, shape=(store.n, store.n))
        self.store = store
        self.kernel = kernel
        self.on_product = None
        tiles = store.tiles()
        missing = [b for b in store.blocks if (kernel, *b) not in tiles]
        if missing:
            raise InputError(f"{store.root}: {len(missing)} tiles of the {kernel} missing")
        self._paths = {b: tiles[(kernel, *b)] for b in store.blocks}

    def _matvec(self, x):
        return self._matmat(np.asarray(x).reshape(-1, 1)).ravel()

    def _matmat(self, V):
        V = np.asarray(V, dtype=np.float64)
        dtype = np.dtype(self.store.meta["dtype"])
        low = V.astype(dtype, copy=False)
        out = np.zeros((self.shape[0], V.shape[1]))
        for (i, j), path in self._paths.items():
            rows, cols = self.store.span(i), self.store.span(j)
            tile = np.load(path, mmap_mode="r")
            out[rows] += tile @ low[cols]
            if i != j:
                out[cols] += tile.T @ low[rows]
            del tile
        if self.on_product is not None:
            self.on_product(V.shape[1])
        return out

    def _adjoint(self):
        return self


@dataclass(frozen=True)
class TiledKernels:
    """The kernels of :func:`tiled_exact_kernels`.

    Attributes:
        ck, ntk: :class:`StoredKernel` operators (``ntk`` is ``None`` unless requested).
        store: the tile folder.
        computed: tiles computed by this call (the others came from the store).
        removed: messages about damaged tiles found and recomputed.
        seconds: wall time of the call.
        tau0: the input scale of the centring chain.
    """

    ck: StoredKernel
    ntk: StoredKernel | None
    store: KernelStore
    computed: int
    removed: tuple[str, ...]
    seconds: float
    tau0: float


def tiled_exact_kernels(X: np.ndarray, acts, root: str | Path, *, tau0: float | None = None,
                        ntk: bool = False, tol: float = 1e-13, tile: int = 4096,
                        dtype: str = "float64", workers: int = 1, scheduler: str | None = None,
                        progress: bool = False) -> TiledKernels:
    """Exact CK_L (and NTK_L) of the columns of X (p, n), computed in tiles into ``root``.

    Equal to ``ntk.exact_kernels(X, acts, tau0, ntk=ntk, tol=tol)`` to ~1e-15 of the kernel
    scale with float64 tiles (``ntk.tiles``), to float32 rounding with float32 tiles. Resumes:
    tiles already in ``root`` (for the same X and parameters) are verified and kept.

    Args:
        X, acts, tau0, ntk, tol: as ``ntk.exact_kernels``.
        root: the store folder (created if missing).
        tile: tile side, >= 1 (a float64 tile of 4096 is 134 MB).
        dtype: ``float64`` or ``float32`` storage.
        workers: processes computing tiles (1: in this process, on every core).
        scheduler: address of a ``dask.distributed`` scheduler (``tcp://host:8786``) instead.
        progress: a progress bar of the tiles on stderr.

    Raises:
        InputError: bad arguments, ``root`` holding another kernel, a disk too small, or an
            unreachable scheduler.
    """
    _check_options(tile, dtype, workers)
    X = np.ascontiguousarray(X, dtype=np.float64)
    plan = kernel_plan(X, acts, tau0, ntk=ntk, tol=tol)
    meta = {"network": "fully connected", "activations": [a.name for a in plan.acts],
            "tau0": plan.tau0, "tol": tol, "data_sha256": data_fingerprint(X)}
    if workers > 1 or scheduler is not None:
        check_portable(plan.acts)
    return tiled_kernels(FullyConnectedTiles(X, plan), root, meta, tile=tile, dtype=dtype,
                         workers=workers, scheduler=scheduler, progress=progress)


def tiled_cnn_kernels(images: np.ndarray, acts, root: str | Path, *, filter_size: int = 3,
                      padding: str = "same", pool=(), readout: str = "flatten",
                      ntk: bool = False, centring=False, tol: float = 1e-13, tile: int = 4096,
                      dtype: str = "float64", workers: int = 1, scheduler: str | None = None,
                      progress: bool = False) -> TiledKernels:
    """Exact CK (and NTK) of an infinitely wide CNN on ``images`` (n, C, H, W), in tiles.

    The network and its arguments are those of ``ntk.cnn_kernels``, the tiling and the store
    those of :func:`tiled_exact_kernels`; each tile runs its image pairs through
    ``ntk.cnn_exact.CNNPlan.tile`` (the same arithmetic as ``cnn_kernels``: equal to ~1e-16).
    A worker process or dask worker rebuilds the plan from its arguments (the self pass, O(n)).

    Raises:
        InputError: as ``ntk.cnn_kernels`` and :func:`tiled_exact_kernels`.
    """
    _check_options(tile, dtype, workers)
    images = np.ascontiguousarray(images, dtype=np.float64)
    plan = cnn_plan(images, acts, filter_size=filter_size, padding=padding, pool=pool,
                    readout=readout, ntk=ntk, centring=centring, tol=tol)
    arch = plan.engine.arch
    meta = {"network": "cnn", "activations": [a.name for a in plan.layers],
            "architecture": {"filter_size": arch.filter_size, "padding": arch.padding,
                             "pool": list(arch.pool), "readout": arch.readout},
            "centring": list(plan.centring), "tol": tol,
            "data_sha256": data_fingerprint(images.reshape(images.shape[0], -1).T)}
    if workers > 1 or scheduler is not None:
        check_portable(plan.layers)
    return tiled_kernels(plan, root, meta, tile=tile, dtype=dtype, workers=workers,
                         scheduler=scheduler, progress=progress)


def _check_options(tile: int, dtype: str, workers: int) -> None:
    if dtype not in TILE_DTYPES:
        raise InputError(f"dtype must be one of {TILE_DTYPES}, got {dtype!r}")
    if tile < 1:
        raise InputError(f"tile must be >= 1, got {tile}")
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")


def tiled_kernels(source, root: str | Path, meta: dict, *, tile: int = 4096,
                  dtype: str = "float64", workers: int = 1, scheduler: str | None = None,
                  progress: bool = False) -> TiledKernels:
    """The kernels of ``source`` in tiles into ``root`` (the work of
    :func:`tiled_exact_kernels` and :func:`tiled_cnn_kernels`).

    Args:
        source: an object with ``n``, ``ntk``, ``tau0`` and ``tile(rows, cols) -> (CK, NTK or
            None)`` blocks, picklable for ``workers > 1`` or a ``scheduler``
            (``ntk.tiles.FullyConnectedTiles``, ``ntk.cnn_exact.CNNPlan``).
        meta: what the kernels are (stored in ``meta.json``; a folder made with other values
            is refused).
    """
    start = time.perf_counter()
    _check_options(tile, dtype, workers)
    kernels = ("ck", "ntk") if source.ntk else ("ck",)
    store = KernelStore.open(root, {"n": source.n, "tile": int(tile), "dtype": dtype,
                                    "kernels": list(kernels), **meta})
    good, removed = store.verify()
    todo = [b for b in store.blocks if any((k, *b) not in good for k in kernels)]
    _check_disk(store, todo, len(kernels))
    bar = progress_bar(total=len(store.blocks), initial=len(store.blocks) - len(todo),
                       desc="kernel tiles", unit="tile", disable=not progress)
    try:
        if scheduler is not None:
            results = _dask_tiles(source, store, todo, scheduler)
        elif workers > 1:
            results = _pool_tiles(source, store, todo, workers)
        else:
            results = ((b, _tile_task(source, store, b)) for b in todo)
        for (i, j), tiles in results:
            for kernel, values in zip(kernels, tiles, strict=True):
                store.write(kernel, i, j, values)
            bar.update()
    finally:
        bar.close()
    return TiledKernels(ck=StoredKernel(store, "ck"),
                        ntk=StoredKernel(store, "ntk") if source.ntk else None, store=store,
                        computed=len(todo), removed=tuple(removed),
                        seconds=time.perf_counter() - start, tau0=source.tau0)


def _check_disk(store: KernelStore, todo, kernels: int) -> None:
    """Refuse to start what the disk cannot hold."""
    itemsize = np.dtype(store.meta["dtype"]).itemsize
    need = kernels * itemsize * sum(store.size(i) * store.size(j) for i, j in todo)
    free = shutil.disk_usage(store.root).free
    if need > free:
        raise InputError(f"{store.root}: the missing tiles need {need / 1e9:.1f} GB, the disk "
                         f"has {free / 1e9:.1f} GB free (float32 tiles need half)")


def _tile_task(source, store: KernelStore, block: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """The tile ``block`` of every kernel of ``source``, in the store's dtype; a diagonal tile
    exactly symmetric (its lower triangle mirrored, as ``ntk.kernel_matrix`` does)."""
    ck, ntk = source.tile(store.span(block[0]), store.span(block[1]))
    tiles = (ck,) if ntk is None else (ck, ntk)
    if block[0] == block[1]:
        for tile in tiles:
            mirror_lower(tile)
    return tuple(t.astype(store.meta["dtype"], copy=False) for t in tiles)


# The worker processes' data and plan, set once per process by _init_worker.
_WORKER: dict = {}


def _init_worker(source, store) -> None:
    import numba

    numba.set_num_threads(1)
    _WORKER.update(source=source, store=store)


def _pool_task(block):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return block, _tile_task(_WORKER["source"], _WORKER["store"], block)


def _pool_tiles(source, store, todo, workers) -> Iterator:
    """Tiles computed on a pool of spawned processes (a fork of a process whose BLAS started
    threads can deadlock), each single-threaded; yielded as they finish."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(
        "spawn"), initializer=_init_worker, initargs=(source, store))
    pending = set()
    finished = False
    try:
        # At most two tiles queued per worker: finished tiles wait in this process's memory
        # only until they are written.
        queue = iter(todo)
        for block in queue:
            pending.add(pool.submit(_pool_task, block))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(_pool_task, nxt))
        finished = True
    finally:
        pool.shutdown(wait=finished, cancel_futures=True)


def _dask_task(source, store, block):
    return block, _tile_task(source, store, block)


def _dask_tiles(source, store, todo, address) -> Iterator:
    """Tiles computed on the dask scheduler at ``address``: the source (data and plan)
    scattered once to every worker; dask reschedules the tiles of a lost worker."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError("--scheduler needs dask.distributed: pip install "
                         "'ntklc[distributed]'") from None
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise InputError(f"cannot reach the dask scheduler at {address}: {exc}") from None
    try:
        # hash=False: dask's tokenizer would walk the plan's activations down into mpmath's
        # global context and break it for the rest of the process.
        [source_future] = client.scatter([source], broadcast=True, hash=False)
        futures = [client.submit(_dask_task, source_future, store, b, pure=False)
                   for b in todo]
        for future in as_completed(futures):
            yield future.result()
            future.release()
    finally:
        client.close()

