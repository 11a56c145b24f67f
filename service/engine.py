"""The model behind the service: weights -> Predictor on one device, warm-up, batched forward, per-request
post-processing.

Batching policy (one forward for requests with different options): a batch runs with the loosest options of
its members (lowest score threshold; the largest max_detections, or the model's 100 when any member filters
categories; masks when any member wants them) and each request is then cut down to its own: score >=
its threshold, its categories, its first max_detections. This gives each request exactly what a forward with
its own options would: class-wise NMS only ever lets a higher score suppress a lower one, so boxes under a
request's threshold never change what survives above it, and detections come out best first. Category
filtering applies to the model's top 100. Masks are pasted and RLE-encoded only for the detections kept.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from models import InferenceOptions, weights
from models.inference import Predictor, coco_results
from models.mask_rcnn import MaskRCNN
from models.postprocess import paste_masks
from models.structures import Detections

from .batcher import Job, unavailable
from .config import Settings
from .errors import ApiError
from .schemas import DetectParams

log = logging.getLogger("service")
MAX_DETECTIONS = 100


class FatalDeviceError(RuntimeError):
    """The device is in an unknown state (a CUDA error other than out-of-memory): restart the process."""


def load_model(settings: Settings) -> tuple[MaskRCNN, str]:
    """(model on the CPU, sha256 of the weights file). Raises weights.WeightsError with a one-line reason."""
    path = settings.weights_path()
    model = weights.load(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return model, digest.hexdigest()


@dataclass(frozen=True)
class Engine:
    """A Predictor plus what the HTTP layer needs to know about its model."""

    predictor: Predictor
    name: str
    sha256: str

    @classmethod
    def create(cls, model: MaskRCNN, sha256: str, settings: Settings) -> Engine:
        predictor = Predictor(model, settings.resolved_device(), settings.precision)
        return cls(predictor, settings.weights_path().stem, sha256)

    @property
    def config(self) -> Any:
        return self.predictor.config

    @property
    def device(self) -> str:
        return str(self.predictor.device)

    def warmup(self) -> None:
        """One forward on a noise image of the model's input size: allocator, oneDNN/cuDNN kernels, lazy init."""
        size = self.config.min_size
        generator = torch.Generator().manual_seed(0)
        image = torch.randint(0, 256, (3, size, size * 4 // 3), dtype=torch.uint8, generator=generator)
        det = self.predictor.detect([image], InferenceOptions(score_thresh=0.0))[0]
        self.postprocess(det, DetectParams(0.0, MAX_DETECTIONS, None, True))

    def categories(self) -> list[tuple[int, str]]:
        """(category id, name) of every class but the background."""
        names = self.config.class_names or tuple(str(i) for i in range(self.config.num_classes))
        ids = self.config.category_ids or tuple(range(self.config.num_classes))
        return list(zip(ids, names, strict=True))[1:]

    def resolve_categories(self, values: list[str] | None) -> frozenset[int] | None:
        """Names or category ids (repeated or comma-separated) -> contiguous labels; unknown ones -> 422."""
        if not values:
            return None
        by_name = {name: label for label, (_, name) in enumerate(self.categories(), start=1)}
        by_id = {str(cat): label for label, (cat, _) in enumerate(self.categories(), start=1)}
        labels = set()
        for token in (t.strip() for value in values for t in value.split(",")):
            if not token:
                continue
            label = by_name.get(token, by_id.get(token))
            if label is None:
                raise ApiError(422, "unknown_category", f"unknown category {token[:64]!r}; see GET /v1/model")
            labels.add(label)
        return frozenset(labels) or None

    def run(self, jobs: list[Job]) -> list[Detections | BaseException]:
        """One forward for all jobs (in the inference thread); never raises for a single job's sake."""
        params = [job.params for job in jobs]
        wants_all = any(p.labels is not None for p in params)
        options = InferenceOptions(
            score_thresh=min(p.score_threshold for p in params),
            detections_per_img=MAX_DETECTIONS if wants_all else max(p.max_detections for p in params),
        )
        masks = any(p.masks for p in params)
        return self._forward([job.image for job in jobs], options, masks)

    def _forward(
        self, images: list[torch.Tensor], options: InferenceOptions, masks: bool
    ) -> list[Detections | BaseException]:
        try:
            return list(self.predictor.detect(images, options, masks))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if len(images) == 1:
                log.warning("out of memory on a single image; answering 503")
                return [unavailable("out_of_memory", "the model ran out of memory; retry later")]
            half = len(images) // 2
            log.warning("out of memory on a batch of %d; splitting", len(images))
            return self._forward(images[:half], options, masks) + self._forward(images[half:], options, masks)
        except Exception as exc:
            if _is_device_error(exc):
                raise FatalDeviceError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
            if len(images) == 1:
                log.error("inference failed", exc_info=exc)
                return [ApiError(500, "internal_error", "inference failed")]
            # Isolate the culprit: its batch-mates still get their answers.
            return [r for image in images for r in self._forward([image], options, masks)]

    def postprocess(self, det: Detections, params: DetectParams) -> list[dict[str, Any]]:
        """Cut the batch's detections down to this request's options, paste and RLE-encode the kept masks."""
        keep = det.scores > params.score_threshold  # strict, as the model applies its own threshold
        if params.labels is not None:
            keep &= torch.isin(det.labels, torch.tensor(sorted(params.labels), device=det.labels.device))
        index = torch.nonzero(keep).squeeze(1)
        index = index[torch.argsort(det.scores[index], descending=True, stable=True)][: params.max_detections]
        det = det[index]
        crops = None
        if params.masks and det.masks is not None:
            crops = paste_masks(det.masks.float(), det.boxes.float(), det.image_size, self.config.mask_thresh)
        return coco_results(det, crops, self.config.class_names, self.config.category_ids)


def _is_device_error(exc: BaseException) -> bool:
    accelerator_error = getattr(torch, "AcceleratorError", ())
    return isinstance(exc, accelerator_error) or (isinstance(exc, RuntimeError) and "CUDA error" in str(exc))
