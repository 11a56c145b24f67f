"""Typed results mirroring the service's schema (`service/schemas.py`).

Every model allows extra fields (`extra="allow"`): a newer server's additions reach `model_extra` instead of
breaking an older client.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from . import geometry
from .inputs import ImageInput


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class Segmentation(_Model):
    """COCO compressed RLE: size = [height, width] in pixels, counts = pycocotools' string encoding."""

    size: list[int]
    counts: str


class Detection(_Model):
    """One object: bbox = [x, y, width, height] in input-image pixels (COCO xywh); score in [0, 1];
    segmentation is None when the call asked for masks=False. Keypoint models add keypoints = COCO's flat
    [x1, y1, v1, ..., xK, yK, vK] in pixels (v = 2) and keypoint_scores = K heatmap logits; None otherwise."""

    category_id: int
    label: str
    score: float
    bbox: list[float]
    segmentation: Segmentation | None = None
    keypoints: list[float] | None = None
    keypoint_scores: list[float] | None = None


class ImageSize(_Model):
    width: int
    height: int


class ModelSummary(_Model):
    name: str
    weights_sha256: str = ""
    device: str = ""
    precision: str = ""


class Timing(_Model):
    """Milliseconds per stage; batch_size = images in the forward pass this one rode in."""

    decode: float = 0.0
    queue: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0
    total: float = 0.0
    batch_size: int = 1


class DetectResult(_Model):
    """One image's answer: `detections` best first, `image` its size after EXIF orientation."""

    model: ModelSummary
    image: ImageSize
    detections: list[Detection] = Field(default_factory=list)
    timing_ms: Timing = Field(default_factory=Timing)

    def masks(self) -> np.ndarray:
        """bool ndarray (N, H, W): detection i's mask in image pixels, decoded from its RLE by pycocotools.
        Raises ValueError when the call was made with masks=False."""
        return geometry.decode_masks(self._rles(), self.image.height, self.image.width)

    def polygons(self) -> list[list[geometry.Ring]]:
        """Per detection, its mask's outlines as a list of `Ring`s (outer boundaries and holes, every part).

        Each Ring: points = flat [x0, y0, x1, y1, ...] in pixels (COCO polygon style), hole = True for an inner
        boundary, parent = the index (in the same list) of the outer ring a hole belongs to, -1 for an outer
        ring. Rings of fewer than 3 points (one- or two-pixel specks) are left out. Traced by OpenCV's
        `findContours(RETR_CCOMP)`: needs the `polygons` extra (`pip install 'maskrcnn-client[polygons]'`),
        else raises ImportError naming it.
        """
        return [geometry.mask_polygons(mask) for mask in self.masks()]

    def overlay(self, image: ImageInput, alpha: float = 0.5) -> Image.Image:
        """The image (RGB PIL) with masks alpha-blended in per-detection colours, boxes, and `label score`.
        `image` is what was sent (any ImageInput); raises ValueError when its size is not this result's."""
        from .overlay import draw

        return draw(self, image, alpha)

    def to_coco(self, image_id: int) -> list[dict[str, Any]]:
        """COCO results (what `COCO.loadRes` takes): image_id, category_id, bbox (xywh), score, segmentation
        (RLE with str counts, absent when masks=False), keypoints (flat [x, y, v] * K, keypoint models only)."""
        out = []
        for det in self.detections:
            item: dict[str, Any] = {"image_id": image_id, "category_id": det.category_id, "bbox": list(det.bbox)}
            item["score"] = det.score
            if det.segmentation is not None:
                item["segmentation"] = {"size": list(det.segmentation.size), "counts": det.segmentation.counts}
            if det.keypoints is not None:
                item["keypoints"] = list(det.keypoints)
            out.append(item)
        return out

    def _rles(self) -> list[dict[str, Any]]:
        if any(det.segmentation is None for det in self.detections):
            raise ValueError("this result has no masks: call detect(..., masks=True)")
        return [det.segmentation.model_dump(include={"size", "counts"}) for det in self.detections]  # type: ignore[union-attr]


class BatchResult(_Model):
    results: list[DetectResult]


class Category(_Model):
    id: int
    name: str


class ModelInfo(_Model):
    """GET /v1/model: architecture = the ModelConfig stored in the weights file; classes without background."""

    name: str
    architecture: dict[str, Any] = Field(default_factory=dict)
    classes: list[Category] = Field(default_factory=list)
    keypoints: list[str] = Field(default_factory=list)
    device: str = ""
    precision: str = ""
    weights_sha256: str = ""
    max_batch_size: int = 1


class Health(_Model):
    """GET /readyz: ready = the model is loaded and warmed up; status = the server's word (or its error code)."""

    ready: bool
    status: str

    def __bool__(self) -> bool:
        return self.ready
