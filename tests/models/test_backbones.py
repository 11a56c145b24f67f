"""Every trunk (ResNet, ResNeXt, MSRA stride placement) with every feature design (FPN, C4, C5) builds, trains a
step, infers and round-trips through a weights file; C4 shares one res5 pass per RoI set as Detectron2 does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models import InferenceOptions, build_model, preset, weights
from models.config import ModelConfig
from tests.scenes import shapes_batch

# (backbone, trunk_stride_in_1x1): torchvision's ResNet (basic blocks) and ResNeXt (bottlenecks), Detectron2's
# MSRA ResNet. torchvision's ResNet-50 FPN is tests/models/test_equivalence.py's.
TRUNKS = [("resnet18", False), ("resnext101_32x8d", False), ("resnet50", True)]
FEATURES = ["fpn", "c4", "c5"]
LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}


def _config(features: str, backbone: str, stride_in_1x1: bool) -> ModelConfig:
    """The tiny preset (width 8, 128-192 px images) with this trunk and design."""
    return preset("tiny", features=features, backbone=backbone, trunk_stride_in_1x1=stride_in_1x1)


@pytest.mark.parametrize("features", FEATURES)
@pytest.mark.parametrize(("backbone", "stride_in_1x1"), TRUNKS)
def test_every_trunk_and_design_trains_infers_and_round_trips(
    features: str, backbone: str, stride_in_1x1: bool, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = build_model(_config(features, backbone, stride_in_1x1))
    images, targets = shapes_batch()

    model.train()
    losses = model(images, targets)
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name

    model.eval()
    options = InferenceOptions(score_thresh=0.0)
    detections = model.predict(images, options)
    mask_size = 14 if features == "c4" else 28  # C4: res5 halves the 14x14 RoI, the deconv doubles it back
    for det, image in zip(detections, images, strict=True):
        assert len(det) > 0 and det.image_size == tuple(image.shape[1:])
        assert det.masks is not None and det.masks.shape == (len(det), mask_size, mask_size)
        assert ((det.masks >= 0) & (det.masks <= 1)).all()

    path = tmp_path / "model.safetensors"
    weights.save(model, path)
    loaded = weights.load(path)  # strict=True
    assert loaded.config == model.config
    again = loaded.predict(images, options)
    for a, b in zip(detections, again, strict=True):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.masks, b.masks)


@pytest.mark.parametrize(("features", "channels", "stride"), [("fpn", 16, None), ("c4", 32, 16), ("c5", 64, 32)])
def test_each_design_declares_its_maps_and_the_rpn_anchors_fit_them(
    features: str, channels: int, stride: int | None
) -> None:
    model = build_model(preset("tiny", features=features))  # ResNet-18 at width 8: res4 32, res5 64 channels
    out = model.backbone(torch.zeros(1, 3, 128, 160))
    assert list(out) == list(model.backbone.feature_strides)
    for name, value in out.items():
        s = model.backbone.feature_strides[name]
        assert value.shape[1] == model.backbone.out_channels == channels
        assert value.shape[-2:] == (-(-128 // s), -(-160 // s))  # P6 (stride 64) rounds up: 3 columns of 160
    anchors = model.rpn.anchor_generator
    if stride is None:
        assert model.backbone.roi_features == ("0", "1", "2", "3") and anchors.num_anchors_per_location == 3
    else:
        assert model.backbone.feature_strides == {f"res{4 if features == 'c4' else 5}": stride}
        assert anchors.num_anchors_per_location == 15  # 5 sizes x 3 ratios on the one level
        assert model.rpn.head.cls_logits.out_channels == 15
        poolers = (
            [model.roi_heads.roi_pool]
            if features == "c4"
            else [model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool]
        )
        assert all(p.scales == [1 / stride] for p in poolers)  # RoIAlign samples the map at its own stride


def test_c4_runs_res5_once_in_training_and_again_on_the_detections_at_inference() -> None:
    torch.manual_seed(0)
    model = build_model(preset("tiny", features="c4"))
    calls: list[int] = []
    model.roi_heads.res5.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    images, targets = shapes_batch()
    model.train()
    model(images, targets)
    assert len(calls) == 1  # the mask loss reuses the positive RoIs' res5 features
    calls.clear()
    model.eval()
    detections = model.predict(images, InferenceOptions(score_thresh=0.0))
    # Both images share one padded size, hence one forward: res5 on the proposals, then on the kept detections.
    assert len(calls) == 2 and calls[1] == sum(len(d) for d in detections) > 0


def test_c4_softmax_masks_train_and_infer_through_the_mask_predictor_contract() -> None:
    torch.manual_seed(0)
    model = build_model(preset("tiny", features="c4", mask_loss="softmax"))
    images, targets = shapes_batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == LOSSES and torch.isfinite(losses["loss_mask"])
    model.eval()
    det = model.predict(images, InferenceOptions(score_thresh=0.0))[0]
    assert det.masks is not None and det.masks.shape == (len(det), 14, 14) and len(det) > 0
    # Softmax over the classes, the predicted class's channel: every pixel a probability.
    assert ((det.masks >= 0) & (det.masks <= 1)).all()


def test_c4_without_a_mask_branch_has_no_mask_keys_loss_or_masks() -> None:
    model = build_model(preset("tiny", features="c4", mask_head="none"))
    assert not any(key.startswith("roi_heads.mask") for key in model.state_dict())
    images, targets = shapes_batch()
    model.train()
    assert set(model(images, targets)) == LOSSES - {"loss_mask"}
    model.eval()
    assert all(det.masks is None for det in model.predict(images, InferenceOptions(score_thresh=0.0)))


def test_c4_refuses_the_mlp_mask_head() -> None:
    with pytest.raises(ValueError, match="c4 runs res5 as the mask head: mask_head must be 'fcn'"):
        ModelConfig(features="c4", mask_head="mlp")
