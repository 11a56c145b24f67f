"""Deployment settings come from MASKRCNN_* variables, validated, when the factory asks for them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service import codec, config
from service.config import Settings


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKRCNN_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("MASKRCNN_API_KEY", "")
    monkeypatch.setenv("MASKRCNN_MAX_BATCH_SIZE", "4")
    monkeypatch.setenv("MASKRCNN_DEVICE", "cuda:1")
    settings = Settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.api_key is None and settings.max_batch_size == 4 and settings.device == "cuda:1"
    assert settings.weights_path() == config.DEMO_WEIGHTS
    monkeypatch.setenv("MASKRCNN_API_KEY", "s3cret-value")
    assert "s3cret-value" not in repr(Settings())  # a secret never reaches a log line


@pytest.mark.parametrize(
    ("name", "value"),
    [("DEVICE", "tpu"), ("PRECISION", "fp8"), ("MAX_BATCH_SIZE", "0"), ("QUEUE_SIZE", "-1"), ("LOG_LEVEL", "loud")],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"MASKRCNN_{name}", value)
    with pytest.raises(ValidationError):
        Settings()


def test_default_limits_fit_each_other() -> None:
    from PIL import Image

    settings = Settings()
    assert settings.max_image_pixels == config.DEFAULT_MAX_PIXELS < Image.MAX_IMAGE_PIXELS
    assert settings.queue_size >= settings.max_batch_images
    assert settings.decode_memory_bytes >= codec.max_decode_bytes(settings.max_image_pixels)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"queue_size": 4}, "MAX_BATCH_IMAGES"),  # a batch of 16 files could never enter a queue of 4
        ({"queue_size": 4, "max_batch_images": 5}, "MAX_BATCH_IMAGES"),
        ({"decode_memory_bytes": 2**20}, "MAX_IMAGE_PIXELS"),  # one large upload could never be decoded
        ({"max_image_pixels": 100_000_000}, "DECODE_MEMORY_BYTES"),
    ],
)
def test_limits_that_could_never_serve_a_valid_request_are_refused_at_start(overrides: dict, named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(**overrides)
    assert Settings(**{**overrides, "queue_size": 64, "max_batch_images": 16, "decode_memory_bytes": 2**31})


def test_max_batch_size_defaults_by_device() -> None:
    assert Settings().resolved_max_batch_size("cpu") == config.DEFAULT_MAX_BATCH_SIZE["cpu"]
    assert Settings().resolved_max_batch_size("cuda:1") == config.DEFAULT_MAX_BATCH_SIZE["cuda"]
    assert Settings(max_batch_size=3).resolved_max_batch_size("cpu") == 3
