"""A synthetic COCO-format data set: overlapping shapes on textured backgrounds, deterministic by seed.

Why synthetic: it makes the trainer testable end to end on a CPU and gives the demo model something real to
learn (several classes, occlusion, scale, colour and texture changes) without a download. Each image is drawn
back to front; a per-pixel owner map records which shape is on top, so every annotation's mask is the
*visible* part of its shape, as COCO's are. Shapes hidden below `min_visible` of their area are dropped.

With `keypoints`, every annotation also carries COCO keypoints: the shape's 4 extreme points ("top", "right",
"bottom", "left": the tips of its drawn outline in each direction, `models.keypoint_names.EXTREME_POINTS`), at
the centre of the extreme pixel (the middle one of the extreme row or column). v = 2 where the shape is on top
there, 1 where a later shape hides it, 0 (not labelled) where the shape touches the image border on that side,
since its real tip lies outside. Keypoints draw no random numbers: a seed gives the same images either way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from models.keypoint_names import EXTREME_POINTS, EXTREME_SKELETON

from .progress import progress

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")


@dataclass(frozen=True)
class SynthConfig:
    """Defaults define the benchmark: the demo's held-out split is the same command with another seed."""

    images: int = 100
    seed: int = 0
    min_side: int = 224  # image sides are drawn uniformly in [min_side, max_side]
    max_side: int = 320
    max_shapes: int = 6
    min_radius: int = 12  # shape "radius" (half its extent) in pixels
    max_radius: int = 64
    min_visible: float = 0.25  # fraction of a shape that must stay visible for it to be annotated
    min_area: int = 40  # visible pixels
    keypoints: bool = False  # annotate each shape's 4 extreme points as COCO keypoints


class Instance(NamedTuple):
    """One annotated shape: class index 0..3, its visible bool[h, w] mask, and keypoints float[4, 3] (x, y, v)
    in pixels (EXTREME_POINTS order)."""

    kind: int
    mask: np.ndarray
    keypoints: np.ndarray


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear colour gradient + low-contrast blobs + pixel noise -> float32[h, w, 3] in [0, 255]."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1) / 2
    image = c0 * (1 - t[..., None]) + c1 * t[..., None]
    blobs = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(blobs)
    for _ in range(int(rng.integers(0, 8))):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 60)
        draw.ellipse((x - r, y - r * rng.uniform(0.4, 1), x + r, y + r), fill=int(rng.integers(20, 80)))
    image += (np.asarray(blobs, dtype=np.float32)[..., None] / 255) * rng.uniform(-120, 120, 3)
    return image + rng.normal(0, rng.uniform(2, 15), (h, w, 1))


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A shape's fill: solid, stripes of two colours, or speckle noise -> float32[h, w, 3]."""
    colour = rng.uniform(0, 255, 3)
    kind = rng.integers(0, 3)
    if kind == 0:
        return np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
    if kind == 1:
        other = rng.uniform(0, 255, 3)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle, period = rng.uniform(0, math.pi), rng.uniform(4, 14)
        phase = ((np.cos(angle) * xx + np.sin(angle) * yy) / period).astype(np.int64) % 2
        return np.where(phase[..., None] == 0, colour, other).astype(np.float32)
    return (colour + rng.normal(0, 30, (h, w, 1))).astype(np.float32)


