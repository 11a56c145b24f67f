"""Deployment configuration: one pydantic-settings class, env prefix `MASKRCNN_`, built by the app factory.

Architecture never appears here: it travels inside the weights file. Per-request knobs live in the query
parameters (`service.schemas.DetectParams`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_WEIGHTS = REPO_ROOT / "models" / "assets" / "demo.safetensors"

# 40 MP: a 45 MP full-frame camera's photo passes after a resize, well below Pillow's bomb guard (89 MP
# warns, twice that raises). Decoding it costs at most 40 MP x models.image.DECODE_BYTES_PER_PIXEL (8 bytes
# per pixel for PNG and BMP, 13 for JPEG, 17 for WebP: 680 MB), and all concurrent decodes together hold at
# most DEFAULT_DECODE_MEMORY bytes.
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_DECODE_MEMORY = 2**30
# Images per forward pass when MASKRCNN_MAX_BATCH_SIZE is unset, by device type (bench/RESULTS.md: on a CPU,
# batching does not raise throughput, since one image's convolutions already use every core).
DEFAULT_MAX_BATCH_SIZE = {"cpu": 1, "cuda": 8}


class Settings(BaseSettings):
    """Every deployment knob, read from `MASKRCNN_*` environment variables (or keyword arguments in tests)."""

    model_config = SettingsConfigDict(env_prefix="MASKRCNN_", extra="ignore")

    weights: Path | None = Field(
        None,
        description="our .safetensors, a torchvision COCO .pth, or a pulled checkpoint's name "
        "(maskrcnn weights list); default: the demo",
    )
    device: str = Field("auto", description="auto (GPU when there is one, else CPU), cpu or cuda:N")
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    max_batch_size: int | None = Field(
        None, ge=1, le=256, description="images per forward pass; default by device (DEFAULT_MAX_BATCH_SIZE)"
    )
    max_batch_wait_ms: float = Field(5.0, ge=0, le=10_000, description="how long a batch waits to fill up")
    queue_size: int = Field(64, ge=1, description="images waiting for the model; beyond it 503 + Retry-After")
    request_timeout_s: float = Field(30.0, gt=0, description="past it a request gets 504 and its work is dropped")
    max_upload_bytes: int = Field(20 * 2**20, ge=1024, description="request body cap (per image for /detect/batch)")
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="width x height cap, checked before decoding")
    decode_memory_bytes: int = Field(
        DEFAULT_DECODE_MEMORY,
        ge=1,
        description="memory all requests' images may hold together, decoding and decoded, in bytes",
    )
    max_batch_images: int = Field(16, ge=1, le=256, description="files per /detect/batch request")
    api_key: SecretStr | None = Field(None, description="when set, every route but /healthz and /readyz needs it")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="allowed origins; empty = CORS off"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value and value.get_secret_value() else None  # MASKRCNN_API_KEY="" means no key

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):  # "https://a.example,https://b.example" or a JSON list
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _limits_fit(self) -> Settings:
        """Refuse limits under which some accepted request could never be served (it would get 503 forever)."""
        if self.queue_size < self.max_batch_images:
            raise ValueError(
                f"MASKRCNN_QUEUE_SIZE ({self.queue_size}) must be at least MASKRCNN_MAX_BATCH_IMAGES "
                f"({self.max_batch_images}): a /detect/batch request of that many files could never enter the queue"
            )
        from .codec import max_decode_bytes

        needed = max_decode_bytes(self.max_image_pixels)
        if self.decode_memory_bytes < needed:
            raise ValueError(
                f"MASKRCNN_DECODE_MEMORY_BYTES ({self.decode_memory_bytes}) must be at least {needed}: what decoding "
                f"an image of MASKRCNN_MAX_IMAGE_PIXELS ({self.max_image_pixels}) in the costliest format takes"
            )
        return self

    def weights_path(self) -> Path:
        """The configured weights, else the demo model shipped in the repo.

        A bare name that is no file here (`maskrcnn_resnet50_fpn`) and names a checkpoint of `models.zoo` resolves
        to its file in torch's checkpoint cache; serving never downloads. Raises models.weights.WeightsError when
        such a name is not pulled yet (or not servable).
        """
        if self.weights is None:
            return DEMO_WEIGHTS
        if _may_be_name(self.weights):
            from models import zoo

            try:
                return zoo.resolve(str(self.weights))
            except KeyError:
                pass  # not a checkpoint name: a path that is not there, which loading reports as such
        return self.weights

    def is_demo(self) -> bool:
        """Whether the weights are the demo model shipped in the repo (service.config.DEMO_WEIGHTS)."""
        return self.weights is None or self.weights.resolve() == DEMO_WEIGHTS.resolve()

    def resolved_max_batch_size(self, device: str) -> int:
        """max_batch_size, or the default for the device's type (cpu, cuda)."""
        if self.max_batch_size is not None:
            return self.max_batch_size
        return DEFAULT_MAX_BATCH_SIZE["cuda" if device.startswith("cuda") else "cpu"]

    def resolved_device(self) -> str:
        """auto -> cuda when torch sees a GPU, else cpu."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def _may_be_name(path: Path) -> bool:
    """A bare word with no folder or suffix, and no such file: maybe a checkpoint name (checked by models.zoo)."""
    return len(path.parts) == 1 and not path.suffix and not path.exists()
