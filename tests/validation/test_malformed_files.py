"""Every kind of file the toolkit reads, damaged every way, given to every command that reads it.

The guarantee: the command ends in one line on stderr and exit 2, or (for caches and kernel
tiles, which the design recomputes) succeeds and recomputes; never a traceback, never exit 1;
and no file the command was given is modified or deleted. Each test id names the file kind
and the damage, so that a failure reads like a bug report. (``provenance.json`` is written by
every sweep but read by no command, so it has no test here.)
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from malformed import Damage, damages, random_bytes
from offline_data import DATA
from run_cli import run_in_process

TINY_SPEC = """experiment = "spectrum"
seeds = 1
[grid]
n = [12, 16]
width = [16]
"""
#: kind -> the command line that reads it ({path} is the damaged file, {good} the folder of
#: good files), and what the design does with damage: "error" (exit 2), "recompute" (exit 0)
#: or "either" (a kernel folder whose description is damaged may be refused or rebuilt).
KINDS = {
    "data .npz": ("spectrum --data {path} --n 12", "error"),
    "data .npz for convergence": ("convergence --data {path} --ns 12,16", "error"),
    "data .npz for compare": ("compare --data {path} --n 12 --width 16 --draws 1 --eps 0",
                              "error"),
    "data .npz for kurtosis": ("kurtosis --data {path} --n 12 --width 16 --draws 2", "error"),
    "features .npz": ("spectrum --features {path} --n 12", "error"),
    "images .npz": ("cnn-kernel --images {path} --layers 1", "error"),
    "model .npz": ("experiment compress-compare --quick --data mnist --model-path {path}",
                   "error"),
    "results.csv": ("plot {path}", "error"),
    "results.json": ("plot {path}", "error"),
    "sweep spec .toml": ("sweep {path} --workers 1 --no-progress --out run", "error"),
    "sweep cache entry": ("sweep {good}/spec.toml --workers 1 --no-progress --out {good}/sweep",
                          "recompute"),
    "kernel tile .npy": ("spectrum --n 24 --path disk --tile 8 --out {good}/spectrum",
                         "recompute"),
    "kernel store meta.json": ("spectrum --n 24 --path disk --tile 8 --out {good}/spectrum",
                               "either"),
    "MNIST IDX .gz": ("spectrum --data mnist --classes 0,1 --n 12 --data-dir {good}/idx",
                      "error"),
    "MNIST IDX .gz for train": ("train --data mnist --epochs 1 --hidden 4 --data-dir "
                                "{good}/idx", "error"),
}
NEEDS_MNIST = ("model .npz", "MNIST IDX .gz", "MNIST IDX .gz for train")
#: Kinds that are another kind's file read by another command.
SAME_FILE = {"data .npz for convergence": "data .npz", "data .npz for compare": "data .npz",
             "data .npz for kurtosis": "data .npz", "MNIST IDX .gz for train": "MNIST IDX .gz"}
#: Damage aimed at what each format checks (its keys, shapes, values, header fields).
SEMANTIC = {
    "data .npz": ["X missing", "y of floats", "X of one dimension", "NaN in X", "labels of "
                  "one class", "object array"],
    "MNIST IDX .gz": ["wrong magic", "wrong label count"],
    "results.json": ["rows not a list", "rows not tables", "a list, not an object",
                     "no seed and status columns"],
    "results.csv": ["a list in the seed column", "a row with a missing cell"],
}


def _ok(argv: list[str], folder: Path) -> None:
    code, stderr = run_in_process(argv, folder)
    assert code == 0, f"making the good files: ntklc {' '.join(argv)}: {stderr}"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """A good file of every kind, made by the toolkit itself where it writes that kind."""
    from nets import mlp

    folder = tmp_path_factory.mktemp("good")
    rng = np.random.default_rng(0)
    files = {}
    files["data .npz"] = folder / "data.npz"
    np.savez(files["data .npz"], X=rng.standard_normal((40, 6)), y=np.repeat([0, 1], 20))
    files["features .npz"] = folder / "features.npz"
    np.savez(files["features .npz"], X=rng.standard_normal((40, 5)), y=np.repeat([0, 1], 20))
    files["images .npz"] = folder / "images.npz"
    np.savez(files["images .npz"], X=rng.random((4, 6, 6)))
    files["model .npz"] = folder / "model.npz"
    mlp(784, (8,), 10, rng=0).save(files["model .npz"])
    (folder / "spec.toml").write_text(TINY_SPEC)
    files["sweep spec .toml"] = folder / "spec.toml"
    _ok(["sweep", str(folder / "spec.toml"), "--workers", "1", "--no-progress", "--out",
         str(folder / "sweep")], folder)
    files["results.csv"] = folder / "sweep" / "results.csv"
    files["results.json"] = folder / "sweep" / "results.json"
    files["sweep cache entry"] = sorted((folder / "sweep" / "cache").rglob("*.json"))[0]
    _ok(["spectrum", "--n", "24", "--path", "disk", "--tile", "8", "--out",
         str(folder / "spectrum")], folder)
    kernels = folder / "spectrum" / "kernels"
    files["kernel tile .npy"] = sorted(kernels.rglob("*.npy"))[1]
    files["kernel store meta.json"] = sorted(kernels.rglob("meta.json"))[0]
    if DATA and (Path(DATA) / "mnist").is_dir():
        shutil.copytree(Path(DATA) / "mnist", folder / "idx" / "mnist")
        files["MNIST IDX .gz"] = folder / "idx" / "mnist" / "train-labels-idx1-ubyte.gz"
    files["random"] = random_bytes(folder / "random.bin")
    files |= {kind: files[same] for kind, same in SAME_FILE.items() if same in files}
    return files


def _semantic(name: str, path: Path) -> None:
    """Write ``path`` as a well-formed file of its kind that breaks one of its rules."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((40, 6)), np.repeat([0, 1], 20)
    arrays = {"X missing": {"y": y}, "y of floats": {"X": X, "y": y + 0.5},
              "X of one dimension": {"X": X[:, 0], "y": y},
              "NaN in X": {"X": np.where(X > 2, np.nan, X), "y": y},
              "labels of one class": {"X": X, "y": np.zeros(40, int)},
              "object array": {"X": np.array([[1, "a"]] * 40, dtype=object), "y": y}}
    if name in arrays:
        np.savez(path, **arrays[name])
        return
    texts = {"rows not a list": '{"rows": "abc"}', "rows not tables": '{"rows": [1, 2]}',
             "a list, not an object": "[1, 2]",
             "no seed and status columns": '{"rows": [{"n": 1, "e": 0.5}, {"n": 2, "e": 0.4}]}',
             "a list in the seed column": "n,seed,status,e\n1,[0],ok,0.5\n2,[0],ok,0.4\n",
             "a row with a missing cell": "n,seed,status,e\n1,0,ok,0.5\n2,0,ok\n"}
    if name in texts:
        path.write_text(texts[name])
        return
    raw = bytearray(gzip.decompress(path.read_bytes()))
    if name == "wrong magic":
        raw[2] = 0x0C
    else:  # the count field of the header, one more than the labels that follow
        raw[4:8] = (int.from_bytes(raw[4:8], "big") + 1).to_bytes(4, "big")
    path.write_bytes(gzip.compress(bytes(raw)))


