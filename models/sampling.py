"""Training-time matching of boxes to ground truth and the balanced fg/bg sampling of the paper."""

from __future__ import annotations

import torch
from torch import Tensor

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


def match(iou: Tensor, high: float, low: float, allow_low_quality: bool) -> Tensor:
    """Index of the matched ground truth for each prediction, or -1 (background) / -2 (ignored).

    iou: FloatTensor[G, N] (ground truth x predictions) -> Int64Tensor[N].
    allow_low_quality: also match each ground truth to the predictions that overlap it most, even below
    `high` (the RPN rule, so every object gets at least one anchor).
    """
    best_iou, matches = iou.max(dim=0)
    all_matches = matches.clone() if allow_low_quality else None
    matches[best_iou < low] = BELOW_LOW_THRESHOLD
    matches[(best_iou >= low) & (best_iou < high)] = BETWEEN_THRESHOLDS
    if all_matches is not None:
        best_per_gt = iou.max(dim=1).values
        preds = torch.where(iou == best_per_gt[:, None])[1]
        matches[preds] = all_matches[preds]
    return matches


def sample_balanced(labels: Tensor, batch_size: int, positive_fraction: float) -> tuple[Tensor, Tensor]:
    """Random positives (label >= 1) and negatives (label == 0), at most `batch_size` with the given share.

    labels: Int64Tensor[N] with -1 for ignored -> (positive indices, negative indices).
    """
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), int(batch_size * positive_fraction))
    num_neg = min(negative.numel(), batch_size - num_pos)
    pos = positive[torch.randperm(positive.numel(), device=labels.device)[:num_pos]]
    neg = negative[torch.randperm(negative.numel(), device=labels.device)[:num_neg]]
    return pos, neg
