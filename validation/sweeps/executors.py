"""Where tasks run: a local process pool, or a ``dask.distributed`` cluster.

Both take the same task list and yield ``(index, outcome)`` as tasks finish, in any order.
Each task runs through :func:`execute_task` with the same number of BLAS and Numba threads
(the spec's ``threads``, 1 by default) wherever it runs, so its numbers do not depend on the
executor or on the number of workers: N single-threaded workers fill N cores without
oversubscribing them.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from validation.sweeps.spec import Task

__all__ = ["dask_tasks", "execute_task", "local_tasks"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMBA_NUM_THREADS")


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _limit_numba(threads: int) -> None:
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def execute_task(task: Task, threads: int = 1) -> dict:
    """Run one task with ``threads`` BLAS / Numba threads; never raises for the task's errors.

    Returns:
        ``{"status": "ok", "metrics": {...}}`` or ``{"status": "failed", "error": "Type:
        message", "traceback": "..."}``, plus ``seconds`` (wall time) and ``worker``.
    """
    from threadpoolctl import threadpool_limits

    from validation.tasks import EXPERIMENTS

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


def _init_worker(threads: int) -> None:
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)


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
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_init_worker, initargs=(threads,))
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
                    raise RuntimeError("a worker process died (killed, or out of memory); the "
                                       "finished tasks are cached: rerun to resume") from None
                yield index, outcome
    finally:
        # Interrupted: drop the queue and leave the running tasks to die with their workers.
        pool.shutdown(wait=not pending, cancel_futures=True)


def dask_tasks(tasks: Sequence[Task], address: str, threads: int = 1
               ) -> Iterator[tuple[int, dict]]:
    """Run ``tasks`` on the ``dask.distributed`` scheduler at ``address``.

    Dask itself reschedules the tasks of a lost worker; a task that keeps killing workers ends
    as ``failed`` with dask's error. The workers need ``ntklc`` installed (``pip install
    ntklc[distributed]``).

    Raises:
        ValueError: dask.distributed is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ValueError("--scheduler needs dask.distributed: pip install "
                         "'ntklc[distributed]'") from None
    if not tasks:
        return
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise ValueError(f"cannot reach the dask scheduler at {address}: {exc}") from None
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