def _cases():
    files = [kind for kind in KINDS if kind not in SAME_FILE]  # each kind of file once
    for kind in KINDS:
        for damage in damages(SAME_FILE.get(kind, kind), files):
            yield pytest.param(kind, damage, id=f"{kind}: {damage.name}")
        for name in SEMANTIC.get(SAME_FILE.get(kind, kind), ()):
            yield pytest.param(kind, Damage(name, "semantic"), id=f"{kind}: {name}")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("kind", "damage"), list(_cases()))
def test_damaged_file_ends_in_one_line(kind, damage, good, tmp_path):
    if kind not in good:
        pytest.skip("offline MNIST not found: set NTKLC_DATA to a folder with mnist/ "
                    "(make test does)")
    if kind in NEEDS_MNIST and not (DATA and (Path(DATA) / "mnist").is_dir()):
        pytest.skip("offline MNIST not found: set NTKLC_DATA (make test does)")
    command, outcome = KINDS[kind]
    # The command works on copies: a damaged file never leaks into the next case.
    root = good["random"].parent
    work = tmp_path / "good"
    shutil.copytree(root, work, ignore=None if kind in NEEDS_MNIST[1:] else
                    shutil.ignore_patterns("idx"))
    path = work / good[kind].relative_to(root)
    if damage.kind == "semantic":
        _semantic(damage.name, path)
    else:
        damage.apply(path, good)
    given = {p: _digest(p) for p in work.rglob("*") if p.is_file()} if outcome == "error" else {}
    argv = command.format(path=path, good=work).split()
    code, stderr = run_in_process(argv, tmp_path)
    where = f"{kind}, {damage.name}: ntklc {' '.join(argv[:3])}..."
    assert "Traceback" not in stderr, f"{where} printed a traceback:\n{stderr}"
    # Exit 0 after "error" damage: the damage left a valid file (a flipped digit, say).
    allowed = {"error": (0, 2), "recompute": (0,), "either": (0, 2)}[outcome]
    assert code in allowed, f"{where} exited {code}:\n{stderr}"
    if code == 2:
        assert len(stderr.strip("\n").split("\n")) == 1, f"{where}: not one line:\n{stderr}"
    changed = [str(p) for p, digest in given.items() if not p.exists() or _digest(p) != digest]
    assert not changed, f"{where} modified or deleted files it was given: {changed}"

