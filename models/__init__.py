"""Mask R-CNN (He et al.) on torchvision's ops: model, weights I/O and box-limited mask post-processing."""

from .build import build_model
from .config import ModelConfig
from .mask_rcnn import MaskRCNN
from .options import InferenceOptions
from .presets import preset
from .structures import Detections, ImageBatch, Targets

__all__ = [
    "Detections",
    "ImageBatch",
    "InferenceOptions",
    "MaskRCNN",
    "ModelConfig",
    "Targets",
    "build_model",
    "preset",
]
