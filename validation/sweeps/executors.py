"""Where tasks run: a local process pool, or a ``dask.distributed`` cluster.

Both take the same task list and yield ``(index, outcome)`` as tasks finish, in any order.
Each task runs through :func:`execute_task` with the same number of BLAS and Numba threads
(the spec's ``threads``, 1 by default) wherever it runs, so its numbers do not depend on the
executor or on the number of workers: N single-threaded workers fill N cores without
oversubscribing them.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ntklc.errors import InputError, RunError
from validation.sweeps.spec import Task

__all__ = ["dask_tasks", "execute_task", "local_tasks", "shared_workers"]

# The pool of :func:`shared_workers` while its block runs: (pool, workers).
_SHARED: tuple[ProcessPoolExecutor, int] | None = None



def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _limit_numba(threads: int) -> None:
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def _undo_malloc_trim() -> None:
    """Give glibc's allocator back its large-array reuse under a dask nanny.

    The nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also turns off
    glibc's dynamic mmap threshold: every kernel-sized array is then a fresh mmap whose pages
    fault in on first touch, and tasks run ~1.7x slower (``benchmarks/bench_sweep.py``).
    Fixed thresholds at the top of glibc's own dynamic range restore the default behaviour.
    """
    if not os.environ.get("MALLOC_TRIM_THRESHOLD_") or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to undo
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
    libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)


def execute_task(task: Task, threads: int = 1) -> dict:
    """Run one task with ``threads`` BLAS / Numba threads; never raises for the task's errors.

    Returns:
        ``{"status": "ok", "metrics": {...}}`` or
        ``{"status": "failed", "error": "Type: message", "traceback": "..."}``, plus
        ``seconds`` (wall time) and ``worker``.
    """
    # SciPy ships its own OpenBLAS: load it before limiting the pools, or a task that first
    # imports scipy.linalg inside the limit keeps its default thread count (and other bits).
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    from validation.experiments.tasks import EXPERIMENTS

    _undo_malloc_trim()
    start = time.perf_counter()
    _limit_numba(threads)
    try:
        with threadpool_limits(limits=threads):
            metrics = EXPERIMENTS[task.experiment].run(dict(task.params), task.seed)
        outcome = {"status": "ok", "metrics": metrics}
    except Exception as exc:  # a task's failure is a result to record, not a crash
        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc(limit=-8)}
    return {**outcome, "seconds": time.perf_counter() - start, "worker": _worker_name()}


def local_tasks(tasks: Sequence[Task], workers: int, threads: int = 1
                ) -> Iterator[tuple[int, dict]]:
    """Run ``tasks`` on a pool of ``workers`` fresh processes; yield outcomes as they finish.

    Processes are spawned, not forked: a fork of a process whose BLAS already started threads
    can deadlock. As with any spawned pool, a script that calls this must guard its entry point
    with ``if __name__ == "__main__":``. Closing the generator (Ctrl-C in the caller) cancels
    the queued tasks.
    """
    if not tasks:
        return
    shared = _SHARED is not None and _SHARED[1] == workers
    pool = _SHARED[0] if shared else _new_pool(workers)
    pending = {}
    try:
        pending = {pool.submit(execute_task, t, threads): i for i, t in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    raise RunError("a worker process died (killed, or out of memory); the "
                                       "finished tasks are cached: rerun to resume") from None
                yield index, outcome
    finally:
        if shared:
            # Interrupted: drop this sweep's queue; shared_workers ends the pool.
            for future in pending:
                future.cancel()
        else:
            # Interrupted: drop the queue and leave the running tasks to die with their
            # workers.
            pool.shutdown(wait=not pending, cancel_futures=True)


def _new_pool(workers: int) -> ProcessPoolExecutor:
    # No thread variables in the environment: a spawned worker has loaded BLAS and Numba by
    # the time it could set them, and Numba refuses a changed NUMBA_NUM_THREADS when it
    # compiles. execute_task limits the threads at run time instead.
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))


@contextlib.contextmanager
def shared_workers(workers: int) -> Iterator[None]:
    """Inside the block, every :func:`local_tasks` call with ``workers`` workers (every local
    sweep of that size) reuses one pool of processes.

    An experiment that runs many small sweeps then pays the workers' start (interpreter,
    imports, Numba's cached code, data loaded once per process: ~3 s each) once instead of
    once per sweep. Tasks still run through :func:`execute_task`, so their numbers do not
    change. Not reentrant.
    """
    global _SHARED
    if _SHARED is not None:
        raise RuntimeError("shared_workers is not reentrant")
    pool = _new_pool(workers)
    _SHARED = (pool, workers)
    finished = False
    try:
        yield
        finished = True
    finally:
        _SHARED = None
        pool.shutdown(wait=finished, cancel_futures=True)


def dask_tasks(tasks: Sequence[Task], address: str, threads: int = 1
               ) -> Iterator[tuple[int, dict]]:
    """Run ``tasks`` on the ``dask.distributed`` scheduler at ``address``.

    Dask itself reschedules the tasks of a lost worker; a task that keeps killing workers ends
    as ``failed`` with dask's error. The workers need ``ntklc`` installed (``pip install
    ntklc[distributed]``).

    Raises:
        InputError: dask.distributed is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError("--scheduler needs dask.distributed: pip install "
                         "'ntklc[distributed]'") from None
    if not tasks:
        return
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise InputError(f"cannot reach the dask scheduler at {address}: {exc}") from None
    try:
        futures = {client.submit(execute_task, t, threads, key=f"ntklc-{t.experiment}-{t.key}",
                                 pure=False): i for i, t in enumerate(tasks)}
        for future in as_completed(futures):
            index = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # e.g. KilledWorker: the task took down its workers
                outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                           "seconds": float("nan"), "worker": "dask"}
            yield index, outcome
    finally:
        client.close()
