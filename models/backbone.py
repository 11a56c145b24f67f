"""Backbones: a ResNet trunk (`body`, models/resnet.py) and the maps it hands to the RPN and the RoI heads.

Three designs (`ModelConfig.features`, the paper's section 3.1 "Network Architecture"):
- fpn: trunk + feature pyramid (`fpn`), P2-P6 for the RPN, P2-P5 for RoIAlign (torchvision's
  `resnet_fpn_backbone`);
- c4: trunk through res4 (stride 16), one map for both; res5 becomes the RoI head (models/res5_heads.py);
- c5: trunk through res5 (stride 32), one map for both.
Each declares its maps' names and strides (`feature_strides`) and which of them the RoI heads pool from
(`roi_features`), so nothing downstream assumes the pyramid. Module names are torchvision's, so its ImageNet
trunks load into `backbone.body` with `strict=True` (all but `fc`; for c4 but `layer4` too, which is the head).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .config import ModelConfig
from .resnet import ResNetTrunk


class BackboneWithFPN(nn.Module):
    """Trunk (`body`) + FPN (`fpn`): image batch -> five maps P2-P6 of `out_channels` each.

    Output: OrderedDict '0', '1', '2', '3', 'pool' of FloatTensor[B, C, H/s, W/s] for s = 4, 8, 16, 32, 64.
    """

    def __init__(self, body: ResNetTrunk, out_channels: int, fpn_norm: Callable[[int], nn.Module] | None):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(
            body.out_channels, out_channels, extra_blocks=LastLevelMaxPool(), norm_layer=fpn_norm
        )
        self.out_channels = out_channels
        self.feature_strides: dict[str, int] = {"0": 4, "1": 8, "2": 16, "3": 32, "pool": 64}
        self.roi_features: tuple[str, ...] = ("0", "1", "2", "3")  # P6 feeds only the RPN

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        features = OrderedDict((str(i), c) for i, c in enumerate(self.body(x)))
        return self.fpn(features)


class SingleLevelBackbone(nn.Module):
    """The trunk's last map alone (C4: res4, stride 16; C5: res5, stride 32), for the RPN and the RoI heads.

    Output: OrderedDict {name: FloatTensor[B, out_channels, H/s, W/s]} with name 'res4' or 'res5'.
    """

    def __init__(self, body: ResNetTrunk) -> None:
        super().__init__()
        self.body = body
        self.out_channels = body.out_channels[-1]
        name = f"res{len(body.out_channels) + 1}"
        self.feature_strides = {name: body.strides[-1]}
        self.roi_features = (name,)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict([(self.roi_features[0], self.body(x)[-1])])


Backbone = BackboneWithFPN | SingleLevelBackbone


def norm_layer(name: str) -> Callable[[int], nn.Module] | None:
    """A norm factory by name: frozen_bn | bn | gn (32 groups, fewer when channels are few) | none -> None."""
    if name == "frozen_bn":
        return FrozenBatchNorm2d
    if name == "bn":
        return nn.BatchNorm2d
    if name == "gn":
        return lambda channels: nn.GroupNorm(math.gcd(32, channels), channels)
    if name == "none":
        return None
    raise ValueError(f"unknown norm {name!r}")


def build_backbone(config: ModelConfig, trunk_norm: Callable[[int], nn.Module] | None = None) -> Backbone:
    """The backbone of `config.features`. The trunk's norm is `config.trunk_norm` (frozen BatchNorm with ImageNet
    statistics, as in the paper, by default) unless the caller passes another; the FPN's is `config.fpn_norm`
    (bn in torchvision's `maskrcnn_resnet50_fpn_v2`, none in v1)."""
    trunk = trunk_norm or norm_layer(config.trunk_norm)
    assert trunk is not None
    body = ResNetTrunk(
        config.backbone,
        config.backbone_width,
        norm_layer=trunk,
        stages=3 if config.features == "c4" else 4,
        stride_in_1x1=config.trunk_stride_in_1x1,
    )
    if config.features == "fpn":
        return BackboneWithFPN(body, config.fpn_channels, norm_layer(config.fpn_norm))
    return SingleLevelBackbone(body)
