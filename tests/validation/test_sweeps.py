"""Sweeps: specs, executors, the cache, failures, interruption, plotting.

Every check compares two independent runs (1 worker vs 2 vs a dask cluster; interrupted vs
uninterrupted; corrupted cache vs clean) or reads a counter the sweep cannot fake (which cache
files were rewritten), never a number the code under test chose itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from interrupt import kill_mid_run

from validation.cli import main
from validation.report.plot import plot_results
from validation.sweeps import load_spec, parse_spec, read_results, run_sweep, shared_workers

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "sweeps" / "smoke.toml"
_VOLATILE = ("seconds", "worker")


def _numbers(rows):
    """The table without wall times and worker names (which differ between runs)."""
    return [{k: v for k, v in r.items() if k not in _VOLATILE} for r in rows]


def _sweep_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "validation.cli", "sweep", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The smoke sweep run once, uninterrupted, on one worker."""
    out = tmp_path_factory.mktemp("ref")
    run = run_sweep(load_spec(SMOKE), out, workers=1, progress=False)
    assert not run.failed and not run.missing
    return run


def test_smoke_spec_is_big_enough():
    assert len(load_spec(SMOKE).tasks()) >= 8


def test_two_workers_give_the_same_numbers(reference, tmp_path):
    run = run_sweep(load_spec(SMOKE), tmp_path, workers=2, progress=False)
    assert _numbers(run.rows) == _numbers(reference.rows)
    assert len({r["worker"] for r in run.rows}) == 2  # both workers took tasks


def test_shared_workers_serve_every_sweep_of_the_block(reference, tmp_path):
    with shared_workers(2):
        first = run_sweep(load_spec(SMOKE), tmp_path / "a", workers=2, progress=False)
        second = run_sweep(load_spec(SMOKE), tmp_path / "b", workers=2, progress=False)
    assert _numbers(first.rows) == _numbers(second.rows) == _numbers(reference.rows)
    # The second sweep ran on the processes the first one started.
    assert {r["worker"] for r in second.rows} <= {r["worker"] for r in first.rows}
    with pytest.raises(RuntimeError, match="not reentrant"), shared_workers(1), \
            shared_workers(1):
        pass


