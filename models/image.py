"""Image bytes -> an RGB UInt8Tensor[3, H, W]: the one decoder behind the service, the trainer and the evaluator.

What every caller gets, whatever the file:
- EXIF orientation applied, so pixels are in the frame a browser or an annotation tool displays (and in which
  COCO annotations are drawn);
- every pixel mode as 8-bit RGB: 16-bit and 32-bit grayscale scaled to 0..255 (v / 257, not clipped), 1-bit,
  palette, CMYK, YCbCr, LAB converted by Pillow, alpha discarded (the stored colour channels are kept, as
  `torchvision.io.ImageReadMode.RGB` does);
- the size checked on the header before a pixel is decoded (`max_pixels`), so a decompression bomb costs a
  few hundred bytes of parsing.

Memory: decoding a W x H image holds at most W x H x `DECODE_BYTES_PER_PIXEL[format]` bytes at once, whatever
the pixel mode (tests/models/test_image.py measures every mode in a subprocess); `probe` tells it from the
header, so that a caller can budget concurrent decodes before they start. The decoded image in its own mode
(up to 4 bytes per pixel in Pillow) is converted strip by strip into the 3-byte RGB output (`models.pixels`),
then released; applying the orientation copies the RGB output once.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import torch
from PIL import Image

from . import pixels

# Peak memory of `decode` in bytes per pixel, by format: the most measured over every pixel mode the format
# stores (tests/models/test_image.py prints the table), rounded up. Most modes need 5-7.5: the decoded image
# in its own mode (1-4 bytes per pixel in Pillow) plus the 3-byte RGB output. JPEG: 12 for a progressive CMYK
# file (libjpeg holds every DCT coefficient, 2 bytes per pixel and channel; baseline files need 8). WEBP: 16
# (Pillow's libwebp animation decoder holds two canvases and a copy of the frame). Others (the trainer's TIFF
# and such): 8.2 at most (LAB).
DECODE_BYTES_PER_PIXEL = {"JPEG": 13, "PNG": 8, "BMP": 8, "WEBP": 17}
OTHER_BYTES_PER_PIXEL = 9
MAX_ASPECT_RATIO = 32  # beyond it the resized short side of a small model's input vanishes

ErrorKind = Literal[
    "empty_file", "not_an_image", "unsupported_format", "corrupt_image", "too_many_pixels", "bad_aspect_ratio"
]

# Magic numbers of image formats we recognise but may refuse, so that the error can name them.
_MAGIC = {
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


class ImageError(ValueError):
    """An image that cannot be decoded; `kind` says why (the service's error code, e.g. corrupt_image)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ImageHeader:
    """What the file's header says, before decoding: the displayed size (after EXIF orientation), in pixels."""

    width: int
    height: int
    mode: str  # Pillow's mode of the stored pixels, e.g. RGB, L, I;16, CMYK
    format: str  # the container Pillow recognised, e.g. JPEG
    orientation: int  # EXIF orientation 1..8 (1 = as stored)

    @property
    def decode_bytes(self) -> int:
        """The most memory `decode` holds at once for this image, in bytes (see DECODE_BYTES_PER_PIXEL)."""
        return self.width * self.height * DECODE_BYTES_PER_PIXEL.get(self.format, OTHER_BYTES_PER_PIXEL)

    @property
    def pixel_bytes(self) -> int:
        """The decoded image's size, in bytes: the RGB uint8 pixels `decode` returns (3 per pixel)."""
        return self.width * self.height * 3


@dataclass(frozen=True)
class DecodedImage:
    """pixels: UInt8Tensor[3, H, W] RGB, upright (EXIF applied); format: the container Pillow recognised."""

    pixels: torch.Tensor
    format: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[1])


def decode(
    data: bytes,
    *,
    max_pixels: int | None = None,
    formats: tuple[str, ...] | None = None,
    max_aspect_ratio: float | None = MAX_ASPECT_RATIO,
    name: str = "image",
) -> DecodedImage:
    """Decode image bytes into upright 8-bit RGB.

    max_pixels: width x height cap, checked on the header (None: Pillow's own bomb guard only).
    formats: Pillow format names to accept (e.g. ("JPEG", "PNG")); None accepts any format Pillow reads.
    max_aspect_ratio: longest side / shortest side beyond which the image is refused (None: no limit).
    Raises ImageError: empty_file, not_an_image, unsupported_format (a known format outside `formats`),
    corrupt_image (truncated or inconsistent data), too_many_pixels, bad_aspect_ratio. `name` prefixes
    every message.
    """
    image = _open(io.BytesIO(data), formats, max_pixels, max_aspect_ratio, name)
    fmt = image.format or "unknown"
    try:
        _check_size(image.size, max_pixels, max_aspect_ratio, name)
        image.load()
        orientation = pixels.orientation(image)
        if image.fp is not None:  # the source (WebP: a second, decoded copy of the pixels) is no longer needed
            image.fp.close()
        rgb = pixels.to_rgb(image)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError("too_many_pixels", f"{name}: image exceeds Pillow's decompression bomb limit") from None
    except MemoryError:
        raise ImageError("too_many_pixels", f"{name}: image too large to decode") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error):
        # Pillow reports truncated or corrupt data through all of these, depending on the plugin.
        raise ImageError("corrupt_image", f"{name}: truncated or corrupt image data") from None
    finally:
        image.close()
    del image  # the decoded pixels in their own mode: free them before the orientation copy
    rgb = pixels.upright(rgb, orientation)
    return DecodedImage(torch.from_numpy(rgb).permute(2, 0, 1), fmt)


