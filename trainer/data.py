"""COCO-format data: an instances JSON + an image folder -> (UInt8Tensor[3, H, W], Targets) pairs.

Labels are contiguous (1..K-1, 0 = background), mapped from the data set's category ids in id order; the
mapping travels with the saved model (`ModelConfig.category_ids`). `iscrowd` regions never become targets
(the paper ignores them). Bad data fails loudly: a missing image or a broken JSON raises `DataError`;
an annotation whose box leaves the image or whose mask is empty is skipped with a logged warning.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools.coco import COCO
from torch import Tensor
from torch.utils.data import Dataset

from models import Targets

log = logging.getLogger(__name__)
BOX_TOLERANCE = 1.0  # pixels a box may overhang the image (rounding in exporters) before it counts as bad


class DataError(ValueError):
    """The data set cannot be read as COCO: the message says which file and what is wrong."""


def find_annotations(data_dir: str | Path) -> tuple[Path, Path]:
    """(instances JSON, image folder) of a data directory: `annotations.json` + `images/` (what `synth` writes)."""
    root = Path(data_dir)
    ann, images = root / "annotations.json", root / "images"
    if not ann.is_file():
        raise DataError(f"{root}: no annotations.json")
    if not images.is_dir():
        raise DataError(f"{root}: no images/ folder")
    return ann, images


def load_coco(ann_file: str | Path) -> COCO:
    """pycocotools' COCO index, with a clear error for a file that is not a COCO instances JSON."""
    try:
        data = json.loads(Path(ann_file).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{ann_file}: cannot read annotations JSON ({exc})") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DataError(f"{ann_file}: not a COCO instances file (missing lists {missing})")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class CocoDetection(Dataset):
    """Item i -> (image_id, UInt8Tensor[3, H, W], Targets with boxes [G, 4] xyxy, labels [G], masks [G, H, W])."""

    def __init__(self, data_dir: str | Path, category_ids: tuple[int, ...] | None = None) -> None:
        ann_file, self.image_dir = find_annotations(data_dir)
        self.coco = load_coco(ann_file)
        cats = sorted(self.coco.cats)
        # category_ids[label] = dataset id; label 0 is background (id 0, never used).
        self.category_ids = category_ids or (0, *cats)
        unknown = [c for c in self.category_ids[1:] if c not in self.coco.cats]
        if unknown:
            log.warning("%s: the model's category ids %s are not in this data set", ann_file, unknown)
        names = {c: info["name"] for c, info in self.coco.cats.items()}
        self.class_names = ("__background__", *(names.get(c, str(c)) for c in self.category_ids[1:]))
        self.label_of = {cat: label for label, cat in enumerate(self.category_ids) if label > 0}
        self.image_ids = sorted(self.coco.imgs)
        missing = [self.coco.imgs[i]["file_name"] for i in self.image_ids if not self._path(i).is_file()]
        if missing:
            raise DataError(f"{self.image_dir}: {len(missing)} image file(s) missing, e.g. {missing[:3]}")

    def __len__(self) -> int:
        return len(self.image_ids)

    def _path(self, image_id: int) -> Path:
        return self.image_dir / self.coco.imgs[image_id]["file_name"]

    def read_image(self, image_id: int) -> Tensor:
        """UInt8Tensor[3, H, W] RGB; an unreadable file raises DataError."""
        path = self._path(image_id)
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise DataError(f"{path}: unreadable image ({exc})") from None
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()

    def __getitem__(self, index: int) -> tuple[int, Tensor, Targets]:
        image_id = self.image_ids[index]
        image = self.read_image(image_id)
        return image_id, image, self.targets(image_id, (image.shape[1], image.shape[2]))

    def targets(self, image_id: int, size: tuple[int, int]) -> Targets:
        """Non-crowd annotations of a known category -> Targets; bad ones are skipped with a warning."""
        h, w = size
        info = self.coco.imgs[image_id]
        if (info.get("height", h), info.get("width", w)) != (h, w):
            raise DataError(
                f"{self._path(image_id)}: image is {h}x{w} but the JSON says {info['height']}x{info['width']}"
            )
        boxes, labels, masks = [], [], []
        for ann in self.coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0):
                continue
            if ann["category_id"] not in self.label_of:
                log.warning(
                    "image %s annotation %s: unknown category %s, skipped", image_id, ann["id"], ann["category_id"]
                )
                continue
            x, y, bw, bh = ann["bbox"]
            if (
                bw <= 0
                or bh <= 0
                or x < -BOX_TOLERANCE
                or y < -BOX_TOLERANCE
                or x + bw > w + BOX_TOLERANCE
                or (y + bh > h + BOX_TOLERANCE)
            ):
                log.warning(
                    "image %s annotation %s: box %s outside the %dx%d image, skipped",
                    image_id,
                    ann["id"],
                    ann["bbox"],
                    w,
                    h,
                )
                continue
            mask = self.coco.annToMask(ann)
            if mask.shape != (h, w) or not mask.any():
                log.warning("image %s annotation %s: empty or mis-sized mask, skipped", image_id, ann["id"])
                continue
            boxes.append([max(x, 0.0), max(y, 0.0), min(x + bw, w), min(y + bh, h)])
            labels.append(self.label_of[ann["category_id"]])
            masks.append(mask)
        return Targets(
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(labels, dtype=torch.int64),
            masks=torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.uint8),
        )


class TrainingView(Dataset):
    """A CocoDetection with horizontal flips, the paper's only augmentation besides scale.

    Items are (index, flip) pairs: the sampler draws the coin (see `sampler.py`), so a resumed run and any
    number of loader workers see the same augmentation.
    """

    def __init__(self, dataset: CocoDetection, flip: bool = True) -> None:
        self.dataset = dataset
        self.flip = flip

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, bool]) -> tuple[int, Tensor, Targets]:
        index, flip = item
        image_id, image, target = self.dataset[index]
        if self.flip and flip:
            image, target = hflip(image, target)
        return image_id, image, target


def hflip(image: Tensor, target: Targets) -> tuple[Tensor, Targets]:
    """Mirror image [3, H, W], masks [G, H, W] and boxes: x1' = W - x2, x2' = W - x1."""
    w = image.shape[-1]
    boxes = target.boxes.clone()
    boxes[:, 0], boxes[:, 2] = w - target.boxes[:, 2], w - target.boxes[:, 0]
    return image.flip(-1), Targets(boxes=boxes, labels=target.labels, masks=target.masks.flip(-1))


def collate(batch: list[tuple[int, Tensor, Targets]]) -> tuple[list[int], list[Tensor], list[Targets]]:
    """Image-centric batch: images keep their own sizes; the model's transform resizes and pads them."""
    ids, images, targets = zip(*batch, strict=True)
    return list(ids), list(images), list(targets)
