"""A keypoint model behind the service: COCO keypoints in /detect's JSON, names in /v1/model, the skeleton drawn by
/visualize; a model without keypoints answers without the fields."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models import build_model, preset, weights
from models.keypoint_names import EXTREME_POINTS, skeleton
from service import visualize
from tests.service.service_helpers import CLASS_NAMES, photo_bytes, server_factory


def test_keypoint_model_answers_coco_keypoints_and_draws_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = preset("tiny", class_names=CLASS_NAMES, num_keypoints=4, keypoint_names=EXTREME_POINTS)
    path = tmp_path / "kp.safetensors"
    weights.save(build_model(config), path)
    with server_factory(weights=path, device="cpu") as make:
        client = make().client()
        info = client.get("/v1/model").json()
        answer = client.post("/detect", files={"image": photo_bytes()}, params={"score_threshold": 0}).json()
        png = client.post("/visualize", files={"image": photo_bytes()}, params={"score_threshold": 0})
    assert info["keypoints"] == list(EXTREME_POINTS)
    detections = answer["detections"]
    assert detections
    for det in detections:
        assert len(det["keypoints"]) == 12 and det["keypoints"][2::3] == [2, 2, 2, 2]
        assert len(det["keypoint_scores"]) == 4 and "segmentation" in det
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"


def test_model_without_keypoints_answers_without_the_fields(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "plain.safetensors"
    weights.save(build_model(preset("tiny", class_names=CLASS_NAMES)), path)
    with server_factory(weights=path, device="cpu") as make:
        client = make().client()
        answer = client.post("/detect", files={"image": photo_bytes()}, params={"score_threshold": 0}).json()
        assert client.get("/v1/model").json()["keypoints"] == []
    assert answer["detections"] and all(
        "keypoints" not in d and "keypoint_scores" not in d for d in answer["detections"]
    )


def test_render_draws_the_skeleton_between_keypoints_that_score_high_enough() -> None:
    pixels = torch.zeros((3, 60, 80), dtype=torch.uint8)
    det = {"category_id": 1, "label": "circle", "score": 0.9, "bbox": [5.0, 5.0, 70.0, 50.0]}
    points = {**det, "keypoints": [20.0, 30.0, 2, 60.0, 30.0, 2, 40.0, 50.0, 2], "keypoint_scores": [1.0, 1.0, -3.0]}

    def drawn(detection: dict) -> np.ndarray:
        limbs = skeleton(("left", "top", "right"))  # left-top and top-right
        return np.asarray(Image.open(io.BytesIO(visualize.render(pixels, [detection], limbs))))

    with_points, without = drawn(points), drawn(det)
    colour = visualize.color(1)
    assert tuple(with_points[30, 40]) == colour and tuple(without[30, 40]) == (0, 0, 0)  # limb 0-1 drawn
    assert tuple(with_points[40, 50]) == (0, 0, 0)  # limb 1-2 not: keypoint 2 scores below the threshold
    assert tuple(with_points[30, 20]) == (255, 255, 255)  # a keypoint's dot
