"""Input transform: normalise, resize (shorter side to min_size, longer side at most max_size), pad to /32.

Matches torchvision's `GeneralizedRCNNTransform` op for op, so that identical inputs give identical features.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import Tensor

from .structures import ImageBatch, Targets


class ImageTransform:
    """images: B tensors [3, H_i, W_i] (float in [0, 1], or uint8) -> ImageBatch.

    min_size may list several sizes; training then picks one per image (multi-scale augmentation).
    """

    def __init__(
        self,
        min_size: int | tuple[int, ...],
        max_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        size_divisible: int = 32,
    ) -> None:
        self.min_sizes = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        self.max_size = max_size
        self.mean = mean
        self.std = std
        self.size_divisible = size_divisible

    def __call__(
        self, images: list[Tensor], targets: list[Targets] | None = None, training: bool = False
    ) -> tuple[ImageBatch, list[Targets] | None]:
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        resized, resized_targets = [], []
        for i, image in enumerate(images):
            if image.dtype == torch.uint8:
                image = image.float().div_(255)
            min_size = random.choice(self.min_sizes) if training else self.min_sizes[-1]
            image = self.resize(self.normalize(image), min_size)
            resized.append(image)
            if targets is not None:
                resized_targets.append(_resize_targets(targets[i], original_sizes[i], image.shape[-2:]))
        batch = ImageBatch(
            tensors=self.pad(resized),
            image_sizes=[(int(img.shape[-2]), int(img.shape[-1])) for img in resized],
            original_sizes=original_sizes,
        )
        return batch, resized_targets if targets is not None else None

    def normalize(self, image: Tensor) -> Tensor:
        mean = torch.as_tensor(self.mean, dtype=image.dtype, device=image.device)
        std = torch.as_tensor(self.std, dtype=image.dtype, device=image.device)
        return (image - mean[:, None, None]) / std[:, None, None]

    def resize(self, image: Tensor, min_size: int) -> Tensor:
        """Bilinear resize by one scale factor, so the aspect ratio is kept."""
        h, w = image.shape[-2:]
        scale = min(float(min_size) / min(h, w), float(self.max_size) / max(h, w))
        return F.interpolate(
            image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
        )[0]

    def pad(self, images: list[Tensor]) -> Tensor:
        """Zero-pad to the largest height and width of the batch, rounded up to `size_divisible`."""
        stride = float(self.size_divisible)
        h = int(math.ceil(max(img.shape[-2] for img in images) / stride) * stride)
        w = int(math.ceil(max(img.shape[-1] for img in images) / stride) * stride)
        batch = images[0].new_zeros((len(images), images[0].shape[0], h, w))
        for i, img in enumerate(images):
            batch[i, :, : img.shape[-2], : img.shape[-1]].copy_(img)
        return batch


def _resize_targets(target: Targets, old_size: tuple[int, int], size: torch.Size) -> Targets:
    """Ground truth follows its image: boxes scaled per axis by the actual size ratio, masks resampled."""
    masks = target.masks
    ratio = torch.tensor(
        [size[1] / old_size[1], size[0] / old_size[0]] * 2, dtype=torch.float32, device=target.boxes.device
    )
    if masks.numel():
        masks = F.interpolate(masks[:, None].float(), size=tuple(size))[:, 0].to(torch.uint8)
    return Targets(boxes=target.boxes * ratio, labels=target.labels, masks=masks)


def rescale_boxes(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """Boxes [N, 4] from resized-image pixels back to original-image pixels (torchvision's float32 ratios)."""
    ratio_h = torch.tensor(to_size[0], dtype=torch.float32) / torch.tensor(from_size[0], dtype=torch.float32)
    ratio_w = torch.tensor(to_size[1], dtype=torch.float32) / torch.tensor(from_size[1], dtype=torch.float32)
    ratio = torch.stack([ratio_w, ratio_h, ratio_w, ratio_h]).to(boxes.device)
    return boxes * ratio
