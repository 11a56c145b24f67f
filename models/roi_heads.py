"""RoI heads: the box branch and, in parallel, the per-detection branches (mask, keypoints), with separate
`losses()` and `predict()`.

Inference follows the paper: box branch on all proposals -> score threshold and class-wise NMS -> top
detections -> each RoI branch on those boxes only (the mask of the predicted class, its keypoints). The branches
follow one contract (models/roi_branch.py), so this file does not know what a mask or a keypoint is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou

from .box_head import BOX_CODER, FastRCNNPredictor, box_loss
from .box_ops import at_least, clip_boxes, grouped_nms, rank_within
from .config import SoftmaxBackground
from .poolers import pooling_features
from .roi_branch import InstancePredictor, RoIBranch
from .sampling import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, match, sample_balanced
from .structures import Targets

Features = dict[str, Tensor]


@dataclass(frozen=True)
class RoIPredictions:
    """Detections of a whole batch, flat and grouped by image (best first within each image).

    boxes [D, 4] in resized-image pixels, scores [D], labels [D], counts: detections per image (sum = D);
    fields: each RoI branch's values by `Detections` field name (masks [D, M, M] probabilities, keypoints
    [D, P, 3] in resized-image pixels).
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    counts: list[int]
    fields: dict[str, Tensor]


class RoIHeads(nn.Module):
    """Box branch + RoI branches by name ("mask", "keypoint"): torchvision's `RoIHeads` state-dict names."""

    def __init__(
        self,
        *,
        box_roi_pool: nn.Module,
        box_head: nn.Module,
        box_predictor: FastRCNNPredictor,
        branches: Mapping[str, RoIBranch],
        fg_iou_thresh: float,
        bg_iou_thresh: float,
        batch_size_per_image: int,
        positive_fraction: float,
        softmax_background: SoftmaxBackground = "first",
    ) -> None:
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.branch_names = tuple(branches)
        for name, branch in branches.items():
            for part, module in branch._asdict().items():
                self.add_module(f"{name}_{part}", module)
        self.fg_iou_thresh = fg_iou_thresh
        self.bg_iou_thresh = bg_iou_thresh
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.softmax_background = softmax_background

    def branch(self, name: str) -> RoIBranch:
        return RoIBranch(*(getattr(self, f"{name}_{part}") for part in RoIBranch._fields))

    def predictor(self, field: str) -> InstancePredictor | None:
        """The branch predictor filling `Detections.<field>`, or None when the model has no such branch."""
        predictors = (self.branch(name).predictor for name in self.branch_names)
        return next((p for p in predictors if p.field == field), None)

    # ---- inference -------------------------------------------------------------------------------------
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
        """with_masks=False skips the mask branch (the other branches always run)."""
        levels = pooling_features(features)
        x = self.box_head(self.box_roi_pool(levels, proposals))
        class_logits, box_deltas = self.box_predictor(x)
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
        for name in self.branch_names:
            roi_pool, head, predictor = self.branch(name)
            if predictor.field == "masks" and not with_masks:
                continue
            if boxes.shape[0] == 0:
                fields[predictor.field] = predictor.empty(boxes)
            else:
                roi_features = head(roi_pool(levels, list(boxes.split(counts))))
                fields[predictor.field] = predictor.predict(roi_features, boxes, labels)
        return RoIPredictions(boxes, scores, labels, counts, fields)

    # ---- training --------------------------------------------------------------------------------------
    def losses(
        self,
        features: Features,
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: list[Targets],
    ) -> dict[str, Tensor]:
        """Lcls + Lbox on 512 sampled RoIs per image (1:3 fg:bg); each branch's loss (Lmask, Lkeypoint) on the
        positive ones, named `loss_<branch>`."""
        rois, labels, regression, matched = sample_rois(
            proposals,
            targets,
            self.fg_iou_thresh,
            self.bg_iou_thresh,
            self.batch_size_per_image,
            self.positive_fraction,
        )
        levels = pooling_features(features)
        x = self.box_head(self.box_roi_pool(levels, rois))
        class_logits, box_deltas = self.box_predictor(x)
        all_labels = torch.cat(labels)
        losses = box_loss(class_logits, box_deltas, all_labels, torch.cat(regression))

        positive = [lab > 0 for lab in labels]
        pos_rois = [r[p] for r, p in zip(rois, positive, strict=True)]
        pos_matched = [m[p] for m, p in zip(matched, positive, strict=True)]
        for name in self.branch_names:
            roi_pool, head, predictor = self.branch(name)
            logits = predictor(head(roi_pool(levels, pos_rois)))
            branch_targets = [
                predictor.targets(_field(t, predictor.field), r, m)
                for t, r, m in zip(targets, pos_rois, pos_matched, strict=True)
            ]
            losses[f"loss_{name}"] = predictor.loss(logits, all_labels[all_labels > 0], torch.cat(branch_targets))
        return losses


