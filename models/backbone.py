"""ResNet trunk + feature pyramid (P2-P6), with torchvision's module names so its checkpoints load as they are.

The trunk reuses torchvision's residual blocks; it is written out here only to allow a narrow stem width
(`width` < 64) for small models, which torchvision's ResNet class cannot build.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .config import RESNET_LAYERS, ModelConfig


class ResNetTrunk(nn.Module):
    """conv1 -> bn1 -> relu -> maxpool -> layer1..layer4, returning C2-C5 (strides 4, 8, 16, 32).

    Input FloatTensor[B, 3, H, W] -> four maps with width, 2, 4, 8 x width x expansion channels.
    """

    def __init__(self, depth: str, width: int = 64, norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d):
        super().__init__()
        kind, blocks = RESNET_LAYERS[depth]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = width
        self.out_channels: list[int] = []
        for stage, num_blocks in enumerate(blocks):
            planes = width * 2**stage
            stride = 1 if stage == 0 else 2
            layers = []
            for i in range(num_blocks):
                downsample = None
                if i == 0 and (stride != 1 or in_channels != planes * block.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(in_channels, planes * block.expansion, 1, stride=stride, bias=False),
                        norm_layer(planes * block.expansion),
                    )
                # BasicBlock only supports base_width 64; keep torchvision's argument for both block kinds.
                layers.append(block(in_channels, planes, stride if i == 0 else 1, downsample, norm_layer=norm_layer))
                in_channels = planes * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layers))
            self.out_channels.append(in_channels)
        _init_resnet(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


def _init_resnet(module: nn.Module) -> None:
    """torchvision's ResNet initialisation (He normal for convs, BN at identity)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


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

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        features = OrderedDict((str(i), c) for i, c in enumerate(self.body(x)))
        return self.fpn(features)


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


def build_backbone(config: ModelConfig, trunk_norm: Callable[[int], nn.Module] | None = None) -> BackboneWithFPN:
    """The trunk's norm is `config.trunk_norm` (frozen BatchNorm with ImageNet statistics, as in the paper, by
    default) unless the caller passes another; the FPN's is `config.fpn_norm` (bn in torchvision's
    `maskrcnn_resnet50_fpn_v2`, none in v1)."""
    trunk = trunk_norm or norm_layer(config.trunk_norm)
    assert trunk is not None
    body = ResNetTrunk(config.backbone, config.backbone_width, norm_layer=trunk)
    return BackboneWithFPN(body, config.fpn_channels, norm_layer(config.fpn_norm))
