"""Region Proposal Network: objectness + box deltas per anchor, then per-level top-k and NMS into proposals."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation, box_iou

from .anchors import AnchorGenerator
from .box_coder import BoxCoder
from .box_ops import clip_boxes, grouped_nms, rank_within
from .config import RpnBoxFilter, RpnNmsScore
from .sampling import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, match, sample_balanced
from .structures import ImageBatch, Targets


class RPNHead(nn.Module):
    """Shared 3x3 conv(s) then two 1x1 convs: objectness [B, A, H, W] and deltas [B, 4A, H, W] per level.

    conv_depth is 1 in torchvision's v1 model and 2 in v2; names give its state-dict keys (`conv.0.0.weight`).
    """

    def __init__(self, channels: int, num_anchors: int, conv_depth: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *[Conv2dNormActivation(channels, channels, kernel_size=3, norm_layer=None) for _ in range(conv_depth)]
        )
        self.cls_logits = nn.Conv2d(channels, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(channels, num_anchors * 4, kernel_size=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        hidden = [self.conv(f) for f in features]
        return [self.cls_logits(h) for h in hidden], [self.bbox_pred(h) for h in hidden]


def _flatten_levels(per_level: list[Tensor], values_per_anchor: int) -> Tensor:
    """[B, A*V, H, W] per level -> [B, sum(H*W*A), V], ordered level, location, anchor (as the anchors are)."""
    out = []
    for t in per_level:
        b, _, h, w = t.shape
        out.append(t.view(b, -1, values_per_anchor, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, values_per_anchor))
    return torch.cat(out, dim=1)


class RegionProposalNetwork(nn.Module):
    """Features of a batch -> up to `post_nms_top_n` proposals per image (resized-image pixels, best first)."""

    def __init__(
        self,
        head: RPNHead,
        anchor_generator: AnchorGenerator,
        *,
        pre_nms_top_n: tuple[int, int],  # (training, testing), per level
        post_nms_top_n: tuple[int, int],  # (training, testing), per image
        nms_thresh: float,
        fg_iou_thresh: float,
        bg_iou_thresh: float,
        batch_size_per_image: int,
        positive_fraction: float,
        nms_score: RpnNmsScore = "probability",
        box_filter: RpnBoxFilter = "min_size",
    ) -> None:
        """nms_score, box_filter: the `ModelConfig` rules `rpn_nms_score` and `rpn_box_filter`."""
        super().__init__()
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.pre_nms_top_n = pre_nms_top_n
        self.post_nms_top_n = post_nms_top_n
        self.nms_thresh = nms_thresh
        self.fg_iou_thresh = fg_iou_thresh
        self.bg_iou_thresh = bg_iou_thresh
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.min_size = 1e-3
        self.score_thresh = 0.0
        self.nms_score = nms_score
        self.box_filter = box_filter

    def forward(
        self, images: ImageBatch, features: list[Tensor], targets: list[Targets] | None = None
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        logits, deltas = self.head(features)
        feature_sizes = [(f.shape[-2], f.shape[-1]) for f in features]
        padded = (images.tensors.shape[-2], images.tensors.shape[-1])
        anchors = self.anchor_generator(padded, feature_sizes, features[0].device)  # [N, 4]
        per_level = [f[0] * f[1] * self.anchor_generator.num_anchors_per_location for f in feature_sizes]
        # float32 from here on: under bf16 autocast, box coordinates and score ranking need the precision.
        objectness = _flatten_levels(logits, 1).squeeze(-1).float()  # [B, N]
        deltas_flat = _flatten_levels(deltas, 4).float()  # [B, N, 4]
        boxes = self._filter(deltas_flat.detach(), anchors, objectness.detach(), images.image_sizes, per_level)
        losses: dict[str, Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            losses = self.losses(anchors, objectness, deltas_flat, targets)
        return boxes, losses

    def _filter(
        self,
        deltas: Tensor,
        anchors: Tensor,
        objectness: Tensor,
        image_sizes: list[tuple[int, int]],
        per_level: list[int],
    ) -> list[Tensor]:
        """Top-k per level, decode, clip, drop tiny boxes, NMS per (image, level), keep the best per image.

        torchvision's `filter_proposals` by default; with nms_score "logit" and box_filter "empty" Detectron2's
        `find_top_rpn_proposals` (NMS ranks logits, drops only boxes with a side <= 0).

        deltas: [B, N, 4], anchors: [N, 4], objectness: [B, N] logits -> B tensors [P_i, 4], sorted by score.
        Only the top-k anchors' boxes are decoded (decoding is per box, so they equal torchvision's, which
        decodes every anchor first). All images go through one NMS call; the result equals torchvision's
        per-image loop.
        """
        num_images, device = deltas.shape[0], deltas.device
        pre_n = self.pre_nms_top_n[0 if self.training else 1]
        post_n = self.post_nms_top_n[0 if self.training else 1]
        top_idx, levels, offset = [], [], 0
        for level, (scores_l) in enumerate(objectness.split(per_level, dim=1)):
            idx = scores_l.topk(min(pre_n, scores_l.shape[1]), dim=1).indices + offset
            top_idx.append(idx)
            levels.append(torch.full_like(idx, level))
            offset += scores_l.shape[1]
        top_idx, level = torch.cat(top_idx, dim=1), torch.cat(levels, dim=1)  # [B, T]
        batch_idx = torch.arange(num_images, device=device)[:, None]
        scores = objectness[batch_idx, top_idx]
        if self.nms_score == "probability":
            scores = scores.sigmoid()
        boxes = self.box_coder.decode(deltas[batch_idx, top_idx].reshape(-1, 4), anchors[top_idx].reshape(-1, 4))
        boxes = boxes.view(num_images, -1, 4)  # [B, T, 4]

        boxes = clip_boxes(boxes, torch.tensor(image_sizes, dtype=boxes.dtype, device=device)[:, None, :])
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = (wh > 0).all(dim=-1) if self.box_filter == "empty" else (wh >= self.min_size).all(dim=-1)
        if self.nms_score == "probability":  # torchvision's score_thresh (0) applies to probabilities
            valid &= scores >= self.score_thresh

        image_of = batch_idx.expand_as(level)[valid]
        group = image_of * len(per_level) + level[valid]
        boxes, scores = boxes[valid], scores[valid]
        keep = grouped_nms(boxes, scores, group, self.nms_thresh)  # best first, all images together
        keep = keep[rank_within(image_of[keep], num_images) < post_n]
        # A stable sort by image keeps each image's proposals best first.
        keep = keep[torch.sort(image_of[keep], stable=True).indices]
        counts = torch.bincount(image_of[keep], minlength=num_images).tolist()
        return list(boxes[keep].split(counts))

    def losses(self, anchors: Tensor, objectness: Tensor, deltas: Tensor, targets: list[Targets]) -> dict[str, Tensor]:
        """Objectness BCE and smooth-L1 box loss over 256 sampled anchors per image (half positive at most)."""
        labels, regression = [], []
        for target in targets:
            if target.boxes.numel() == 0:
                labels.append(torch.zeros(anchors.shape[0], dtype=torch.int64, device=anchors.device))
                regression.append(torch.zeros_like(anchors))
                continue
            matched = match(box_iou(target.boxes, anchors), self.fg_iou_thresh, self.bg_iou_thresh, True)
            label = (matched >= 0).to(torch.int64)
            label[matched == BELOW_LOW_THRESHOLD] = 0
            label[matched == BETWEEN_THRESHOLDS] = -1
            labels.append(label)
            regression.append(self.box_coder.encode(target.boxes[matched.clamp(min=0)], anchors))
        pos, neg = [], []
        for i, label in enumerate(labels):
            p, n = sample_balanced(label, self.batch_size_per_image, self.positive_fraction)
            pos.append(p + i * anchors.shape[0])
            neg.append(n + i * anchors.shape[0])
        pos_idx, neg_idx = torch.cat(pos), torch.cat(neg)
        sampled = torch.cat([pos_idx, neg_idx])
        box_loss = F.smooth_l1_loss(
            deltas.reshape(-1, 4)[pos_idx], torch.cat(regression)[pos_idx], beta=1 / 9, reduction="sum"
        ) / max(sampled.numel(), 1)
        objectness_loss = F.binary_cross_entropy_with_logits(
            objectness.reshape(-1)[sampled], torch.cat(labels)[sampled].to(objectness.dtype)
        )
        return {"loss_objectness": objectness_loss, "loss_rpn_box_reg": box_loss}
