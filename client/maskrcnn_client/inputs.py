"""What `detect` and `overlay` accept as an image, and how it travels.

An `ImageInput` is a path (str or Path), bytes, a binary file object, a PIL image, or an HxWx3 uint8 numpy
array (RGB). Paths, bytes and files are sent as they are (the service sniffs the format); PIL images and
arrays are encoded as PNG (lossless, so the server sees exactly these pixels).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, TypeAlias

import numpy as np
from PIL import Image, ImageOps

ImageInput: TypeAlias = str | Path | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray

_MAGIC = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"BM": "image/bmp",
    b"GIF8": "image/gif",
}


def content_type(data: bytes) -> str:
    """A MIME type from the first bytes (only a hint: the service decides by content)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC.items() if data.startswith(magic)), "application/octet-stream")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"a numpy image must be HxWx3 uint8 (RGB), got shape {array.shape} dtype {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_upload(image: ImageInput, index: int = 0) -> tuple[str, bytes, str]:
    """(file name, bytes, MIME type) of one image for a multipart upload.

    Raises FileNotFoundError for a missing path, ValueError for an array of the wrong shape or dtype,
    TypeError for anything else.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        data = path.read_bytes()
        return path.name, data, content_type(data)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return f"image{index}", data, content_type(data)
    if isinstance(image, Image.Image):
        return f"image{index}.png", _png(image), "image/png"
    if isinstance(image, np.ndarray):
        return f"image{index}.png", _png(_array_to_pil(image)), "image/png"
    if hasattr(image, "read"):
        data = image.read()
        if not isinstance(data, bytes):
            raise TypeError("a file object must be opened in binary mode ('rb')")
        name = Path(str(getattr(image, "name", f"image{index}"))).name
        return name, data, content_type(data)
    raise TypeError(f"cannot send {type(image).__name__} as an image: give a path, bytes, a file, PIL or numpy")


def to_pil(image: ImageInput) -> Image.Image:
    """The image as an upright RGB PIL image (EXIF orientation applied, as the service does)."""
    if isinstance(image, np.ndarray):
        return _array_to_pil(image)
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image).convert("RGB")
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = io.BytesIO(bytes(image))
    with Image.open(image) as opened:  # type: ignore[arg-type]
        return ImageOps.exif_transpose(opened).convert("RGB")
