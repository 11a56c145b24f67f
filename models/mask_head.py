"""Mask branch: a small FCN on 14x14 RoI features -> K per-pixel sigmoid masks of 28x28 per RoI.

The paper's key choice: masks are class-specific and the loss is binary cross-entropy on the ground-truth
class's mask only, so classes do not compete (the box branch decides the class).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation, roi_align


class MaskRCNNHeads(nn.Sequential):
    """Four 3x3 convs with ReLU, each after a norm when `norm_layer` is given (BatchNorm in torchvision's v2,
    GroupNorm in the demo model): [R, C, 14, 14] -> [R, D, 14, 14]. Keys `0.0.weight`, `0.1.weight`, ...
    """

    def __init__(
        self, in_channels: int, dim: int, num_convs: int = 4, norm_layer: Callable[[int], nn.Module] | None = None
    ) -> None:
        blocks = []
        for i in range(num_convs):
            blocks.append(
                Conv2dNormActivation(
                    in_channels if i == 0 else dim,
                    dim,
                    kernel_size=3,
                    norm_layer=norm_layer,
                )
            )
        super().__init__(*blocks)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)


class MaskRCNNPredictor(nn.Sequential):
    """2x2 deconv (stride 2) + ReLU + 1x1 conv: [R, D, 14, 14] -> logits [R, K, 28, 28]."""

    def __init__(self, in_channels: int, dim: int, num_classes: int) -> None:
        super().__init__(
            OrderedDict(
                [
                    ("conv5_mask", nn.ConvTranspose2d(in_channels, dim, 2, 2, 0)),
                    ("relu", nn.ReLU(inplace=True)),
                    ("mask_fcn_logits", nn.Conv2d(dim, num_classes, 1, 1, 0)),
                ]
            )
        )
        for name, param in self.named_parameters():
            if "weight" in name:
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")
            elif "bias" in name:
                nn.init.constant_(param, 0)

    def forward_for_labels(self, x: Tensor, labels: Tensor) -> Tensor:
        """Logits of one class per RoI, [R, 28, 28]: the 1x1 conv only for the class that is asked for."""
        hidden = F.relu(self.conv5_mask(x))
        weight = self.mask_fcn_logits.weight[labels, :, 0, 0]  # [R, D]
        bias = self.mask_fcn_logits.bias[labels]  # [R]
        return torch.einsum("rchw,rc->rhw", hidden, weight.to(hidden.dtype)) + bias.to(hidden.dtype)[:, None, None]


def mask_targets(gt_masks: Tensor, boxes: Tensor, matched: Tensor, size: int) -> Tensor:
    """Ground-truth masks cropped to each RoI and resampled to size x size with RoIAlign.

    gt_masks [G, H, W], boxes [R, 4] (proposals), matched [R] index into gt -> FloatTensor[R, size, size].
    """
    rois = torch.cat([matched[:, None].to(boxes), boxes], dim=1)
    return roi_align(gt_masks[:, None].to(rois), rois, (size, size), 1.0)[:, 0]


def mask_loss(logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """Per-pixel BCE on the ground-truth class's mask only. logits [R, K, M, M], labels [R], targets [R, M, M]."""
    if targets.numel() == 0:
        return logits.sum() * 0
    selected = logits[torch.arange(labels.shape[0], device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(selected, targets)
