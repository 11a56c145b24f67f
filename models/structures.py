"""Typed containers that flow through the model instead of string-keyed dicts.

Box convention everywhere: `FloatTensor[N, 4]` as (x1, y1, x2, y2) in pixels, 0 <= x1 <= x2 <= W.
`Targets` and `Detections` are indexed and moved field-generically: a new per-instance field (keypoints) is
carried by `[]`, `.to()` and `cat` without any code naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TypeVar

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


_T = TypeVar("_T", bound="_Instances")


class _Instances:
    """Field-generic indexing and device moves for dataclasses whose tensor fields all have length N."""

    def tensors(self) -> dict[str, Tensor]:
        """The per-instance fields present (tensors; None fields are absent), by name."""
        return {f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), Tensor)}

    def __getitem__(self: _T, index: Tensor | slice | int) -> _T:
        """Select instances in every per-instance field at once. An int keeps a length-1 set; negative ints count
        from the end (`det[-1]` is the last one)."""
        if isinstance(index, int):
            index = slice(index, index + 1 or None)
        return replace(self, **{name: value[index] for name, value in self.tensors().items()})

    def to(self: _T, device: torch.device | str) -> _T:
        return replace(self, **{name: value.to(device) for name, value in self.tensors().items()})


@dataclass(frozen=True)
class Targets(_Instances):
    """Ground truth of one image, in its own pixels (the transform rescales it with the image).

    boxes: FloatTensor[G, 4]; labels: Int64Tensor[G] in 1..K-1; masks: UInt8Tensor[G, H, W] full-image;
    keypoints: FloatTensor[G, P, 3] as COCO's (x, y, v) in pixels (v = 0 absent, 1 occluded, 2 visible), or None
    when the data has none.
    """

    boxes: Tensor
    labels: Tensor
    masks: Tensor
    keypoints: Tensor | None = None

    def __len__(self) -> int:
        return self.boxes.shape[0]


@dataclass(frozen=True)
class Detections(_Instances):
    """Detections of one image, Instances-style: every field has length N, and indexing selects them all.

    boxes: FloatTensor[N, 4] in original-image pixels; scores: FloatTensor[N]; labels: Int64Tensor[N]
    (contiguous class index, 0 is background and never appears); image_size: (H, W) of the original image.
    The RoI branches' fields, None when the model has no such branch or it was not run:
    masks: FloatTensor[N, M, M], the probabilities of the predicted class over the box (M = 28 for FPN heads);
    keypoints: FloatTensor[N, P, 3] as (x, y, score) in original-image pixels.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    image_size: tuple[int, int]
    masks: Tensor | None = None
    keypoints: Tensor | None = None

    def __len__(self) -> int:
        return self.boxes.shape[0]


def cat(parts: list[Detections]) -> Detections:
    """Concatenate detections of one image field by field; a field absent (None) in any part is None in the result."""
    if not parts:
        raise ValueError("cat needs at least one Detections")
    present = [set(p.tensors()) for p in parts]
    every, some = set.intersection(*present), set.union(*present)
    joined = {n: torch.cat([p.tensors()[n] for p in parts]) for n in every}
    return replace(parts[0], **joined, **dict.fromkeys(some - every))
