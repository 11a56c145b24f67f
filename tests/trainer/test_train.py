"""The data a training run starts from: both sets loaded and checked up front (`load_data`), warnings for sets
that teach nothing, and a run on repairable real-world faults that trains, evaluates and writes its weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.trainer.cocosets import edited_copy
from trainer import cli
from trainer.cli import parse_train_args
from trainer.train import FINAL_WEIGHTS, load_data


def test_all_crowd_set_and_a_category_without_annotations_warn(
    tiny_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crowd = edited_copy(tiny_data, tmp_path / "crowd", lambda d: [a.update(iscrowd=1) for a in d["annotations"]])
    with caplog.at_level(logging.WARNING):
        load_data(parse_train_args(["--data", str(crowd), "--out", str(tmp_path / "o")]))
    assert "no annotation can be a training target" in caplog.text and "the model learns background only" in caplog.text
    caplog.clear()
    root = edited_copy(tiny_data, tmp_path / "root", lambda d: d["categories"].append({"id": 9, "name": "root"}))
    with caplog.at_level(logging.WARNING):
        data = load_data(parse_train_args(["--data", str(root), "--out", str(tmp_path / "o")]))
    assert "categories [(9, 'root')] have no (non-crowd) annotations" in caplog.text
    assert data.train.class_names[-1] == "root"  # still a class, as the warning says


def _faults(data: dict) -> None:
    """Repairable faults of real exports in one training set."""
    anns = data["annotations"]
    for a in anns:
        a["id"] = 0  # CVAT
    anns[0]["segmentation"] = []
    anns[1]["segmentation"] = [[1, 2, 3, 4], *_polygon(anns[1]["bbox"])]
    del anns[2]["area"], anns[3]["iscrowd"]
    anns[4]["bbox"] = None
    anns[5]["image_id"] = 99
    del data["images"][0]["height"], data["images"][0]["width"]


def _polygon(box: list[int]) -> list[list[int]]:
    x, y, w, h = box
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _val(data: dict) -> None:
    """A validation set without areas whose category ids are not the training set's (same names)."""
    for a in data["annotations"]:
        del a["area"]
        a["category_id"] += 10
    for c in data["categories"]:
        c["id"] += 10


def test_train_on_repaired_faults_with_a_val_set_without_area_and_other_ids_writes_final_weights(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    train, val = edited_copy(tiny_data, tmp_path / "train", _faults), edited_copy(tiny_data, tmp_path / "val", _val)
    out = tmp_path / "out"
    argv = ["--data", str(train), "--val", str(val), "--out", str(out), "--model", "tiny", "--max-iter", "1",
            "--batch-size", "2", "--num-workers", "0", "--eval-images", "2", "--device", "cpu"]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert cli.train(argv) == 0
    assert (out / FINAL_WEIGHTS).is_file()
    metrics = json.loads((out / "eval.jsonl").read_text().splitlines()[-1])
    assert {"bbox_AP", "segm_AP"} <= set(metrics)
    reported = {r["category_id"] for r in json.loads((out / "eval" / "coco_results.json").read_text())}
    assert reported <= {11, 12, 13, 14}  # the validation set's ids, matched by name
    notes = ["renumbered 1..", "empty or missing segmentation", "polygon parts", "area missing", "no iscrowd",
             "bbox missing", "image_id names no image", "no height/width", "matched by name"]  # fmt: skip
    assert [n for n in notes if n not in caplog.text] == []
