"""RoIAlign for CPU inference as one weighted gather: torchvision's numbers, several times faster.

`roi_align` takes torchvision's arguments (`torchvision.ops.roi_align`) and gives its values (within float32
rounding). Its CPU kernel loops over RoIs and then over channels one at a time, each reading 4 scattered
pixels per sample point, and reads only contiguous float32 NCHW. Here every output bin is a weighted sum of
feature-map rows: with the features viewed as a [N*H*W, C] table (a free view of a channels-last map), the
bilinear corners of a bin's sample points are row indices and their weights (torchvision's
`pre_calc_for_bilinear_interpolate`, roi_align_common.h) are the bag weights of `F.embedding_bag(mode="sum")`,
whose CPU kernel reads whole channel rows with SIMD on all threads. A bf16 map is gathered in bf16 (bag
weights rounded to bf16, the output in bf16: what the next bf16 layer would cast it to), without a float32 copy
of the map. Other maps (NCHW, fp16) are copied to channels-last (float32; bf16 for bf16) in one pass, over only
the band of map rows (y) that the RoIs' sample points read.

Bilinear weights separate into a row factor and a column factor (both zero when the sample point falls
outside [-1, H] x [-1, W]), so each is computed once per (RoI, bin row, sample) and per (RoI, bin column,
sample) and broadcast into the bags.

Inference only: under grad mode with an input that requires grad, and off the CPU, the call goes to
torchvision's `roi_align` instead (on a float32 copy of the input), which has a backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair
from torchvision.ops import roi_align as tv_roi_align

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def roi_align(
    input: Tensor,
    boxes: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign (Mask R-CNN, He et al. 2017, section 3) with `torchvision.ops.roi_align`'s exact rules.

    input: [N, C, H, W] float32, bfloat16 or float16, any memory format (channels-last reads without a copy).
    boxes: [K, 5] float (batch index, x1, y1, x2, y2) in the coordinates that `spatial_scale` maps onto the
        input (input pixels for scale 1 / stride). Positions are computed in float32, as torchvision does for
        float32 input.
    output_size: bins per RoI, int or (out_h, out_w). sampling_ratio: sample points per bin side; <= 0 means
    ceil(roi side / bins), per RoI. aligned: shift the box by -0.5 pixel (Detectron2's ROIAlignV2); when False,
    RoIs are at least 1x1.
    Returns: [K, C, out_h, out_w], bfloat16 for bfloat16 input and float32 otherwise, in channels-last memory
    format (call .contiguous() for NCHW).
    Inference only: under grad mode with an input or boxes that require grad, or off the CPU, the call goes to
    `torchvision.ops.roi_align` on float32 copies (differentiable; its output is NCHW).
    Raises: ValueError for bad shapes, a batch index outside [0, N) or a non-positive output size; TypeError
    for another input dtype or boxes given as a list.
    """
    out_h, out_w = _pair(output_size)
    _check(input, boxes, out_h, out_w)
    needs_grad = torch.is_grad_enabled() and (input.requires_grad or boxes.requires_grad)
    if needs_grad or input.device.type != "cpu":
        rois = boxes.float()
        return tv_roi_align(input.float(), rois, (out_h, out_w), spatial_scale, sampling_ratio, aligned)
    n, c, h, w = input.shape
    k = boxes.shape[0]
    if k == 0 or c == 0 or h == 0 or w == 0:
        return input.new_zeros((k, out_h, out_w, c), dtype=_table_dtype(input)).permute(0, 3, 1, 2)
    rois = boxes.detach().float()
    batch = rois[:, 0].to(torch.int64)
    if bool(((batch < 0) | (batch >= n)).any()):
        raise ValueError(f"roi_align: box batch indices must be in [0, {n}), got {batch.min()}..{batch.max()}")
    geometry = _Geometry.of(rois, (h, w), (out_h, out_w), spatial_scale, aligned)
    table, first = _table(input.detach(), geometry, batch)
    if sampling_ratio > 0:
        out = _pool(table, first, geometry, batch, sampling_ratio, sampling_ratio)
        return out.view(k, out_h, out_w, c).permute(0, 3, 1, 2)
    out = input.new_zeros((k, out_h * out_w, c), dtype=table.dtype)
    grid_h = torch.ceil(geometry.size_h / out_h).nan_to_num(0.0, 0.0, 0.0).clamp(min=0).to(torch.int64)
    grid_w = torch.ceil(geometry.size_w / out_w).nan_to_num(0.0, 0.0, 0.0).clamp(min=0).to(torch.int64)
    grids = torch.stack([grid_h, grid_w], dim=1)
    for gh, gw in torch.unique(grids, dim=0).tolist():  # adaptive grids: one gather per distinct grid
        if gh == 0 or gw == 0:
            continue  # no sample points: torchvision outputs zeros
        sel = torch.where((grid_h == gh) & (grid_w == gw))[0]
        pooled = _pool(table, first, geometry.select(sel), batch[sel], gh, gw)
        out[sel] = pooled.view(sel.numel(), out_h * out_w, c)
    return out.view(k, out_h, out_w, c).permute(0, 3, 1, 2)


