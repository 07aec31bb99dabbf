"""ntklc experiment compress-compare: the quick run on offline MNIST, and its errors."""

import json

from offline_data import needs_mnist

from validation.cli import main

METHODS = {"dense", "pruning", "uniform", "llc", "cet", "cet-plain", "l2", "rf-dense",
           "ntk-lc"}


@needs_mnist
def test_quick_run_writes_figure_table_and_json(capsys, tmp_path):
    assert main(["experiment", "compress-compare", "--data", "mnist", "--quick", "--json",
                 "--out", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = payload["rows"]
    assert {r["method"] for r in rows} == METHODS
    dense = rows[0]
    assert dense["method"] == "dense" and dense["ratio"] == 1.0
    # 4 bytes per weight and bias of a 784-256-256-10 MLP.
    assert dense["bytes"] == 4 * (784 * 256 + 256 * 256 + 256 * 10 + 256 + 256 + 10)
    for row in rows:
        uncoded = row["method"] in ("dense", "rf-dense", "ntk-lc")
        assert row["round_trip"] is (None if uncoded else True)
        assert 0.0 <= row["accuracy"] <= 1.0
    # Uniform rounding: more bits, more bytes, and 8 bits is as good as float32 (within
    # 0.5 points on 2000 test images: the rounding noise is 1/127 of each channel's peak).
    uniform = sorted((r for r in rows if r["method"] == "uniform"), key=lambda r: r["bytes"])
    assert [r["setting"] for r in uniform] == ["2 bit", "3 bit", "4 bit", "8 bit"]
    assert abs(uniform[-1]["accuracy"] - dense["accuracy"]) <= 0.005
    for rank in payload["details"]["llc_rank"].values():
        assert 0 <= rank["rank"] <= rank["full_rank"]
        assert rank["relative_noise"] <= 0.2
    nb = payload["neighbourhood"]
    assert len(nb["sizes"]) == len(nb["measured"]) == 9
    for name in ("compress_compare.png", "llc_neighbourhood.png", "table.txt",
                 "compress-compare.json"):
        assert (tmp_path / name).is_file(), name


def test_missing_model_file_is_one_line(capsys, tmp_path):
    code = main(["experiment", "compress-compare", "--model-path",
                 str(tmp_path / "absent.npz")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("ntklc: error:") and err.count("\n") == 1
