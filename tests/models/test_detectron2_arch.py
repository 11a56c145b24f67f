"""The architecture of a Detectron2 file: model-zoo names and Detectron2 YAMLs -> ModelConfig with its rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.config import ModelConfig
from models.detectron2.arch import ZOO, ArchError, coco_classes, load_yaml, merge, parse, resolve_arch
from models.presets import DETECTRON2_RULES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "detectron2"


def test_msra_r50_and_r101_put_the_stride_on_the_1x1_and_take_bgr_with_unit_std() -> None:
    for name, depth in (("mask_rcnn_R_50_FPN_3x", 50), ("mask_rcnn_R_101_FPN_3x", 101), ("mask_rcnn_R_50_FPN_1x", 50)):
        d2 = parse(ZOO[name], name)
        assert (d2.depth, d2.stride_in_1x1, d2.bgr, d2.c4) == (depth, True, True, False)
        assert d2.pixel_mean == (103.530, 116.280, 123.675) and d2.pixel_std == (1.0, 1.0, 1.0)
        assert d2.anchor_sizes == (32, 64, 128, 256, 512) and d2.rpn_pre_nms_top_n == 1000


def test_x101_is_a_caffe2_trunk_stride_on_the_3x3_with_its_pixel_std_and_32_groups() -> None:
    d2 = parse(ZOO["mask_rcnn_X_101_32x8d_FPN_3x"], "x101")
    assert (d2.depth, d2.groups, d2.width_per_group, d2.stride_in_1x1) == (101, 32, 8, False)
    assert d2.pixel_std == (57.375, 57.120, 58.395)


def test_c4_has_one_level_of_fifteen_anchors_and_6000_proposals_before_nms() -> None:
    d2 = parse(ZOO["mask_rcnn_R_50_C4_3x"], "c4")
    assert d2.c4 and d2.anchor_sizes == (32, 64, 128, 256, 512) and d2.rpn_pre_nms_top_n == 6000


def test_the_recorded_fixture_yaml_parses_to_its_narrow_trunk() -> None:
    d2 = parse(load_yaml(FIXTURES / "r50_fpn.yaml"), "fixture")
    assert (d2.stem_width, d2.res2_width, d2.fpn_channels, d2.box_head_dim, d2.mask_head_dim) == (8, 32, 16, 32, 16)
    assert d2.aligned and d2.sampling_ratio == 0 and d2.num_classes == 80


def test_base_chains_resolve_relative_to_each_file(tmp_path: Path) -> None:
    (tmp_path / "configs" / "sub").mkdir(parents=True)
    (tmp_path / "configs" / "Base.yaml").write_text(
        "MODEL:\n  MASK_ON: True\n  BACKBONE:\n    NAME: build_resnet_fpn_backbone\n  ROI_HEADS:\n"
        "    NAME: StandardROIHeads\n    NUM_CLASSES: 3\n  ROI_BOX_HEAD:\n    NUM_FC: 2\n    POOLER_RESOLUTION: 7\n"
        "  ROI_MASK_HEAD:\n    NUM_CONV: 4\n  ANCHOR_GENERATOR:\n    SIZES: [[32], [64], [128], [256], [512]]\n"
    )
    (tmp_path / "configs" / "sub" / "mid.yaml").write_text(
        '_BASE_: "../Base.yaml"\nMODEL:\n  RESNETS:\n    DEPTH: 101\n'
    )
    (tmp_path / "configs" / "sub" / "top.yaml").write_text(
        '_BASE_: "mid.yaml"\nINPUT:\n  FORMAT: RGB\n  MIN_SIZE_TEST: 640\nMODEL:\n  ROI_HEADS:\n    NUM_CLASSES: 5\n'
    )
    d2 = parse(load_yaml(tmp_path / "configs" / "sub" / "top.yaml"), "top")
    assert (d2.depth, d2.num_classes, d2.bgr, d2.min_size, d2.c4) == (101, 5, False, 640, False)


def test_a_base_cycle_and_a_missing_base_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text('_BASE_: "b.yaml"\n')
    (tmp_path / "b.yaml").write_text('_BASE_: "a.yaml"\n')
    with pytest.raises(ArchError, match="_BASE_ cycle"):
        load_yaml(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text('_BASE_: "nowhere.yaml"\n')
    with pytest.raises(ArchError, match=r"nowhere\.yaml: unreadable Detectron2 config"):
        load_yaml(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"MODEL": {"MASK_ON": False}}, "MODEL.MASK_ON = False is not supported"),
        ({"MODEL": {"KEYPOINT_ON": True}}, "MODEL.KEYPOINT_ON"),
        ({"MODEL": {"ROI_HEADS": {"NAME": "CascadeROIHeads"}}}, "MODEL.ROI_HEADS.NAME = 'CascadeROIHeads'"),
        ({"MODEL": {"RESNETS": {"NORM": "GN"}}}, "MODEL.RESNETS.NORM = 'GN'"),
        ({"MODEL": {"ROI_BOX_HEAD": {"CLS_AGNOSTIC_BBOX_REG": True}}}, "CLS_AGNOSTIC_BBOX_REG"),
        ({"MODEL": {"ANCHOR_GENERATOR": {"ASPECT_RATIOS": [[1.0]] * 5}}}, "one list for all levels"),
    ],
)
def test_what_we_do_not_reproduce_is_refused_naming_the_key(override: dict, message: str) -> None:
    with pytest.raises(ArchError, match=message):
        parse(merge(ZOO["mask_rcnn_R_50_FPN_3x"], override), "x.yaml")


def test_unknown_zoo_names_and_other_paths_list_the_choices() -> None:
    with pytest.raises(ArchError, match=r"unknown Detectron2 model-zoo config 'mask_rcnn_R_18'.*R_50_FPN_3x"):
        resolve_arch("d2:mask_rcnn_R_18")
    with pytest.raises(ArchError, match=r"expected d2:<model-zoo name>"):
        resolve_arch("model_final.pkl")


def test_coco_classes_are_the_80_names_with_their_coco_ids() -> None:
    names, ids = coco_classes()
    assert len(names) == len(ids) == 81 and names[0] == "__background__" and "N/A" not in names
    assert (names[1], ids[1]) == ("person", 1) and (names[12], ids[12]) == ("stop sign", 13)
    assert (names[80], ids[80]) == ("toothbrush", 90)


def test_zoo_configs_carry_every_detectron2_rule_and_the_trunk_rules() -> None:
    r50 = resolve_arch("d2:mask_rcnn_R_50_FPN_3x")
    assert all(getattr(r50, k) == v for k, v in DETECTRON2_RULES.items() if k not in ("image_mean", "image_std"))
    assert (r50.backbone, r50.trunk_stride_in_1x1, r50.pooler_aligned, r50.pooler_sampling_ratio) == (
        "resnet50",
        True,
        True,
        0,
    )
    assert r50.num_classes == 81 and r50.category_ids[-1] == 90
    x101 = resolve_arch("d2:mask_rcnn_X_101_32x8d_FPN_3x")
    assert (x101.backbone, x101.trunk_stride_in_1x1, x101.image_std) == (
        "resnext101_32x8d",
        False,
        (57.375, 57.120, 58.395),
    )
    c4 = resolve_arch("d2:mask_rcnn_R_50_C4_3x")
    assert (c4.features, c4.size_divisible, c4.rpn_pre_nms_top_n_test) == ("c4", 1, 6000)
    assert ModelConfig.from_dict(r50.to_dict()) == r50  # travels in the weights file
