"""The one image decoder: upright pixels (EXIF), every pixel mode to the right 8-bit RGB, clear errors, and a
peak memory within `DECODE_BYTES_PER_PIXEL` for every mode of every format, measured in a subprocess."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from models import image
from models.image import ImageError

ROOT = Path(__file__).resolve().parent.parent.parent
SERVICE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _scene(width: int = 60, height: int = 40) -> Image.Image:
    """An asymmetric RGB picture: any flip or rotation changes it."""
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([xx * 255 // width, yy * 255 // height, (xx * 3 + yy * 7) % 256], axis=-1).astype(np.uint8)
    pixels[:5, :10] = (255, 0, 0)
    return Image.fromarray(pixels)


def _big_endian_16(values: np.ndarray) -> Image.Image:
    """Mode I;16B from uint16 values (Pillow's convert("I;16B") clips them to 255)."""
    return Image.frombytes("I;16B", (values.shape[1], values.shape[0]), values.astype(">u2").tobytes())


def _png16(width: int, height: int, channels: int, color_type: int, value: int | None = None) -> bytes:
    """A 16-bit-per-channel PNG (48-bit RGB, 64-bit RGBA, 32-bit gray+alpha): a gradient, or one value."""
    column = np.arange(width, dtype=np.uint32) * 65535 // max(width - 1, 1) if value is None else np.full(width, value)
    row = np.repeat(column.astype(">u2"), channels).tobytes()
    raw = (b"\x00" + row) * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_pixels_pillows_exif_transpose_gives(fmt: str, orientation: int) -> None:
    data = _encode(_scene(), fmt, exif=_exif(orientation), **({"lossless": True} if fmt == "WEBP" else {}))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    decoded = image.decode(data)
    assert decoded.pixels.shape == (3, *expected.shape[:2])
    assert np.array_equal(decoded.pixels.permute(1, 2, 0).numpy(), expected)
    header = image.probe(data)
    assert (header.height, header.width, header.orientation) == (*expected.shape[:2], orientation)


def test_sixteen_bit_gray_is_scaled_not_clipped() -> None:
    levels = np.array([[0, 257, 128 * 257, 65535, 65535 - 128, 200]], dtype=np.uint16).repeat(3, axis=0)
    decoded = image.decode(_encode(Image.fromarray(levels), "PNG"))  # mode I;16
    gray = decoded.pixels[0].numpy()
    assert gray[0].tolist() == [0, 1, 128, 255, 255, 1]  # round(v / 257); Pillow's own convert gives 255s
    assert all(np.array_equal(decoded.pixels[c].numpy(), gray) for c in (1, 2))
    for channels, color_type in ((3, 2), (4, 6), (2, 4)):  # 48-bit RGB, 64-bit RGBA, 32-bit gray + alpha
        decoded = image.decode(_png16(8, 2, channels, color_type, value=40000))
        assert decoded.pixels.unique().tolist() == [round(40000 / 257)]


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "LAB", "I", "F", "I;16B"])
def test_every_pixel_mode_becomes_the_rgb_pillow_gives(mode: str) -> None:
    rgb = _scene()
    if mode == "I;16B":
        img = _big_endian_16(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        expected = np.asarray(rgb.convert("L").convert("RGB"))  # 257 k -> k
    elif mode in ("I", "F"):
        img = rgb.convert(mode)  # values 0..255 (F: the exact luma): 8-bit data in a wider mode
        expected = np.repeat(np.rint(np.asarray(img)).astype(np.uint8)[..., None], 3, axis=-1)
    else:
        img = rgb.convert(mode)
        expected = np.asarray(img.convert("RGB"))
    decoded = image.decode(_encode(img, "TIFF"))
    assert Image.open(io.BytesIO(_encode(img, "TIFF"))).mode == mode
    assert np.array_equal(decoded.pixels.permute(1, 2, 0).numpy(), expected), mode


def test_palette_with_transparency_keeps_the_palette_colours() -> None:
    palette = _scene().convert("P")
    decoded = image.decode(_encode(palette, "PNG", transparency=0))
    assert np.array_equal(decoded.pixels.permute(1, 2, 0).numpy(), np.asarray(palette.convert("RGB")))


BAD = [
    (b"", None, "empty_file"),
    (b"hello, I am not an image", None, "not_an_image"),
    (_encode(Image.new("RGB", (8, 8)), "GIF"), SERVICE_FORMATS, "unsupported_format"),
    (_encode(_scene(), "JPEG")[:300], None, "corrupt_image"),
    (_encode(_scene(), "PNG")[:200], None, "corrupt_image"),
    (_encode(Image.new("RGB", (1000, 4)), "PNG"), None, "bad_aspect_ratio"),
]


@pytest.mark.parametrize(("data", "formats", "kind"), BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
def test_bad_data_raises_one_image_error_naming_the_file(data: bytes, formats: tuple | None, kind: str) -> None:
    with pytest.raises(ImageError, match=r"^upload\.png: ") as raised:
        image.decode(data, formats=formats, name="upload.png")
    assert raised.value.kind == kind


def test_probe_of_a_path_reads_the_header_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_encode(_scene(60, 40), "JPEG", exif=_exif(6)))
    header = image.probe(path)
    assert (header.width, header.height, header.format, header.orientation) == (40, 60, "JPEG", 6)
    with pytest.raises(ImageError, match=r"missing\.png: cannot read"):
        image.probe(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="the file is empty"):
        image.probe(tmp_path / "empty.png")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # 144 MP: Pillow warns, we refuse
def test_pixel_cap_is_checked_on_the_header_before_decoding() -> None:
    for width, height in ((10_000, 8_000), (12_000, 12_000)):  # under, and over, Pillow's own warning (89 MP)
        bomb = _png16(width, height, 1, 0)[:33] + b"\x00\x00\x00\x00IEND\xaeB`\x82"  # header only: no pixel data
        for read in (image.decode, image.probe):
            with pytest.raises(ImageError, match=f"{width}x{height} exceeds the cap") as raised:
                read(bomb, max_pixels=40_000_000)
            assert raised.value.kind == "too_many_pixels"
    # A WebP's canvas is allocated when Pillow opens it (two of them, 4 bytes per pixel each): the size is
    # read from the file's first chunk before that. VP8X canvas 16384 x 16384 = 268 MP.
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (16383).to_bytes(3, "little") * 2
    webp = b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x
    with pytest.raises(ImageError, match="16384x16384 exceeds the cap"):
        image.decode(webp, max_pixels=40_000_000)
    with pytest.raises(ImageError, match="16384x16384 exceeds the cap"):
        image.probe(webp, max_pixels=40_000_000)


_MEASURE = """
import ctypes, gc, json, sys
from pathlib import Path
from models import image

libc = ctypes.CDLL("libc.so.6")

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

out = {}
for path in sorted(Path(sys.argv[1]).iterdir()):
    data = path.read_bytes()
    header = image.probe(data)
    gc.collect()
    libc.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = status("VmRSS:")
    decoded = image.decode(data, max_aspect_ratio=None)
    peak = status("VmHWM:") - before
    out[path.name] = [peak, header.decode_bytes, decoded.width * decoded.height]
    del decoded
print(json.dumps(out))
"""


def _memory_cases(root: Path, width: int = 2048, height: int = 1536) -> None:
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx + yy) % 256).astype(np.uint8)
    rgb = Image.fromarray(np.stack([base, base[::-1], base[:, ::-1]], axis=-1))
    cases: dict[str, tuple[Image.Image, str, dict]] = {
        "jpeg_rgb.jpg": (rgb, "JPEG", {}),
        "jpeg_rgb_rotated.jpg": (rgb, "JPEG", {"exif": _exif(6)}),
        "jpeg_progressive_444.jpg": (rgb, "JPEG", {"progressive": True, "subsampling": 0}),
        "jpeg_gray.jpg": (rgb.convert("L"), "JPEG", {}),
        "jpeg_cmyk.jpg": (rgb.convert("CMYK"), "JPEG", {}),
        "jpeg_cmyk_progressive.jpg": (rgb.convert("CMYK"), "JPEG", {"progressive": True}),
        "webp_rgb.webp": (rgb, "WEBP", {"quality": 50}),
        "webp_rgba.webp": (rgb.convert("RGBA"), "WEBP", {"lossless": True}),
        "bmp_rgb.bmp": (rgb, "BMP", {}),
        "bmp_palette.bmp": (rgb.convert("P"), "BMP", {}),
        "bmp_1bit.bmp": (rgb.convert("1"), "BMP", {}),
    }
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA"):
        cases[f"png_{mode}.png"] = (rgb.convert(mode), "PNG", {})
    cases["png_P_transparency.png"] = (rgb.convert("P"), "PNG", {"transparency": 0})
    cases["png_I16.png"] = (Image.fromarray(base.astype(np.uint16) * 257), "PNG", {})
    cases["png_RGBA_rotated.png"] = (rgb.convert("RGBA"), "PNG", {"exif": _exif(8)})
    for mode in ("LA", "PA", "I", "F", "I;16B", "CMYK", "YCbCr", "LAB", "RGBA"):  # the trainer reads any format
        img = _big_endian_16(base.astype(np.uint16) * 257) if mode == "I;16B" else rgb.convert(mode)
        cases[f"tiff_{mode.replace(';', '')}.tif"] = (img, "TIFF", {})
    for name, (img, fmt, kwargs) in cases.items():
        img.save(root / name, format=fmt, **kwargs)
    (root / "png_RGB48.png").write_bytes(_png16(width, height, 3, 2))
    (root / "png_RGBA64.png").write_bytes(_png16(width, height, 4, 6))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_peak_decode_memory_of_every_mode_stays_within_its_budget(tmp_path: Path) -> None:
    _memory_cases(tmp_path)
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(measured) == 31
    slack = 2 << 20  # allocator granularity and interpreter noise, independent of the image size
    report = {
        name: f"{peak / pixels:.2f} B/px (budget {budget / pixels:.0f})"
        for name, (peak, budget, pixels) in measured.items()
    }
    print(json.dumps(report, indent=1))
    over = {name: report[name] for name, (peak, budget, _) in measured.items() if peak > budget + slack}
    assert not over, over
