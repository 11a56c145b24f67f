"""Detectron2's state-dict names and class layout -> ours (torchvision's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models import build_model
from models.detectron2.names import our_name, to_ours
from models.detectron2.pickle_loader import read_state
from models.presets import preset
from models.weights import WeightsError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "detectron2" / "r50_fpn.pkl"
NARROW = {"backbone_width": 8, "fpn_channels": 16, "box_head_dim": 32, "mask_head_dim": 16, "num_classes": 81}


@pytest.mark.parametrize(
    ("d2", "ours"),
    [
        ("backbone.bottom_up.stem.conv1.weight", "backbone.body.conv1.weight"),
        ("backbone.bottom_up.stem.conv1.norm.running_var", "backbone.body.bn1.running_var"),
        ("backbone.bottom_up.res2.0.conv3.norm.bias", "backbone.body.layer1.0.bn3.bias"),
        ("backbone.bottom_up.res4.22.conv2.weight", "backbone.body.layer3.22.conv2.weight"),
        ("backbone.bottom_up.res5.0.shortcut.weight", "backbone.body.layer4.0.downsample.0.weight"),
        ("backbone.bottom_up.res3.0.shortcut.norm.running_mean", "backbone.body.layer2.0.downsample.1.running_mean"),
        ("backbone.stem.conv1.weight", "backbone.body.conv1.weight"),  # C4: no bottom_up
        ("backbone.res4.5.conv1.norm.weight", "backbone.body.layer3.5.bn1.weight"),
        ("roi_heads.res5.2.conv3.weight", "roi_heads.res5.2.conv3.weight"),  # C4's res5 head
        ("roi_heads.res5.0.shortcut.norm.bias", "roi_heads.res5.0.downsample.1.bias"),
        ("backbone.fpn_lateral2.weight", "backbone.fpn.inner_blocks.0.0.weight"),
        ("backbone.fpn_output5.bias", "backbone.fpn.layer_blocks.3.0.bias"),
        ("proposal_generator.rpn_head.conv.weight", "rpn.head.conv.0.0.weight"),
        ("proposal_generator.rpn_head.objectness_logits.bias", "rpn.head.cls_logits.bias"),
        ("proposal_generator.rpn_head.anchor_deltas.weight", "rpn.head.bbox_pred.weight"),
        ("roi_heads.box_head.fc1.weight", "roi_heads.box_head.fc6.weight"),
        ("roi_heads.box_head.fc2.bias", "roi_heads.box_head.fc7.bias"),
        ("roi_heads.mask_head.mask_fcn1.weight", "roi_heads.mask_head.0.0.weight"),
        ("roi_heads.mask_head.mask_fcn4.bias", "roi_heads.mask_head.3.0.bias"),
        ("roi_heads.mask_head.deconv.weight", "roi_heads.mask_predictor.conv5_mask.weight"),
        ("roi_heads.mask_head.predictor.bias", "roi_heads.mask_predictor.mask_fcn_logits.bias"),
    ],
)
def test_each_detectron2_name_maps_to_torchvisions(d2: str, ours: str) -> None:
    assert our_name(d2) == ours


def test_the_recorded_r50_fpn_file_gives_exactly_our_keys_and_shapes() -> None:
    state = to_ours(read_state(FIXTURE), "fixture")
    expected = build_model(preset("d2", **NARROW)).state_dict()
    assert len(state) == len(expected) == 307
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in expected.items()}


def test_background_moves_from_last_to_first_and_unused_background_rows_are_zero() -> None:
    d2 = read_state(FIXTURE)
    ours = to_ours(d2)
    cls = d2["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(ours["roi_heads.box_predictor.cls_score.weight"][0], cls[80])
    assert torch.equal(ours["roi_heads.box_predictor.cls_score.weight"][1:], cls[:80])
    assert torch.equal(
        ours["roi_heads.box_predictor.cls_score.bias"][0], d2["roi_heads.box_predictor.cls_score.bias"][80]
    )
    box = ours["roi_heads.box_predictor.bbox_pred.weight"]
    assert box.shape[0] == 4 * 81 and not box[:4].any()
    assert torch.equal(box[4:], d2["roi_heads.box_predictor.bbox_pred.weight"])
    logits = ours["roi_heads.mask_predictor.mask_fcn_logits.weight"]
    assert logits.shape[0] == 81 and not logits[0].any()


def test_keys_outside_the_map_are_named() -> None:
    state = read_state(FIXTURE)
    state["roi_heads.box_predictor.1.cls_score.weight"] = torch.zeros(1)  # a cascade stage
    with pytest.raises(WeightsError, match=r"loader knows: keys \['roi_heads.box_predictor.1.cls_score.weight'\]"):
        to_ours(state, "cascade.pkl")


def test_class_agnostic_box_regression_is_refused() -> None:
    state = read_state(FIXTURE)
    state["roi_heads.box_predictor.bbox_pred.weight"] = torch.zeros(4, 32)
    state["roi_heads.box_predictor.bbox_pred.bias"] = torch.zeros(4)
    with pytest.raises(WeightsError, match="bbox_pred has 4 rows for 80 classes"):
        to_ours(state, "agnostic.pkl")
