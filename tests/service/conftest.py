"""Live-server fixtures: a REAL uvicorn on 127.0.0.1 serving a tiny model (see service_helpers.py).

The tiny model (`models.preset("tiny")`, random weights, 5 classes) keeps every forward at tens of ms on two
cores; the photos in tests/fixtures are real JPEGs, and variants (PNG, WebP, BMP, CMYK, 16-bit, palette)
are generated with Pillow in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from service_helpers import CLASS_NAMES, FIXTURES, LiveServer, encode

import models
from models import weights
from service.config import Settings


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = models.build_model(models.preset("tiny", class_names=CLASS_NAMES))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    weights.save(model, path)
    return path


@pytest.fixture(scope="session")
def make_server(tiny_weights: Path) -> Iterator[Callable[..., LiveServer]]:
    """make_server(**settings) -> a started LiveServer; all are stopped at the end of the session."""
    started: list[LiveServer] = []

    def make(wait_ready: bool = True, **overrides: Any) -> LiveServer:
        settings = Settings(**{"weights": tiny_weights, "device": "cpu", "max_batch_wait_ms": 10, **overrides})
        server = LiveServer(settings).start(wait_ready=wait_ready)
        started.append(server)
        return server

    yield make
    for server in started:
        with contextlib.suppress(Exception):
            server.stop()


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