def _table_dtype(input: Tensor) -> torch.dtype:
    """bf16 maps are gathered in bf16; float32 and fp16 maps in float32."""
    return torch.bfloat16 if input.dtype == torch.bfloat16 else torch.float32


def _check(input: Tensor, boxes: Tensor, out_h: int, out_w: int) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError("roi_align: boxes must be one Tensor[K, 5] (batch index, x1, y1, x2, y2), not a list")
    if input.dim() != 4:
        raise ValueError(f"roi_align: input must be [N, C, H, W], got shape {tuple(input.shape)}")
    if input.dtype not in _DTYPES:
        raise TypeError(f"roi_align: input dtype must be float32, bfloat16 or float16, got {input.dtype}")
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(f"roi_align: boxes must be [K, 5] (batch index, x1, y1, x2, y2), got {tuple(boxes.shape)}")
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"roi_align: output_size must be positive, got {(out_h, out_w)}")


@dataclass(frozen=True)
class _Geometry:
    """Per-RoI start and size [K] (float32, map pixels), the map size (H, W) and the bins (out_h, out_w)."""

    start_h: Tensor
    start_w: Tensor
    size_h: Tensor
    size_w: Tensor
    map_size: tuple[int, int]
    bins: tuple[int, int]

    @staticmethod
    def of(rois: Tensor, map_size: tuple[int, int], bins: tuple[int, int], scale: float, aligned: bool) -> _Geometry:
        """torchvision's rules: the scale rounded to float32, a -0.5 shift when aligned, else at least 1x1."""
        offset = 0.5 if aligned else 0.0
        scale_t = torch.tensor(scale, dtype=torch.float32)
        start_w, start_h = rois[:, 1] * scale_t - offset, rois[:, 2] * scale_t - offset
        end_w, end_h = rois[:, 3] * scale_t - offset, rois[:, 4] * scale_t - offset
        size_w, size_h = end_w - start_w, end_h - start_h
        if not aligned:  # malformed RoIs forced to 1x1
            size_w, size_h = size_w.clamp(min=1.0), size_h.clamp(min=1.0)
        return _Geometry(start_h, start_w, size_h, size_w, map_size, bins)

    def select(self, idx: Tensor) -> _Geometry:
        parts = (self.start_h[idx], self.start_w[idx], self.size_h[idx], self.size_w[idx])
        return _Geometry(*parts, self.map_size, self.bins)


