"""Keypoint branch (Keypoint R-CNN, Mask R-CNN paper sec. 5): K one-hot "masks" per RoI, one per keypoint.

8 3x3 convs on 14x14 RoI features, a stride-2 deconv and a 2x bilinear upsample -> K heatmaps of 56x56; the
loss is a softmax cross-entropy over the 56^2 positions of each map whose keypoint is visible, so exactly one
position wins per map. Numerics follow torchvision 0.29's `roi_heads.keypoints_to_heatmap`,
`keypointrcnn_loss` and `heatmaps_to_keypoints`; layer names its `KeypointRCNNHeads` /
`KeypointRCNNPredictor`, so its checkpoints load with strict=True.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .poolers import config_pooler
from .roi_branch import RoIBranch


class KeypointRCNNHeads(nn.Sequential):
    """`num_convs` 3x3 convs with ReLU: [R, C, 14, 14] -> [R, D, 14, 14]. Keys `0.weight`, `2.weight`, ...
    (torchvision's `KeypointRCNNHeads(in_channels, (512,) * 8)`)."""

    def __init__(self, in_channels: int, dim: int = 512, num_convs: int = 8) -> None:
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers += [nn.Conv2d(in_channels if i == 0 else dim, dim, 3, stride=1, padding=1), nn.ReLU(inplace=True)]
        super().__init__(*layers)
        for layer in self.children():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(layer.bias, 0)


class KeypointRCNNPredictor(nn.Module):
    """4x4 stride-2 deconv then 2x bilinear upsample: [R, D, S, S] -> heatmap logits [R, K, 4S, 4S].

    The branch's `InstancePredictor` (models.roi_branch): `field` "keypoints"; values [R, K, 3] as (x, y,
    score) in the pixels of the boxes given to `predict`; targets Int64[R, K], the flat heatmap position of
    each keypoint or -1 where it is not visible or falls outside the RoI.
    """

    field = "keypoints"

    def __init__(self, in_channels: int, num_keypoints: int, resolution: int = 14) -> None:
        super().__init__()
        self.kps_score_lowres = nn.ConvTranspose2d(in_channels, num_keypoints, 4, stride=2, padding=1)
        nn.init.kaiming_normal_(self.kps_score_lowres.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.kps_score_lowres.bias, 0)
        self.num_keypoints = num_keypoints
        self.heatmap_size = 4 * resolution  # 56 for torchvision's 14x14 RoI features

    def forward(self, x: Tensor) -> Tensor:
        x = self.kps_score_lowres(x)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False, recompute_scale_factor=False)

    def predict(self, x: Tensor, boxes: Tensor, labels: Tensor) -> Tensor:
        """Head features [R, D, S, S] and their boxes [R, 4] -> keypoints [R, K, 3] (x, y, score), float32.

        Keypoints are class-agnostic (one set per RoI, as torchvision's); labels are not used.
        """
        return heatmaps_to_keypoints(self(x), boxes)

    def targets(self, gt: Tensor, rois: Tensor, matched: Tensor) -> Tensor:
        """gt keypoints [G, K, 3] (x, y, visibility) of one image, rois [R, 4], matched [R] -> Int64[R, K]."""
        return keypoints_to_heatmap(gt[matched], rois, self.heatmap_size)

    def loss(self, logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
        return keypoint_loss(logits, targets)

    def empty(self, like: Tensor) -> Tensor:
        return like.new_zeros((0, self.num_keypoints, 3), dtype=torch.float32)

    def to_original(self, values: Tensor, scale_xy: tuple[float, float]) -> Tensor:
        """Keypoints [N, K, 3] from resized to original pixels: x, y scaled, scores kept (torchvision's
        `transform.resize_keypoints`, float32 ratios)."""
        scale = torch.tensor([*scale_xy, 1.0], dtype=torch.float32, device=values.device)
        return values * scale


def keypoints_to_heatmap(keypoints: Tensor, rois: Tensor, size: int) -> Tensor:
    """Each keypoint's cell in its RoI's size x size heatmap, flat (y * size + x); -1 where the keypoint is
    invisible (v = 0) or outside the RoI. keypoints [R, K, 3], rois [R, 4] -> Int64[R, K].

    torchvision's `keypoints_to_heatmap` (floor of the scaled offset; a keypoint on the RoI's right or bottom
    edge goes to the last cell), returning its `heatmaps` where `valid` and -1 elsewhere.
    """
    x, y, v = keypoints.unbind(-1)
    x1, y1, x2, y2 = (c[:, None] for c in rois.unbind(-1))
    cx = ((x - x1) * (size / (x2 - x1))).floor().long()
    cy = ((y - y1) * (size / (y2 - y1))).floor().long()
    cx = torch.where(x == x2, size - 1, cx)
    cy = torch.where(y == y2, size - 1, cy)
    valid = (cx >= 0) & (cy >= 0) & (cx < size) & (cy < size) & (v > 0)
    return torch.where(valid, cy * size + cx, -1)


def keypoint_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Softmax cross-entropy over each heatmap's positions, averaged over the visible keypoints (torchvision's
    `keypointrcnn_loss`); 0 (with a gradient path) when none is visible. logits [R, K, H, W], targets [R, K]."""
    flat = logits.flatten(2).flatten(0, 1)  # [R*K, H*W]
    targets = targets.flatten()
    valid = torch.where(targets >= 0)[0]
    if valid.numel() == 0:
        return logits.sum() * 0
    return F.cross_entropy(flat[valid], targets[valid])


def heatmaps_to_keypoints(maps: Tensor, rois: Tensor) -> Tensor:
    """Heatmap logits [R, K, H, W] over boxes [R, 4] -> keypoints [R, K, 3] (x, y, score), float32.

    torchvision's `heatmaps_to_keypoints`: each RoI's maps are resized bicubically to the box's size
    (ceil(w) x ceil(h), at least 1 px) and the argmax cell's centre (Heckbert's c = d + 0.5) is mapped back to
    image pixels; the score is the resized logit there. Only the resize runs per RoI (sizes differ); the sizes
    reach the host in one copy.
    """
    maps = maps.float()
    num_rois, num_keypoints = maps.shape[:2]
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths_ceil, heights_ceil = widths.ceil(), heights.ceil()
    positions, scores = [], []
    for i, (h, w) in enumerate(torch.stack([heights_ceil, widths_ceil], 1).long().tolist()):
        roi_map = F.interpolate(maps[i][:, None], size=(h, w), mode="bicubic", align_corners=False)
        flat = roi_map.reshape(num_keypoints, -1)
        pos = flat.argmax(dim=1)
        positions.append(pos)
        scores.append(flat.gather(1, pos[:, None])[:, 0])
    if num_rois == 0:
        return maps.new_zeros((0, num_keypoints, 3))
    pos = torch.stack(positions)  # [R, K]
    w_int = widths_ceil.long()[:, None]
    x_int = pos % w_int
    y_int = torch.div(pos - x_int, w_int, rounding_mode="floor")
    x = (x_int.float() + 0.5) * (widths / widths_ceil)[:, None] + rois[:, 0, None]
    y = (y_int.float() + 0.5) * (heights / heights_ceil)[:, None] + rois[:, 1, None]
    return torch.stack([x, y, torch.stack(scores)], dim=-1)


def keypoint_branch(config: ModelConfig, channels: int, strides: tuple[int, ...]) -> RoIBranch:
    """torchvision's Keypoint R-CNN branch on `channels`-wide maps of these strides: 14x14 RoIs -> 8 convs ->
    `num_keypoints` heatmaps of 56x56."""
    return RoIBranch(
        config_pooler(config, config.keypoint_resolution, strides),
        KeypointRCNNHeads(channels, config.keypoint_head_dim),
        KeypointRCNNPredictor(config.keypoint_head_dim, config.num_keypoints, config.keypoint_resolution),
    )
