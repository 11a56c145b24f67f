"""A C4 model (res5 as the RoI head, 14x14 masks) serves like the FPN one: its weights file alone says what to
build, and /detect answers with pasted masks."""

from __future__ import annotations

from pathlib import Path

import torch
from service_helpers import CLASS_NAMES, photo_bytes, server_factory

import models
from models import weights


def test_tiny_c4_weights_load_and_detect_with_masks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "c4.safetensors"
    weights.save(models.build_model(models.preset("tiny", features="c4", class_names=CLASS_NAMES)), path)
    with server_factory(weights=path, device="cpu", max_batch_wait_ms=10) as make, make().client() as client:
        card = client.get("/v1/model").json()
        assert card["architecture"]["features"] == "c4"
        assert card["description"] == "Mask R-CNN, resnet18 C4 (v1), 4 classes"
        response = client.post("/detect", files={"image": ("upload", photo_bytes())}, params={"score_threshold": 0.0})
    assert response.status_code == 200, response.text
    body = response.json()
    detections = body["detections"]
    assert detections and all(
        d["segmentation"]["size"] == [body["image"]["height"], body["image"]["width"]] for d in detections
    )
    assert {d["label"] for d in detections} <= set(CLASS_NAMES[1:])
