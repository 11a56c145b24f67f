"""Named architectures (`preset(name)`) and the settings that reproduce Detectron2's numbers."""

from __future__ import annotations

from typing import Any

from .config import ModelConfig
from .keypoint_names import COCO_PERSON_KEYPOINTS

# Every Detectron2 rule of ModelConfig at its Detectron2 value (the `d2` preset; models/detectron2/arch.py).
DETECTRON2_RULES: dict[str, Any] = {
    "input_channels": "bgr",
    "input_range": "byte",
    "image_mean": (103.530, 116.280, 123.675),  # BGR, 0-255: Detectron2's PIXEL_MEAN (MSRA trunks)
    "image_std": (1.0, 1.0, 1.0),
    "resize_rounding": "half_up",
    "resize_kernel": "pil_uint8",
    "frozen_bn_arithmetic": "batch_norm",
    "inference_layout": "exact",
    "anchor_rounding": "exact",
    "anchor_stride": "nominal",
    "rpn_nms_score": "logit",
    "rpn_box_filter": "empty",
    "pooler_aligned": True,  # 9. ROIAlignV2
    "pooler_sampling_ratio": 0,
    "output_box_clip": True,
    "mask_paste": "grid_sample",
    "mask_thresh_inclusive": True,
    "box_softmax_background": "last",
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """Named architectures: torchvision's two COCO models, the paper's backbones (full size, 91 classes as
    torchvision's COCO models), and small ones for tests and the demo.

    The single-level designs take the RPN numbers of Detectron2's `Base-RCNN-C4.yaml`: all five anchor sizes on
    one level, 12000 / 6000 top-scoring anchors before NMS (training / testing), 2000 / 1000 proposals after.
    """
    single_level = {
        "rpn_pre_nms_top_n_train": 12000,
        "rpn_pre_nms_top_n_test": 6000,
        "rpn_post_nms_top_n_train": 2000,
        "rpn_post_nms_top_n_test": 1000,
    }
    presets: dict[str, dict[str, Any]] = {
        "resnet50_fpn": {},
        "resnet50_fpn_v2": {"rpn_conv_depth": 2, "box_head": "conv_fc", "fpn_norm": "bn", "mask_head_norm": "bn"},
        # Detectron2's model-zoo R50-FPN: its MSRA trunk and every rule (models/detectron2/arch.py adds classes).
        "d2": {**DETECTRON2_RULES, "trunk_stride_in_1x1": True},
        # torchvision's keypointrcnn_resnet50_fpn: person boxes and 17 COCO keypoints, no mask branch.
        "keypointrcnn_resnet50_fpn": {
            "num_classes": 2,
            "num_keypoints": 17,
            "mask_head": "none",
            "min_size": (640, 672, 704, 736, 768, 800),
            "class_names": ("__background__", "person"),
            "keypoint_names": COCO_PERSON_KEYPOINTS,
        },
        "r50-fpn": {},
        "r101-fpn": {"backbone": "resnet101"},
        "x101-fpn": {"backbone": "resnext101_32x8d"},
        "r50-c4": {"features": "c4", **single_level},
        "r50-c5": {"features": "c5", **single_level},
        # A few-MB model for unit tests: narrow ResNet-18, small images, few proposals.
        "tiny": {
            "backbone": "resnet18",
            "backbone_width": 8,
            "fpn_channels": 16,
            "box_head_dim": 32,
            "mask_head_dim": 16,
            "keypoint_head_dim": 16,  # used when num_keypoints > 0
            "num_classes": 5,
            "min_size": 128,
            "max_size": 192,
            "anchor_sizes": (8, 16, 32, 64, 128),
            "rpn_pre_nms_top_n_test": 200,
            "rpn_post_nms_top_n_test": 100,
            "rpn_pre_nms_top_n_train": 400,
            "rpn_post_nms_top_n_train": 200,
            "box_batch_size_per_image": 64,
            "rpn_batch_size_per_image": 64,
        },
        # The demo model of models/assets: a narrow ResNet-18-FPN trained from scratch on the synthetic shapes
        # (`maskrcnn synth`), hence trainable BatchNorm in the trunk and GroupNorm in the mask head; ~14 MB.
        "demo": {
            "backbone": "resnet18",
            "backbone_width": 32,
            "trunk_norm": "bn",
            "fpn_channels": 96,
            "mask_head_norm": "gn",
            "box_head_dim": 256,
            "mask_head_dim": 96,
            "num_classes": 5,
            "min_size": 256,
            "max_size": 384,
            "anchor_sizes": (16, 32, 64, 128, 256),
            "rpn_pre_nms_top_n_train": 1000,
            "rpn_post_nms_top_n_train": 500,
            "rpn_pre_nms_top_n_test": 500,
            "rpn_post_nms_top_n_test": 300,
            "box_batch_size_per_image": 128,
        },
    }
    if name not in presets:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(presets)}")
    return ModelConfig(**{**presets[name], **overrides})
