"""models/onednn_fusion.py: convolutions fused with their ReLU and residual add give the unfused model's numbers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck
from torchvision.ops import Conv2dNormActivation

from models import InferenceOptions, build_model, preset
from models.inference import Predictor, fold_batchnorm
from models.inference_layout import channels_last_heads
from models.onednn_fusion import FusedBlock, FusedConv2d, FusedFPN, available, fuse_convolutions

pytestmark = pytest.mark.skipif(not available(), reason="torch without oneDNN's fused-convolution operators")
BF16 = pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="CPU without bf16")

DESIGNS = {  # config overrides -> the fused module types the model must end up with
    "fpn, basic blocks": ({}, {FusedBlock, FusedFPN, FusedConv2d}),
    "fpn, bottlenecks, v2 heads (conv + folded BN + ReLU)": (
        {"backbone": "resnet50", "box_head": "conv_fc", "rpn_conv_depth": 2, "mask_head_norm": "bn"},
        {FusedBlock, FusedFPN, FusedConv2d},
    ),
    "c4 (res5 head of bottlenecks)": ({"features": "c4", "backbone": "resnet50"}, {FusedBlock, FusedConv2d}),
    "c5": ({"features": "c5"}, {FusedBlock, FusedConv2d}),
}


def _model(**overrides: object) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(preset("tiny", **overrides)).eval()
    with torch.no_grad():  # non-trivial folded BatchNorms, so that folding and fusing have numbers to move
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d,)) or type(module).__name__ == "FrozenBatchNorm2d":
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


def _images(sizes: tuple[tuple[int, int], ...] = ((96, 130), (150, 110))) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for h, w in sizes]


def _unfused(model: nn.Module) -> nn.Module:
    """The Predictor's fp32 copy without the fusion: folded BN, channels-last, channels-last heads."""
    return channels_last_heads(fold_batchnorm(model).to(memory_format=torch.channels_last))


@pytest.mark.parametrize("design", DESIGNS.values(), ids=DESIGNS.keys())
def test_fp32_predictor_with_fused_convolutions_gives_the_unfused_detections(design: tuple) -> None:
    """Same labels, and boxes / scores / masks to float rounding (oneDNN may sum in another order for packed
    weights on small maps; on the full-size trunk the maps come out bit-identical, bench/RESULTS.md)."""
    overrides, fused_types = design
    model = _model(**overrides)
    predictor = Predictor(model)
    assert fused_types <= {type(m) for m in predictor.model.modules()}
    assert not any(type(m) is nn.Conv2d for m in predictor.model.backbone.modules())
    reference = _unfused(model)
    options = InferenceOptions(score_thresh=0.0)
    for sizes in (((96, 130), (150, 110)), ((200, 140),)):  # weights packed on the first call, then other sizes
        got = predictor.detect(_images(sizes), options)
        with torch.inference_mode():
            expected = reference.predict(_images(sizes), options)
        for det, exp in zip(got, expected, strict=True):
            assert len(det) == len(exp) > 0
            assert torch.equal(det.labels, exp.labels)
            torch.testing.assert_close(det.boxes, exp.boxes, rtol=0, atol=2e-3)
            torch.testing.assert_close(det.scores, exp.scores, rtol=0, atol=1e-5)
            torch.testing.assert_close(det.masks, exp.masks, rtol=0, atol=1e-3)


def test_fused_model_state_dict_has_the_unfused_keys_and_dense_values() -> None:
    model = _model(backbone="resnet50")
    predictor = Predictor(model)
    predictor.detect(_images())  # packs the weights
    reference = _unfused(model).state_dict()
    state = predictor.model.state_dict()
    assert state.keys() == reference.keys()
    for key, value in state.items():
        assert not value.is_mkldnn and torch.equal(value, reference[key]), key


