"""COCO keypoints in a data set: names read from the categories, annotations repaired, bad sets refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models import build_model, preset, weights
from tests.trainer.cocosets import edited_copy
from trainer import cli
from trainer.data import CocoDetection, DataError, TrainingView
from trainer.evaluate import COCOEvaluator, format_summary
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


def test_targets_carry_keypoints_and_flips_swap_left_and_right(tiny_keypoint_data: Path) -> None:
    dataset = CocoDetection(tiny_keypoint_data)
    _, image, target = dataset[0]
    assert target.keypoints is not None and target.keypoints.shape == (len(target), 4, 3)
    _, flipped_image, flipped = TrainingView(dataset)[(0, True)]
    w = image.shape[-1]
    assert flipped.keypoints is not None and torch.equal(flipped_image, image.flip(-1))
    labelled = target.keypoints[:, 3, 2] > 0  # "left" lands on "right", mirrored
    assert torch.equal(flipped.keypoints[labelled, 1, 0], w - target.keypoints[labelled, 3, 0])
    assert torch.equal(flipped.keypoints[:, 0, 2], target.keypoints[:, 0, 2])  # "top" stays "top"
    assert (flipped.keypoints[flipped.keypoints[..., 2] == 0] == 0).all()  # unlabelled stay (0, 0, 0)


def test_a_tiny_keypoint_model_takes_a_training_step_with_finite_losses(tiny_keypoint_data: Path) -> None:
    dataset = CocoDetection(tiny_keypoint_data)
    config = preset("tiny", num_keypoints=4, keypoint_names=dataset.keypoint_names)
    model = build_model(config).train()
    items = [dataset[i] for i in range(2)]
    losses = model([image for _, image, _ in items], [target for _, _, target in items])
    assert {"loss_mask", "loss_keypoint"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.roi_heads.keypoint_predictor.kps_score_lowres.weight.grad.abs().sum() > 0


def test_perfect_keypoints_score_ap_100_and_a_keypoint_model_is_evaluated_on_them(
    tiny_keypoint_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = CocoDetection(tiny_keypoint_data)
    evaluator = COCOEvaluator(dataset.coco, iou_types=("bbox", "keypoints"))
    for image_id in dataset.image_ids:
        anns = dataset.coco.imgToAnns[image_id]
        evaluator.process(image_id, [{**a, "score": 1.0} for a in anns])
    metrics = evaluator.evaluate()
    assert metrics["keypoints_AP"] == pytest.approx(100) and "keypoints_APs" not in metrics
    assert "kpts" in format_summary(metrics)

    config = preset("tiny", num_keypoints=4, keypoint_names=dataset.keypoint_names, class_names=dataset.class_names)
    path = tmp_path / "kp.safetensors"
    weights.save(build_model(config), path)
    argv = ["--data", str(tiny_keypoint_data), "--weights", str(path), "--output", str(tmp_path / "r.json")]
    assert cli.evaluate(argv) == 0
    out = capsys.readouterr().out
    assert "IoU type keypoints" in out
    scored = json.loads(out.strip().splitlines()[-1])
    assert scored["keypoints_AP"] is not None and 0 <= scored["keypoints_AP"] <= 100