def sample_rois(
    proposals: list[Tensor],
    targets: list[Targets],
    fg_iou_thresh: float,
    bg_iou_thresh: float,
    batch_size_per_image: int,
    positive_fraction: float,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    """The paper's RoI sampling for the heads' losses (Fast R-CNN's; torchvision's `select_training_samples`).

    Per image, the ground-truth boxes join the proposals; an RoI is foreground when its IoU with a ground-truth
    box is >= fg_iou_thresh, background below bg_iou_thresh; `batch_size_per_image` are sampled with at most
    `positive_fraction` foreground. Returns per image: rois [S, 4], labels [S] (0 = background), box regression
    targets [S, 4] (BOX_CODER deltas to the matched box) and the index of the matched ground truth [S].
    """
    rois, labels, regression, matched = [], [], [], []
    for props, target in zip(proposals, targets, strict=True):
        props = torch.cat([props, target.boxes.to(props)])  # ground truth joins the proposals
        if target.boxes.numel() == 0:
            idx = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
            label = torch.zeros_like(idx)
        else:
            idx = match(box_iou(target.boxes, props), fg_iou_thresh, bg_iou_thresh, False)
            label = target.labels[idx.clamp(min=0)].clone()
            label[idx == BELOW_LOW_THRESHOLD] = 0
            label[idx == BETWEEN_THRESHOLDS] = -1
            idx = idx.clamp(min=0)
        pos, neg = sample_balanced(label, batch_size_per_image, positive_fraction)
        keep = torch.cat([pos, neg])
        rois.append(props[keep])
        labels.append(label[keep])
        matched.append(idx[keep])
        gt = target.boxes if target.boxes.numel() else props.new_zeros((1, 4))
        regression.append(BOX_CODER.encode(gt[idx[keep]].to(props), props[keep]))
    return rois, labels, regression, matched


def _field(target: Targets, name: str) -> Tensor:
    value = getattr(target, name)
    if value is None:
        raise ValueError(f"the model has a branch predicting {name} but the training targets have no {name}")
    return value


def select_detections(
    class_logits: Tensor,
    box_deltas: Tensor,
    proposals: list[Tensor],
    image_sizes: list[tuple[int, int]],
    *,
    score_thresh: float,
    nms_thresh: float,
    detections_per_img: int,
    softmax_background: SoftmaxBackground = "first",
) -> tuple[Tensor, Tensor, Tensor, list[int]]:
    """Softmax scores and decoded boxes of every (proposal, class) pair -> the top detections of each image.

    class_logits [R, K], box_deltas [R, 4K], proposals: B tensors [R_i, 4] -> boxes [D, 4], scores [D],
    labels [D], counts per image. As torchvision's `postprocess_detections`: keep scores >= score_thresh
    (inclusive; torchvision's is strict, which differs only for a score exactly equal to the threshold) and
    boxes >= 0.01 px, class-wise NMS, top `detections_per_img` by score. softmax_background "last" sums the
    softmax with the background logit last, in Detectron2's class order (the same scores to float rounding).

    Why not one NMS over all candidates: at threshold 0 there are R x (K-1) (~90k) of them, and NMS is
    quadratic. A candidate's fate in greedy NMS depends only on higher-scoring candidates, so NMS over each
    image's best T candidates gives exactly the full result's top detections once it keeps enough of them
    (or T covers them all); T grows until that holds, in practice once.
    """
    device = class_logits.device
    num_images, num_classes = len(proposals), class_logits.shape[1]
    counts = [p.shape[0] for p in proposals]
    roi_image = torch.repeat_interleave(  # output_size known on the host: no device sync
        torch.arange(num_images, device=device), torch.tensor(counts, device=device), output_size=sum(counts)
    )
    boxes = BOX_CODER.decode(box_deltas, torch.cat(proposals))  # [R, K, 4]
    sizes = torch.tensor(image_sizes, dtype=boxes.dtype, device=device)
    boxes = clip_boxes(boxes, sizes[roi_image][:, None, :])
    if softmax_background == "last":
        scores = F.softmax(class_logits.roll(-1, dims=1), -1).roll(1, dims=1)
    else:
        scores = F.softmax(class_logits, -1)

    boxes = boxes[:, 1:].reshape(-1, 4)  # drop background; candidate = (roi, class)
    scores = scores[:, 1:].reshape(-1)
    labels = torch.arange(1, num_classes, device=device).repeat(class_logits.shape[0])
    image = roi_image.repeat_interleave(num_classes - 1)
    wh = boxes[:, 2:] - boxes[:, :2]
    valid = torch.where(at_least(scores, score_thresh) & (wh >= 1e-2).all(dim=1))[0]
    order = valid[scores[valid].argsort(descending=True)]
    rank = rank_within(image[order], num_images)  # position of each candidate within its image
    per_image = torch.bincount(image[order], minlength=num_images)

    top = 10 * detections_per_img
    while True:
        cand = order[rank < top]
        keep = cand[grouped_nms(boxes[cand], scores[cand], image[cand] * num_classes + labels[cand], nms_thresh)]
        kept = torch.bincount(image[keep], minlength=num_images)
        if bool(((kept >= detections_per_img) | (per_image <= top)).all()):
            break
        top *= 4
    keep = keep[rank_within(image[keep], num_images) < detections_per_img]
    keep = keep[torch.sort(image[keep], stable=True).indices]
    counts_out = torch.bincount(image[keep], minlength=num_images).tolist()
    return boxes[keep], scores[keep], labels[keep], counts_out
