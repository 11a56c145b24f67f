"""Acceptance 1: same weights, same photo -> the detections torchvision gives, masks included.

torchvision's models are built with a fixed seed, saved to a `.pth` file and loaded through our loader, at
score threshold 0 so that 100 detections come back. Full-size models: the slowest tests of the suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2

from models import InferenceOptions, preset, weights
from models.inference import Predictor
from models.postprocess import paste_masks
from tests.conftest import load_photo

pytestmark = pytest.mark.slow

BUILDERS = {"v1": maskrcnn_resnet50_fpn, "v2": maskrcnn_resnet50_fpn_v2}
PRESETS = {"v1": "resnet50_fpn", "v2": "resnet50_fpn_v2"}
# v1 also runs a batch of two sizes: each image must get what torchvision gives it alone (a batch of one);
# torchvision's own batched answer depends on the batch-mates, whose zero padding enters its convolutions.
PHOTOS = {"v1": ["astronaut.jpg", "coffee.jpg"], "v2": ["astronaut.jpg"]}


CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
)


@pytest.mark.parametrize("device", ["cpu", CUDA])  # on CUDA: ours in IEEE fp32 vs torchvision on the CPU
@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_matches_torchvision(variant: str, device: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = BUILDERS[variant](weights=None, weights_backbone=None, box_score_thresh=0.0).eval()
    checkpoint = tmp_path / "torchvision.pth"
    torch.save(reference.state_dict(), checkpoint)
    ours = weights.load(checkpoint)
    assert ours.config == preset(PRESETS[variant])

    images = [load_photo(name) for name in PHOTOS[variant]]
    with torch.no_grad():
        expected = [reference([img.float() / 255])[0] for img in images]
    got = Predictor(ours, device).detect(images, InferenceOptions(score_thresh=0.0))  # what the service runs

    for exp, det in zip(expected, got, strict=True):
        det = det.to("cpu")
        assert len(det) == len(exp["labels"]) == 100
        det = det[_pair(exp["labels"], exp["boxes"], det.labels, det.boxes)]
        assert torch.equal(det.labels, exp["labels"])
        assert (det.boxes - exp["boxes"]).abs().max() <= 0.05
        assert (det.scores - exp["scores"]).abs().max() <= 1e-3

        h, w = det.image_size
        reference_masks = exp["masks"][:, 0] > 0.5  # torchvision pastes into the full image itself
        ours_masks = torch.from_numpy(paste_masks(det.masks, det.boxes, (h, w)).full())
        inter = (reference_masks & ours_masks).flatten(1).sum(1).double()
        union = (reference_masks | ours_masks).flatten(1).sum(1).double()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        print(f"{variant}: boxes {(det.boxes - exp['boxes']).abs().max():.2e} px, IoU min {iou.min():.4f}")
        assert iou.min() >= 0.9, f"worst mask IoU {iou.min():.4f}"
        assert iou.mean() >= 0.99, f"mean mask IoU {iou.mean():.4f}"


def _pair(ref_labels: torch.Tensor, ref_boxes: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Index into ours of the detection that corresponds to each reference one: same class, nearest box.

    Float rounding (folded BatchNorm, thread count, channels-last kernels) may swap two detections whose
    scores tie to ~1e-7; pairing by content rather than position keeps the test about the detections.
    """
    distance = (ref_boxes[:, None, :] - boxes[None, :, :]).abs().amax(dim=2)  # [100, 100]
    distance[ref_labels[:, None] != labels[None, :]] = float("inf")
    index = []
    for row in distance:
        j = int(row.argmin())
        index.append(j)
        distance[:, j] = float("inf")
    return torch.tensor(index)