def read(path: str | Path, **kwargs: object) -> DecodedImage:
    """`decode` of a file's bytes; an unreadable file raises ImageError(not_an_image) naming the path."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError("not_an_image", f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode(data, name=str(path), **kwargs)  # type: ignore[arg-type]


def probe(
    source: bytes | str | Path,
    *,
    formats: tuple[str, ...] | None = None,
    max_pixels: int | None = None,
    name: str = "image",
) -> ImageHeader:
    """The header of an image (bytes, or a path: only the header is read), without decoding its pixels.

    Raises ImageError like `decode` (too_many_pixels beyond `max_pixels`). The orientation comes from EXIF
    data found before the pixels (JPEG, WebP, TIFF, and PNG's eXIf chunk when it precedes the image data, as
    the PNG specification asks).
    """
    if isinstance(source, bytes):
        return _probe(io.BytesIO(source), formats, max_pixels, name)
    try:
        file = open(source, "rb")  # noqa: SIM115 - closed by the with below; open errors are reported apart
    except OSError as exc:
        raise ImageError("not_an_image", f"{source}: cannot read ({exc.strerror or exc})") from None
    with file:
        return _probe(file, formats, max_pixels, str(source))


def _probe(stream: BinaryIO, formats: tuple[str, ...] | None, max_pixels: int | None, name: str) -> ImageHeader:
    image = _open(stream, formats, max_pixels, None, name)
    with image:
        _check_size(image.size, max_pixels, None, name)
        try:
            orientation = pixels.orientation(image) if "exif" in image.info or image.format != "PNG" else 1
        except Exception:  # a broken EXIF block: decode ignores it too
            orientation = 1
        width, height = image.size
        if orientation >= 5:
            width, height = height, width
        return ImageHeader(width, height, image.mode, image.format or "unknown", orientation)


def _open(
    stream: BinaryIO,
    formats: tuple[str, ...] | None,
    max_pixels: int | None,
    max_aspect_ratio: float | None,
    name: str,
) -> Image.Image:
    head = stream.read(32)
    stream.seek(0)
    if not head:
        raise ImageError("empty_file", f"{name}: the file is empty")
    webp_size = _webp_size(head)
    if webp_size is not None:  # Pillow allocates a WebP's canvases when it opens the file: check the size first
        _check_size(webp_size, max_pixels, max_aspect_ratio, name)
    try:
        return Image.open(stream, formats=formats)
    except Image.DecompressionBombError:
        raise ImageError("too_many_pixels", f"{name}: image exceeds Pillow's decompression bomb limit") from None
    except Image.UnidentifiedImageError:
        other = sniff(head)
        accepted = ", ".join(formats) if formats else "an image format Pillow reads"
        if other:
            raise ImageError("unsupported_format", f"{name}: {other} is not accepted; send {accepted}") from None
        raise ImageError("not_an_image", f"{name}: not an image ({accepted} expected)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error):
        raise ImageError("corrupt_image", f"{name}: truncated or corrupt image header") from None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a WebP's first chunk (VP8X canvas, VP8L or VP8 frame), or None if not a WebP."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def _check_size(size: tuple[int, int], max_pixels: int | None, max_aspect_ratio: float | None, name: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError("corrupt_image", f"{name}: image has no pixels")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError("too_many_pixels", f"{name}: {width}x{height} exceeds the cap of {max_pixels} pixels")
    if max_aspect_ratio is not None and max(width, height) > max_aspect_ratio * min(width, height):
        raise ImageError(
            "bad_aspect_ratio", f"{name}: {width}x{height} has an aspect ratio beyond {max_aspect_ratio:g}:1"
        )


def sniff(data: bytes) -> str | None:
    """The name of a known image format from its magic number (GIF, TIFF, HEIF/AVIF, ...), else None."""
    head = data[:16]
    for magic, fmt in _MAGIC.items():
        if head.startswith(magic):
            return fmt
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"avis"):
        return "HEIF/AVIF"
    return None
