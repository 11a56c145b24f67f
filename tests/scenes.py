"""Synthetic scenes the demo model knows (shapes on a gradient) and a comparison of two answers for one image.

`scene` draws a circle and a square that touches the right and bottom border: the border is where a batch-mate's
zero padding would enter the convolutions. `assert_same_results` compares COCO results as a user would: same
categories, boxes and scores within tolerances, masks by IoU; detections are paired by category and nearest box,
since two whose scores tie to ~1e-7 may trade places under float rounding.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from models import Targets

DEMO_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "assets" / "demo.safetensors"


def scene(width: int, height: int, seed: int) -> torch.Tensor:
    """UInt8Tensor[3, height, width]: gradient background, a circle, a square in the bottom-right corner."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = ((xx / width + yy / height) / 2)[..., None]
    img = Image.fromarray((c0 * (1 - t) + c1 * t).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    r = min(width, height) // 6
    cx, cy = width * 0.3, height * 0.4
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.uniform(0, 255, 3)))
    s = min(width, height) // 4
    draw.rectangle((width - s, height - s, width, height), fill=tuple(int(v) for v in rng.uniform(0, 255, 3)))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


def png(pixels: torch.Tensor) -> bytes:
    """A UInt8Tensor[3, H, W] as PNG bytes (lossless, so the service decodes exactly these pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_same_results(
    expected: list[dict[str, Any]],
    got: list[dict[str, Any]],
    box_px: float = 0.05,
    score: float = 1e-4,
    mask_iou: float = 0.99,
) -> None:
    """Same number of detections, each with a partner of the same category_id whose bbox (xywh) is within
    `box_px` pixels, score within `score`, and RLE mask at IoU >= `mask_iou` (when both carry one)."""
    assert len(got) == len(expected), f"{len(got)} detections instead of {len(expected)}"
    unused = list(range(len(got)))
    for e in expected:
        candidates = [j for j in unused if got[j]["category_id"] == e["category_id"]]
        assert candidates, f"no {e['label']} left to pair with {e}"
        j = min(candidates, key=lambda k: np.abs(np.subtract(got[k]["bbox"], e["bbox"])).max())
        unused.remove(j)
        g = got[j]
        assert np.abs(np.subtract(g["bbox"], e["bbox"])).max() <= box_px, (e, g)
        assert abs(g["score"] - e["score"]) <= score, (e, g)
        if "segmentation" in e and "segmentation" in g:
            iou = mask_utils.iou([_rle(g["segmentation"])], [_rle(e["segmentation"])], [0])[0, 0]
            assert iou >= mask_iou, (iou, e["label"], e["bbox"])


def _rle(segmentation: dict[str, Any]) -> dict[str, Any]:
    counts = segmentation["counts"]
    return {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}


def shapes_batch() -> tuple[list[torch.Tensor], list[Targets]]:
    """Two 128x160 images, each with a filled rectangle and a filled disc of distinct classes and colours."""
    images, targets = [], []
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(160), indexing="ij")
    for shift, (rect_label, disc_label) in zip((0, 24), ((1, 2), (3, 4)), strict=True):
        image = torch.full((3, 128, 160), 0.2)
        rect = (yy >= 20 + shift) & (yy < 70 + shift) & (xx >= 15) & (xx < 75)
        disc = (yy - 80) ** 2 + (xx - 115 + shift) ** 2 < 28**2
        image[:, rect] = torch.tensor([0.9, 0.2, 0.1])[:, None]
        image[:, disc] = torch.tensor([0.1, 0.8, 0.3])[:, None]
        masks = torch.stack([rect & ~disc, disc]).to(torch.uint8)
        boxes = []
        for m in masks:
            ys, xs = torch.where(m > 0)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        images.append(image)
        targets.append(Targets(torch.tensor(boxes, dtype=torch.float32), torch.tensor([rect_label, disc_label]), masks))
    return images, targets
