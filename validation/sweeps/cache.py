"""A cache of task results: one JSON file per task, written atomically, checked on read.

An entry is ``<root>/<experiment>/<key>.json`` holding the task (experiment, code version,
parameters, seed), its outcome (``status`` ``ok`` with ``metrics``, or ``failed`` with
``error``), wall time, worker, and ``checksum``: the SHA-256 of the rest in canonical JSON.
It is written atomically (``validation.data.atomic``), so a reader sees the old entry, the new one,
or none, never half of one. A truncated
or garbled entry (a crash of the disk, an editor, a copy) fails the parse or the checksum and
is reported and recomputed, never read as a result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from validation.data.atomic import atomic_write
from validation.sweeps.spec import Task

__all__ = ["CorruptEntryError", "TaskCache"]

_FORMAT = 1


class CorruptEntryError(Exception):
    """A cache file exists but is not a valid entry of its task."""


def _checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class TaskCache:
    """The cache folder ``root``."""

    root: Path

    def path(self, task: Task) -> Path:
        return Path(self.root) / task.experiment / f"{task.key}.json"

    def load(self, task: Task) -> dict | None:
        """The stored outcome of ``task``, or ``None`` when there is none.

        Raises:
            CorruptEntryError: the file is unreadable, not JSON, fails its checksum, or belongs to
                another task.
        """
        path = self.path(task)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptEntryError(f"{path}: unreadable ({exc})") from None
        try:
            entry = json.loads(text)
            checksum = entry.pop("checksum")
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
            raise CorruptEntryError(f"{path}: not a complete JSON entry") from None
        if checksum != _checksum(entry):
            raise CorruptEntryError(f"{path}: checksum mismatch (garbled)")
        expected = {"format": _FORMAT, "experiment": task.experiment, "version": task.version,
                    "params": task.params, "seed": task.seed}
        if any(entry.get(k) != v for k, v in expected.items()):
            raise CorruptEntryError(f"{path}: holds another task")
        if entry.get("status") not in ("ok", "failed"):
            raise CorruptEntryError(f"{path}: unknown status {entry.get('status')!r}")
        return entry

    def store(self, task: Task, outcome: dict) -> dict:
        """Write the outcome of ``task`` atomically and return the entry (without checksum).

        Args:
            outcome: ``status``, ``metrics`` or ``error``, ``seconds``, ``worker``.
        """
        entry = {"format": _FORMAT, "experiment": task.experiment, "version": task.version,
                 "params": task.params, "seed": task.seed, **outcome}
        # Round-trip through JSON so that the entry returned now equals the one read later.
        entry = json.loads(json.dumps(entry, sort_keys=True))
        text = json.dumps({**entry, "checksum": _checksum(entry)}, indent=1, sort_keys=True)
        path = self.path(task)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (text + "\n").encode())
        return entry