def _outline(rng: np.random.Generator, kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Polygon vertices of a rotated square, triangle or five-pointed star; None for a circle (an ellipse)."""
    rotation = rng.uniform(0, 2 * math.pi)
    if kind == "square":
        angles, radii = [rotation + k * math.pi / 2 for k in range(4)], [r] * 4
    elif kind == "triangle":
        angles, radii = [rotation + k * 2 * math.pi / 3 for k in range(3)], [r] * 3
    elif kind == "star":
        angles = [rotation + k * math.pi / 5 for k in range(10)]
        radii = [r if k % 2 == 0 else r * rng.uniform(0.38, 0.5) for k in range(10)]
    else:
        return None
    return [(cx + rad * math.cos(a), cy + rad * math.sin(a)) for a, rad in zip(angles, radii, strict=True)]


def render(rng: np.random.Generator, config: SynthConfig) -> tuple[np.ndarray, list[Instance]]:
    """One image: uint8[h, w, 3] and its visible instances."""
    h, w = (int(v) for v in rng.integers(config.min_side, config.max_side + 1, 2))
    image = _background(rng, h, w)
    owner = np.full((h, w), -1, dtype=np.int64)
    drawn: list[tuple[int, int, np.ndarray]] = []  # (owner id, class index, full mask)
    for index in range(int(rng.integers(1, config.max_shapes + 1))):
        kind = int(rng.integers(0, len(CLASSES)))
        r = float(np.exp(rng.uniform(math.log(config.min_radius), math.log(config.max_radius))))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        points = _outline(rng, CLASSES[kind], cx, cy, r)
        if points is None:
            aspect = rng.uniform(0.8, 1.0)
            draw.ellipse((cx - r, cy - r * aspect, cx + r, cy + r * aspect), fill=255)
        else:
            draw.polygon(points, fill=255)
        full = np.asarray(canvas) > 127
        if not full.any():
            continue
        image[full] = _texture(rng, h, w)[full]
        owner[full] = index
        drawn.append((index, kind, full))
    image += rng.normal(0, 4, (h, w, 1))
    instances = []
    for index, kind, full in drawn:
        visible = owner == index
        if visible.sum() >= max(config.min_area, config.min_visible * full.sum()):
            instances.append(Instance(kind, visible, extreme_points(full, visible)))
    return np.clip(image, 0, 255).astype(np.uint8), instances


def extreme_points(full: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The 4 extreme points (top, right, bottom, left) of a drawn shape's bool[h, w] mask -> float[4, 3] rows
    (x, y, v) in pixels: the centre of the middle pixel of the extreme row or column; v as the module says."""
    h, w = full.shape
    ys, xs = np.nonzero(full)
    sides = (  # (extreme pixels form a row, not a column; the row or column; the image border on that side)
        (True, ys.min(), 0),
        (False, xs.max(), w - 1),
        (True, ys.max(), h - 1),
        (False, xs.min(), 0),
    )
    rows = []
    for on_row, extreme, border in sides:
        along = np.sort(xs[ys == extreme] if on_row else ys[xs == extreme])
        middle = int(along[len(along) // 2])
        x, y = (middle, int(extreme)) if on_row else (int(extreme), middle)
        v = 0 if extreme == border else (2 if visible[y, x] else 1)
        rows.append((x + 0.5, y + 0.5, v))
    return np.asarray(rows, dtype=np.float64)


def annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int) -> dict[str, Any]:
    """A COCO annotation with an RLE segmentation of a bool[h, w] mask; bbox is the mask's tight xywh box."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": rle,
        "area": int(mask.sum()),
        "bbox": bbox,
        "iscrowd": 0,
    }


def write_dataset(out_dir: str | Path, config: SynthConfig, show_progress: bool = False) -> Path:
    """Write `out_dir/images/*.png` and `out_dir/annotations.json`; returns the annotations path.

    show_progress: a bar of images written on stderr, when it is a terminal (`progress.progress`).
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    images, annotations = [], []
    ids = range(1, config.images + 1)
    for image_id in progress(ids, total=config.images, desc="synth", unit="image", enabled=show_progress):
        pixels, instances = render(rng, config)
        name = f"{image_id:06d}.png"
        Image.fromarray(pixels).save(out / "images" / name)
        images.append({"id": image_id, "file_name": name, "height": pixels.shape[0], "width": pixels.shape[1]})
        for kind, mask, points in instances:
            annotations.append(annotation(mask, len(annotations) + 1, image_id, kind + 1))
            if config.keypoints:
                annotations[-1] |= {
                    "keypoints": points.ravel().tolist(),
                    "num_keypoints": int((points[:, 2] > 0).sum()),
                }
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]
    if config.keypoints:
        index = {name: i + 1 for i, name in enumerate(EXTREME_POINTS)}  # COCO's skeleton is 1-based
        limbs = [[index[a], index[b]] for a, b in EXTREME_SKELETON]
        categories = [c | {"keypoints": list(EXTREME_POINTS), "skeleton": limbs} for c in categories]
    path = out / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path
