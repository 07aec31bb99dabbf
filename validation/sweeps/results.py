"""The tidy results table of a sweep: one row per task, written as CSV and JSON.

Columns: the parameters, ``seed``, ``status``, every metric, ``error``, ``seconds`` (the task's
wall time) and ``worker``. In the CSV, list and dict values are JSON text and ``None`` is empty.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ntklc.errors import DataNotFoundError, InputError

__all__ = ["read_results", "results_row", "write_results"]


#: Columns every row of a sweep's table has.
_REQUIRED = ("seed", "status")


def results_row(entry: dict, order=()) -> dict:
    """Flatten a cache entry into a table row; parameters named in ``order`` come first."""
    params = {k: entry["params"][k] for k in order} | entry["params"]
    return {**params, "seed": entry["seed"], "status": entry["status"],
            **(entry.get("metrics") or {}), "error": entry.get("error"),
            "seconds": entry.get("seconds"), "worker": entry.get("worker")}


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def write_results(rows: list[dict], out: Path, meta: dict) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.json`` (``meta`` plus ``columns`` and ``rows``)."""
    out.mkdir(parents=True, exist_ok=True)
    columns = _columns(rows)
    csv_path, json_path = out / "results.csv", out / "results.json"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row.get(c)) for c in columns])
    json_path.write_text(json.dumps({**meta, "columns": columns, "rows": rows}, indent=1)
                         + "\n")
    return csv_path, json_path


def _parse_cell(text: str):
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if text[0] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) or text.lower() in ("nan", "inf", "-inf") else text


def read_results(path: str | Path) -> tuple[list[dict], dict]:
    """Rows and metadata of a sweep's table: a run folder, ``results.json`` or ``results.csv``.

    Raises:
        FileNotFoundError: no table there.
        InputError: the file is not a results table.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json" if (path / "results.json").exists() else (
            path / "results.csv")
    if not path.exists():
        raise DataNotFoundError(f"{path}: no results table (results.json or results.csv)")
    not_a_table = f"{path}: not a results table of ntklc sweep"
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
                raise InputError(f"{not_a_table} (no list of rows)")
            rows, meta = data["rows"], {k: v for k, v in data.items() if k != "rows"}
        else:
            with path.open(newline="") as f:
                rows, meta = _csv_rows(f, not_a_table), {}
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise InputError(f"{not_a_table} ({type(exc).__name__}: {exc})") from None
    _check_rows(rows, not_a_table)
    return rows, meta


def _csv_rows(f, not_a_table: str) -> list[dict]:
    rows = []
    for number, row in enumerate(csv.DictReader(f), start=2):
        if None in row or None in row.values():  # more or fewer cells than the header
            raise InputError(f"{not_a_table} (line {number} does not have one cell per column)")
        rows.append({k: _parse_cell(v) for k, v in row.items()})
    return rows


def _check_rows(rows: list, not_a_table: str) -> None:
    """Every row a mapping from column names to values, with the columns every sweep writes."""
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
            raise InputError(f"{not_a_table} (row {number} is not a mapping of columns)")
        missing = [c for c in _REQUIRED if c not in row]
        if missing:
            raise InputError(f"{not_a_table} (row {number} has no column "
                             f"{', '.join(missing)})")
