"""Small box helpers that torchvision.ops lacks in batched form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms, nms


def clip_boxes(boxes: Tensor, sizes: Tensor) -> Tensor:
    """Clamp boxes [..., 4] into [0, w] x [0, h]; sizes [..., 2] as (h, w), broadcast against boxes.

    Same values as torchvision's `clip_boxes_to_image`, but each box may belong to a different image.
    """
    wh = sizes.flip(-1)
    limit = torch.cat([wh, wh], dim=-1)  # (w, h, w, h)
    return torch.minimum(boxes.clamp(min=0), limit)


def at_least(scores: Tensor, threshold: float) -> Tensor:
    """BoolTensor: score >= threshold, compared exactly in float64.

    The threshold is inclusive everywhere (model, Predictor, service): a threshold equal to a returned score
    keeps that detection. float32 scores against the float64 threshold, so that no rounding of the threshold
    to float32 can admit a score below it or drop one equal to it.
    """
    return scores.double() >= threshold


def rank_within(groups: Tensor, num_groups: int) -> Tensor:
    """Position of each element among the earlier elements of its group: [0, 0, 1, 2, 1] for [a, b, b, b, a].

    groups: Int64Tensor[N] in [0, num_groups) -> Int64Tensor[N]. Selects "the best n of each image" from a
    list sorted best first, without a Python loop over images.
    """
    one_hot = F.one_hot(groups, num_groups)
    return (one_hot.cumsum(0) * one_hot).sum(1) - 1


def grouped_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group (class, level, image): kept indices, best score first.

    boxes [N, 4], scores [N], groups Int64Tensor[N]. On the CPU this is torchvision's `batched_nms` (one
    NMS per group when there are many boxes). On a GPU, where that loop would launch hundreds of kernels
    and sync on each, `offset_nms` runs a single NMS.
    """
    if boxes.device.type == "cpu" or boxes.numel() == 0:
        return batched_nms(boxes, scores, groups, iou_threshold)
    return offset_nms(boxes, scores, groups, iou_threshold)


def offset_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Grouped NMS as one NMS over boxes shifted apart by group, so that boxes of two groups never overlap.

    torchvision's coordinate trick, in float64: the shift (up to groups x image extent, ~1e6 px) would
    cost float32 boxes their sub-pixel precision and change IoUs near the threshold; float64 keeps the
    float32 coordinates exact. Same keep list as `batched_nms` for distinct scores, except where an IoU lies
    within float32 rounding of the threshold.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    wide = boxes.double()
    extent = wide.max() - wide.min() + 1
    shifted = wide + (groups.double() * extent)[:, None]
    return nms(shifted, scores.double(), iou_threshold)
