"""Live-server fixtures: a REAL uvicorn on 127.0.0.1 serving a tiny model (see service_helpers.py).

The tiny model (`models.preset("tiny")`, random weights, 5 classes) keeps every forward at tens of ms on two
cores; the photos in tests/fixtures are real JPEGs, and variants (PNG, WebP, BMP, CMYK, 16-bit, palette)
are generated with Pillow in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from service_helpers import FIXTURES, LiveServer, encode, save_tiny_model, server_factory


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="session")
def make_server(tiny_weights: Path) -> Iterator[Callable[..., LiveServer]]:
    """make_server(wait_ready=True, **settings) -> a started LiveServer; all stopped at the end of the session."""
    with server_factory(weights=tiny_weights, device="cpu", max_batch_wait_ms=10) as make:
        yield make


@pytest.fixture(scope="session")
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    """The shared default server: no API key, default limits."""
    return make_server(max_upload_bytes=2 * 2**20, max_image_pixels=4_000_000)


@pytest.fixture(scope="session")
def variants() -> dict[str, bytes]:
    """The same photo in every accepted format and pixel mode."""
    rgb = Image.open(FIXTURES / "chelsea.jpg").convert("RGB").resize((150, 100))
    gray16 = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    return {
        "jpeg": encode(rgb, "JPEG"),
        "png": encode(rgb, "PNG"),
        "webp": encode(rgb, "WEBP"),
        "bmp": encode(rgb, "BMP"),
        "gray_png": encode(rgb.convert("L"), "PNG"),
        "palette_png": encode(rgb.convert("P"), "PNG"),
        "rgba_png": encode(rgb.convert("RGBA"), "PNG"),
        "gray16_png": encode(gray16, "PNG"),
        "cmyk_jpeg": encode(rgb.convert("CMYK"), "JPEG"),
    }
