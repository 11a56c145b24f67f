"""Typed containers that flow through the model instead of string-keyed dicts.

Box convention everywhere: `FloatTensor[N, 4]` as (x1, y1, x2, y2) in pixels, 0 <= x1 <= x2 <= W.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class ImageBatch:
    """Normalised images resized and zero-padded into one tensor.

    tensors: FloatTensor[B, 3, Hp, Wp], Hp and Wp multiples of 32.
    image_sizes: (h, w) of each resized image inside the padding.
    original_sizes: (H, W) of each input image; detections are reported in these pixels.
    """

    tensors: Tensor
    image_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.image_sizes)


@dataclass(frozen=True)
class Targets:
    """Ground truth of one image, in its own pixels (the transform rescales it with the image).

    boxes: FloatTensor[G, 4]; labels: Int64Tensor[G] in 1..K-1; masks: UInt8Tensor[G, H, W] full-image.
    """

    boxes: Tensor
    labels: Tensor
    masks: Tensor


@dataclass(frozen=True)
class Detections:
    """Detections of one image, Instances-style: every field has length N, and indexing selects them all.

    boxes: FloatTensor[N, 4] in original-image pixels; scores: FloatTensor[N]; labels: Int64Tensor[N]
    (contiguous class index, 0 is background and never appears); masks: FloatTensor[N, M, M], the sigmoid
    probabilities of the predicted class over the box (M = 28), or None when masks were not computed.
    image_size: (H, W) of the original image.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    masks: Tensor | None
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def __getitem__(self, index: Tensor | slice | int) -> Detections:
        """Select detections in every per-detection field at once (field-generic: a new field cannot be
        dropped). An int keeps a length-1 Detections; negative ints count from the end."""
        if isinstance(index, int):
            index = slice(index, index + 1 or None)
        return replace(self, **{name: value[index] for name, value in self._tensors().items()})

    def _tensors(self) -> dict[str, Tensor]:
        return {f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), Tensor)}

    def to(self, device: torch.device | str) -> Detections:
        return replace(self, **{name: value.to(device) for name, value in self._tensors().items()})
