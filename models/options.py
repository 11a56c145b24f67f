"""Per-call inference options: each None falls back to the model config's default."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig


@dataclass(frozen=True)
class InferenceOptions:
    """Per-call knobs; None means the model config's default."""

    score_thresh: float | None = None
    nms_thresh: float | None = None
    detections_per_img: int | None = None
    mask_thresh: float | None = None

    def resolve(self, config: ModelConfig) -> InferenceOptions:
        resolved = InferenceOptions(
            score_thresh=config.score_thresh if self.score_thresh is None else self.score_thresh,
            nms_thresh=config.nms_thresh if self.nms_thresh is None else self.nms_thresh,
            detections_per_img=(
                config.detections_per_img if self.detections_per_img is None else self.detections_per_img
            ),
            mask_thresh=config.mask_thresh if self.mask_thresh is None else self.mask_thresh,
        )
        if not 0.0 <= resolved.score_thresh <= 1.0:
            raise ValueError(f"score_thresh must be in [0, 1], got {resolved.score_thresh}")
        if not 0.0 <= resolved.nms_thresh <= 1.0:
            raise ValueError(f"nms_thresh must be in [0, 1], got {resolved.nms_thresh}")
        if not 1 <= resolved.detections_per_img <= 100:
            raise ValueError(f"detections_per_img must be in [1, 100], got {resolved.detections_per_img}")
        if not 0.0 < resolved.mask_thresh < 1.0:
            raise ValueError(f"mask_thresh must be in (0, 1), got {resolved.mask_thresh}")
        return resolved
