"""Input transform: normalise, resize (shorter side to min_size, longer side at most max_size), pad to /32.

By default it matches torchvision's `GeneralizedRCNNTransform` op for op, so that identical inputs give identical
features. The `ModelConfig` rules `input_channels`, `input_range`, `resize_rounding` and `resize_kernel` select
Detectron2's instead (`DefaultPredictor.__call__`, `ResizeShortestEdge`, `ResizeTransform.apply_image`,
`GeneralizedRCNN.preprocess_image`): BGR, 0-255 pixels, int(x + 0.5) sizes, PIL's bilinear on uint8.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .config import InputChannels, InputRange, ResizeKernel, ResizeRounding
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
        *,
        channels: InputChannels = "rgb",
        value_range: InputRange = "unit",
        rounding: ResizeRounding = "floor",
        kernel: ResizeKernel = "float_bilinear",
    ) -> None:
        self.min_sizes = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        self.max_size = max_size
        self.mean = mean
        self.std = std
        self.size_divisible = size_divisible
        self.channels = channels
        self.value_range = value_range
        self.rounding = rounding
        self.kernel = kernel

    def __call__(
        self, images: list[Tensor], targets: list[Targets] | None = None, training: bool = False
    ) -> tuple[ImageBatch, list[Targets] | None]:
        """Training: every image resized (one random min_size each) and padded to the batch's largest."""
        resized, resized_targets = self._resize_all(images, targets, training)
        return self._batch(resized, [_size(img) for img in images]), resized_targets

    def size_groups(self, images: list[Tensor], alone: bool = False) -> list[tuple[list[int], ImageBatch]]:
        """Inference: (input indices, ImageBatch) per padded size, so that no image is padded beyond its own size.

        Zero padding is not neutral: it enters every convolution near the image's right and bottom border,
        the RPN's anchors and the RoI features, so an image padded to a larger batch-mate gets other detections
        than alone (torchvision's batched inference has this fault). Images that pad to the same size share
        one batch and get, to float rounding, the detections each would get alone. alone: one image per batch,
        so that the float rounding is the single-image forward's too (batched convolutions round differently).
        """
        resized, _ = self._resize_all(images)
        groups: dict[object, list[int]] = {}
        for i, image in enumerate(resized):
            groups.setdefault(i if alone else self.padded_size(_size(image)), []).append(i)
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
            min_size = random.choice(self.min_sizes) if training else self.min_sizes[-1]
            if self.kernel == "pil_uint8":
                image = self.normalize(self._to_range(self.resize_pil(image, min_size)))
            else:
                image = self.resize(self.normalize(self._to_range(image)), min_size)
            resized.append(image)
            if targets is not None:
                resized_targets.append(_resize_targets(targets[i], _size(images[i]), image.shape[-2:]))
        return resized, resized_targets if targets is not None else None

    def _batch(self, resized: list[Tensor], original_sizes: list[tuple[int, int]]) -> ImageBatch:
        return ImageBatch(
            tensors=self.pad(resized), image_sizes=[_size(img) for img in resized], original_sizes=original_sizes
        )

    def _to_range(self, image: Tensor) -> Tensor:
        """uint8 or float [0, 1] RGB [3, H, W] -> float in `value_range`, channels in `channels` order."""
        if image.dtype == torch.uint8:
            image = image.float() if self.value_range == "byte" else image.float().div_(255)
        elif self.value_range == "byte":
            image = image * 255
        return image.flip(0) if self.channels == "bgr" else image

    def output_size(self, size: tuple[int, int], min_size: int) -> tuple[int, int]:
        """(h, w) after resizing: Detectron2's `ResizeShortestEdge.get_output_shape` (Python floats,
        int(x + 0.5)) for half_up; for floor torchvision's scale min(min_size / short, max_size / long)
        applied with F.interpolate's floor."""
        h, w = size
        if self.rounding == "floor":
            scale = min(float(min_size) / min(h, w), float(self.max_size) / max(h, w))
            return math.floor(h * scale), math.floor(w * scale)
        scale = min_size * 1.0 / min(h, w)
        new_h, new_w = (min_size * 1.0, scale * w) if h < w else (scale * h, min_size * 1.0)
        if max(new_h, new_w) > self.max_size:
            scale = self.max_size * 1.0 / max(new_h, new_w)
            new_h, new_w = new_h * scale, new_w * scale
        return int(new_h + 0.5), int(new_w + 0.5)

    def resize_pil(self, image: Tensor, min_size: int) -> Tensor:
        """Detectron2's `ResizeTransform.apply_image`: a uint8 [3, H, W] image through PIL's bilinear resize
        (which low-pass filters when it shrinks) to `output_size`; a float image through F.interpolate, as
        Detectron2 does for non-uint8 arrays. Same dtype out."""
        new_h, new_w = self.output_size(_size(image), min_size)
        if image.dtype != torch.uint8:
            return F.interpolate(image[None], (new_h, new_w), mode="bilinear", align_corners=False)[0]
        hwc = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
        resized = np.asarray(Image.fromarray(hwc).resize((new_w, new_h), Image.Resampling.BILINEAR))
        return torch.from_numpy(resized.copy()).permute(2, 0, 1).to(image.device)

    def normalize(self, image: Tensor) -> Tensor:
        mean = torch.as_tensor(self.mean, dtype=image.dtype, device=image.device)
        std = torch.as_tensor(self.std, dtype=image.dtype, device=image.device)
        return (image - mean[:, None, None]) / std[:, None, None]

    def resize(self, image: Tensor, min_size: int) -> Tensor:
        """Bilinear resize by one scale factor, so the aspect ratio is kept (torchvision's F.interpolate with
        recompute_scale_factor; half_up rounding resizes to `output_size` instead)."""
        h, w = image.shape[-2:]
        if self.rounding == "half_up":
            size = self.output_size((h, w), min_size)
            return F.interpolate(image[None], size, mode="bilinear", align_corners=False)[0]
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


def rescale_boxes(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int], clip: bool = False) -> Tensor:
    """Boxes [N, 4] from resized-image pixels back to original-image pixels (torchvision's float32 ratios).

    clip: clamp them into the original image again, as Detectron2's `detector_postprocess` does (rounding of
    the ratio can carry a box a fraction of a pixel past the border).
    """
    ratio_h = torch.tensor(to_size[0], dtype=torch.float32) / torch.tensor(from_size[0], dtype=torch.float32)
    ratio_w = torch.tensor(to_size[1], dtype=torch.float32) / torch.tensor(from_size[1], dtype=torch.float32)
    ratio = torch.stack([ratio_w, ratio_h, ratio_w, ratio_h]).to(boxes.device)
    scaled = boxes * ratio
    if not clip:
        return scaled
    limit = torch.tensor([to_size[1], to_size[0]] * 2, dtype=scaled.dtype, device=scaled.device)
    return torch.minimum(scaled.clamp(min=0), limit)
