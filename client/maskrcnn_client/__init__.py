"""maskrcnn_client: the Python SDK of the Mask R-CNN service (httpx + pydantic + numpy + Pillow; never torch).

from maskrcnn_client import Client
with Client("http://localhost:8000") as client:
    result = client.detect("photo.jpg", score_threshold=0.5)
masks = result.masks()                 # bool (N, H, W)
result.overlay("photo.jpg").save("overlay.png")
"""

from __future__ import annotations

from .async_client import AsyncClient
from .client import Client
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    GatewayTimeoutError,
    InvalidRequestError,
    MaskRCNNError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ServerError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from .geometry import Ring
from .inputs import ImageInput
from .results import (
    Category,
    Detection,
    DetectResult,
    Health,
    ImageSize,
    ModelInfo,
    ModelSummary,
    Segmentation,
    Timing,
)

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Category",
    "Client",
    "DetectResult",
    "Detection",
    "GatewayTimeoutError",
    "Health",
    "ImageInput",
    "ImageSize",
    "InvalidRequestError",
    "MaskRCNNError",
    "ModelInfo",
    "ModelSummary",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Ring",
    "Segmentation",
    "ServerError",
    "Timing",
    "UnavailableError",
    "UnsupportedMediaTypeError",
]