def _axis(start: Tensor, size: Tensor, bins: int, grid: int, extent: int, scale: float) -> tuple[Tensor, Tensor]:
    """One axis of the bilinear corners: start, size [K] -> (index [K, bins, 2*grid], weight [K, bins, 2*grid]).

    The sample points of bin p are start + p * bin + (i + 0.5) * bin / grid (float32, torchvision's order of
    operations); each gives its low and high pixel with weights (1 - l, l), both zero when the point is
    outside [-1, extent]; points in [-1, 0] read pixel 0, points past extent - 1 read the last pixel.
    Weights are multiplied by `scale` (the caller's 1 / count).
    """
    bin_size = size / bins  # [K]
    p = torch.arange(bins, dtype=torch.float32)
    i = torch.arange(grid, dtype=torch.float32) + 0.5
    first = start[:, None, None] + p[None, :, None] * bin_size[:, None, None]  # [K, bins, 1]
    coord = first + (i[None, None, :] * bin_size[:, None, None]) / grid  # [K, bins, grid]
    valid = (coord >= -1.0) & (coord <= extent)  # False for NaN too
    coord = torch.where(valid, coord.clamp(min=0.0), 0.0)
    low = coord.to(torch.int64)
    edge = low >= extent - 1
    low = torch.where(edge, extent - 1, low)
    high = torch.where(edge, extent - 1, low + 1)
    frac = torch.where(edge, 0.0, coord - low)
    keep = valid.to(torch.float32) * scale
    index = torch.stack([low, high], dim=-1).flatten(2)
    weight = torch.stack([(1.0 - frac) * keep, frac * keep], dim=-1).flatten(2)
    return index, weight


def _table(input: Tensor, geo: _Geometry, batch: Tensor) -> tuple[Tensor, int]:
    """The map as rows [rows * W, C] (`_table_dtype`) and the first map row (of N*H) it holds.

    A float32 or bf16 channels-last map is viewed whole, without a copy. Any other map (NCHW, fp16, other
    strides) is copied, transposed and converted in one pass, over only the band of rows between the first
    and the last that a sample point of some RoI can read.
    """
    n, c, h, w = input.shape
    dtype = _table_dtype(input)
    if input.dtype == dtype and input.is_contiguous(memory_format=torch.channels_last):
        return input.permute(0, 2, 3, 1).reshape(n * h * w, c), 0
    ends = torch.stack([geo.start_h, geo.start_h + geo.size_h]).nan_to_num(0.0, 0.0, 0.0)
    low = ends.min(0).values.floor().clamp(0, h - 1).to(torch.int64) + batch * h
    high = (ends.max(0).values.floor() + 1).clamp(0, h - 1).to(torch.int64) + batch * h
    first, last = int(low.min()), int(high.max())
    band = torch.empty(last + 1 - first, w, c, dtype=dtype)
    for b in range(first // h, last // h + 1):
        y0, y1 = max(first, b * h), min(last + 1, (b + 1) * h)
        band[y0 - first : y1 - first].copy_(input[b, :, y0 - b * h : y1 - b * h].permute(1, 2, 0))
    return band.view(-1, c), first


def _pool(table: Tensor, first: int, geo: _Geometry, batch: Tensor, grid_h: int, grid_w: int) -> Tensor:
    """Bins of RoIs sharing one sampling grid -> [K * out_h * out_w, C] in the table's dtype.

    table: float32 or bf16 [rows * W, C], the map rows (of N*H) from `first` on. Positions and weights are
    computed in float32; the weights are then rounded to the table's dtype (embedding_bag's rule).
    """
    (h, w), (out_h, out_w) = geo.map_size, geo.bins
    k = batch.shape[0]
    rows, wy = _axis(geo.start_h, geo.size_h, out_h, grid_h, h, 1.0 / (grid_h * grid_w))
    cols, wx = _axis(geo.start_w, geo.size_w, out_w, grid_w, w, 1.0)
    # Rows with a non-zero weight lie in the table's band; the others (weight 0) are moved into it.
    last = first + table.shape[0] // w - 1
    offset = ((rows + (batch * h)[:, None, None]).clamp(first, last) - first) * w  # small tensors
    index = offset[:, :, None, :, None] + cols[:, None, :, None, :]  # [K, out_h, out_w, 2gh, 2gw]
    weight = wy[:, :, None, :, None] * wx[:, None, :, None, :]
    bins = k * out_h * out_w
    weight = weight.view(bins, -1).to(table.dtype)
    return F.embedding_bag(index.view(bins, -1), table, mode="sum", per_sample_weights=weight)
