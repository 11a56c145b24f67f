"""Input transform: normalise, resize (shorter side to min_size, longer side at most max_size), pad to /32.

Matches torchvision's `GeneralizedRCNNTransform` op for op, so that identical inputs give identical features.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

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
        """Training: every image resized (one random min_size each) and padded to the batch's largest."""
        resized, resized_targets = self._resize_all(images, targets, training)
        return self._batch(resized, [_size(img) for img in images]), resized_targets

    def size_groups(self, images: list[Tensor]) -> list[tuple[list[int], ImageBatch]]:
        """Inference: (input indices, ImageBatch) per padded size, so that no image is padded beyond its own size.

        Zero padding is not neutral: it enters every convolution near the image's right and bottom border,
        the RPN's anchors and the RoI features, so an image padded to a larger batch-mate gets other detections
        than alone (torchvision's batched inference has this fault). Images that pad to the same size share
        one batch and get, to float rounding, the detections each would get alone.
        """
        resized, _ = self._resize_all(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(resized):
            groups.setdefault(self.padded_size(_size(image)), []).append(i)
        return [
            (indices, self._batch([resized[i] for i in indices], [_size(images[i]) for i in indices]))
            for indices in groups.values()
        ]

    def padded_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) rounded up to multiples of `size_divisible`."""
        stride = self.size_divisible
        return (math.ceil(size[0] / stride) * stride, math.ceil(size[1] / stride) * stride)

    def _resize_all(
        self, images: list[Tensor], targets: list[Targets] | None = None, training: bool = False
    ) -> tuple[list[Tensor], list[Targets] | None]:
        resized, resized_targets = [], []
        for i, image in enumerate(images):
            if image.dtype == torch.uint8:
                image = image.float().div_(255)
            min_size = random.choice(self.min_sizes) if training else self.min_sizes[-1]
            image = self.resize(self.normalize(image), min_size)
            resized.append(image)
            if targets is not None:
                resized_targets.append(_resize_targets(targets[i], _size(images[i]), image.shape[-2:]))
        return resized, resized_targets if targets is not None else None

    def _batch(self, resized: list[Tensor], original_sizes: list[tuple[int, int]]) -> ImageBatch:
        return ImageBatch(
            tensors=self.pad(resized), image_sizes=[_size(img) for img in resized], original_sizes=original_sizes
        )

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
        h = max(self.padded_size(_size(img))[0] for img in images)
        w = max(self.padded_size(_size(img))[1] for img in images)
        batch = images[0].new_zeros((len(images), images[0].shape[0], h, w))
        for i, img in enumerate(images):
            batch[i, :, : img.shape[-2], : img.shape[-1]].copy_(img)
        return batch


def _size(image: Tensor) -> tuple[int, int]:
    return int(image.shape[-2]), int(image.shape[-1])


def _resize_targets(target: Targets, old_size: tuple[int, int], size: torch.Size) -> Targets:
    """Ground truth follows its image: boxes and keypoints scaled per axis by the actual size ratio (torchvision's
    `resize_boxes`, `resize_keypoints`), masks resampled."""
    masks = target.masks
    ratio = torch.tensor(
        [size[1] / old_size[1], size[0] / old_size[0]] * 2, dtype=torch.float32, device=target.boxes.device
    )
    if masks.numel():
        masks = F.interpolate(masks[:, None].float(), size=tuple(size))[:, 0].to(torch.uint8)
    keypoints = target.keypoints
    if keypoints is not None:
        keypoints = keypoints * torch.cat([ratio[:2], ratio.new_ones(1)])
    return replace(target, boxes=target.boxes * ratio, masks=masks, keypoints=keypoints)


def rescale_boxes(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """Boxes [N, 4] from resized-image pixels back to original-image pixels (torchvision's float32 ratios)."""
    ratio_h = torch.tensor(to_size[0], dtype=torch.float32) / torch.tensor(from_size[0], dtype=torch.float32)
    ratio_w = torch.tensor(to_size[1], dtype=torch.float32) / torch.tensor(from_size[1], dtype=torch.float32)
    ratio = torch.stack([ratio_w, ratio_h, ratio_w, ratio_h]).to(boxes.device)
    return boxes * ratio
