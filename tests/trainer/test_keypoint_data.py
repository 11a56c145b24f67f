"""COCO keypoints in a data set: names read from the categories, annotations repaired, bad sets refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.cocosets import edited_copy
from trainer.data import CocoDetection, DataError
from trainer.keypoint_repair import BAD_COUNT, BAD_KEYPOINTS, BAD_VISIBILITY, STRAY_KEYPOINTS, repair_keypoints


def test_repair_recounts_zeroes_bad_visibility_and_drops_malformed_keypoints() -> None:
    ann = {"id": 1, "keypoints": [5, 6, 2, 7, 8, 9], "num_keypoints": 2}
    fixed, notes = repair_keypoints(ann, 2)
    assert fixed["keypoints"] == [5, 6, 2, 0, 0, 0] and fixed["num_keypoints"] == 1
    assert notes == (BAD_VISIBILITY, BAD_COUNT)
    assert repair_keypoints({"id": 1, "keypoints": [1, 2, 2], "num_keypoints": 1}, 1) == (
        {"id": 1, "keypoints": [1, 2, 2], "num_keypoints": 1},
        (),
    )
    unlabelled = {"id": 1, "keypoints": [0, 0, 0], "num_keypoints": 0}
    for bad in ([1, 2], [1, "x", 2], "1 2 2"):
        assert repair_keypoints({"id": 1, "keypoints": bad, "num_keypoints": 1}, 1) == (unlabelled, (BAD_KEYPOINTS,))
    assert repair_keypoints({"id": 1}, 1) == (unlabelled, ())  # COCOeval needs keypoints on every annotation
    stray = repair_keypoints({"id": 1, "keypoints": [1, 2, 2], "num_keypoints": 1}, 0)  # its category has none
    assert stray == ({"id": 1}, (STRAY_KEYPOINTS,))
    assert repair_keypoints({"id": 1}, 0) == ({"id": 1}, ())


def test_keypoint_set_names_its_keypoints(tiny_keypoint_data: Path, tiny_data: Path) -> None:
    assert CocoDetection(tiny_keypoint_data).keypoint_names == ("top", "right", "bottom", "left")
    assert CocoDetection(tiny_data).keypoint_names == ()


def test_categories_with_different_keypoint_names_stop_with_one_line(tiny_keypoint_data: Path, tmp_path: Path) -> None:
    def rename(data: dict) -> None:
        data["categories"][1]["keypoints"] = ["a", "b", "c", "d"]

    root = edited_copy(tiny_keypoint_data, tmp_path / "mixed", rename)
    with pytest.raises(DataError, match="name different keypoints"):
        CocoDetection(root)
