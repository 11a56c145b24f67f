"""In-process detection for `maskrcnn detect` without --url: the `maskrcnn` package's model, the SDK's types.

Imports `models` (and so torch) only when a `LocalDetector` is built: the SDK itself never does. Raises
ImportError with a one-line reason when the `maskrcnn` package is not installed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .results import Category, DetectResult, ModelInfo

DEMO_WEIGHTS = "models/assets/demo.safetensors"


def default_weights() -> Path:
    """The demo model shipped inside the `maskrcnn` package (models/assets/demo.safetensors)."""
    import models

    return Path(models.__file__).resolve().parent / "assets" / "demo.safetensors"


class LocalDetector:
    """A Predictor on `device` behind the same `detect(path) -> DetectResult` as the HTTP client.

    Raises ImportError without the `maskrcnn` package, models.weights.WeightsError for a bad weights file.
    """

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        try:
            from models import weights as weights_io
            from models.inference import Predictor
        except ImportError as exc:
            raise ImportError("running the model in-process needs the `maskrcnn` package (or pass --url)") from exc
        path = Path(weights) if weights is not None else default_weights()
        self.predictor = Predictor(weights_io.load(path), device)
        self.config = self.predictor.config
        self.name, self.sha256 = path.stem, hashlib.sha256(path.read_bytes()).hexdigest()

    def categories(self) -> list[Category]:
        names = self.config.class_names or tuple(str(i) for i in range(self.config.num_classes))
        ids = self.config.category_ids or tuple(range(self.config.num_classes))
        return [Category(id=cat, name=name) for cat, name in list(zip(ids, names, strict=True))[1:]]

    def model(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            architecture=self.config.to_dict(),
            classes=self.categories(),
            device=str(self.predictor.device),
            precision=self.predictor.precision,
            weights_sha256=self.sha256,
            max_batch_size=1,
        )

    def labels(self, categories: Iterable[str | int] | None) -> frozenset[int] | None:
        """Category names or ids -> contiguous labels. Raises ValueError naming an unknown category."""
        if categories is None:
            return None
        known = {str(c.name): i + 1 for i, c in enumerate(self.categories())}
        known |= {str(c.id): i + 1 for i, c in enumerate(self.categories())}
        wanted = [str(c).strip() for item in categories for c in str(item).split(",") if str(c).strip()]
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise ValueError(f"unknown categories: {', '.join(unknown)}")
        return frozenset(known[c] for c in wanted)

    def detect(
        self,
        path: str | Path,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        categories: Iterable[str | int] | None = None,
        masks: bool = True,
    ) -> DetectResult:
        """One image file -> DetectResult, as the service would answer it. Raises models.image.ImageError."""
        from models import InferenceOptions, image

        start = time.perf_counter()
        decoded = image.read(path)
        decoded_at = time.perf_counter()
        options = InferenceOptions(score_thresh=score_threshold, detections_per_img=max_detections).resolve(self.config)
        labels = self.labels(categories)
        det = self.predictor.detect([decoded.pixels], options, masks)[0]
        inferred_at = time.perf_counter()
        results = self.predictor.results(det, options, masks, labels)
        done = time.perf_counter()
        timing: dict[str, Any] = {
            "decode": (decoded_at - start) * 1e3,
            "queue": 0.0,
            "inference": (inferred_at - decoded_at) * 1e3,
            "postprocess": (done - inferred_at) * 1e3,
            "total": (done - start) * 1e3,
            "batch_size": 1,
        }
        return DetectResult.model_validate(
            {
                "model": {
                    "name": self.name,
                    "weights_sha256": self.sha256,
                    "device": str(self.predictor.device),
                    "precision": self.predictor.precision,
                },
                "image": {"width": decoded.width, "height": decoded.height},
                "detections": results,
                "timing_ms": timing,
            }
        )
