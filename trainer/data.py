"""COCO-format data: an instances JSON + an image folder -> (UInt8Tensor[3, H, W], Targets) pairs.

The set is read, checked and repaired once, up front (`validate.load_coco`: what is repaired, skipped with a
warning, or stops with DataError is listed there), so that the loader's workers meet no bad annotation.
Pixels come from `models.image.read`, the decoder the service uses: EXIF orientation applied (annotations are
in the displayed frame), 16-bit and other modes scaled to 8-bit RGB.

Labels are contiguous (1..K-1, 0 = background). For a training set they are the data set's category ids in
id order, a mapping that travels with the saved model (`ModelConfig.category_ids`); for a model's validation
or test set they come from matching the model's (id, name) pairs to the set's (`categories.match`).
`iscrowd` regions never become targets (the paper ignores them); they stay in the ground truth for COCOeval.
A keypoint set (categories naming keypoints) also gives Targets.keypoints [G, K, 3] (COCO's x, y, v; an
annotation of a category without keypoints gets K unlabelled points); horizontal flips swap left and right
keypoints (`models.keypoint_names.flip_permutation`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from models import Targets
from models import image as image_io
from models.keypoint_names import flip_permutation

from . import categories as category_map
from .errors import DataError
from .layout import find_annotations
from .validate import load_coco

__all__ = ["CocoDetection", "DataError", "TrainingView", "collate", "find_annotations", "hflip"]


class CocoDetection(Dataset):
    """Item i -> (image_id, UInt8Tensor[3, H, W], Targets with boxes [G, 4] xyxy, labels [G], masks [G, H, W],
    keypoints [G, K, 3] for a keypoint set, else None).

    category_ids / class_names: a model's classes (index 0 = background) to match this set against; None for
    a training set (its own categories become the classes). Raises DataError for data that cannot be used.
    """

    def __init__(
        self,
        data_dir: str | Path,
        category_ids: tuple[int, ...] | None = None,
        class_names: tuple[str, ...] = (),
    ) -> None:
        self.layout = find_annotations(data_dir)
        self.image_dir = self.layout.images
        valid = load_coco(self.layout)
        self.coco, self.paths, self.source = valid.coco, valid.paths, valid.source
        self.keypoint_names = valid.keypoint_names  # () for a set without keypoints
        cats = {c: info["name"] for c, info in self.coco.cats.items()}
        if category_ids:
            self.categories = category_map.match(tuple(category_ids), tuple(class_names), cats, str(self.source))
        else:
            self.categories = category_map.identity(cats)
        self.category_ids = self.categories.model_ids  # category_ids[label] = the model's id; 0: background
        self.class_names = self.categories.names
        self.label_of = self.categories.label_of  # data set category id -> label
        self.image_ids = sorted(self.coco.imgs)

    def __len__(self) -> int:
        return len(self.image_ids)

    def read_image(self, image_id: int) -> Tensor:
        """UInt8Tensor[3, H, W] RGB, upright; a file that does not decode raises DataError naming it."""
        try:
            decoded = image_io.read(self.paths[image_id], max_aspect_ratio=None)
        except image_io.ImageError as exc:
            raise DataError(str(exc)) from None
        return decoded.pixels.contiguous()

    def __getitem__(self, index: int) -> tuple[int, Tensor, Targets]:
        image_id = self.image_ids[index]
        image = self.read_image(image_id)
        return image_id, image, self.targets(image_id, (image.shape[1], image.shape[2]))

    def targets(self, image_id: int, size: tuple[int, int]) -> Targets:
        """Non-crowd annotations of a category the model knows -> Targets (boxes xyxy, clipped to the image)."""
        h, w = size
        info = self.coco.imgs[image_id]
        if (info["height"], info["width"]) != (h, w):  # checked on the header up front: the file changed since
            raise DataError(
                f"{self.paths[image_id]}: image is {h}x{w} but the JSON says {info['height']}x{info['width']}"
            )
        boxes, labels, masks, keypoints = [], [], [], []
        count = len(self.keypoint_names)
        for ann in self.coco.imgToAnns.get(image_id, []):
            if ann["iscrowd"] or ann["category_id"] not in self.label_of:
                continue
            x, y, bw, bh = ann["bbox"]
            boxes.append([x, y, x + bw, y + bh])
            labels.append(self.label_of[ann["category_id"]])
            masks.append(self.coco.annToMask(ann))
            keypoints.append(ann.get("keypoints") or [0.0] * (3 * count))
        return Targets(
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(labels, dtype=torch.int64),
            masks=torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.uint8),
            keypoints=torch.tensor(keypoints, dtype=torch.float32).reshape(-1, count, 3) if count else None,
        )


class TrainingView(Dataset):
    """A CocoDetection with horizontal flips, the paper's only augmentation besides scale.

    Items are (index, flip) pairs: the sampler draws the coin (see `sampler.py`), so a resumed run and any
    number of loader workers see the same augmentation.
    """

    def __init__(self, dataset: CocoDetection, flip: bool = True) -> None:
        self.dataset = dataset
        self.flip = flip
        self.flip_index = flip_permutation(dataset.keypoint_names) if dataset.keypoint_names else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, bool]) -> tuple[int, Tensor, Targets]:
        index, flip = item
        image_id, image, target = self.dataset[index]
        if self.flip and flip:
            image, target = hflip(image, target, self.flip_index)
        return image_id, image, target


def hflip(image: Tensor, target: Targets, flip_index: tuple[int, ...] | None = None) -> tuple[Tensor, Targets]:
    """Mirror image [3, H, W], masks [G, H, W] and boxes: x1' = W - x2, x2' = W - x1; keypoints [G, K, 3]:
    x' = W - x, then keypoint i takes the place of its mirror flip_index[i] (left_eye <-> right_eye), unlabelled
    points staying (0, 0, 0) (torchvision's references/detection `_flip_coco_person_keypoints`).

    Raises ValueError for keypoints without a flip_index.
    """
    w = image.shape[-1]
    boxes = target.boxes.clone()
    boxes[:, 0], boxes[:, 2] = w - target.boxes[:, 2], w - target.boxes[:, 0]
    keypoints = target.keypoints
    if keypoints is not None:
        if flip_index is None:
            raise ValueError("flipping keypoints needs their flip permutation (models.keypoint_names)")
        keypoints = keypoints[:, list(flip_index)].clone()
        keypoints[..., 0] = w - keypoints[..., 0]
        keypoints[keypoints[..., 2] == 0] = 0
    flipped = replace(target, boxes=boxes, masks=target.masks.flip(-1), keypoints=keypoints)
    return image.flip(-1), flipped


def collate(batch: list[tuple[int, Tensor, Targets]]) -> tuple[list[int], list[Tensor], list[Targets]]:
    """Image-centric batch: images keep their own sizes; the model's transform resizes and pads them."""
    ids, images, targets = zip(*batch, strict=True)
    return list(ids), list(images), list(targets)
