"""The model behind the service: weights -> Predictor on one device, warm-up, batched forward, per-request
post-processing.

Batching policy (one forward for requests with different options): a batch runs with the loosest options of
its members (lowest score threshold; the largest max_detections, or the model's 100 when any member filters
categories; masks when any member wants them) and each request is then cut down to its own by
`Predictor.results`, the same function the Python API uses: score >= its threshold, its categories, its
first max_detections. This gives each request exactly what a forward with its own options would (see
`models.inference.select`), and the model gives each image what it would get alone (batch-invariant, see
`MaskRCNN.predict`), so an answer never depends on other clients' traffic. Category filtering applies to the
model's top 100. Masks are pasted and RLE-encoded only for the detections kept.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from models import InferenceOptions, weights
from models.inference import Predictor
from models.mask_rcnn import MaskRCNN
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
        size = self.config.min_size if isinstance(self.config.min_size, int) else self.config.min_size[-1]
        generator = torch.Generator().manual_seed(0)
        image = torch.randint(0, 256, (3, size, size * 4 // 3), dtype=torch.uint8, generator=generator)
        det = self.predictor.detect([image], InferenceOptions(score_thresh=0.0))[0]
        self.postprocess(det, DetectParams(0.0, MAX_DETECTIONS, None, True))

    def categories(self) -> list[tuple[int, str]]:
        """(category id, name) of every class but the background; contiguous label i + 1 is entry i."""
        names = self.config.class_names or tuple(str(i) for i in range(self.config.num_classes))
        ids = self.config.category_ids or tuple(range(self.config.num_classes))
        return list(zip(ids, names, strict=True))[1:]

    def keypoint_names(self) -> tuple[str, ...]:
        """The model's keypoint names ("0", "1", ... when the file names none); () without a keypoint branch."""
        return self.config.keypoint_names or tuple(str(i) for i in range(self.config.num_keypoints))

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
        options = InferenceOptions(score_thresh=params.score_threshold, detections_per_img=params.max_detections)
        return self.predictor.results(det, options, params.masks, params.labels)


def _is_device_error(exc: BaseException) -> bool:
    accelerator_error = getattr(torch, "AcceleratorError", ())
    return isinstance(exc, accelerator_error) or (isinstance(exc, RuntimeError) and "CUDA error" in str(exc))
