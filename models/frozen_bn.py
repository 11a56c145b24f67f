"""Frozen BatchNorm computed as Detectron2 computes it (`ModelConfig.frozen_bn_arithmetic = "batch_norm"`).

torchvision's `FrozenBatchNorm2d` computes x * (w / sqrt(var + eps)) + (b - mean * scale); Detectron2's
`layers/batch_norm.py:FrozenBatchNorm2d.forward` calls `F.batch_norm(x, mean, var, w, b, training=False)` when
no gradient is needed. The two differ in float rounding (2.4e-7 on one layer, shared/detectron2-notes.md row 4),
which a deep trunk amplifies. Same buffers and state-dict keys as torchvision's.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import FrozenBatchNorm2d


class BatchNormFrozenBN(FrozenBatchNorm2d):
    """FrozenBatchNorm2d whose forward is `F.batch_norm(training=False)` on its frozen statistics."""

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
