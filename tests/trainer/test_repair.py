"""Annotations as exporters write them: empty segmentations, degenerate polygon parts and missing fields are
repaired or skipped with a warning, up front, so that neither the loader nor pycocotools meets them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from tests.trainer.cocosets import edited_copy, evaluate_results, load, perfect_results, polygon, save, write_squares
from trainer.data import CocoDetection
from trainer.repair import repair_annotation


def _all_targets(ds: CocoDetection) -> int:
    return sum(len(ds[i][2].labels) for i in range(len(ds)))


def test_empty_segmentation_is_skipped_with_a_warning_in_train_and_evaluate(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    def empty(data: dict) -> None:
        data["annotations"][0]["segmentation"] = []
        data["annotations"][1]["segmentation"] = [[]]

    root = edited_copy(tiny_data, tmp_path / "empty", empty)
    data = load(root)
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection(root)
    assert _all_targets(ds) == len(data["annotations"]) - 2  # every item loads; the two are not targets
    assert "empty or missing segmentation, skipped: 2 annotations, ids [1, 2]" in caplog.text
    status, metrics, _ = evaluate_results(
        root, perfect_results({**data, "annotations": data["annotations"][2:]}), capsys
    )
    assert status == 0 and metrics["bbox_AP"] == metrics["segm_AP"] == 100


def test_degenerate_polygon_parts_are_dropped_and_valid_parts_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    root = write_squares(tmp_path / "poly", [[(10, 5, 20), (45, 30, 15), (50, 2, 10)]])
    data = load(root)
    original = [dict(a) for a in data["annotations"]]
    a, b, c = data["annotations"]
    # 4 numbers first: pycocotools would read every part as a box; 7 numbers: odd; the square itself is valid.
    a["segmentation"] = [[1, 2, 3, 4], polygon(10, 5, 20), [1, 2, 3, 4, 5, 6, 7]]
    b["segmentation"] = [[45, 30, 60, 30]]  # 2 points only: nothing valid remains
    c["segmentation"] = polygon(50, 2, 10)  # one polygon without its list of parts
    save(root, data)
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection(root)
    _, image, target = ds[0]
    assert "fewer than 3 points or an odd number of coordinates dropped: 1 annotation, ids [1]" in caplog.text
    assert "no polygon part with 3 or more points, skipped: 1 annotation, ids [2]" in caplog.text
    expected = mask_utils.decode(mask_utils.frPyObjects([polygon(10, 5, 20)], 60, 80))[..., 0]
    assert target.labels.tolist() == [1, 1]
    assert torch.equal(target.masks[0], torch.from_numpy(expected))
    assert image[0][target.masks[1].bool()].float().mean() > 200  # the flat polygon covers its square
    status, metrics, _ = evaluate_results(root, perfect_results({**data, "annotations": [original[0], original[2]]}),
                                          capsys)  # fmt: skip
    assert status == 0 and metrics["segm_AP"] == 100


def test_missing_fields_are_derived_and_perfect_results_score_100(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    perfect = perfect_results(load(tiny_data))

    def strip(data: dict) -> None:
        anns = data["annotations"]
        del anns[0]["area"], anns[1]["iscrowd"], anns[2]["bbox"], anns[4]["id"]
        anns[3]["bbox"] = None
        del data["images"][0]["height"], data["images"][0]["width"]

    root = edited_copy(tiny_data, tmp_path / "missing", strip)
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection(root)
    for note in ("no height/width, taken from the image file", "area missing", "no iscrowd, taken as 0",
                 "bbox missing, malformed", "renumbered 1.."):  # fmt: skip
        assert note in caplog.text
    reference = CocoDetection(tiny_data)
    for i in range(len(ds)):
        got, want = ds[i][2], reference[i][2]
        assert torch.equal(got.boxes, want.boxes) and torch.equal(got.masks, want.masks)
    status, metrics, _ = evaluate_results(root, perfect, capsys)
    assert status == 0 and metrics["bbox_AP"] == metrics["segm_AP"] == 100


def test_repair_keeps_a_valid_annotation_as_it_is_and_clips_only_what_overhangs() -> None:
    ann = {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [polygon(10, 5, 20)],
           "bbox": [10, 5, 20, 20], "area": 400}  # fmt: skip
    repaired = repair_annotation(ann, 60, 80)
    assert repaired.notes == () and repaired.annotation is not None
    assert repaired.annotation["bbox"] == [10, 5, 20, 20] and repaired.annotation["area"] == 400
    over = repair_annotation({**ann, "bbox": [70, -0.5, 20, 20]}, 60, 80)
    assert over.annotation is not None and over.annotation["bbox"] == [70, 0, 10, 19.5]
    assert any("clipped" in n for n in over.notes)
    outside = repair_annotation({**ann, "bbox": [200, 200, 5, 5]}, 60, 80)  # box off the image: the mask's
    assert outside.annotation is not None and outside.annotation["bbox"] == [10, 5, 20, 20]
    rle = mask_utils.encode(np.asfortranarray(np.ones((40, 50), dtype=np.uint8)))
    wrong_size = repair_annotation(
        {**ann, "segmentation": {"size": [40, 50], "counts": rle["counts"].decode()}}, 60, 80
    )
    assert wrong_size.annotation is None and "RLE size" in wrong_size.notes[-1]
