"""Mask R-CNN: transform -> backbone (ResNet-FPN) -> RPN -> RoI heads (box and mask branches in parallel).

`build_model(config)` assembles it from a `ModelConfig`; module names reproduce torchvision's state-dict keys
(`backbone.body.*`, `backbone.fpn.*`, `rpn.head.*`, `roi_heads.box_head.*`, `roi_heads.mask_predictor.*`, ...)
so its checkpoints load with `strict=True`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .anchors import AnchorGenerator
from .backbone import BackboneWithFPN, build_backbone
from .box_head import ConvFCHead, FastRCNNPredictor, TwoMLPHead
from .config import InferenceOptions, MaskHead, ModelConfig
from .frozen_bn import BatchNormFrozenBN
from .mask_head import fcn_mask_branch
from .mask_mlp_head import mlp_mask_branch
from .poolers import build_pooler
from .roi_branch import RoIBranch
from .roi_heads import RoIHeads
from .rpn import RegionProposalNetwork, RPNHead
from .structures import Detections, ImageBatch, Targets
from .transform import ImageTransform, rescale_boxes


class MaskRCNN(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        *,
        backbone: BackboneWithFPN,
        rpn: RegionProposalNetwork,
        roi_heads: RoIHeads,
        transform: ImageTransform,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.transform = transform

    def forward(self, images: list[Tensor], targets: list[Targets]) -> dict[str, Tensor]:
        """Training: images [3, H_i, W_i] in [0, 1] and their targets -> the losses of the paper's L.

        L = Lcls + Lbox + Lmask (RoI heads) + the RPN's objectness and box losses.
        """
        batch, resized_targets = self.transform(images, targets, training=self.training)
        assert resized_targets is not None
        features = self.backbone(batch.tensors)
        proposals, losses = self.rpn(batch, list(features.values()), resized_targets)
        losses.update(self.roi_heads.losses(features, proposals, batch.image_sizes, resized_targets))
        return losses

    @torch.no_grad()
    def predict(
        self, images: list[Tensor], options: InferenceOptions | None = None, with_masks: bool = True
    ) -> list[Detections]:
        """images: B tensors [3, H_i, W_i] (uint8, or float in [0, 1]) of any sizes -> B Detections.

        Boxes come back in each input image's pixels; masks as [N, 28, 28] probabilities of the predicted
        class, to be pasted into their boxes by `models.postprocess`. Batch-invariant: each image gets the
        detections it would get alone, whatever shares the call, because images run in groups of one padded
        size (`ImageTransform.size_groups`); a batch of images of one size runs as one forward.
        """
        opts = (options or InferenceOptions()).resolve(self.config)
        by_index: dict[int, Detections] = {}
        for indices, batch in self.transform.size_groups(images):
            by_index.update(zip(indices, self._predict_batch(batch, opts, with_masks), strict=True))
        return [by_index[i] for i in range(len(images))]

    def _predict_batch(self, batch: ImageBatch, opts: InferenceOptions, with_masks: bool) -> list[Detections]:
        features = self.backbone(batch.tensors)
        proposals, _ = self.rpn(batch, list(features.values()))
        out = self.roi_heads.predict(
            features,
            proposals,
            batch.image_sizes,
            score_thresh=opts.score_thresh,
            nms_thresh=opts.nms_thresh,
            detections_per_img=opts.detections_per_img,
            with_masks=with_masks,
        )
        detections = []
        clip = self.config.output_box_clip
        for i, part in enumerate(_slices(out.counts)):
            det = Detections(
                boxes=rescale_boxes(out.boxes[part], batch.image_sizes[i], batch.original_sizes[i], clip=clip),
                scores=out.scores[part],
                labels=out.labels[part],
                image_size=batch.original_sizes[i],
                **self._to_original(out.fields, part, batch.image_sizes[i], batch.original_sizes[i]),
            )
            if clip:  # Detectron2's detector_postprocess drops the boxes clipping left empty
                det = det[torch.nonzero(((det.boxes[:, 2:] - det.boxes[:, :2]) > 0).all(dim=1)).squeeze(1)]
            detections.append(det)
        return detections

    def _to_original(
        self, fields: dict[str, Tensor], part: slice, resized: tuple[int, int], original: tuple[int, int]
    ) -> dict[str, Tensor]:
        """One image's RoI-branch values, from resized-image to original-image pixels (each branch knows how)."""
        scale_xy = (original[1] / resized[1], original[0] / resized[0])
        out = {}
        for field, values in fields.items():
            predictor = self.roi_heads.predictor(field)
            assert predictor is not None
            out[field] = predictor.to_original(values[part], scale_xy)
        return out


def _slices(counts: list[int]) -> list[slice]:
    """Consecutive slices of the given lengths: [2, 0, 3] -> [0:2, 2:2, 2:5]."""
    ends = list(itertools.accumulate(counts))
    return [slice(end - n, end) for n, end in zip(counts, ends, strict=True)]


def build_model(config: ModelConfig, trunk_norm: Callable[[int], nn.Module] | None = None) -> MaskRCNN:
    """A Mask R-CNN shaped by `config`, randomly initialised (load weights with `models.weights`).

    trunk_norm overrides `config.trunk_norm` (e.g. to fine-tune a frozen-BN model with trainable BN).
    """
    if trunk_norm is None and config.trunk_norm == "frozen_bn" and config.frozen_bn_arithmetic == "batch_norm":
        trunk_norm = BatchNormFrozenBN
    backbone = build_backbone(config, trunk_norm)
    channels = backbone.out_channels
    anchors = AnchorGenerator(
        config.anchor_sizes, config.aspect_ratios, rounding=config.anchor_rounding, stride=config.anchor_stride
    )
    rpn = RegionProposalNetwork(
        RPNHead(channels, anchors.num_anchors_per_location, conv_depth=config.rpn_conv_depth),
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
    box_resolution = 7
    box_head: nn.Module = (
        ConvFCHead(channels, box_resolution, config.box_head_dim)
        if config.box_head == "conv_fc"
        else TwoMLPHead(channels * box_resolution**2, config.box_head_dim)
    )
    roi_heads = RoIHeads(
        box_roi_pool=build_pooler(config.pooler, box_resolution),
        box_head=box_head,
        box_predictor=FastRCNNPredictor(config.box_head_dim, config.num_classes),
        branches=roi_branches(config, channels),
        fg_iou_thresh=config.box_fg_iou_thresh,
        bg_iou_thresh=config.box_bg_iou_thresh,
        batch_size_per_image=config.box_batch_size_per_image,
        positive_fraction=config.box_positive_fraction,
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


def roi_branches(config: ModelConfig, channels: int) -> dict[str, RoIBranch]:
    """The per-detection branches the config asks for, by name (torchvision's "mask", "keypoint")."""
    branches = {}
    if config.mask_head != "none":
        branches["mask"] = MASK_BRANCHES[config.mask_head](config, channels)
    return branches


MASK_BRANCHES: dict[MaskHead, Callable[[ModelConfig, int], RoIBranch]] = {
    "fcn": fcn_mask_branch,
    "mlp": mlp_mask_branch,
}
