"""Results files that do not fit their ground truth: one clear error (exit 2) for a file that is not a list of
detections or has none that can be scored; unusable detections skipped with a warning, the rest scored."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.trainer.cocosets import evaluate_results, load, perfect_results


def test_results_that_are_not_a_list_are_one_clear_error(tiny_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = evaluate_results(tiny_data, {"annotations": perfect_results(load(tiny_data))}, capsys)
    assert status == 2 and "Traceback" not in err
    assert err.strip().endswith("COCO results must be a JSON list of detections, not an object")


def test_detections_of_unknown_images_are_skipped_with_a_warning_and_the_rest_scored(
    tiny_data: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    results = perfect_results(load(tiny_data))
    extra = [{**results[0], "image_id": 99}, {**results[1], "category_id": 42}, {**results[2], "score": None}, "x"]
    with caplog.at_level(logging.WARNING):
        status, metrics, _ = evaluate_results(tiny_data, results + extra, capsys)
    assert status == 0 and metrics["bbox_AP"] == metrics["segm_AP"] == 100
    for note in ("image_id not in the ground truth, skipped: 1 detection, image ids [99]",
                 "category_id not in the ground truth's categories, skipped: 1 detection, category ids [42]",
                 "no score, skipped", "not an object, skipped"):  # fmt: skip
        assert note in caplog.text


def test_results_for_another_data_set_are_one_clear_error(tiny_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = [{**r, "image_id": r["image_id"] + 1000} for r in perfect_results(load(tiny_data))]
    status, _, err = evaluate_results(tiny_data, results, capsys)
    assert status == 2 and "Traceback" not in err
    assert "none of the" in err and "image_id not in the ground truth" in err


def test_segmentation_only_polygon_and_mis_sized_results_are_repaired_or_dropped(
    tiny_data: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """No bbox: taken from the mask; a segmentation of another size than its image: bbox-only detection."""
    results = perfect_results(load(tiny_data))
    no_box = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    status, metrics, _ = evaluate_results(tiny_data, no_box, capsys)
    assert status == 0 and metrics["segm_AP"] == 100 and metrics["bbox_AP"] == 100
    wrong = [{**r, "segmentation": {**r["segmentation"], "size": [5, 5]}} for r in results]
    with caplog.at_level(logging.WARNING):
        status, metrics, _ = evaluate_results(tiny_data, wrong, capsys)
    assert status == 0 and metrics["bbox_AP"] == 100 and metrics["segm_AP"] == 0
    assert "segmentation unusable or of another size than its image, dropped" in caplog.text


def test_keypoint_results_are_scored_for_keypoint_ap_and_bad_keypoints_dropped(
    tiny_keypoint_data: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """COCO's keypoint results format (no bbox, no segmentation) counts for keypoint AP only; keypoints that are
    not 3 numbers per named keypoint are dropped and the detection kept for the rest."""
    results = perfect_results(load(tiny_keypoint_data))
    assert all(len(r["keypoints"]) == 12 for r in results)  # 4 named keypoints (x, y, v) per shape
    status, metrics, _ = evaluate_results(tiny_keypoint_data, results, capsys)
    assert status == 0 and metrics["bbox_AP"] == metrics["segm_AP"] == metrics["keypoints_AP"] == 100
    keypoints_only = [{k: r[k] for k in ("image_id", "category_id", "score", "keypoints")} for r in results]
    status, metrics, _ = evaluate_results(tiny_keypoint_data, keypoints_only, capsys)
    assert status == 0 and metrics["keypoints_AP"] == 100 and metrics["bbox_AP"] == metrics["segm_AP"] == 0
    mixed = results[:1] + keypoints_only[1:]  # pycocotools reads every detection as it reads the first one
    status, metrics, _ = evaluate_results(tiny_keypoint_data, mixed, capsys)
    assert status == 0 and metrics["keypoints_AP"] == 100 and 0 < metrics["bbox_AP"] < 100
    short = [{**r, "keypoints": r["keypoints"][:9]} for r in results]
    with caplog.at_level(logging.WARNING):
        status, metrics, _ = evaluate_results(tiny_keypoint_data, short, capsys)
    assert status == 0 and metrics["bbox_AP"] == 100 and metrics["keypoints_AP"] == 0
    assert "keypoints not 3 numbers per keypoint its category names, dropped" in caplog.text


def test_keypoints_on_a_set_without_keypoint_names_are_ignored_quietly(
    tiny_data: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A keypoint model's results scored on a box/mask set: bbox and segm AP, no keypoint AP, no warning."""
    results = [{**r, "keypoints": [1.0, 2.0, 2.0]} for r in perfect_results(load(tiny_data))]
    with caplog.at_level(logging.WARNING):
        status, metrics, _ = evaluate_results(tiny_data, results, capsys)
    assert status == 0 and metrics["bbox_AP"] == 100 and not any(k.startswith("keypoints") for k in metrics)
    assert "keypoints" not in caplog.text
