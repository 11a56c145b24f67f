"""`maskrcnn evaluate --per-category FILE`: bbox and segm AP for each category, from COCOeval's precision array
(Detectron2's way); perfect detections give 100 for every category present, none for a category without
ground truth, as JSON or CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.trainer.cocosets import edited_copy, load, perfect_results
from trainer import cli


def _evaluate(data: Path, tmp_path: Path, table: Path) -> int:
    results = tmp_path / "perfect.json"
    results.write_text(json.dumps(perfect_results(load(data))))
    argv = ["--data", str(data), "--results", str(results), "--output", str(tmp_path / "scored.json")]
    return cli.evaluate([*argv, "--per-category", str(table)])


def test_perfect_results_score_100_for_every_category_present_and_none_for_an_absent_one(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = edited_copy(tiny_data, tmp_path / "data", lambda d: d["categories"].append({"id": 9, "name": "hexagon"}))
    present = {a["category_id"] for a in load(data)["annotations"]}
    assert _evaluate(data, tmp_path, tmp_path / "ap.json") == 0
    assert "Average Precision" in capsys.readouterr().out  # COCOeval's table is still printed
    rows = {r["name"]: r for r in json.loads((tmp_path / "ap.json").read_text())}
    names = {c["id"]: c["name"] for c in load(data)["categories"]}
    for cid in present:
        assert rows[names[cid]]["bbox_AP"] == pytest.approx(100) and rows[names[cid]]["segm_AP"] == pytest.approx(100)
    assert rows["hexagon"] == {"category_id": 9, "name": "hexagon", "bbox_AP": None, "segm_AP": None}


def test_per_category_csv_has_one_row_per_category(tiny_data: Path, tmp_path: Path) -> None:
    assert _evaluate(tiny_data, tmp_path, tmp_path / "ap.csv") == 0
    with (tmp_path / "ap.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [c["name"] for c in load(tiny_data)["categories"]]
    assert all(r["bbox_AP"] in ("", "100.0") and r["segm_AP"] in ("", "100.0") for r in rows)


def test_per_category_file_of_another_format_is_refused_before_scoring(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _evaluate(tiny_data, tmp_path, tmp_path / "ap.txt") == 2
    assert "must end in .json or .csv" in capsys.readouterr().err


def test_keypoint_sets_get_a_keypoint_ap_column(tiny_keypoint_data: Path, tmp_path: Path) -> None:
    """Every category present that names keypoints scores 100; one that names none has no keypoint AP."""
    data = edited_copy(
        tiny_keypoint_data, tmp_path / "data", lambda d: d["categories"].append({"id": 9, "name": "hexagon"})
    )
    assert _evaluate(data, tmp_path, tmp_path / "ap.csv") == 0
    with (tmp_path / "ap.csv").open(newline="") as f:
        rows = {int(r["category_id"]): r for r in csv.DictReader(f)}
    assert list(rows[9]) == ["category_id", "name", "bbox_AP", "segm_AP", "keypoints_AP"]
    present = {a["category_id"] for a in load(data)["annotations"]}
    assert present and all(rows[c]["keypoints_AP"] == "100.0" for c in present)
    assert rows[9]["keypoints_AP"] == ""  # names no keypoints
