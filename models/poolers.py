"""RoI feature extraction over the FPN levels: the paper's RoIAlign (bilinear sampling, no quantisation).

Each box goes to level floor(4 + log2(sqrt(wh) / 224)) clamped to P2-P5, then `torchvision.ops.roi_align`
samples it there: the same numbers as torchvision's `MultiScaleRoIAlign`. Two things differ, for speed:
the caller converts the features to contiguous float32 once for both branches (roi_align has no bf16 or
channels-last CPU kernel, and would copy them on every call), and on the CPU the boxes are split across
threads, because torchvision's CPU kernel runs on one core.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import torch
from torch import Tensor, nn
from torchvision.ops import box_area, roi_align

FPN_STRIDES = (4, 8, 16, 32)  # P2-P5's strides in input pixels; P6 feeds only the RPN
_MIN_ROIS_PER_THREAD = 32


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roi_align")


def pooling_features(features: dict[str, Tensor]) -> list[Tensor]:
    """The maps the RoI heads pool from (the backbone's `roi_features`: P2-P5, or res4 / res5 alone), finest
    first, as contiguous float32 [B, C, H_l, W_l]: the layout roi_align reads without copying."""
    return [f.float().contiguous() for f in features.values()]


class MultiLevelRoIAlign(nn.Module):
    """levels (P2-P5, from `pooling_features`), boxes (B tensors [R_i, 4], input pixels) -> [sum R_i, C, S, S].

    Each level's scale is 1 / its stride. (torchvision infers it from the feature and image sizes, which gives
    the same power of two except for images narrower than about 106 px after resizing, where it errs.)
    """

    def __init__(
        self,
        output_size: int,
        sampling_ratio: int = 2,
        strides: tuple[int, ...] = FPN_STRIDES,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ):
        super().__init__()
        self.output_size = (output_size, output_size)
        self.sampling_ratio = sampling_ratio
        self.scales = [1.0 / s for s in strides]
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def forward(self, levels: list[Tensor], boxes: list[Tensor]) -> Tensor:
        scales = self.scales
        k_min, k_max = -math.log2(scales[0]), -math.log2(scales[-1])
        all_boxes = torch.cat(boxes)
        image_idx = torch.repeat_interleave(  # output_size known on the host: no device sync
            torch.arange(len(boxes), device=all_boxes.device),
            torch.tensor([b.shape[0] for b in boxes], device=all_boxes.device),
            output_size=all_boxes.shape[0],
        )
        rois = torch.cat([image_idx[:, None].to(all_boxes.dtype), all_boxes], dim=1)

        size = torch.sqrt(box_area(all_boxes))
        eps = torch.tensor(1e-6, dtype=size.dtype)
        target = torch.floor(self.canonical_level + torch.log2(size / self.canonical_scale) + eps)
        level_of = (target.clamp(min=k_min, max=k_max).to(torch.int64) - int(k_min)).to(torch.int64)

        first = levels[0]
        out = first.new_zeros((rois.shape[0], first.shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(levels, scales, strict=True)):
            idx = torch.where(level_of == level)[0]
            if idx.numel():
                out[idx] = self._align(feature, rois[idx], scale)
        return out

    def _align(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        threads = torch.get_num_threads()
        # Threads only for inference: grad mode is thread-local, and training wants one autograd graph.
        serial = feature.device.type != "cpu" or torch.is_grad_enabled() or threads == 1
        if serial or rois.shape[0] < 2 * _MIN_ROIS_PER_THREAD:
            return roi_align(feature, rois, self.output_size, scale, self.sampling_ratio)
        chunks = rois.chunk(min(threads, rois.shape[0] // _MIN_ROIS_PER_THREAD))
        parts = _pool(threads).map(
            lambda r: roi_align(feature, r, self.output_size, scale, self.sampling_ratio), chunks
        )
        return torch.cat(list(parts))


def build_pooler(
    kind: str, output_size: int, sampling_ratio: int = 2, strides: tuple[int, ...] = FPN_STRIDES
) -> MultiLevelRoIAlign:
    if kind != "align":
        raise ValueError(f"unknown RoI pooler {kind!r}")
    return MultiLevelRoIAlign(output_size, sampling_ratio, strides)
