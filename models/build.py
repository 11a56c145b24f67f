"""`build_model(config)`: a Mask R-CNN assembled from a `ModelConfig`, by its `features` design.

- fpn: the FPN heads on P2-P5 (torchvision's `maskrcnn_resnet50_fpn`, v1 or v2 by the head fields);
- c5: the same heads on res5 alone, stride 32. The paper (section 4.2, Table 2d) compares RoIAlign on
  "ResNet-50-C5" and says "We use the same head as in Figure 4 (right), as the res5 head is not applicable":
  Figure 4 (right) is the FPN head, two 1024-d fc layers for the box, four 3x3 convs for the mask;
- c4: res5 as the shared RoI head on res4 (Detectron2's `Res5ROIHeads`, models/res5_heads.py).
The RPN runs on every map the backbone returns; its anchors put one size on each FPN level, or all of them on
the one level of c4 / c5.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .anchors import AnchorGenerator
from .backbone import Backbone, build_backbone, norm_layer
from .box_head import ConvFCHead, FastRCNNPredictor, TwoMLPHead
from .config import RESNET_LAYERS, MaskHead, ModelConfig
from .frozen_bn import BatchNormFrozenBN
from .keypoint_head import keypoint_branch
from .mask_head import MaskRCNNPredictor, fcn_mask_branch
from .mask_losses import MASK_LOSSES
from .mask_mlp_head import mlp_mask_branch
from .mask_rcnn import MaskRCNN
from .poolers import FPN_STRIDES, config_pooler
from .res5_heads import Res5RoIHeads
from .resnet import init_resnet, make_stage, stage_channels
from .roi_branch import RoIBranch
from .roi_heads import RoIHeads
from .rpn import RegionProposalNetwork, RPNHead
from .transform import ImageTransform

BOX_RESOLUTION = 7  # RoI size of the FPN box head (the paper's Figure 4, right)


def build_model(config: ModelConfig, trunk_norm: Callable[[int], nn.Module] | None = None) -> MaskRCNN:
    """A Mask R-CNN shaped by `config`, randomly initialised (load weights with `models.weights`).

    trunk_norm overrides `config.trunk_norm` (e.g. to fine-tune a frozen-BN model with trainable BN); in c4 it
    is also res5's norm, res5 being the trunk's last stage.
    """
    if trunk_norm is None and config.trunk_norm == "frozen_bn" and config.frozen_bn_arithmetic == "batch_norm":
        trunk_norm = BatchNormFrozenBN  # Detectron2's arithmetic (ModelConfig.frozen_bn_arithmetic)
    backbone = build_backbone(config, trunk_norm)
    rpn = _rpn(config, backbone)
    roi_heads: RoIHeads | Res5RoIHeads = (
        _res5_heads(config, backbone, trunk_norm) if config.features == "c4" else _fpn_heads(config, backbone)
    )
    transform = ImageTransform(
        config.min_size,
        config.max_size,
        config.image_mean,
        config.image_std,
        config.size_divisible,
        channels=config.input_channels,
        value_range=config.input_range,
        rounding=config.resize_rounding,
        kernel=config.resize_kernel,
    )
    return MaskRCNN(config, backbone=backbone, rpn=rpn, roi_heads=roi_heads, transform=transform)


def _rpn(config: ModelConfig, backbone: Backbone) -> RegionProposalNetwork:
    levels = len(backbone.feature_strides)
    sizes = tuple((s,) for s in config.anchor_sizes) if levels > 1 else (config.anchor_sizes,)
    anchors = AnchorGenerator(sizes, config.aspect_ratios, rounding=config.anchor_rounding, stride=config.anchor_stride)
    return RegionProposalNetwork(
        RPNHead(backbone.out_channels, anchors.num_anchors_per_location, conv_depth=config.rpn_conv_depth),
        anchors,
        pre_nms_top_n=(config.rpn_pre_nms_top_n_train, config.rpn_pre_nms_top_n_test),
        post_nms_top_n=(config.rpn_post_nms_top_n_train, config.rpn_post_nms_top_n_test),
        nms_thresh=config.rpn_nms_thresh,
        fg_iou_thresh=config.rpn_fg_iou_thresh,
        bg_iou_thresh=config.rpn_bg_iou_thresh,
        batch_size_per_image=config.rpn_batch_size_per_image,
        positive_fraction=config.rpn_positive_fraction,
        nms_score=config.rpn_nms_score,
        box_filter=config.rpn_box_filter,
    )


def _roi_strides(backbone: Backbone) -> tuple[int, ...]:
    return tuple(backbone.feature_strides[name] for name in backbone.roi_features)


def _fpn_heads(config: ModelConfig, backbone: Backbone) -> RoIHeads:
    """The paper's Figure 4 (right) heads on the backbone's RoI maps (P2-P5, or res5 alone for c5)."""
    channels, strides = backbone.out_channels, _roi_strides(backbone)
    box_head: nn.Module = (
        ConvFCHead(channels, BOX_RESOLUTION, config.box_head_dim)
        if config.box_head == "conv_fc"
        else TwoMLPHead(channels * BOX_RESOLUTION**2, config.box_head_dim)
    )
    return RoIHeads(
        box_roi_pool=config_pooler(config, BOX_RESOLUTION, strides),
        box_head=box_head,
        box_predictor=FastRCNNPredictor(config.box_head_dim, config.num_classes),
        branches=roi_branches(config, channels, strides),
        fg_iou_thresh=config.box_fg_iou_thresh,
        bg_iou_thresh=config.box_bg_iou_thresh,
        batch_size_per_image=config.box_batch_size_per_image,
        positive_fraction=config.box_positive_fraction,
        softmax_background=config.box_softmax_background,
    )


def roi_branches(config: ModelConfig, channels: int, strides: tuple[int, ...] = FPN_STRIDES) -> dict[str, RoIBranch]:
    """The per-detection branches the config asks for, by name (torchvision's "mask", "keypoint"), pooling
    from `channels`-wide maps of these strides (P2-P5, or res5 alone for c5)."""
    branches = {}
    if config.mask_head != "none":
        branches["mask"] = MASK_BRANCHES[config.mask_head](config, channels, strides)
    if config.num_keypoints > 0:
        branches["keypoint"] = keypoint_branch(config, channels, strides)
    return branches


# A branch factory: (config, channels of the RoI maps, their strides) -> the branch's pooler, head, predictor.
BranchFactory = Callable[[ModelConfig, int, tuple[int, ...]], RoIBranch]
MASK_BRANCHES: dict[MaskHead, BranchFactory] = {"fcn": fcn_mask_branch, "mlp": mlp_mask_branch}


def _res5_heads(config: ModelConfig, backbone: Backbone, trunk_norm: Callable[[int], nn.Module] | None) -> Res5RoIHeads:
    """res5 (the trunk's fourth stage, stride 2) on 14x14 RoIs of res4; box predictor and mask predictor on its
    2048-d output (Detectron2's `Res5ROIHeads`: `_build_res5_block`, `MaskRCNNConvUpsampleHead(num_conv=0)`).
    mask_head "fcn" is that deconv predictor alone (no mask convs), "none" no mask branch."""
    spec = RESNET_LAYERS[config.backbone]
    norm = trunk_norm or norm_layer(config.trunk_norm)
    assert norm is not None
    res5 = make_stage(spec, 3, backbone.out_channels, config.backbone_width, norm, config.trunk_stride_in_1x1)
    init_resnet(res5)
    channels = stage_channels(spec, 3, config.backbone_width)
    return Res5RoIHeads(
        roi_pool=config_pooler(config, config.mask_resolution, _roi_strides(backbone)),
        res5=res5,
        box_predictor=FastRCNNPredictor(channels, config.num_classes),
        mask_predictor=None
        if config.mask_head == "none"
        else MaskRCNNPredictor(
            channels,
            config.mask_head_dim,
            config.num_classes,
            config.mask_resolution,  # res5 halves the RoI, the deconv doubles it back
            MASK_LOSSES[config.mask_loss](),
        ),
        fg_iou_thresh=config.box_fg_iou_thresh,
        bg_iou_thresh=config.box_bg_iou_thresh,
        batch_size_per_image=config.box_batch_size_per_image,
        positive_fraction=config.box_positive_fraction,
        softmax_background=config.box_softmax_background,
    )
