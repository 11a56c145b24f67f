"""Anchor boxes of the RPN: sizes x aspect ratios per feature level, tiled over each feature map.

FPN puts one size on each level (P2-P6); the single-level designs (C4, C5) put all five on their one level,
as the paper's Faster R-CNN baseline does (15 anchors per location).

Anchors depend only on the padded batch size and the feature sizes, so they are cached per shape.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import AnchorRounding, AnchorStride


def cell_anchors(sizes: tuple[int, ...], aspect_ratios: tuple[float, ...]) -> Tensor:
    """Anchors centred at (0, 0): FloatTensor[len(ratios) * len(sizes), 4] xyxy pixels, ratio-major (anchor
    r * len(sizes) + s has ratio r and size s), rounded: torchvision's `AnchorGenerator.generate_anchors`.
    (Detectron2's `DefaultAnchorGenerator` orders them size-major and does not round.)"""
    scales = torch.as_tensor(sizes, dtype=torch.float32)
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def exact_cell_anchors(sizes: tuple[int, ...], aspect_ratios: tuple[float, ...]) -> Tensor:
    """Detectron2's `DefaultAnchorGenerator.generate_cell_anchors`: FloatTensor[len(sizes) * len(ratios), 4]
    centred at (0, 0), size-major (anchor s * len(ratios) + r has size s and ratio r), not rounded:
    w = sqrt(size^2 / ratio), h = ratio * w in Python floats (so float32 of the same doubles)."""
    anchors = []
    for size in sizes:
        for ratio in aspect_ratios:
            w = math.sqrt(size**2.0 / ratio)
            h = ratio * w
            anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors, dtype=torch.float32)


class AnchorGenerator:
    """Anchors of every level for a padded batch: FloatTensor[sum(H_l * W_l * A), 4], level-major,
    then row-major over locations, then the A anchors of a location (the order of the RPN head's outputs)."""

    def __init__(
        self,
        sizes: tuple[tuple[int, ...], ...],
        aspect_ratios: tuple[float, ...],
        rounding: AnchorRounding = "round",
        stride: AnchorStride = "padded_over_feature",
    ) -> None:
        """sizes: the anchor sizes (pixels) of each level; every level needs as many (the RPN head is shared).
        rounding, stride: the `ModelConfig` rules `anchor_rounding` and `anchor_stride`.

        Raises ValueError when levels have different numbers of sizes."""
        if len({len(s) for s in sizes}) != 1:
            raise ValueError(f"every level needs the same number of anchor sizes; got {sizes}")
        make = cell_anchors if rounding == "round" else exact_cell_anchors
        self.cell = [make(s, aspect_ratios) for s in sizes]
        self.stride = stride
        self.num_anchors_per_location = len(sizes[0]) * len(aspect_ratios)
        self._cache: dict[tuple, Tensor] = {}

    def __call__(
        self, padded_size: tuple[int, int], feature_sizes: list[tuple[int, int]], device: torch.device
    ) -> Tensor:
        key = (padded_size, tuple(feature_sizes), str(device))
        if key not in self._cache:
            if len(self._cache) > 64:  # many distinct batch shapes: keep the cache bounded
                self._cache.clear()
            self._cache[key] = self._grid(padded_size, feature_sizes, device)
        return self._cache[key]

    def _grid(self, padded_size: tuple[int, int], feature_sizes: list[tuple[int, int]], device: torch.device) -> Tensor:
        out = []
        for (fh, fw), base in zip(feature_sizes, self.cell, strict=True):
            # Integer strides from the padded size, as torchvision does (P6 on an 800-high batch: 800 // 13 = 61),
            # or the level's nominal stride, a power of two, as Detectron2 fixes them (4 ... 64).
            stride_h, stride_w = padded_size[0] // fh, padded_size[1] // fw
            if self.stride == "nominal":
                # (ceil-halving makes padded / size fall short of the stride, least on the longer side)
                stride_h = stride_w = 2 ** round(math.log2(max(padded_size[0] / fh, padded_size[1] / fw)))
            shifts_x = torch.arange(0, fw, dtype=torch.int32, device=device) * stride_w
            shifts_y = torch.arange(0, fh, dtype=torch.int32, device=device) * stride_h
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            out.append((shifts.view(-1, 1, 4) + base.to(device).view(1, -1, 4)).reshape(-1, 4))
        return torch.cat(out)
