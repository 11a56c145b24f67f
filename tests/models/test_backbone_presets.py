"""The full-size presets have torchvision's / Detectron2's tensors (built only, never run on images), the MSRA
trunk strides the 1x1 conv, and anchors put several sizes on one level."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.ops import FrozenBatchNorm2d

from models import ModelConfig, build_model, preset
from models.anchors import AnchorGenerator, cell_anchors
from models.resnet import ResNetTrunk


def _shapes(name: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in build_model(preset(name)).state_dict().items()}


def _imagenet_keys(builder: str) -> dict[str, tuple[int, ...]]:
    """torchvision's ImageNet classifier `builder` (frozen BN, as detection uses it) without its fc layer."""
    model = getattr(torchvision.models, builder)(norm_layer=FrozenBatchNorm2d)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("fc.")}


def _under(shapes: dict[str, tuple[int, ...]], prefix: str) -> dict[str, tuple[int, ...]]:
    return {k.removeprefix(prefix): v for k, v in shapes.items() if k.startswith(prefix)}


def test_r50_fpn_is_torchvisions_maskrcnn_resnet50_fpn() -> None:
    ours = _shapes("r50-fpn")
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items() if not k.endswith("num_batches_tracked")}
    assert len(ours) == 307 and ours == expected
    assert preset("r50-fpn") == preset("resnet50_fpn")


@pytest.mark.parametrize(("name", "builder"), [("r101-fpn", "resnet101"), ("x101-fpn", "resnext101_32x8d")])
def test_deeper_fpn_trunks_are_torchvisions_imagenet_trunks(name: str, builder: str) -> None:
    ours = _shapes(name)
    assert len(ours) == 562  # Detectron2's R101 / X101-FPN count: res4 has 23 blocks
    assert _under(ours, "backbone.body.") == _imagenet_keys(builder)
    fpn_head = {k: v for k, v in ours.items() if not k.startswith("backbone.body.")}
    assert fpn_head == {k: v for k, v in _shapes("r50-fpn").items() if not k.startswith("backbone.body.")}
    groups = 32 if builder.startswith("resnext") else 1
    width = 256 if groups == 32 else 64  # ResNeXt 32x8d: 32 groups of 8 channels in res2
    assert ours["backbone.body.layer1.0.conv2.weight"] == (width, width // groups, 3, 3)


def test_r50_c4_is_detectron2s_layout_with_res5_as_the_roi_head() -> None:
    ours = _shapes("r50-c4")
    imagenet = _imagenet_keys("resnet50")
    assert len(ours) == 279  # Detectron2's R50-C4: stem, res2-res4, RPN, res5, box predictor, mask deconv + 1x1
    assert _under(ours, "backbone.body.") == {k: v for k, v in imagenet.items() if not k.startswith("layer4.")}
    assert _under(ours, "roi_heads.res5.") == _under(imagenet, "layer4.")  # ImageNet's res5 loads here
    assert ours["rpn.head.conv.0.0.weight"] == (1024, 1024, 3, 3)
    assert ours["rpn.head.cls_logits.weight"] == (15, 1024, 1, 1) and ours["rpn.head.bbox_pred.weight"][0] == 60
    assert ours["roi_heads.box_predictor.cls_score.weight"] == (91, 2048)
    assert ours["roi_heads.box_predictor.bbox_pred.weight"] == (364, 2048)
    assert ours["roi_heads.mask_predictor.conv5_mask.weight"] == (2048, 256, 2, 2)
    assert ours["roi_heads.mask_predictor.mask_fcn_logits.weight"] == (91, 256, 1, 1)
    assert not any(k.startswith(("backbone.fpn.", "roi_heads.mask_head.", "roi_heads.box_head.")) for k in ours)


def test_r50_c5_puts_the_fpn_heads_on_res5() -> None:
    ours = _shapes("r50-c5")
    assert len(ours) == 291  # R50 trunk (265) + RPN (6) + 2-fc box head and predictor (8) + mask head (12)
    assert _under(ours, "backbone.body.") == _imagenet_keys("resnet50")
    assert ours["rpn.head.cls_logits.weight"] == (15, 2048, 1, 1)
    assert ours["roi_heads.box_head.fc6.weight"] == (1024, 2048 * 7 * 7)
    assert ours["roi_heads.mask_head.0.0.weight"] == (256, 2048, 3, 3)


def test_msra_trunk_strides_the_1x1_conv_with_the_same_weights() -> None:
    torch.manual_seed(0)
    torchvision_style = ResNetTrunk("resnet50", width=8)
    msra = ResNetTrunk("resnet50", width=8, stride_in_1x1=True)
    msra.load_state_dict(torchvision_style.state_dict())  # same tensors, same shapes
    for stage in (2, 3, 4):
        block = getattr(msra, f"layer{stage}")[0]
        assert (block.conv1.stride, block.conv2.stride) == ((2, 2), (1, 1))
        assert getattr(torchvision_style, f"layer{stage}")[0].conv2.stride == (2, 2)
    assert msra.layer1[0].conv1.stride == (1, 1)

    # Detectron2's BottleneckBlock.forward with stride_in_1x1, written out for res3's first block.
    x = torch.randn(1, 32, 16, 16)
    b = msra.layer2[0]
    out = F.relu(b.bn1(F.conv2d(x, b.conv1.weight, stride=2)))
    out = F.relu(b.bn2(F.conv2d(out, b.conv2.weight, padding=1)))
    out = F.relu(b.bn3(F.conv2d(out, b.conv3.weight)) + b.downsample(x))
    torch.testing.assert_close(b(x), out)
    images = torch.randn(1, 3, 64, 64)
    ours, theirs = msra(images), torchvision_style(images)
    assert [o.shape for o in ours] == [t.shape for t in theirs]
    assert not torch.allclose(ours[-1], theirs[-1])


def test_stride_in_1x1_on_basic_blocks_is_refused() -> None:
    with pytest.raises(ValueError, match="trunk_stride_in_1x1 needs a bottleneck trunk; resnet18 has basic blocks"):
        ModelConfig(backbone="resnet18", trunk_stride_in_1x1=True)


def test_fpn_needs_one_anchor_size_per_level() -> None:
    with pytest.raises(ValueError, match=r"fpn needs one anchor size per level P2-P6 \(5\); got 3"):
        ModelConfig(anchor_sizes=(32, 64, 128))
    assert ModelConfig(features="c4", anchor_sizes=(32, 64, 128)).anchor_sizes == (32, 64, 128)


def test_several_sizes_on_one_level_tile_every_location() -> None:
    cell = cell_anchors((32, 64), (0.5, 1.0, 2.0))
    # torchvision's order: ratio-major, size-minor; ratio 1 gives squares of each size.
    assert cell[2:4].tolist() == [[-16.0, -16.0, 16.0, 16.0], [-32.0, -32.0, 32.0, 32.0]]
    assert (cell[0, 3] - cell[0, 1]) < (cell[0, 2] - cell[0, 0])  # ratio h/w = 0.5: wider than tall
    generator = AnchorGenerator(((32, 64, 128, 256, 512),), (0.5, 1.0, 2.0))
    assert generator.num_anchors_per_location == 15
    anchors = generator((64, 96), [(4, 6)], torch.device("cpu"))
    assert anchors.shape == (4 * 6 * 15, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert torch.equal(centres[15], torch.tensor([16.0, 0.0]))  # the next location, one stride (16) along x
    with pytest.raises(ValueError, match="every level needs the same number of anchor sizes"):
        AnchorGenerator(((32,), (64, 128)), (1.0,))
