"""The architecture a Detectron2 weights file needs: a model-zoo config name or a Detectron2 YAML -> ModelConfig.

A `.pkl` holds tensors only; the trunk's stride placement (`STRIDE_IN_1X1`), pixel mean/std, channel order,
anchors and classes live in Detectron2's YAML config. `resolve_arch("d2:mask_rcnn_R_50_FPN_3x")` knows the
model zoo's (COCO-InstanceSegmentation, Detectron2's `configs/` folder); `resolve_arch("path/config.yaml")`
reads the keys that matter from a YAML, following `_BASE_` chains relative to each file, over Detectron2's
defaults (`config/defaults.py`). Anything this project cannot reproduce (cascade or keypoint heads, GN or
deformable trunks, class-agnostic regression ...) is refused with an `ArchError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import ModelConfig
from ..presets import DETECTRON2_RULES
from ..weights import COCO_CATEGORIES, WeightsError

PREFIX = "d2:"
_FPN_BASE: dict[str, Any] = {
    "MODEL": {
        "MASK_ON": True,
        "BACKBONE": {"NAME": "build_resnet_fpn_backbone"},
        "ANCHOR_GENERATOR": {"SIZES": [[32], [64], [128], [256], [512]]},
        "RPN": {"PRE_NMS_TOPK_TEST": 1000},
        "ROI_HEADS": {"NAME": "StandardROIHeads"},
        "ROI_BOX_HEAD": {"NAME": "FastRCNNConvFCHead", "NUM_FC": 2, "POOLER_RESOLUTION": 7},
        "ROI_MASK_HEAD": {"NUM_CONV": 4},
    }
}
_C4_BASE: dict[str, Any] = {
    "MODEL": {"MASK_ON": True, "RPN": {"PRE_NMS_TOPK_TEST": 6000}, "ROI_HEADS": {"NAME": "Res5ROIHeads"}}
}
_X101 = {"PIXEL_STD": [57.375, 57.120, 58.395], "RESNETS": {"STRIDE_IN_1X1": False, "NUM_GROUPS": 32,
         "WIDTH_PER_GROUP": 8, "DEPTH": 101}}  # fmt: skip
# The model zoo's Mask R-CNN configs (configs/COCO-InstanceSegmentation/*.yaml, their _BASE_ merged in).
ZOO: dict[str, dict[str, Any]] = {
    "mask_rcnn_R_50_FPN_1x": _FPN_BASE,
    "mask_rcnn_R_50_FPN_3x": _FPN_BASE,
    "mask_rcnn_R_101_FPN_3x": {"MODEL": {**_FPN_BASE["MODEL"], "RESNETS": {"DEPTH": 101}}},
    "mask_rcnn_X_101_32x8d_FPN_3x": {"MODEL": {**_FPN_BASE["MODEL"], **_X101}},
    "mask_rcnn_R_50_C4_1x": _C4_BASE,
    "mask_rcnn_R_50_C4_3x": _C4_BASE,
}


class ArchError(WeightsError):
    """The named architecture is unknown, its YAML unreadable, or it asks for something we do not build."""


@dataclass(frozen=True)
class Detectron2Config:
    """The Detectron2 config keys that shape inference (Detectron2's names in the comments)."""

    depth: int  # MODEL.RESNETS.DEPTH
    groups: int  # NUM_GROUPS
    width_per_group: int  # WIDTH_PER_GROUP
    stem_width: int  # STEM_OUT_CHANNELS
    res2_width: int  # RES2_OUT_CHANNELS
    stride_in_1x1: bool  # STRIDE_IN_1X1
    c4: bool  # ROI_HEADS.NAME == Res5ROIHeads (else StandardROIHeads on an FPN)
    fpn_channels: int  # FPN.OUT_CHANNELS
    anchor_sizes: tuple[int, ...]  # ANCHOR_GENERATOR.SIZES, flattened
    aspect_ratios: tuple[float, ...]  # ANCHOR_GENERATOR.ASPECT_RATIOS[0]
    rpn_pre_nms_top_n: int  # RPN.PRE_NMS_TOPK_TEST
    rpn_post_nms_top_n: int  # RPN.POST_NMS_TOPK_TEST
    rpn_nms_thresh: float  # RPN.NMS_THRESH
    num_classes: int  # ROI_HEADS.NUM_CLASSES (without background)
    score_thresh: float  # ROI_HEADS.SCORE_THRESH_TEST
    nms_thresh: float  # ROI_HEADS.NMS_THRESH_TEST
    detections_per_img: int  # TEST.DETECTIONS_PER_IMAGE
    box_head_dim: int  # ROI_BOX_HEAD.FC_DIM
    mask_head_dim: int  # ROI_MASK_HEAD.CONV_DIM
    sampling_ratio: int  # ROI_BOX_HEAD / ROI_MASK_HEAD.POOLER_SAMPLING_RATIO
    aligned: bool  # POOLER_TYPE == ROIAlignV2 (else ROIAlign)
    pixel_mean: tuple[float, float, float]  # MODEL.PIXEL_MEAN, 0-255, INPUT.FORMAT order
    pixel_std: tuple[float, float, float]  # MODEL.PIXEL_STD
    bgr: bool  # INPUT.FORMAT == BGR
    min_size: int  # INPUT.MIN_SIZE_TEST
    max_size: int  # INPUT.MAX_SIZE_TEST


def resolve_arch(arch: str) -> ModelConfig:
    """`d2:<model-zoo config name>` or a Detectron2 YAML path -> the ModelConfig with every Detectron2 rule.

    Raises ArchError for an unknown zoo name (listing the known ones), a missing or unreadable YAML, or a
    config this project does not reproduce.
    """
    if arch.startswith(PREFIX):
        name = arch[len(PREFIX) :]
        if name not in ZOO:
            raise ArchError(f"unknown Detectron2 model-zoo config {name!r}; choose from {', '.join(ZOO)}")
        return model_config(parse(ZOO[name], arch))
    path = Path(arch)
    if path.suffix not in (".yaml", ".yml"):
        raise ArchError(f"--arch {arch!r}: expected d2:<model-zoo name> ({', '.join(ZOO)}) or a Detectron2 .yaml")
    return model_config(parse(load_yaml(path), str(path)))


def load_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A Detectron2 YAML with its `_BASE_` chain merged in (each base relative to the file naming it)."""
    path = path.resolve()
    if path in seen:
        raise ArchError(f"{path}: _BASE_ cycle")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ArchError(f"{path}: unreadable Detectron2 config ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ArchError(f"{path}: a Detectron2 config is a mapping, got {type(data).__name__}")
    base = data.pop("_BASE_", None)
    if base is None:
        return data
    return merge(load_yaml(path.parent / str(base), (*seen, path)), data)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse(cfg: dict[str, Any], source: str) -> Detectron2Config:
    """The keys that matter, over Detectron2's defaults; raises ArchError for what we do not build."""

    def get(dotted: str, default: Any) -> Any:
        node: Any = cfg
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def require(dotted: str, default: Any, allowed: tuple[Any, ...]) -> Any:
        value = get(dotted, default)
        if value not in allowed:
            raise ArchError(f"{source}: {dotted} = {value!r} is not supported (only {', '.join(map(repr, allowed))})")
        return value

    require("MODEL.META_ARCHITECTURE", "GeneralizedRCNN", ("GeneralizedRCNN",))
    require("MODEL.MASK_ON", False, (True,))
    require("MODEL.KEYPOINT_ON", False, (False,))
    heads = require("MODEL.ROI_HEADS.NAME", "Res5ROIHeads", ("StandardROIHeads", "Res5ROIHeads"))
    c4 = heads == "Res5ROIHeads"
    require("MODEL.BACKBONE.NAME", "build_resnet_backbone", ("build_resnet_backbone",) if c4 else
            ("build_resnet_fpn_backbone",))  # fmt: skip
    require("MODEL.RESNETS.NORM", "FrozenBN", ("FrozenBN",))
    require("MODEL.RESNETS.RES5_DILATION", 1, (1,))
    require("MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False] * 4, ([False] * 4,))
    require("MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", False, (False,))
    require("MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", False, (False,))
    require("MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", 14, (14,))
    require("MODEL.ANCHOR_GENERATOR.OFFSET", 0.0, (0.0,))
    if not c4:
        require("MODEL.FPN.NORM", "", ("",))
        require("MODEL.ROI_BOX_HEAD.NUM_FC", 0, (2,))
        require("MODEL.ROI_BOX_HEAD.NUM_CONV", 0, (0,))
        require("MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", 14, (7,))
        require("MODEL.ROI_MASK_HEAD.NUM_CONV", 0, (4,))
    pooler = require("MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignV2", ("ROIAlignV2", "ROIAlign"))
    require("MODEL.ROI_MASK_HEAD.POOLER_TYPE", "ROIAlignV2", (pooler,))
    ratio = get("MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", 0)
    require("MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO", 0, (ratio,))
    sizes = [s for level in get("MODEL.ANCHOR_GENERATOR.SIZES", [[32, 64, 128, 256, 512]]) for s in level]
    ratios = get("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", [[0.5, 1.0, 2.0]])
    if len(ratios) != 1:
        raise ArchError(f"{source}: MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS must be one list for all levels")
    min_size = get("INPUT.MIN_SIZE_TEST", 800)
    return Detectron2Config(
        depth=require("MODEL.RESNETS.DEPTH", 50, (50, 101)),
        groups=int(get("MODEL.RESNETS.NUM_GROUPS", 1)),
        width_per_group=int(get("MODEL.RESNETS.WIDTH_PER_GROUP", 64)),
        stem_width=int(get("MODEL.RESNETS.STEM_OUT_CHANNELS", 64)),
        res2_width=int(get("MODEL.RESNETS.RES2_OUT_CHANNELS", 256)),
        stride_in_1x1=bool(get("MODEL.RESNETS.STRIDE_IN_1X1", True)),
        c4=c4,
        fpn_channels=int(get("MODEL.FPN.OUT_CHANNELS", 256)),
        anchor_sizes=tuple(int(s) for s in sizes),
        aspect_ratios=tuple(float(r) for r in ratios[0]),
        rpn_pre_nms_top_n=int(get("MODEL.RPN.PRE_NMS_TOPK_TEST", 6000)),
        rpn_post_nms_top_n=int(get("MODEL.RPN.POST_NMS_TOPK_TEST", 1000)),
        rpn_nms_thresh=float(get("MODEL.RPN.NMS_THRESH", 0.7)),
        num_classes=int(get("MODEL.ROI_HEADS.NUM_CLASSES", 80)),
        score_thresh=float(get("MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.05)),
        nms_thresh=float(get("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.5)),
        detections_per_img=int(get("TEST.DETECTIONS_PER_IMAGE", 100)),
        box_head_dim=int(get("MODEL.ROI_BOX_HEAD.FC_DIM", 1024)),
        mask_head_dim=int(get("MODEL.ROI_MASK_HEAD.CONV_DIM", 256)),
        sampling_ratio=int(ratio),
        aligned=pooler == "ROIAlignV2",
        pixel_mean=_triple(get("MODEL.PIXEL_MEAN", [103.530, 116.280, 123.675]), "MODEL.PIXEL_MEAN", source),
        pixel_std=_triple(get("MODEL.PIXEL_STD", [1.0, 1.0, 1.0]), "MODEL.PIXEL_STD", source),
        bgr=require("INPUT.FORMAT", "BGR", ("BGR", "RGB")) == "BGR",
        min_size=int(min_size[-1] if isinstance(min_size, list | tuple) else min_size),
        max_size=int(get("INPUT.MAX_SIZE_TEST", 1333)),
    )


def _triple(value: Any, key: str, source: str) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ArchError(f"{source}: {key} must list 3 numbers, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def coco_classes() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Background + COCO's 80 names (no "N/A") and their COCO category ids (0 for background)."""
    kept = [(i, name) for i, name in enumerate(COCO_CATEGORIES) if i > 0 and name != "N/A"]
    return ("__background__", *(n for _, n in kept)), (0, *(i for i, _ in kept))


def model_config(d2: Detectron2Config) -> ModelConfig:
    """Our ModelConfig for a Detectron2 config: its architecture plus every Detectron2 rule (DETECTRON2_RULES)."""
    backbone = _backbone(d2)
    if d2.num_classes == 80:
        names, ids = coco_classes()
    else:
        names, ids = ("__background__", *(f"class_{i}" for i in range(1, d2.num_classes + 1))), ()
    return ModelConfig(
        **{
            **DETECTRON2_RULES,
            "backbone": backbone,
            "backbone_width": d2.stem_width,
            "trunk_stride_in_1x1": d2.stride_in_1x1,
            "features": "c4" if d2.c4 else "fpn",
            "size_divisible": 1 if d2.c4 else 32,
            "fpn_channels": d2.fpn_channels,
            "anchor_sizes": d2.anchor_sizes,
            "aspect_ratios": d2.aspect_ratios,
            "rpn_pre_nms_top_n_test": d2.rpn_pre_nms_top_n,
            "rpn_post_nms_top_n_test": d2.rpn_post_nms_top_n,
            "rpn_nms_thresh": d2.rpn_nms_thresh,
            "box_head_dim": d2.box_head_dim,
            "mask_head_dim": d2.mask_head_dim,
            "pooler_aligned": d2.aligned,
            "pooler_sampling_ratio": d2.sampling_ratio,
            "score_thresh": d2.score_thresh,
            "nms_thresh": d2.nms_thresh,
            "detections_per_img": d2.detections_per_img,
            "min_size": d2.min_size,
            "max_size": d2.max_size,
            "image_mean": d2.pixel_mean,
            "image_std": d2.pixel_std,
            "input_channels": "bgr" if d2.bgr else "rgb",
            "num_classes": d2.num_classes + 1,
            "class_names": names,
            "category_ids": ids,
        }
    )


def _backbone(d2: Detectron2Config) -> str:
    """Our trunk name. A narrow trunk must be torchvision-shaped: RES2 = 4 x STEM, and a bottleneck as wide as
    the stem (ResNet: WIDTH_PER_GROUP = STEM) or four times it in 32 groups (ResNeXt 32x8d: WIDTH_PER_GROUP x 8
    = STEM, torchvision's int(planes * 8 / 64) * 32)."""
    if d2.res2_width != 4 * d2.stem_width:
        raise ArchError(f"RESNETS.RES2_OUT_CHANNELS {d2.res2_width} must be 4 x STEM_OUT_CHANNELS {d2.stem_width}")
    if d2.groups == 32 and d2.depth == 101 and d2.width_per_group * 8 == d2.stem_width:
        return "resnext101_32x8d"
    if d2.groups != 1 or d2.width_per_group != d2.stem_width:
        raise ArchError(
            f"RESNETS.NUM_GROUPS {d2.groups} x WIDTH_PER_GROUP {d2.width_per_group} at STEM_OUT_CHANNELS "
            f"{d2.stem_width} is not a trunk we build (ResNet: 1 x STEM; ResNeXt-101: 32 x STEM / 8)"
        )
    return f"resnet{d2.depth}"
