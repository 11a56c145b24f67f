"""C4 RoI heads: res5 run per RoI and shared by the box and mask branches (the paper's Figure 4, left).

Detectron2's `modeling/roi_heads/roi_heads.py:Res5ROIHeads`: RoIAlign 14x14 on res4 (stride 16) -> res5 (the
trunk's last stage: 3 bottlenecks, the first strided, 7x7 x 2048 out) -> the box branch takes the mean over
the 7x7 (`forward`: `box_features.mean(dim=[2, 3])`) into the class and box predictor; the mask branch puts
the same 7x7 features through the mask predictor alone (deconv 2048 -> 256, 1x1 -> K: 14x14 masks).
Training reuses the positive sampled RoIs' res5 features for the masks; inference reruns res5 on the kept
detections (`forward_with_given_boxes`). Keys: `roi_heads.res5.{0,1,2}.*` (torchvision's Bottleneck names),
`roi_heads.box_predictor.*`, `roi_heads.mask_predictor.*`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .box_head import FastRCNNPredictor, box_loss
from .config import SoftmaxBackground
from .poolers import MultiLevelRoIPooler, pooling_features
from .roi_branch import InstancePredictor
from .roi_heads import Features, RoIPredictions, sample_rois, select_detections
from .structures import Targets


class Res5RoIHeads(nn.Module):
    """A sibling of `RoIHeads` with the same `predict` / `losses` / `predictor` interface, on one map (res4).

    mask_predictor: an `InstancePredictor` on res5's [R, 2048, S/2, S/2] features (models/mask_head.py's
    `MaskRCNNPredictor`, sigmoid or softmax masks), or None for a box-only model. Like Detectron2's
    `Res5ROIHeads`, it has no keypoint branch.
    """

    def __init__(
        self,
        *,
        roi_pool: MultiLevelRoIPooler,
        res5: nn.Sequential,
        box_predictor: FastRCNNPredictor,
        mask_predictor: InstancePredictor | None,
        fg_iou_thresh: float,
        bg_iou_thresh: float,
        batch_size_per_image: int,
        positive_fraction: float,
        softmax_background: SoftmaxBackground = "first",
    ) -> None:
        super().__init__()
        self.roi_pool = roi_pool
        self.res5 = res5
        self.box_predictor = box_predictor
        if mask_predictor is not None:
            self.mask_predictor = mask_predictor
        self.fg_iou_thresh = fg_iou_thresh
        self.bg_iou_thresh = bg_iou_thresh
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.softmax_background = softmax_background

    def predictor(self, field: str) -> InstancePredictor | None:
        """The predictor filling `Detections.<field>` ("masks"), or None when the model has none."""
        mask: InstancePredictor | None = getattr(self, "mask_predictor", None)
        return mask if mask is not None and mask.field == field else None

    def _shared(self, levels: list[Tensor], boxes: list[Tensor]) -> Tensor:
        """B tensors [R_i, 4] (resized-image pixels) -> res5 features [sum R_i, 2048, S/2, S/2]."""
        return self.res5(self.roi_pool(levels, boxes))

    @torch.no_grad()
    def predict(
        self,
        features: Features,
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
        *,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        with_masks: bool = True,
    ) -> RoIPredictions:
        """As `RoIHeads.predict`; fields["masks"]: [D, S, S] (S = the RoI size, 14) probabilities of the predicted
        class, unless with_masks is False or the model has no mask branch."""
        levels = pooling_features(features)
        class_logits, box_deltas = self.box_predictor(self._shared(levels, proposals).mean(dim=(2, 3)))
        boxes, scores, labels, counts = select_detections(
            class_logits.float(),
            box_deltas.float(),
            proposals,
            image_sizes,
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            softmax_background=self.softmax_background,
        )
        fields = {}
        mask = self.predictor("masks")
        if with_masks and mask is not None:
            if boxes.shape[0] == 0:
                fields[mask.field] = mask.empty(boxes)
            else:
                fields[mask.field] = mask.predict(self._shared(levels, list(boxes.split(counts))), boxes, labels)
        return RoIPredictions(boxes, scores, labels, counts, fields)

    def losses(
        self,
        features: Features,
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: list[Targets],
    ) -> dict[str, Tensor]:
        """Lcls + Lbox on the sampled RoIs (`RoIHeads.losses`'s sampling), Lmask on the positive ones' res5
        features (no second res5 pass, as Detectron2's `Res5ROIHeads.forward` in training)."""
        rois, labels, regression, matched = sample_rois(
            proposals,
            targets,
            self.fg_iou_thresh,
            self.bg_iou_thresh,
            self.batch_size_per_image,
            self.positive_fraction,
        )
        x = self._shared(pooling_features(features), rois)
        class_logits, box_deltas = self.box_predictor(x.mean(dim=(2, 3)))
        all_labels = torch.cat(labels)
        losses = box_loss(class_logits, box_deltas, all_labels, torch.cat(regression))

        mask = self.predictor("masks")
        if mask is not None:
            positive = [lab > 0 for lab in labels]
            mask_targets = [
                mask.targets(_masks(t), r[p], m[p]) for t, r, m, p in zip(targets, rois, matched, positive, strict=True)
            ]
            logits = mask(x[all_labels > 0])
            losses["loss_mask"] = mask.loss(logits, all_labels[all_labels > 0], torch.cat(mask_targets))
        return losses


def _masks(target: Targets) -> Tensor:
    if target.masks is None:
        raise ValueError("the model has a mask branch but the training targets have no masks")
    return target.masks
