"""Detections index and move every per-detection field together, negative indices included."""

from __future__ import annotations

import torch

from models import Detections, Targets
from models.structures import cat


def _detections(n: int = 4) -> Detections:
    return Detections(
        boxes=torch.arange(4 * n, dtype=torch.float32).view(n, 4),
        scores=torch.linspace(0.9, 0.1, n),
        labels=torch.arange(1, n + 1),
        masks=torch.rand(n, 28, 28),
        image_size=(50, 60),
    )


def test_an_int_index_selects_one_detection_in_every_field_negative_ones_from_the_end() -> None:
    det = _detections()
    for index, expected in ((0, 0), (2, 2), (-1, 3), (-4, 0)):
        one = det[index]
        assert len(one) == 1 and one.image_size == (50, 60)
        assert torch.equal(one.boxes, det.boxes[expected : expected + 1])
        assert torch.equal(one.labels, det.labels[expected : expected + 1])
        assert torch.equal(one.scores, det.scores[expected : expected + 1])
        assert one.masks is not None and det.masks is not None
        assert torch.equal(one.masks, det.masks[expected : expected + 1])


def test_tensor_and_slice_indices_keep_fields_aligned_and_masks_may_be_absent() -> None:
    det = _detections()
    picked = det[torch.tensor([3, 1])]
    assert picked.labels.tolist() == [4, 2] and picked.boxes[0].tolist() == det.boxes[3].tolist()
    no_masks = Detections(det.boxes, det.scores, det.labels, det.image_size)
    assert no_masks[1:3].masks is None and len(no_masks[1:3]) == 2
    assert no_masks.to("cpu").masks is None


def test_cat_joins_every_field_and_a_field_missing_in_one_part_is_absent() -> None:
    det = _detections()
    joined = cat([det[:1], det[1:]])
    for name, value in det.tensors().items():
        assert torch.equal(getattr(joined, name), value), name
    without = cat([det[:2], Detections(det.boxes[2:], det.scores[2:], det.labels[2:], det.image_size)])
    assert without.masks is None and len(without) == 4


def test_targets_move_and_index_field_generically_keypoints_included() -> None:
    targets = Targets(
        boxes=torch.rand(3, 4),
        labels=torch.tensor([1, 2, 3]),
        masks=torch.zeros(3, 5, 5),
        keypoints=torch.rand(3, 4, 3),
    )
    last = targets[-1]
    assert last.keypoints is not None and torch.equal(last.keypoints, targets.keypoints[2:])  # type: ignore[index]
    assert set(targets.to("cpu").tensors()) == {"boxes", "labels", "masks", "keypoints"}
