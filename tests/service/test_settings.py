"""Deployment settings come from MASKRCNN_* variables, validated, when the factory asks for them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service import config
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


def test_default_pixel_cap_comes_from_the_memory_budget() -> None:
    from PIL import Image

    assert config.DEFAULT_MAX_PIXELS == config.DECODE_MEMORY_BUDGET // config.BYTES_PER_PIXEL_PEAK == 40_000_000
    assert config.DEFAULT_MAX_PIXELS < Image.MAX_IMAGE_PIXELS
