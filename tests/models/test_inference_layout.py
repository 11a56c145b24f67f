"""models/inference_layout.py: the Predictor's load-time rewrites give the detections of the plain model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import InferenceOptions, build_model, preset
from models.inference import Predictor, fold_batchnorm
from models.inference_layout import (
    ChannelsLastFlatten,
    ChannelsLastMLPHead,
    cast_weights,
    channels_last_heads,
    hwc_columns,
    hwc_flatten,
)
from models.structures import Detections

HEADS = {  # config overrides -> the rewritten head types (box head, mask head)
    "mlp box head, fcn masks": {},
    "conv_fc box head": {"box_head": "conv_fc"},
    "mlp mask head": {"mask_head": "mlp"},
}
BF16 = pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="CPU without bf16")


def _model(**overrides: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(preset("tiny", **overrides)).eval()


def _images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [
        torch.randint(0, 256, (3, 96, 130), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (3, 150, 110), generator=g, dtype=torch.uint8),
    ]


def _prepared(model: nn.Module, rewrite: bool) -> nn.Module:
    """What the Predictor ran before the rewrites: folded BN, channels-last (and the channels-last heads)."""
    copy = fold_batchnorm(model).to(memory_format=torch.channels_last)
    return channels_last_heads(copy) if rewrite else copy


def _run(model: nn.Module, autocast: bool) -> list[Detections]:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return model.predict(_images(), InferenceOptions(score_thresh=0.0))


def _reference(model: nn.Module, rewrite: bool, autocast: bool) -> list[Detections]:
    """The prepared copy run with autocast casting its fp32 weights on every call (or in fp32)."""
    return _run(_prepared(model, rewrite), autocast)


@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_hwc_columns_on_hwc_flatten_equal_the_layer_on_flatten(layout: str) -> None:
    fc = nn.Linear(8 * 3 * 3, 5)
    x = torch.randn(4, 8, 3, 3)
    expected = fc(x.flatten(1))
    hwc_columns(fc, 8, 3, 3)
    features = x.to(memory_format=torch.channels_last) if layout == "channels_last" else x
    assert torch.allclose(fc(hwc_flatten(features)), expected, atol=1e-6)


def test_hwc_flatten_of_channels_last_features_is_a_view() -> None:
    x = torch.randn(4, 8, 3, 3).to(memory_format=torch.channels_last)
    assert hwc_flatten(x).data_ptr() == x.data_ptr()


def test_hwc_columns_refuses_a_layer_of_another_width() -> None:
    with pytest.raises(ValueError, match="cannot read"):
        hwc_columns(nn.Linear(10, 5), 8, 3, 3)


@pytest.mark.parametrize("overrides", HEADS.values(), ids=HEADS.keys())
def test_cpu_predictor_rewrites_the_flattening_heads_and_keeps_fp32_detections(overrides: dict) -> None:
    model = _model(**overrides)
    predictor = Predictor(model)
    heads = predictor.model.roi_heads
    if model.config.box_head == "conv_fc":
        assert any(isinstance(layer, ChannelsLastFlatten) for layer in heads.box_head)
    else:
        assert isinstance(heads.box_head, ChannelsLastMLPHead)
    assert isinstance(heads.mask_head, ChannelsLastMLPHead) == (model.config.mask_head == "mlp")
    assert predictor.model.state_dict().keys() == fold_batchnorm(model).state_dict().keys()  # names kept

    got = predictor.detect(_images(), InferenceOptions(score_thresh=0.0))
    for exp, det in zip(_reference(model, rewrite=False, autocast=False), got, strict=True):
        assert len(det) == len(exp) == 100
        assert torch.equal(det.labels, exp.labels)
        assert torch.allclose(det.scores, exp.scores, atol=1e-5)
        assert torch.allclose(det.boxes, exp.boxes, atol=1e-3)
        assert torch.allclose(det.masks, exp.masks, atol=1e-4)


@BF16
@pytest.mark.parametrize("overrides", HEADS.values(), ids=HEADS.keys())
def test_cast_weights_give_autocasts_detections_exactly(overrides: dict) -> None:
    model = _model(**overrides)
    cast = cast_weights(_prepared(model, rewrite=True), torch.bfloat16)
    layers = [m for m in cast.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    assert layers and all(p.dtype == torch.bfloat16 for m in layers for p in m.parameters())

    got = _run(cast, autocast=True)
    for exp, det in zip(_reference(model, rewrite=True, autocast=True), got, strict=True):
        assert len(det) == len(exp) == 100
        for field in ("boxes", "scores", "labels", "masks"):
            assert torch.equal(getattr(det, field), getattr(exp, field)), field


def test_cast_weights_leaves_norm_layers_in_float32() -> None:
    model = cast_weights(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Linear(4, 2)), torch.bfloat16)
    assert model[0].weight.dtype == model[2].bias.dtype == torch.bfloat16
    assert model[1].weight.dtype == torch.float32
