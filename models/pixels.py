"""Decoded Pillow images -> upright 8-bit RGB numpy arrays, in bounded memory (the pixel half of `models.image`).

Every Pillow mode is converted in horizontal strips into one preallocated (H, W, 3) uint8 array, so that no
whole-image temporary of another dtype is ever made: 16-bit and 32-bit grayscale are scaled to 0..255 as
round(v / 257) (Pillow's own convert clips them, which reads a 16-bit image as white), float as clipped
values, palette with transparency through RGBA, everything else by Pillow's convert("RGB"); alpha is
discarded. EXIF orientation is applied afterwards as a numpy view and one copy (Pillow's exif_transpose).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import ExifTags, Image

_STRIP_PIXELS = 1 << 16  # pixels converted per step: bounds the temporaries to about half a MB

# EXIF orientation -> numpy view of an (H, W, C) array showing it upright (Pillow's exif_transpose, as views).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: a.transpose(1, 0, 2)[::-1],
}


def upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """An (H, W, 3) array shown as EXIF `orientation` (1..8) asks: contiguous, a copy only when it moves."""
    return np.ascontiguousarray(_ORIENT[orientation](rgb)) if orientation in _ORIENT else rgb


def orientation(image: Image.Image) -> int:
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 (H, W, 3), converted in horizontal strips into one preallocated array."""
    width, height = image.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    convert = _converter(image)
    rows = max(1, _STRIP_PIXELS // width)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = convert(image.crop((0, top, width, bottom)) if (top, bottom) != (0, height) else image)
    return out


def _converter(image: Image.Image) -> Callable[[Image.Image], np.ndarray]:
    """A function: strip of `image` -> uint8 (rows, W, 3), or (rows, W, 1) for gray values to broadcast."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray
    if mode.startswith("I;16") or mode == "I":
        # 16-bit data (and 32-bit "I" holding values above 255) -> round(v / 257): 65535 -> 255, 257 k -> k.
        sixteen_bit = mode != "I" or image.getextrema()[1] > 255  # type: ignore[index, operator]
        top = 65535 if sixteen_bit else 255

        def gray(strip: Image.Image) -> np.ndarray:
            values = np.clip(np.asarray(strip), 0, top).astype(np.uint32)
            if sixteen_bit:
                values = (values + 128) // 257
            return values.astype(np.uint8)[..., None]

        return gray
    if mode == "F":
        return lambda strip: np.clip(np.rint(np.asarray(strip)), 0, 255).astype(np.uint8)[..., None]
    if mode == "P" and "transparency" in image.info:
        return lambda strip: np.asarray(strip.convert("RGBA").convert("RGB"))
    return lambda strip: np.asarray(strip.convert("RGB"))
