"""The contract of a per-detection RoI branch beside the box branch (the mask branch, the keypoint branch).

Mask R-CNN (He et al., sec. 3) adds a branch in parallel with the box branch; Keypoint R-CNN (sec. 5) is one more
of the same kind. Each is an RoI pooler, a head (features -> features) and a predictor that knows what its
outputs mean. `RoIHeads` runs every branch the same way, so a new head is a new file implementing
`InstancePredictor` plus the config value that selects it; the orchestrator does not change.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from torch import Tensor, nn


class InstancePredictor(Protocol):
    """The last layers of a branch and the meaning of their outputs.

    field: the `Detections` / `Targets` field the branch fills ("masks", "keypoints").
    """

    field: str

    def __call__(self, x: Tensor) -> Tensor:
        """Head features [R, ...] -> logits [R, ...] (training)."""
        ...

    def predict(self, x: Tensor, boxes: Tensor, labels: Tensor) -> Tensor:
        """Head features of the kept detections [R, ...], their boxes [R, 4] (resized-image pixels, xyxy) and
        labels [R] -> the field's values per detection (masks: [R, M, M] probabilities; keypoints: [R, P, 3])."""
        ...

    def targets(self, gt: Tensor, rois: Tensor, matched: Tensor) -> Tensor:
        """One image's ground-truth field (e.g. masks [G, H, W]), positive RoIs [R, 4] and the ground-truth index
        each matched [R] -> the per-RoI training targets (e.g. [R, M, M])."""
        ...

    def loss(self, logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
        """Logits of the positive RoIs, their ground-truth labels [R] and targets -> a scalar loss."""
        ...

    def empty(self, like: Tensor) -> Tensor:
        """What `predict` returns for zero detections, on `like`'s device and dtype."""
        ...

    def to_original(self, values: Tensor, scale_xy: tuple[float, float]) -> Tensor:
        """Values in resized-image pixels -> original-image pixels (scale_xy = original / resized per axis)."""
        ...


class RoIBranch(NamedTuple):
    """One branch's three parts; `RoIHeads` registers them as `{name}_roi_pool`, `{name}_head`,
    `{name}_predictor` (torchvision's state-dict names for name = "mask" and "keypoint")."""

    roi_pool: nn.Module
    head: nn.Module
    predictor: nn.Module  # an InstancePredictor
