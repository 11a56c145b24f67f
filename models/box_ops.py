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
    NMS per group when there are many boxes). On a GPU, where that loop would launch hundreds of kernels,
    one NMS runs over boxes shifted apart by group; in float64, so the shift costs no precision.
    """
    if boxes.device.type == "cpu" or boxes.numel() == 0:
        return batched_nms(boxes, scores, groups, iou_threshold)
    wide = boxes.double()
    shifted = wide + (groups.double() * (wide.max() + 1))[:, None]
    return nms(shifted, scores.double(), iou_threshold)
