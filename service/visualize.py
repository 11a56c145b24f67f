"""Detections drawn over their image as a PNG: translucent masks, boxes, labels and keypoint skeletons
(Pillow ImageDraw)."""

from __future__ import annotations

import colorsys
import io
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils


def color(category_id: int) -> tuple[int, int, int]:
    """A stable, well-spread color per category (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((category_id * 0.618033988749895) % 1.0, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


# Keypoints whose heatmap logit is below this are not drawn (Detectron2's Visualizer `_KEYPOINT_THRESHOLD`).
KEYPOINT_THRESHOLD = 0.05


def render(
    pixels: torch.Tensor,
    detections: list[dict[str, Any]],
    skeleton: tuple[tuple[int, int], ...] = (),
    alpha: float = 0.45,
) -> bytes:
    """pixels: UInt8Tensor[3, H, W]; detections as `coco_results` gives them; skeleton: keypoint index pairs
    joined by a line (`models.keypoint_names.skeleton`). Returns PNG bytes."""
    canvas = pixels.permute(1, 2, 0).numpy().astype(np.float32)
    for det in reversed(detections):  # best last, so it is drawn on top
        seg = det.get("segmentation")
        if seg is None:
            continue
        mask = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode("ascii")}).astype(bool)
        canvas[mask] = canvas[mask] * (1 - alpha) + np.array(color(det["category_id"])) * alpha
    image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for det in detections:
        x, y, w, h = det["bbox"]
        rgb = color(det["category_id"])
        draw.rectangle([x, y, x + w, y + h], outline=rgb, width=2)
        text = f"{det['label']} {det['score']:.2f}"
        left, top, right, bottom = draw.textbbox((x, y), text)
        top_y = max(y - (bottom - top) - 2, 0)
        draw.rectangle([x, top_y, x + right - left + 4, top_y + bottom - top + 2], fill=rgb)
        draw.text((x + 2, top_y), text, fill=(0, 0, 0))
        if det.get("keypoints") is not None:
            draw_keypoints(draw, det["keypoints"], det.get("keypoint_scores"), skeleton, rgb)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def draw_keypoints(
    draw: ImageDraw.ImageDraw,
    keypoints: list[float],
    scores: list[float] | None,
    skeleton: tuple[tuple[int, int], ...],
    rgb: tuple[int, int, int],
) -> None:
    """One detection's keypoints (COCO flat [x, y, v] * K, pixels) as dots, and the skeleton's limbs between
    pairs whose both ends score at least KEYPOINT_THRESHOLD (all of them when scores is None)."""
    points = [(keypoints[i], keypoints[i + 1]) for i in range(0, len(keypoints), 3)]
    shown = [True] * len(points) if scores is None else [s >= KEYPOINT_THRESHOLD for s in scores]
    for a, b in skeleton:
        if a < len(points) and b < len(points) and shown[a] and shown[b]:
            draw.line([points[a], points[b]], fill=rgb, width=2)
    for (x, y), visible in zip(points, shown, strict=True):
        if visible:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=(255, 255, 255), outline=rgb)
