"""Box helpers against torchvision, including the single-NMS strategy that grouped_nms uses on GPUs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import batched_nms, clip_boxes_to_image

import models.box_ops
from models import InferenceOptions, build_model, preset
from models.box_ops import clip_boxes, grouped_nms, offset_nms, rank_within
from tests.conftest import load_photo


def random_boxes(rng: np.random.Generator, n: int, extent: float) -> torch.Tensor:
    """n float32 boxes x1, y1, x2, y2 in [-extent / 10, extent], many overlapping."""
    xy = rng.uniform(-extent / 10, extent, (n, 2))
    wh = rng.uniform(0, extent / 3, (n, 2))
    return torch.from_numpy(np.concatenate([xy, xy + wh], axis=1).astype(np.float32))


def test_clip_boxes_matches_torchvision_per_image() -> None:
    rng = np.random.default_rng(0)
    boxes = random_boxes(rng, 40, 500).view(2, 20, 4) * 2 - 100
    sizes = torch.tensor([[300, 450], [480, 200]])
    clipped = clip_boxes(boxes, sizes[:, None, :].float())
    for i, (h, w) in enumerate(sizes.tolist()):
        assert torch.equal(clipped[i], clip_boxes_to_image(boxes[i], (h, w)))


def test_rank_within() -> None:
    groups = torch.tensor([0, 1, 1, 1, 0, 2, 1])
    assert rank_within(groups, 3).tolist() == [0, 0, 1, 2, 1, 0, 3]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    num_groups=st.integers(1, 50),
    threshold=st.sampled_from([0.3, 0.5, 0.7]),
    extent=st.sampled_from([30.0, 1333.0]),
)
def test_offset_nms_equals_batched_nms(seed: int, n: int, num_groups: int, threshold: float, extent: float) -> None:
    """The GPU strategy (one NMS over shifted float64 boxes) keeps what torchvision's per-group NMS keeps."""
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, extent)
    scores = torch.from_numpy(rng.permutation(n).astype(np.float32) / max(n, 1))  # distinct
    groups = torch.from_numpy(rng.integers(0, num_groups, n))
    expected = batched_nms(boxes, scores, groups, threshold)
    assert torch.equal(offset_nms(boxes, scores, groups, threshold), expected)
    assert torch.equal(grouped_nms(boxes, scores, groups, threshold), expected)


def test_offset_nms_separates_groups_far_apart() -> None:
    """Identical boxes in different groups all survive, even with coordinates far from the origin."""
    boxes = torch.tensor([[1e5, 1e5, 1e5 + 10, 1e5 + 10]] * 3 + [[-50.0, -50.0, -40.0, -40.0]] * 2)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    groups = torch.tensor([0, 1, 0, 2, 2])
    assert offset_nms(boxes, scores, groups, 0.5).tolist() == [0, 1, 3]


def test_model_gives_the_same_detections_with_the_gpu_nms_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end on a photo: RPN and RoI heads through offset_nms give the CPU path's detections."""
    model = build_model(preset("tiny", num_classes=5)).eval()
    image = load_photo("coffee.jpg")
    options = InferenceOptions(score_thresh=0.0)
    expected = model.predict([image], options)[0]
    monkeypatch.setattr(models.box_ops, "batched_nms", offset_nms)
    got = model.predict([image], options)[0]
    assert len(expected) == 100
    assert torch.equal(got.labels, expected.labels)
    assert torch.equal(got.boxes, expected.boxes)
    assert torch.equal(got.scores, expected.scores)
    assert torch.equal(got.masks, expected.masks)
