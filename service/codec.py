"""Bytes -> an RGB uint8 tensor, safely: bad input fails here, in a worker thread, before it can join a batch.

Only JPEG, PNG, WebP and BMP are parsed (`Image.open(..., formats=...)` never hands the bytes to another
plugin). The pixel cap is checked on the header size, before any pixel is decoded, so a decompression
bomb costs a few hundred bytes of parsing. EXIF orientation is applied; grayscale, palette, RGBA, 16-bit
and CMYK images become 8-bit RGB.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import ApiError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
MAX_ASPECT_RATIO = 32  # beyond it the resized short side of a small model's input vanishes
# Magic numbers of image formats we recognise but refuse (415), as opposed to bytes that are no image (422).
_OTHER_FORMATS = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x01\x00": "ICO",
    b"%PDF": "PDF",
    b"\x8aMNG": "MNG",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
    b"\xff\x4f\xff\x51": "JPEG 2000",
    b"\x76\x2f\x31\x01": "OpenEXR",
    b"8BPS": "PSD",
    b"qoif": "QOI",
    b"DDS ": "DDS",
}


@dataclass(frozen=True)
class DecodedImage:
    """pixels: UInt8Tensor[3, H, W] (RGB, after EXIF orientation); format: the container Pillow recognised."""

    pixels: torch.Tensor
    format: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[1])


def decode(data: bytes, max_pixels: int, name: str = "image") -> DecodedImage:
    """Decode one upload or raise ApiError: 422 empty / not an image / truncated, 415 other format, 413 too big."""
    if not data:
        raise ApiError(422, "empty_file", f"{name}: the file is empty")
    try:
        # Our cap sits below Pillow's bomb guard, so _check_size refuses big headers before Pillow would warn;
        # beyond twice the guard Image.open itself raises DecompressionBombError. (No warnings.catch_warnings:
        # it swaps process-global state and decoding runs in several threads.)
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        _check_size(image, max_pixels, name)
        image.load()
        image = _to_rgb(ImageOps.exif_transpose(image) or image)
    except ApiError:
        raise
    except Image.DecompressionBombError:
        raise ApiError(413, "too_many_pixels", f"{name}: image exceeds {max_pixels} pixels") from None
    except Image.UnidentifiedImageError:
        other = _sniff(data)
        if other:
            raise ApiError(415, "unsupported_format", f"{name}: {other} is not accepted; send {_accepted()}") from None
        raise ApiError(422, "not_an_image", f"{name}: not an image ({_accepted()} expected)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error):
        # Pillow reports truncated or corrupt data through all of these, depending on the plugin.
        raise ApiError(422, "corrupt_image", f"{name}: truncated or corrupt image data") from None
    except MemoryError:
        raise ApiError(413, "too_many_pixels", f"{name}: image too large to decode") from None
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ApiError(422, "corrupt_image", f"{name}: unexpected pixel layout")
    fmt = image.format or "unknown"
    return DecodedImage(torch.from_numpy(array.copy()).permute(2, 0, 1), fmt)


def _check_size(image: Image.Image, max_pixels: int, name: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ApiError(422, "corrupt_image", f"{name}: image has no pixels")
    if width * height > max_pixels:
        raise ApiError(413, "too_many_pixels", f"{name}: {width}x{height} exceeds the cap of {max_pixels} pixels")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ApiError(422, "bad_aspect_ratio", f"{name}: aspect ratio beyond {MAX_ASPECT_RATIO}:1")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> 8-bit RGB: 16-bit grayscale scaled down, alpha dropped onto black, CMYK converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image.convert("I"), dtype=np.int64)
        top = 65535 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255
        scaled = np.clip(array * 255 // top, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def _sniff(data: bytes) -> str | None:
    head = data[:16]
    for magic, fmt in _OTHER_FORMATS.items():
        if head.startswith(magic):
            return fmt
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"avis"):
        return "HEIF/AVIF"
    return None


def _accepted() -> str:
    return "JPEG, PNG, WebP or BMP"