def test_a_relu_after_folded_norms_is_fused_and_one_after_another_layer_is_not() -> None:
    folded = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Identity(), nn.ReLU())
    fuse_convolutions(folded)
    assert isinstance(folded[0], FusedConv2d) and folded[0].relu and isinstance(folded[2], nn.Identity)
    unfolded = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4).eval(), nn.ReLU())
    fuse_convolutions(unfolded)
    assert isinstance(unfolded[0], FusedConv2d) and not unfolded[0].relu and isinstance(unfolded[2], nn.ReLU)
    same = nn.Sequential(nn.Conv2d(4, 4, 3, padding="same"), nn.ReLU())
    fuse_convolutions(same)
    assert type(same[0]) is nn.Conv2d  # string padding: left as it is


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_fused_conv_with_residual_and_relu_equals_conv_add_relu_in_fp32(layout: torch.memory_format) -> None:
    torch.manual_seed(0)
    block = Conv2dNormActivation(8, 16, 3, stride=2, norm_layer=None, bias=True)
    x = torch.randn(2, 8, 21, 17).contiguous(memory_format=layout)
    other = torch.randn(2, 16, 11, 9).contiguous(memory_format=layout)
    with torch.inference_mode():
        expected = torch.relu(block[0](x) + other)
        fused = FusedConv2d(block[0], relu=True)
        got = fused(x, other)
    assert got.is_contiguous(memory_format=torch.channels_last) or layout != torch.channels_last
    assert torch.equal(got, expected)


@BF16
def test_bf16_fused_block_is_the_fp32_block_within_bf16_rounding() -> None:
    torch.manual_seed(0)
    block = fold_batchnorm(nn.Sequential(Bottleneck(32, 8, norm_layer=nn.BatchNorm2d)).eval())[0]
    block = block.to(memory_format=torch.channels_last)
    x = torch.randn(1, 32, 24, 20).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        exact = block(x)
        fused = FusedBlock(_bf16(block))(x)
    assert fused.dtype == torch.bfloat16
    error = (fused.float() - exact).abs()
    assert error.mean() <= 2**-8 * exact.abs().mean()
    assert error.max() <= 2**-6 * exact.abs().max()


def _bf16(block: nn.Module) -> nn.Module:
    for module in block.modules():
        if isinstance(module, nn.Conv2d):
            module.to(torch.bfloat16)
    return block


@BF16
@pytest.mark.parametrize("layout", ["fast", "exact"])
def test_bf16_predictor_on_the_trained_demo_model_finds_fp32s_objects(layout: str) -> None:
    """The whole bf16 path as served (fused convolutions, bf16 RoIAlign, bf16 heads; or the exact layout with
    torchvision's float32 RoIAlign kernel): each confident fp32 detection has a bf16 one of its class over the
    same object (box IoU >= 0.9, mask IoU >= 0.8)."""
    from torchvision.ops import box_iou

    from models import weights
    from tests.scenes import DEMO_WEIGHTS, scene

    model = weights.load(DEMO_WEIGHTS)
    model.config = dataclasses.replace(model.config, inference_layout=layout)
    images = [scene(320, 256, seed) for seed in (1, 2, 3)]
    options = InferenceOptions(score_thresh=0.5)
    full = Predictor(model).detect(images, options)
    reduced = Predictor(model, precision="bf16").detect(images, options)
    for a, b in zip(full, reduced, strict=True):
        assert len(a) > 0
        iou = box_iou(a.boxes, b.boxes.float())
        same_class = a.labels[:, None] == b.labels[None, :]
        best = (iou * same_class).max(dim=1)
        assert (best.values >= 0.9).all(), best.values
        for i, j in enumerate(best.indices.tolist()):
            assert _crop_mask_iou(a.masks[i], b.masks[j].float()) >= 0.8


def _crop_mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two [M, M] box-relative mask probability maps binarised at 0.5 (boxes nearly equal)."""
    x, y = a >= 0.5, b >= 0.5
    return float((x & y).sum() / (x | y).sum().clamp(min=1))


def test_a_packed_model_copies_pickles_loads_and_moves_with_dense_weights() -> None:
    import copy
    import io

    model = _model()
    predictor = Predictor(model)
    images = _images()
    expected = predictor.detect(images)  # packs every fused weight
    assert any(m.weight.is_mkldnn for m in predictor.model.modules() if isinstance(m, FusedConv2d))
    state = predictor.model.state_dict()
    copied = copy.deepcopy(predictor.model)
    buffer = io.BytesIO()
    torch.save(predictor.model, buffer)
    predictor.model.load_state_dict(state)
    predictor.model.to(torch.float32)
    for module in (copied, predictor.model):
        with torch.inference_mode():
            got = module.predict(images)
        for det, exp in zip(got, expected, strict=True):
            assert torch.equal(det.boxes, exp.boxes) and torch.equal(det.masks, exp.masks)
