"""The keypoint branch's parts against torchvision's own functions and modules, number for number."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import keypoint_rcnn, roi_heads

from models.keypoint_head import (
    KeypointRCNNHeads,
    KeypointRCNNPredictor,
    heatmaps_to_keypoints,
    keypoint_loss,
    keypoints_to_heatmap,
)
from models.keypoint_names import COCO_PERSON_KEYPOINTS, flip_permutation, mirrored, oks_sigmas, skeleton


def _rois(n: int) -> torch.Tensor:
    xy = torch.rand(n, 2) * 200
    wh = torch.rand(n, 2) * 150 + 0.3  # some boxes narrower than a pixel
    return torch.cat([xy, xy + wh], dim=1)


def test_heads_and_predictor_have_torchvisions_keys_and_outputs() -> None:
    torch.manual_seed(0)
    theirs_head = keypoint_rcnn.KeypointRCNNHeads(16, (32,) * 8)
    theirs_pred = keypoint_rcnn.KeypointRCNNPredictor(32, 5)
    ours_head, ours_pred = KeypointRCNNHeads(16, 32), KeypointRCNNPredictor(32, 5)
    ours_head.load_state_dict(theirs_head.state_dict(), strict=True)
    ours_pred.load_state_dict(theirs_pred.state_dict(), strict=True)
    x = torch.randn(3, 16, 14, 14)
    logits = ours_pred(ours_head(x))
    assert logits.shape == (3, 5, 56, 56)
    assert torch.equal(logits, theirs_pred(theirs_head(x)))


def test_heatmaps_to_keypoints_equals_torchvisions() -> None:
    maps, rois = torch.randn(7, 17, 56, 56), _rois(7)
    xy, scores = roi_heads.heatmaps_to_keypoints(maps, rois)
    got = heatmaps_to_keypoints(maps, rois)
    assert got.shape == (7, 17, 3)
    assert torch.equal(got[..., :2], xy[..., :2])
    assert torch.equal(got[..., 2], scores)


def test_no_rois_give_no_keypoints() -> None:
    assert heatmaps_to_keypoints(torch.zeros(0, 4, 56, 56), torch.zeros(0, 4)).shape == (0, 4, 3)
    assert KeypointRCNNPredictor(8, 4).empty(torch.zeros(2)).shape == (0, 4, 3)


def test_heatmap_targets_equal_torchvisions_where_valid() -> None:
    rois = _rois(9)
    keypoints = torch.cat([torch.rand(9, 17, 2) * 300 - 30, torch.randint(0, 3, (9, 17, 1)).float()], dim=2)
    keypoints[0, 0, :2] = rois[0, 2:]  # on the right and bottom edge: the last cell
    heatmaps, valid = roi_heads.keypoints_to_heatmap(keypoints, rois, 56)
    got = keypoints_to_heatmap(keypoints, rois, 56)
    assert torch.equal(got >= 0, valid.bool())
    assert torch.equal(got[got >= 0], heatmaps[valid.bool()])
    assert got[0, 0] == (56 * 56 - 1 if keypoints[0, 0, 2] > 0 else -1)


def test_loss_equals_keypointrcnn_loss_and_is_zero_without_visible_keypoints() -> None:
    predictor = KeypointRCNNPredictor(8, 17)
    rois = [_rois(4), _rois(3)]
    gt = [
        torch.cat([torch.rand(2, 17, 2) * 200, torch.randint(0, 3, (2, 17, 1)).float()], dim=2),
        torch.cat([torch.rand(1, 17, 2) * 200, torch.ones(1, 17, 1)], dim=2),
    ]
    matched = [torch.tensor([0, 1, 1, 0]), torch.tensor([0, 0, 0])]
    logits = torch.randn(7, 17, 56, 56, requires_grad=True)
    expected = roi_heads.keypointrcnn_loss(logits, rois, gt, matched)
    targets = torch.cat([predictor.targets(g, r, m) for g, r, m in zip(gt, rois, matched, strict=True)])
    got = predictor.loss(logits, torch.ones(7, dtype=torch.int64), targets)
    assert torch.allclose(got, expected, rtol=1e-6)
    none = keypoint_loss(logits, torch.full((7, 17), -1))
    none.backward()
    assert none.item() == 0 and logits.grad is not None


def test_to_original_scales_x_and_y_but_not_scores() -> None:
    values = torch.tensor([[[10.0, 20.0, 0.75]]])
    assert KeypointRCNNPredictor(8, 1).to_original(values, (2.0, 0.5)).tolist() == [[[20.0, 10.0, 0.75]]]


def test_flip_permutation_swaps_left_and_right() -> None:
    perm = flip_permutation(COCO_PERSON_KEYPOINTS)
    assert COCO_PERSON_KEYPOINTS[perm[1]] == "right_eye" and perm[0] == 0
    assert all(perm[perm[i]] == i for i in range(17))
    assert flip_permutation(("top", "right", "bottom", "left")) == (0, 3, 2, 1)
    assert mirrored("left_eye") == "right_eye"
    with pytest.raises(ValueError, match="right_hand"):
        flip_permutation(("left_hand",))


def test_skeleton_and_sigmas_follow_the_names() -> None:
    assert len(skeleton(COCO_PERSON_KEYPOINTS)) == 19
    assert skeleton(("top", "right", "bottom", "left")) == ((0, 1), (1, 2), (2, 3), (3, 0))
    assert skeleton(("a", "b")) == ()
    assert oks_sigmas(("nose", "top")) == (0.026, 0.05)
