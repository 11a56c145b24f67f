"""How mask logits become probabilities and a loss: the paper's per-class sigmoid, or a per-pixel softmax.

Mask R-CNN (He et al., sec. 3, Table 2b) decouples masks from classes: K binary masks, a sigmoid per pixel, and
binary cross-entropy on the ground-truth class's mask only, so classes do not compete; a multinomial alternative
(softmax over the K classes per pixel, as in FCN semantic segmentation) costs 5.5 mask AP in the paper. Both
follow one small interface, so a mask predictor works with either.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class MaskLogits(Protocol):
    def __call__(self, x: Tensor) -> Tensor: ...  # [R, ...] -> [R, K, M, M]
    def logits_for_labels(self, x: Tensor, labels: Tensor) -> Tensor: ...  # -> [R, M, M]


class SigmoidMasks:
    """Per-class sigmoid masks with BCE on the ground-truth class (the paper's default; torchvision's
    `maskrcnn_loss` and `maskrcnn_inference`). Inference computes only the predicted class's logits."""

    def probabilities(self, predictor: MaskLogits, x: Tensor, labels: Tensor) -> Tensor:
        """-> FloatTensor[R, M, M], sigmoid of the predicted class's logits."""
        return predictor.logits_for_labels(x, labels).float().sigmoid()

    def loss(self, logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
        """logits [R, K, M, M], labels [R], targets [R, M, M] in [0, 1] -> mean per-pixel BCE."""
        if targets.numel() == 0:
            return logits.sum() * 0
        selected = logits[torch.arange(labels.shape[0], device=labels.device), labels]
        return F.binary_cross_entropy_with_logits(selected, targets)


class SoftmaxMasks:
    """A multinomial mask: per pixel, a softmax over the K classes (background = class 0) with cross-entropy
    against the ground-truth class inside the ground-truth mask and background outside (Table 2b's "softmax").
    Inference reads the predicted class's channel of the softmax."""

    def probabilities(self, predictor: MaskLogits, x: Tensor, labels: Tensor) -> Tensor:
        """-> FloatTensor[R, M, M], the softmax probability of the predicted class at each pixel."""
        probs = predictor(x).float().softmax(dim=1)
        return probs[torch.arange(labels.shape[0], device=labels.device), labels]

    def loss(self, logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
        """logits [R, K, M, M], labels [R], targets [R, M, M] in [0, 1] -> mean per-pixel cross-entropy; a pixel
        belongs to the RoI's class where its target is >= 0.5, else to background."""
        if targets.numel() == 0:
            return logits.sum() * 0
        pixel_class = torch.where(targets >= 0.5, labels[:, None, None], 0)
        return F.cross_entropy(logits, pixel_class)


MASK_LOSSES = {"sigmoid": SigmoidMasks, "softmax": SoftmaxMasks}
