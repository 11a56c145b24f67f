"""ResNet / ResNeXt trunks with torchvision's module names, so its ImageNet checkpoints load as they are.

The trunk reuses torchvision's residual blocks; it is written out here only to allow a narrow stem width
(`width` < 64) for small models, a trunk that stops after res4 (the C4 design), a res5 stage built on its own
(the C4 RoI head), and Detectron2's MSRA stride placement, none of which torchvision's ResNet class can build.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import FrozenBatchNorm2d

from .config import RESNET_LAYERS, ResNetSpec

Norm = Callable[[int], nn.Module]


def make_stage(
    spec: ResNetSpec,
    stage: int,
    in_channels: int,
    width: int,
    norm_layer: Norm,
    stride_in_1x1: bool = False,
) -> nn.Sequential:
    """Residual stage `stage` (0 = res2 ... 3 = res5) of `spec`: its blocks, the first one strided (but res2's).

    planes = width * 2**stage; a bottleneck's 3x3 conv is int(planes * width_per_group / 64) * groups wide
    (torchvision's `Bottleneck`; ResNeXt-101 32x8d at width 64: res2's conv2 is (256, 8, 3, 3)), its output
    planes * 4. Keys: `0.conv1.weight`, ..., `0.downsample.0.weight` (torchvision's `layer{stage+1}`).
    stride_in_1x1 puts each strided block's stride on its 1x1 conv1 instead of the 3x3 conv2, as Detectron2's
    MSRA trunks do (`modeling/backbone/resnet.py:BottleneckBlock`, `MODEL.RESNETS.STRIDE_IN_1X1`); the
    weights have the same shapes either way. Initialise with `init_resnet`.
    """
    block: type[BasicBlock] | type[Bottleneck] = BasicBlock if spec.block == "basic" else Bottleneck
    planes = width * 2**stage
    stride = 1 if stage == 0 else 2
    blocks: list[nn.Module] = []
    for i in range(spec.layers[stage]):
        downsample = None
        if i == 0 and (stride != 1 or in_channels != planes * block.expansion):
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes * block.expansion, 1, stride=stride, bias=False),
                norm_layer(planes * block.expansion),
            )
        s = stride if i == 0 else 1
        if block is BasicBlock:
            blocks.append(BasicBlock(in_channels, planes, s, downsample, norm_layer=norm_layer))
        else:
            bottleneck = Bottleneck(
                in_channels,
                planes,
                s,
                downsample,
                groups=spec.groups,
                base_width=spec.width_per_group,
                norm_layer=norm_layer,
            )
            if stride_in_1x1 and s != 1:
                bottleneck.conv1.stride, bottleneck.conv2.stride = (s, s), (1, 1)
            blocks.append(bottleneck)
        in_channels = planes * block.expansion
    return nn.Sequential(*blocks)


def stage_channels(spec: ResNetSpec, stage: int, width: int) -> int:
    """Output channels of stage `stage` (0 = res2): width * 2**stage, times 4 for bottlenecks."""
    return width * 2**stage * (1 if spec.block == "basic" else Bottleneck.expansion)


class ResNetTrunk(nn.Module):
    """conv1 -> bn1 -> relu -> maxpool -> layer1..layer{stages}, returning C2..C{stages+1} (strides 4 ... 32).

    Input FloatTensor[B, 3, H, W] -> `stages` maps with `out_channels` channels (width, 2, 4, 8 x width, times
    4 for bottlenecks). `stages` = 3 stops after res4 (stride 16): the C4 design, whose res5 runs per RoI.

    Raises ValueError for an unknown depth or `stride_in_1x1` on a trunk of basic blocks (it has no 1x1 conv).
    """

    def __init__(
        self,
        depth: str,
        width: int = 64,
        norm_layer: Norm = FrozenBatchNorm2d,
        stages: int = 4,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"unknown ResNet depth {depth!r}; choose from {sorted(RESNET_LAYERS)}")
        spec = RESNET_LAYERS[depth]
        if stride_in_1x1 and spec.block == "basic":
            raise ValueError(f"stride_in_1x1 needs a bottleneck trunk; {depth} has basic blocks")
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = width
        self.out_channels: list[int] = []
        for stage in range(stages):
            layer = make_stage(spec, stage, in_channels, width, norm_layer, stride_in_1x1)
            self.add_module(f"layer{stage + 1}", layer)
            in_channels = stage_channels(spec, stage, width)
            self.out_channels.append(in_channels)
        self.strides = [4 * 2**stage for stage in range(stages)]
        init_resnet(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for stage in range(len(self.out_channels)):
            x = getattr(self, f"layer{stage + 1}")(x)
            out.append(x)
        return out


def init_resnet(module: nn.Module) -> None:
    """torchvision's ResNet initialisation (He normal for convs, BN at identity)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
