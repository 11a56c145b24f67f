"""Acceptance 2: torchvision's Keypoint R-CNN, saved and loaded through our loader, gives its detections and
keypoints on a real photo, in process and through the HTTP service.

torchvision's `keypointrcnn_resnet50_fpn` is built with a fixed seed (random weights: few boxes score high, so
both sides run at score threshold 0 and the top 100 are compared), saved to a `.pth` file and loaded with
strict=True. Full-size model: one of the slowest tests of the suite.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch
from torchvision.models.detection import keypointrcnn_resnet50_fpn

from models import InferenceOptions, preset, weights
from models.inference import Predictor
from service.config import Settings
from tests.conftest import FIXTURES, load_photo
from tests.models.test_equivalence import _pair
from tests.service.service_helpers import LiveServer

pytestmark = pytest.mark.slow
PHOTO = "astronaut.jpg"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    reference = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2)
    path = tmp_path_factory.mktemp("keypointrcnn") / "keypointrcnn.pth"
    torch.save(reference.state_dict(), path)
    return path


def test_keypointrcnn_checkpoint_matches_torchvision(checkpoint: Path) -> None:
    reference = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, box_score_thresh=0.0)
    reference.load_state_dict(torch.load(checkpoint, weights_only=True))
    ours = weights.load(checkpoint)
    assert ours.config == preset("keypointrcnn_resnet50_fpn")
    image = load_photo(PHOTO)
    with torch.no_grad():
        expected = reference.eval()([image.float() / 255])[0]
    det = Predictor(ours).detect([image], InferenceOptions(score_thresh=0.0))[0]

    assert len(det) == len(expected["labels"]) == 100
    assert det.masks is None and det.keypoints is not None and det.keypoints.shape == (100, 17, 3)
    det = det[_pair(expected["labels"], expected["boxes"], det.labels, det.boxes)]
    assert torch.equal(det.labels, expected["labels"])
    assert (det.boxes - expected["boxes"]).abs().max() <= 0.05
    assert (det.scores - expected["scores"]).abs().max() <= 1e-3
    offsets = (det.keypoints[..., :2] - expected["keypoints"][..., :2]).abs()
    print(f"boxes {(det.boxes - expected['boxes']).abs().max():.2e} px, keypoints {offsets.max():.2e} px")
    assert offsets.max() <= 1.0
    # Keypoint scores are heatmap logits (tens here): equal to float rounding, relative to their size.
    assert torch.allclose(det.keypoints[..., 2], expected["keypoints_scores"], rtol=1e-3, atol=1e-3)


def test_service_answers_coco_keypoints_equal_to_the_in_process_ones(checkpoint: Path) -> None:
    ours = weights.load(checkpoint)
    predictor = Predictor(ours)
    expected = predictor([load_photo(PHOTO)], InferenceOptions(score_thresh=0.0))[0]
    server = LiveServer(Settings(weights=checkpoint, device="cpu", max_batch_size=1, request_timeout_s=600)).start()
    try:
        with (FIXTURES / PHOTO).open("rb") as f:
            response = httpx.post(
                f"{server.url}/detect",
                files={"image": (PHOTO, f, "image/jpeg")},
                params={"score_threshold": 0, "max_detections": 100},
                timeout=600,
            )
        info = httpx.get(f"{server.url}/v1/model", timeout=60).json()
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    detections = response.json()["detections"]
    assert info["keypoints"][:3] == ["nose", "left_eye", "right_eye"] and info["classes"] == [
        {"id": 1, "name": "person"}
    ]
    assert len(detections) == len(expected) == 100
    for got, want in zip(detections, expected, strict=True):
        assert "segmentation" not in got
        assert got["category_id"] == want["category_id"] == 1
        assert len(got["keypoints"]) == 3 * 17 and got["keypoints"][2::3] == [2] * 17
        assert got["keypoints"] == pytest.approx(want["keypoints"], abs=1e-3)
        assert got["keypoint_scores"] == pytest.approx(want["keypoint_scores"], abs=1e-3)
