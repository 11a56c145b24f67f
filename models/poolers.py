"""RoI feature extraction over the FPN levels: RoIAlign (the paper's), RoIPool or RoIWarp (its Table 2c ablation).

Each box goes to level floor(4 + log2(sqrt(wh) / 224)) clamped to P2-P5 (FPN paper, eq. 1), then a per-level
op turns it into an S x S grid of features there:

- `RoIAlignOp` (Mask R-CNN sec. 3): no quantisation; bilinear samples at regular points of each bin, averaged
  (`torchvision.ops.roi_align`). With `aligned=True` the box is shifted by -0.5 feature pixel first, so that
  pixel i's centre sits at i + 0.5 as in continuous coordinates (Detectron2's ROIAlignV2). `sampling_ratio`
  samples per bin side; 0 = adaptive, ceil(bin size) (Detectron2's choice).
- `RoIPoolOp` (Fast R-CNN, Girshick 2015): the box is rounded to the feature grid, its cells are split into
  S x S bins (floor / ceil of the bin edges) and each bin takes the max (`torchvision.ops.roi_pool`).
- `RoIWarpOp` (MNC, Dai et al. 2016; Mask R-CNN sec. 3 and Table 2c): the box is quantised as RoIPool does,
  x_q = round(x * scale) for each coordinate (round half away from zero, as C's `round` in torchvision's
  roi_pool kernel and MNC's roi_warping_layer), then resampled bilinearly over [x1_q, x2_q] x [y1_q, y2_q]
  with no further quantisation: roi_align(feature, quantised box, S, spatial_scale=1, sampling_ratio,
  aligned=False). MNC's layer takes the max over the bilinear samples; the paper reports max and average
  within 0.1 AP of each other (Table 2c), and this one averages, as RoIAlign does.

With the default RoIAlign the numbers are torchvision's `MultiScaleRoIAlign`'s (to float32 rounding on the CPU).
For speed: CPU inference samples with models/roi_align_cpu.py (torchvision's rules as one weighted gather on all
threads, reading channels-last and bf16 maps in place); elsewhere the caller converts the features to
contiguous float32 once for all branches (torchvision's kernels would copy them on every call), and RoIPool
splits the boxes across threads on the CPU, because torchvision's CPU kernel runs on one core.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn
from torchvision.ops import box_area, roi_align, roi_pool

from .config import ModelConfig, Pooler
from .roi_align_cpu import roi_align as roi_align_cpu

FPN_STRIDES = (4, 8, 16, 32)  # P2-P5's strides in input pixels; P6 feeds only the RPN
_MIN_ROIS_PER_THREAD = 32


class RoIOp(Protocol):
    """One level's op: feature [B, C, H, W] (float32, or bf16 at bf16 inference), rois [R, 5] (image index, x1,
    y1, x2, y2 in input pixels), output size (S, S) and the level's scale (1 / stride) -> [R, C, S, S], float32
    or, where the op samples bf16 maps in bf16 (CPU RoIAlign / RoIWarp), bf16."""

    multithreaded: ClassVar[bool]  # uses every CPU thread by itself (else the pooler splits the boxes)

    def __call__(self, feature: Tensor, rois: Tensor, output_size: tuple[int, int], scale: float) -> Tensor: ...


@dataclass(frozen=True)
class RoIAlignOp:
    """RoIAlign: `torchvision.ops.roi_align` (Mask R-CNN sec. 3); aligned=True is Detectron2's ROIAlignV2."""

    sampling_ratio: int = 2
    aligned: bool = False
    reference_kernel: bool = False  # torchvision's kernel even for CPU inference (bitwise reference numbers)
    multithreaded: ClassVar[bool] = True

    def __call__(self, feature: Tensor, rois: Tensor, output_size: tuple[int, int], scale: float) -> Tensor:
        if self.reference_kernel:
            return roi_align(feature.float().contiguous(), rois, output_size, scale, self.sampling_ratio, self.aligned)
        return _roi_align(feature, rois, output_size, scale, self.sampling_ratio, self.aligned)


@dataclass(frozen=True)
class RoIPoolOp:
    """RoIPool: quantised box and bins, max per bin (`torchvision.ops.roi_pool`; Fast R-CNN sec. 2.1)."""

    multithreaded: ClassVar[bool] = False

    def __call__(self, feature: Tensor, rois: Tensor, output_size: tuple[int, int], scale: float) -> Tensor:
        return roi_pool(feature.float().contiguous(), rois, output_size, scale)


@dataclass(frozen=True)
class RoIWarpOp:
    """RoIWarp: RoIPool's quantised box (round(x * scale)), then bilinear resampling (MNC; Mask R-CNN Table 2c)."""

    sampling_ratio: int = 2
    multithreaded: ClassVar[bool] = True

    def __call__(self, feature: Tensor, rois: Tensor, output_size: tuple[int, int], scale: float) -> Tensor:
        return _roi_align(feature, quantize_rois(rois, scale), output_size, 1.0, self.sampling_ratio, False)


def _roi_align(
    feature: Tensor, rois: Tensor, output_size: tuple[int, int], scale: float, sampling_ratio: int, aligned: bool
) -> Tensor:
    """models/roi_align_cpu.py for CPU inference, torchvision's kernel for training and on GPUs."""
    if feature.device.type == "cpu" and not torch.is_grad_enabled():
        return roi_align_cpu(feature, rois, output_size, scale, sampling_ratio, aligned)
    return roi_align(feature.float().contiguous(), rois, output_size, scale, sampling_ratio, aligned)


