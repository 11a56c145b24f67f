"""Detectron2's model-zoo weights served with Detectron2's outputs: read (`pickle_loader`), rename (`names`),
describe (`arch`), build with every Detectron2 rule of `ModelConfig`.

`load(path, arch)` returns our MaskRCNN; `models.zoo.convert(src, dst, arch=...)` writes it as our
self-describing safetensors file, which `maskrcnn serve` then takes as any other.
"""

from __future__ import annotations

from pathlib import Path

from .. import build_model
from ..mask_rcnn import MaskRCNN
from ..weights import WeightsError, first_problems
from .arch import resolve_arch
from .names import num_classes, to_ours
from .pickle_loader import read_state

__all__ = ["load", "resolve_arch"]


def load(path: str | Path, arch: str) -> MaskRCNN:
    """A Detectron2 `.pkl` / `.pth` as our model (eval mode), its architecture named by `arch` (`d2:<zoo
    name>` or a Detectron2 YAML path).

    Raises WeightsError (ArchError for the architecture) naming the problem: a refused or corrupt file, keys
    outside the name map, a class count or tensor shape the architecture does not have.
    """
    config = resolve_arch(arch)
    state = to_ours(read_state(path), str(path))
    if num_classes(state) + 1 != config.num_classes:
        raise WeightsError(f"{path}: {num_classes(state)} classes in the file, {config.num_classes - 1} in {arch}")
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit {arch}: {first_problems(str(exc))}") from None
    return model.eval()
