"""The (dx, dy, dw, dh) box parametrisation of R-CNN, as torchvision computes it (same float ops, same order)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Largest log-scale a predicted box may grow by; keeps exp() finite for wild early-training deltas.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    """Encodes boxes relative to reference boxes and decodes them back.

    weights: divisors of (dx, dy, dw, dh): (1, 1, 1, 1) for the RPN, (10, 10, 5, 5) for the box head.
    """

    def __init__(self, weights: tuple[float, float, float, float], clip: float = BBOX_XFORM_CLIP) -> None:
        self.weights = weights
        self.clip = clip

    def encode(self, boxes: Tensor, references: Tensor) -> Tensor:
        """boxes, references: FloatTensor[N, 4] -> regression targets FloatTensor[N, 4]."""
        wx, wy, ww, wh = self.weights
        ref_w = references[:, 2] - references[:, 0]
        ref_h = references[:, 3] - references[:, 1]
        ref_x = references[:, 0] + 0.5 * ref_w
        ref_y = references[:, 1] + 0.5 * ref_h
        gt_w = boxes[:, 2] - boxes[:, 0]
        gt_h = boxes[:, 3] - boxes[:, 1]
        gt_x = boxes[:, 0] + 0.5 * gt_w
        gt_y = boxes[:, 1] + 0.5 * gt_h
        return torch.stack(
            (
                wx * (gt_x - ref_x) / ref_w,
                wy * (gt_y - ref_y) / ref_h,
                ww * torch.log(gt_w / ref_w),
                wh * torch.log(gt_h / ref_h),
            ),
            dim=1,
        )

    def decode(self, deltas: Tensor, references: Tensor) -> Tensor:
        """deltas: FloatTensor[N, 4 * C], references: FloatTensor[N, 4] -> boxes FloatTensor[N, C, 4]."""
        references = references.to(deltas.dtype)
        widths = references[:, 2] - references[:, 0]
        heights = references[:, 3] - references[:, 1]
        ctr_x = references[:, 0] + 0.5 * widths
        ctr_y = references[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = (deltas[:, 2::4] / ww).clamp(max=self.clip)
        dh = (deltas[:, 3::4] / wh).clamp(max=self.clip)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        half_w = 0.5 * (torch.exp(dw) * widths[:, None])
        half_h = 0.5 * (torch.exp(dh) * heights[:, None])
        return torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=2)