def quantize_rois(rois: Tensor, scale: float) -> Tensor:
    """rois [R, 5] (index, x1, y1, x2, y2 in input pixels) -> the same with the box in feature cells,
    round(x * scale), rounding halves away from zero (C's `round`, as RoIPool's kernel does)."""
    scaled = rois[:, 1:] * scale
    rounded = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)
    return torch.cat([rois[:, :1], rounded], dim=1)


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roi_pooler")


def pooling_features(features: dict[str, Tensor]) -> list[Tensor]:
    """The maps the RoI heads pool from (the backbone's `roi_features`: P2-P5, or res4 / res5 alone), finest
    first, [B, C, H_l, W_l]: on a GPU float32 contiguous (the layout torchvision's kernel reads without
    copying); on the CPU in their own memory format and in float32, or in bf16 when they are bf16 (bf16
    inference), which models/roi_align_cpu.py reads in place."""
    return [_cpu_pooling_map(f) if f.device.type == "cpu" else f.float().contiguous() for f in features.values()]


def _cpu_pooling_map(feature: Tensor) -> Tensor:
    return feature if feature.dtype in (torch.float32, torch.bfloat16) else feature.float()


class MultiLevelRoIPooler(nn.Module):
    """levels (P2-P5, from `pooling_features`), boxes (B tensors [R_i, 4], input pixels) -> [sum R_i, C, S, S].

    op: what samples each level (`RoIAlignOp`, `RoIPoolOp`, `RoIWarpOp`). Each level's scale is 1 / its stride.
    (torchvision infers it from the feature and image sizes, which gives the same power of two except for
    images narrower than about 106 px after resizing, where it errs.) No parameters: the state dict is empty.
    """

    def __init__(
        self,
        output_size: int,
        op: RoIOp,
        strides: tuple[int, ...] = FPN_STRIDES,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ):
        super().__init__()
        self.output_size = (output_size, output_size)
        self.op = op
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
        if len(levels) == 1 or rois.shape[0] == 0:  # one map (C4 / C5) or no RoIs: nothing to assign
            return self._sample(levels[0], rois, scales[0])

        size = torch.sqrt(box_area(all_boxes))
        eps = torch.tensor(1e-6, dtype=size.dtype)
        target = torch.floor(self.canonical_level + torch.log2(size / self.canonical_scale) + eps)
        level_of = (target.clamp(min=k_min, max=k_max).to(torch.int64) - int(k_min)).clamp(0, len(levels) - 1)

        cpu_inference = levels[0].device.type == "cpu" and not torch.is_grad_enabled()
        layout = torch.channels_last if cpu_inference else torch.contiguous_format  # roi_align_cpu's output
        out: Tensor | None = None  # every row is written once: each RoI has one level
        for level, (feature, scale) in enumerate(zip(levels, scales, strict=True)):
            idx = torch.where(level_of == level)[0]
            if idx.numel():
                part = self._sample(feature, rois[idx], scale)  # the op's dtype: bf16 maps may stay bf16
                if out is None:
                    shape = (rois.shape[0], *part.shape[1:])
                    out = torch.empty(shape, dtype=part.dtype, device=part.device, memory_format=layout)
                out[idx] = part
        assert out is not None  # rois is not empty
        return out

    def _sample(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        threads = torch.get_num_threads()
        # Threads only for inference: grad mode is thread-local, and training wants one autograd graph.
        serial = feature.device.type != "cpu" or torch.is_grad_enabled() or threads == 1 or self.op.multithreaded
        if serial or rois.shape[0] < 2 * _MIN_ROIS_PER_THREAD:
            return self.op(feature, rois, self.output_size, scale)
        chunks = rois.chunk(min(threads, rois.shape[0] // _MIN_ROIS_PER_THREAD))
        parts = _pool(threads).map(lambda r: self.op(feature, r, self.output_size, scale), chunks)
        return torch.cat(list(parts))


def build_pooler(
    kind: Pooler,
    output_size: int,
    sampling_ratio: int = 2,
    aligned: bool = False,
    strides: tuple[int, ...] = FPN_STRIDES,
    reference_kernel: bool = False,
) -> MultiLevelRoIPooler:
    """The pooler `ModelConfig.pooler` names, on maps of the given strides (input pixels per feature pixel);
    sampling_ratio: align and warp (0 = adaptive); aligned: align only; reference_kernel: align with torchvision's
    kernel even for CPU inference (the `exact` inference layout).

    Raises ValueError for another kind, or aligned=True with pool or warp (they quantise the box instead).
    """
    if aligned and kind != "align":
        raise ValueError(f"pooler_aligned applies to the 'align' pooler only; got pooler {kind!r}")
    if kind == "align":
        return MultiLevelRoIPooler(output_size, RoIAlignOp(sampling_ratio, aligned, reference_kernel), strides)
    if kind == "pool":
        return MultiLevelRoIPooler(output_size, RoIPoolOp(), strides)
    if kind == "warp":
        return MultiLevelRoIPooler(output_size, RoIWarpOp(sampling_ratio), strides)
    raise ValueError(f"unknown RoI pooler {kind!r}; choose from 'align', 'pool', 'warp'")


def config_pooler(config: ModelConfig, output_size: int, strides: tuple[int, ...] = FPN_STRIDES) -> MultiLevelRoIPooler:
    """The RoI feature extraction `config` asks for (pooler, pooler_aligned, pooler_sampling_ratio), giving
    output_size x output_size features: every branch (box, mask, keypoint) builds its pooler here."""
    exact = config.inference_layout == "exact"  # reference numbers: torchvision's kernel, as Detectron2 calls it
    return build_pooler(config.pooler, output_size, config.pooler_sampling_ratio, config.pooler_aligned, strides, exact)
