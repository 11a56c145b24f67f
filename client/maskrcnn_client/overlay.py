"""Drawing a result over its image with Pillow and numpy only: masks alpha-blended, boxes, `label score`."""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .inputs import ImageInput, to_pil

if TYPE_CHECKING:
    from .results import DetectResult


def colour(category_id: int) -> tuple[int, int, int]:
    """A fixed colour per category (golden-ratio hues): the same as the service's /visualize and web page, so
    that one class looks the same everywhere."""
    r, g, b = colorsys.hsv_to_rgb((category_id * 0.618033988749895) % 1.0, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(result: DetectResult, image: ImageInput, alpha: float = 0.5) -> Image.Image:
    """RGB PIL image of result.image's size: each mask blended as (1 - alpha) * pixel + alpha * colour, then
    each box (xywh, pixels) outlined and labelled `label 0.97`. Raises ValueError on a size mismatch."""
    base = to_pil(image)
    if base.size != (result.image.width, result.image.height):
        raise ValueError(
            f"image is {base.size[0]}x{base.size[1]}, result is for {result.image.width}x{result.image.height}"
        )
    pixels = np.asarray(base, dtype=np.float32).copy()
    has_masks = bool(result.detections) and all(d.segmentation is not None for d in result.detections)
    if has_masks:
        for det, mask in zip(result.detections, result.masks(), strict=True):
            pixels[mask] = (1 - alpha) * pixels[mask] + alpha * np.asarray(colour(det.category_id), np.float32)
    out = Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for det in result.detections:
        x, y, w, h = det.bbox
        rgb = colour(det.category_id)
        pen.rectangle((x, y, x + w, y + h), outline=rgb, width=2)
        text = f"{det.label} {det.score:.2f}"
        left, top, right, bottom = pen.textbbox((x, y), text, font=font)
        ty = y - (bottom - top) - 2 if y - (bottom - top) - 2 >= 0 else y
        pen.rectangle((x, ty, x + right - left + 2, ty + bottom - top + 2), fill=rgb)
        pen.text((x + 1, ty + 1 - (top - y)), text, fill=(0, 0, 0), font=font)
    return out
