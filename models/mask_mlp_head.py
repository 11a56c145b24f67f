"""Mask branch, MLP form (Mask R-CNN, Table 2e): fully connected layers instead of the FCN, so the mask loses the
explicit pixel-to-pixel layout the paper argues for (-2.1 mask AP in its ablation).

As the paper's MLP: flatten the 14x14 RoI features, fc 1024 -> fc 1024 (ReLU), then an fc to K x 28 x 28 logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .mask_head import MaskPredictor
from .mask_losses import MASK_LOSSES, SigmoidMasks, SoftmaxMasks
from .poolers import config_pooler
from .roi_branch import RoIBranch


class MLPMaskHead(nn.Module):
    """[R, C, S, S] -> flatten -> fc1 -> ReLU -> fc2 -> ReLU -> [R, D]."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc2(F.relu(self.fc1(x.flatten(start_dim=1)))))


class MLPMaskPredictor(MaskPredictor):
    """[R, D] -> fc -> logits [R, K, M, M]; for given labels only those rows of the fc are computed."""

    def __init__(self, dim: int, num_classes: int, resolution: int, activation: SigmoidMasks | SoftmaxMasks) -> None:
        super().__init__(resolution, activation)
        self.num_classes = num_classes
        self.mask_fc_logits = nn.Linear(dim, num_classes * resolution * resolution)
        nn.init.normal_(self.mask_fc_logits.weight, std=0.001)
        nn.init.zeros_(self.mask_fc_logits.bias)

    def forward(self, x: Tensor) -> Tensor:
        m = self.resolution
        return self.mask_fc_logits(x).view(-1, self.num_classes, m, m)

    def logits_for_labels(self, x: Tensor, labels: Tensor) -> Tensor:
        m = self.resolution
        weight = self.mask_fc_logits.weight.view(self.num_classes, m * m, -1)[labels]  # [R, M*M, D]
        bias = self.mask_fc_logits.bias.view(self.num_classes, m * m)[labels]  # [R, M*M]
        logits = torch.einsum("rpd,rd->rp", weight.to(x.dtype), x) + bias.to(x.dtype)
        return logits.view(-1, m, m)


def mlp_mask_branch(config: ModelConfig, channels: int, strides: tuple[int, ...]) -> RoIBranch:
    """Table 2e's MLP mask branch on `channels`-wide features: 14x14 RoIs -> fc 1024 x 2 -> fc to K x 28 x 28."""
    resolution = 2 * config.mask_resolution
    return RoIBranch(
        config_pooler(config, config.mask_resolution, strides),
        MLPMaskHead(channels * config.mask_resolution**2, config.mask_mlp_dim),
        MLPMaskPredictor(config.mask_mlp_dim, config.num_classes, resolution, MASK_LOSSES[config.mask_loss]()),
    )