def test_dask_cluster_gives_the_same_numbers(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        run = run_sweep(load_spec(SMOKE), tmp_path, scheduler=cluster.scheduler_address,
                        progress=False)
    assert _numbers(run.rows) == _numbers(reference.rows)
    assert all(r["worker"].startswith("tcp://127.0.0.1") for r in run.rows)


def test_results_files_agree(reference):
    rows_json, meta = read_results(reference.out / "results.json")
    rows_csv, _ = read_results(reference.out / "results.csv")
    assert rows_csv == rows_json == reference.rows
    assert meta["axes"] == ["act", "layers", "n"]
    prov = json.loads((reference.out / "provenance.json").read_text())
    assert prov["spec"]["experiment"] == "spectrum"
    assert prov["packages"]["numpy"] and prov["start"] <= prov["end"]


def test_kill_and_resume(reference, tmp_path):
    """SIGKILL a sweep mid-run; the rerun recomputes exactly the tasks not yet cached."""
    cache = tmp_path / "cache" / "spectrum"
    kill_mid_run([sys.executable, "-m", "validation.cli", "sweep", str(SMOKE), "--out",
                  str(tmp_path), "--workers", "2", "--no-progress"],
                 lambda: len(list(cache.glob("*.json"))) >= 3)
    before = {p.name: p.stat().st_ino for p in cache.glob("*.json")}
    total = len(reference.rows)
    assert 3 <= len(before) < total, "the kill should land mid-sweep"
    again = _sweep_cli(SMOKE, "--out", tmp_path, "--workers", "2", "--json", "--no-progress")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["cached"] == len(before)
    assert summary["computed"] == total - len(before)
    # An entry rewritten by the rerun would have a new inode (atomic rename of a new file).
    assert {p.name: p.stat().st_ino for p in cache.glob("*.json") if p.name in before} == before
    rows, _ = read_results(tmp_path)
    assert _numbers(rows) == _numbers(reference.rows)


def _tiny(tmp_path, **grid):
    raw = {"experiment": "spectrum", "seeds": 1, "fixed": {"n": 80},
           "grid": grid or {"act": ["relu", "tanh"]}}
    return parse_spec(raw, name="tiny")


def test_corrupt_entries_are_detected_and_recomputed(tmp_path):
    spec = _tiny(tmp_path)
    first = run_sweep(spec, tmp_path, workers=1, progress=False)
    files = sorted((tmp_path / "cache" / "spectrum").glob("*.json"))
    assert len(files) == 2
    text = files[0].read_text()
    files[0].write_text(text[: len(text) // 2])                      # truncated
    entry = json.loads(files[1].read_text())
    entry["metrics"]["rel_spectral_error"] = 0.5                     # garbled, valid JSON
    files[1].write_text(json.dumps(entry))
    second = run_sweep(spec, tmp_path, workers=1, progress=False)
    assert len(second.corrupt) == 2
    assert {"not a complete JSON entry", "checksum mismatch (garbled)"} == {
        c.split(": ", 1)[1] for c in second.corrupt}
    assert len(second.computed) == 2
    assert _numbers(second.rows) == _numbers(first.rows)


def test_changed_axis_value_computes_only_new_tasks(tmp_path):
    run_sweep(_tiny(tmp_path), tmp_path, workers=1, progress=False)
    more = run_sweep(_tiny(tmp_path, act=["relu", "tanh", "erf"]), tmp_path, workers=1,
                     progress=False)
    assert len(more.cached) == 2 and more.computed == ["spectrum[act=erf, seed=0]"]


def test_failed_task_is_recorded_and_retried(tmp_path):
    spec = tmp_path / "fail.toml"
    spec.write_text('experiment = "compress"\n[grid]\neps = [0.5, 1.5]\n')
    out = tmp_path / "out"
    result = _sweep_cli(spec, "--out", out, "--workers", "1", "--no-progress")
    assert result.returncode == 1
    assert "task compress[eps=1.5, seed=0] failed: InputError: eps must lie in [0, 1)" in (
        result.stderr)
    rows, _ = read_results(out)
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "eps must lie in [0, 1), got 1.5" in rows[1]["error"]
    assert rows[0]["max_residual"] < 1e-10
    again = _sweep_cli(spec, "--out", out, "--json", "--no-progress")
    assert json.loads(again.stdout)["computed"] == 0 and again.returncode == 1
    retry = _sweep_cli(spec, "--out", out, "--json", "--retry-failed", "--no-progress")
    assert json.loads(retry.stdout)["computed"] == 1 and retry.returncode == 1


@pytest.mark.parametrize(("text", "message"), [
    ('experiment = "nope"\n', "unknown experiment 'nope'"),
    ('experiment = "spectrum"\n[grid]\nwidth2 = [1]\n', "unknown axis 'width2'"),
    ('experiment = "spectrum"\n[grid]\nn = []\n', "axis 'n' is empty"),
    ('experiment = "spectrum"\n[grid]\nn = ["big"]\n', "parameter 'n' must be int"),
    ('experiment = "spectrum"\n[grid]\nn = 400\n', "axis 'n' must be a list"),
    ('experiment = "spectrum"\n[fixed]\nkernel = 3\n', "parameter 'kernel' must be str"),
    ('experiment = "spectrum"\nseeds = 0\n', "'seeds' must be >= 1"),
    ('experiment = "spectrum"\n[grid\nn = [1]\n', "malformed TOML"),
    ('experimnt = "spectrum"\n', "unknown key(s) experimnt"),
])
def test_bad_specs_exit_2_with_one_line(tmp_path, capsys, text, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_missing_spec_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert "no such spec file" in capsys.readouterr().err


def test_plot_command_writes_png_and_pdf(reference, tmp_path, capsys):
    assert main(["plot", str(reference.out), "--out", str(tmp_path), "--hue", "act"]) == 0
    png = tmp_path / "smoke_rel_spectral_error_vs_n.png"
    assert png.exists()
    pdf = png.with_suffix(".pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType embedded
    assert main(["plot", str(reference.out), "--y", "nope"]) == 2
    assert "--y 'nope' is not a column" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.toml")), ids=lambda p: p.name)
def test_example_specs_are_valid(path):
    assert load_spec(path).tasks()


def test_plot_facets_filters_and_panel_limit(reference, tmp_path, capsys):
    assert main(["plot", str(reference.out), "--hue", "act", "--where", "layers=3",
                 "--out", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["png"].endswith("smoke_rel_spectral_error_vs_n.png")
    assert main(["plot", str(reference.out), "--where", "layers=7"]) == 2
    assert "no row matches layers=7" in capsys.readouterr().err
    rows = [{"a": a, "b": b, "n": n, "seed": 0, "status": "ok", "err": 1.0 / n}
            for a in range(13) for b in range(2) for n in (10, 100)]
    with pytest.raises(ValueError, match="13 panels"):
        plot_results(rows, {"params": ["a", "b", "n"], "axes": ["a", "b", "n"]}, tmp_path,
                     x="n", y="err", hue="b")


def test_ctrl_c_writes_the_partial_table_and_exits_130(tmp_path):
    cache = tmp_path / "cache" / "spectrum"
    # SIGINT back to its default in the child: a test runner started in the background by a
    # non-interactive shell inherits SIGINT ignored, and Python would then never raise
    # KeyboardInterrupt (a terminal's Ctrl-C reaches a foreground process with the default).
    proc = subprocess.Popen([sys.executable, "-m", "validation.cli", "sweep", str(SMOKE),
                             "--out", str(tmp_path), "--workers", "2", "--no-progress"],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(cache.glob("*.json"))) < 2:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; finished tasks are cached" in err
    rows, meta = read_results(tmp_path)
    assert meta["complete"] is False and len(rows) >= 2
