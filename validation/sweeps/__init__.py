"""Sweeps: a grid of tasks of one experiment, run on local processes or a dask cluster,
cached task by task so that nothing finished is lost or recomputed."""

from validation.sweeps.cache import CorruptEntryError, TaskCache
from validation.sweeps.executors import dask_tasks, execute_task, local_tasks, shared_workers
from validation.sweeps.results import read_results, write_results
from validation.sweeps.runner import SweepRun, run_builtin_sweep, run_sweep
from validation.sweeps.spec import SpecError, SweepSpec, Task, load_spec, parse_spec

__all__ = [
    "CorruptEntryError",
    "SpecError",
    "SweepRun",
    "SweepSpec",
    "Task",
    "TaskCache",
    "dask_tasks",
    "execute_task",
    "load_spec",
    "local_tasks",
    "parse_spec",
    "read_results",
    "run_builtin_sweep",
    "run_sweep",
    "shared_workers",
    "write_results",
]
