"""HTTP schemas: the per-request params model and the pydantic response models behind `/openapi.json`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class DetectParams:
    """What one request asks of the model, validated: labels is the set of contiguous class indices to keep
    (None = all)."""

    score_threshold: float
    max_detections: int
    labels: frozenset[int] | None
    masks: bool


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable reason, e.g. payload_too_large")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Segmentation(BaseModel):
    """COCO compressed RLE, as pycocotools `mask.encode` writes it."""

    size: list[int] = Field(description="[height, width]", min_length=2, max_length=2)
    counts: str


class Detection(BaseModel):
    """One COCO results entry: drops straight into `COCO.loadRes` (add image_id)."""

    category_id: int
    label: str
    score: float = Field(ge=0, le=1)
    bbox: list[float] = Field(description="[x, y, width, height] in input-image pixels", min_length=4, max_length=4)
    segmentation: Segmentation | None = Field(None, description="absent when masks=false")
    keypoints: list[float] | None = Field(
        None,
        description="keypoint models only: COCO results' flat [x1, y1, v1, ..., xK, yK, vK] in input-image "
        "pixels (a pixel spans [i, i + 1)), v = 2 (predicted: labelled and visible); names in GET /v1/model",
    )
    keypoint_scores: list[float] | None = Field(
        None, description="keypoint models only: the K keypoints' heatmap logits (higher = surer), unbounded"
    )


class ModelSummary(BaseModel):
    name: str
    weights_sha256: str
    device: str
    precision: str


class ImageSize(BaseModel):
    width: int
    height: int


class Timing(BaseModel):
    """Milliseconds spent in each stage of this request."""

    decode: float
    queue: float
    inference: float
    postprocess: float
    total: float
    batch_size: int = Field(description="images in the forward pass this one rode in")


class DetectResponse(BaseModel):
    model: ModelSummary
    image: ImageSize
    detections: list[Detection]
    timing_ms: Timing


class BatchResponse(BaseModel):
    results: list[DetectResponse] = Field(description="one per uploaded file, in upload order")


class Category(BaseModel):
    id: int
    name: str


class ModelInfo(BaseModel):
    name: str
    description: str = Field(description="what the model is: the demo's note, else architecture and classes")
    demo: bool = Field(description="whether this is the demo model shipped in the repo (synthetic shapes)")
    architecture: dict[str, Any] = Field(description="the ModelConfig stored in the weights file")
    classes: list[Category] = Field(description="detectable classes (background excluded)")
    keypoints: list[str] = Field(default_factory=list, description="keypoint names, in `keypoints` order")
    device: str
    precision: str
    weights_sha256: str
    max_batch_size: int


class Status(BaseModel):
    status: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "malformed multipart body",
        401: "missing or wrong API key",
        413: "upload over the byte or pixel cap, or images together over the image memory (images_too_large)",
        415: "image format not accepted",
        422: "missing field, not an image, truncated image, or parameter out of range",
        503: "not ready, queue full, image memory busy (decode_busy) or out of memory (see Retry-After)",
        504: "request timed out",
    }.items()
}
