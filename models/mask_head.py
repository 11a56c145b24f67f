"""Mask branch, FCN form (the paper's default, Fig. 4): four 3x3 convs on 14x14 RoI features, a 2x2 deconv and a
1x1 conv -> K mask logits of 28x28 per RoI. `MaskPredictor` is what every mask predictor shares: the
`InstancePredictor` contract of models/roi_branch.py, with the sigmoid or softmax of models/mask_losses.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation, roi_align

from .backbone import norm_layer
from .config import ModelConfig
from .mask_losses import MASK_LOSSES, SigmoidMasks, SoftmaxMasks
from .poolers import config_pooler
from .roi_branch import RoIBranch


class MaskRCNNHeads(nn.Sequential):
    """Four 3x3 convs with ReLU, each after a norm when `norm_layer` is given (BatchNorm in torchvision's v2,
    GroupNorm in the demo model): [R, C, 14, 14] -> [R, D, 14, 14]. Keys `0.0.weight`, `0.1.weight`, ...
    """

    def __init__(
        self, in_channels: int, dim: int, num_convs: int = 4, norm_layer: Callable[[int], nn.Module] | None = None
    ) -> None:
        super().__init__(
            *(
                Conv2dNormActivation(in_channels if i == 0 else dim, dim, 3, norm_layer=norm_layer)
                for i in range(num_convs)
            )
        )
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)


class MaskPredictor(nn.Module):
    """Base of the mask predictors: logits [R, K, M, M] from `forward`; the rest of the contract from here.

    resolution: M, the side of the predicted masks; activation: SigmoidMasks (the paper's) or SoftmaxMasks.
    """

    field = "masks"

    def __init__(self, resolution: int, activation: SigmoidMasks | SoftmaxMasks) -> None:
        super().__init__()
        self.resolution = resolution
        self.activation = activation

    def logits_for_labels(self, x: Tensor, labels: Tensor) -> Tensor:
        """Logits of one class per RoI, [R, M, M]. Subclasses compute only that class where they can."""
        return self(x)[torch.arange(labels.shape[0], device=labels.device), labels]

    def predict(self, x: Tensor, boxes: Tensor, labels: Tensor) -> Tensor:
        """-> FloatTensor[R, M, M], the predicted class's mask probabilities over each box."""
        return self.activation.probabilities(self, x, labels)

    def targets(self, gt: Tensor, rois: Tensor, matched: Tensor) -> Tensor:
        return mask_targets(gt, rois, matched, self.resolution)

    def loss(self, logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
        return self.activation.loss(logits, labels, targets)

    def empty(self, like: Tensor) -> Tensor:
        return like.new_zeros((0, self.resolution, self.resolution), dtype=torch.float32)

    def to_original(self, values: Tensor, scale_xy: tuple[float, float]) -> Tensor:
        return values  # box-relative: pasted into the box later (models/postprocess.py)


class MaskRCNNPredictor(MaskPredictor):
    """2x2 deconv (stride 2) + ReLU + 1x1 conv: [R, D, S, S] -> logits [R, K, 2S, 2S] (torchvision's names)."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        num_classes: int,
        resolution: int = 28,
        activation: SigmoidMasks | SoftmaxMasks | None = None,
    ) -> None:
        super().__init__(resolution, activation or SigmoidMasks())
        self.conv5_mask = nn.ConvTranspose2d(in_channels, dim, 2, 2, 0)
        self.mask_fcn_logits = nn.Conv2d(dim, num_classes, 1, 1, 0)
        for name, param in self.named_parameters():
            if "weight" in name:
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")
            elif "bias" in name:
                nn.init.constant_(param, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.mask_fcn_logits(relu_(self.conv5_mask(x)))

    def logits_for_labels(self, x: Tensor, labels: Tensor) -> Tensor:
        """The 1x1 conv only for the class that is asked for: [R, D, S, S] -> [R, 2S, 2S]."""
        hidden = relu_(self.conv5_mask(x))  # the deconv's output is not needed again
        weight = self.mask_fcn_logits.weight[labels, :, 0, 0]  # [R, D]
        bias = self.mask_fcn_logits.bias[labels]  # [R]
        return torch.einsum("rchw,rc->rhw", hidden, weight.to(hidden.dtype)) + bias.to(hidden.dtype)[:, None, None]


def relu_(x: Tensor) -> Tensor:
    """ReLU in place. A bf16 tensor outside autograd is clamped as its int16 bit patterns: the negative bf16
    numbers are exactly the negative int16 patterns, so this is ReLU (-0.0 -> +0.0; a NaN with the sign bit set
    -> 0), about 10x faster than PyTorch's bf16 CPU kernel on the [100, 256, 28, 28] deconv output."""
    if x.dtype == torch.bfloat16 and not x.requires_grad:
        x.view(torch.int16).clamp_(min=0)
        return x
    return x.relu_()


def mask_targets(gt_masks: Tensor, boxes: Tensor, matched: Tensor, size: int) -> Tensor:
    """Ground-truth masks cropped to each RoI and resampled to size x size with RoIAlign.

    gt_masks [G, H, W], boxes [R, 4] (proposals), matched [R] index into gt -> FloatTensor[R, size, size].
    """
    if boxes.shape[0] == 0:
        return boxes.new_zeros((0, size, size))
    rois = torch.cat([matched[:, None].to(boxes), boxes], dim=1)
    return roi_align(gt_masks[:, None].to(rois), rois, (size, size), 1.0)[:, 0]


def fcn_mask_branch(config: ModelConfig, channels: int, strides: tuple[int, ...]) -> RoIBranch:
    """The paper's FCN mask branch on `channels`-wide maps of these strides: 14x14 RoIs -> 4 convs -> 28x28 masks."""
    return RoIBranch(
        config_pooler(config, config.mask_resolution, strides),
        MaskRCNNHeads(channels, config.mask_head_dim, norm_layer=norm_layer(config.mask_head_norm)),
        MaskRCNNPredictor(
            config.mask_head_dim,
            config.mask_head_dim,
            config.num_classes,
            2 * config.mask_resolution,
            MASK_LOSSES[config.mask_loss](),
        ),
    )
