"""Every architecture option of the design space serves from its weights file alone: the file says what to build,
/v1/model shows the choice, and /detect answers (with masks pasted into their boxes when the model has a mask
branch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from service_helpers import CLASS_NAMES, photo_bytes, server_factory

import models
from models import weights

OPTIONS: list[dict[str, Any]] = [
    {"features": "c5"},
    {"pooler": "pool"},
    {"pooler": "warp"},
    {"pooler_aligned": True, "pooler_sampling_ratio": 0},
    {"mask_head": "mlp", "mask_mlp_dim": 32},
    {"mask_loss": "softmax"},
    {"mask_head": "none"},
    {"backbone": "resnext101_32x8d", "backbone_width": 8, "trunk_stride_in_1x1": False},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_each_option_serves_from_its_weights_file(options: dict[str, Any], tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "model.safetensors"
    weights.save(models.build_model(models.preset("tiny", class_names=CLASS_NAMES, **options)), path)
    with server_factory(weights=path, device="cpu", max_batch_wait_ms=10) as make, make().client() as client:
        architecture = client.get("/v1/model").json()["architecture"]
        response = client.post("/detect", files={"image": ("upload", photo_bytes())}, params={"score_threshold": 0.0})
    assert all(architecture[k] == v for k, v in options.items()), architecture
    assert response.status_code == 200, response.text
    detections = response.json()["detections"]
    assert detections and {d["label"] for d in detections} <= set(CLASS_NAMES[1:])
    has_masks = options.get("mask_head") != "none"
    assert all(("segmentation" in d and d["segmentation"] is not None) == has_masks for d in detections)
