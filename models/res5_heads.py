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
from torchvision.ops import box_iou

from .box_head import BOX_CODER, FastRCNNPredictor, box_loss
from .mask_head import MaskRCNNPredictor, mask_loss, mask_targets
from .poolers import MultiLevelRoIAlign, pooling_features
from .roi_heads import Features, RoIPredictions, select_detections
from .sampling import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, match, sample_balanced
from .structures import Targets


class Res5RoIHeads(nn.Module):
    """A sibling of `RoIHeads` with the same `predict` / `losses` interface, on one map (res4)."""

    def __init__(
        self,
        *,
        roi_pool: MultiLevelRoIAlign,
        res5: nn.Sequential,
        box_predictor: FastRCNNPredictor,
        mask_predictor: MaskRCNNPredictor,
        fg_iou_thresh: float,
        bg_iou_thresh: float,
        batch_size_per_image: int,
        positive_fraction: float,
    ) -> None:
        super().__init__()
        self.roi_pool = roi_pool
        self.res5 = res5
        self.box_predictor = box_predictor
        self.mask_predictor = mask_predictor
        self.fg_iou_thresh = fg_iou_thresh
        self.bg_iou_thresh = bg_iou_thresh
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

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
        """As `RoIHeads.predict`; masks [D, S, S] (S = the RoI size, 14) probabilities of the predicted class."""
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
        )
        masks = None
        if with_masks:
            if boxes.shape[0] == 0:
                size = self.roi_pool.output_size[0]
                masks = boxes.new_zeros((0, size, size))
            else:
                x = self._shared(levels, list(boxes.split(counts)))
                masks = self.mask_predictor.forward_for_labels(x, labels).float().sigmoid()
        return RoIPredictions(boxes, scores, labels, masks, counts)

    def losses(
        self,
        features: Features,
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: list[Targets],
    ) -> dict[str, Tensor]:
        """Lcls + Lbox on the sampled RoIs (`RoIHeads.losses`'s sampling), Lmask on the positive ones' res5
        features (no second res5 pass, as Detectron2's `Res5ROIHeads.forward` in training)."""
        rois, labels, regression, matched = [], [], [], []
        for props, target in zip(proposals, targets, strict=True):
            props = torch.cat([props, target.boxes.to(props)])  # ground truth joins the proposals
            if target.boxes.numel() == 0:
                idx = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                label = torch.zeros_like(idx)
            else:
                idx = match(box_iou(target.boxes, props), self.fg_iou_thresh, self.bg_iou_thresh, False)
                label = target.labels[idx.clamp(min=0)].clone()
                label[idx == BELOW_LOW_THRESHOLD] = 0
                label[idx == BETWEEN_THRESHOLDS] = -1
                idx = idx.clamp(min=0)
            pos, neg = sample_balanced(label, self.batch_size_per_image, self.positive_fraction)
            keep = torch.cat([pos, neg])
            rois.append(props[keep])
            labels.append(label[keep])
            matched.append(idx[keep])
            gt = target.boxes if target.boxes.numel() else props.new_zeros((1, 4))
            regression.append(BOX_CODER.encode(gt[idx[keep]].to(props), props[keep]))
        x = self._shared(pooling_features(features), rois)
        class_logits, box_deltas = self.box_predictor(x.mean(dim=(2, 3)))
        all_labels = torch.cat(labels)
        losses = box_loss(class_logits, box_deltas, all_labels, torch.cat(regression))

        positive = all_labels > 0
        mask_logits = self.mask_predictor(x[positive])
        size = mask_logits.shape[-1]
        gt_masks = [
            mask_targets(t.masks, r[lab > 0], m[lab > 0], size) if t.masks.numel() else r.new_zeros((0, size, size))
            for t, r, m, lab in zip(targets, rois, matched, labels, strict=True)
        ]
        losses["loss_mask"] = mask_loss(mask_logits, all_labels[positive], torch.cat(gt_masks))
        return losses
