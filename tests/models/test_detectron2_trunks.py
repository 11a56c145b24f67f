"""R101-FPN and X101-32x8d-FPN files: Detectron2's names and shapes (recorded from its own `build_model`, narrow)
load into our model with strict key checking, and infer; their trunk rules (stride on the 1x1 for MSRA R101,
on the 3x3 with 32 groups for X101) are what the config says."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.resnet import Bottleneck

from models.detectron2 import load, resolve_arch
from models.inference import Predictor

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "detectron2"


def synthetic_file(name: str, directory: Path) -> Path:
    """A model-zoo style .pkl of random float32 arrays under Detectron2's recorded names and shapes."""
    shapes = json.loads((RECORDED / f"{name}.keys.json").read_text())
    rng = np.random.default_rng(0)
    arrays = {k: (rng.standard_normal(s) * 0.05).astype(np.float32) for k, s in shapes.items()}
    for k in arrays:
        if k.endswith("running_var"):
            arrays[k] = np.abs(arrays[k]) + 1.0
    path = directory / f"{name}.pkl"
    path.write_bytes(pickle.dumps({"model": arrays, "__author__": "synthetic"}, protocol=2))
    return path


@pytest.mark.parametrize(
    ("name", "backbone", "stride_in_1x1", "groups"),
    [("r101_fpn", "resnet101", True, 1), ("x101_fpn", "resnext101_32x8d", False, 32)],
)
def test_deep_trunks_load_strictly_and_infer(
    tmp_path: Path, name: str, backbone: str, stride_in_1x1: bool, groups: int
) -> None:
    model = load(synthetic_file(name, tmp_path), str(RECORDED / f"{name}.yaml"))  # strict=True inside
    config = model.config
    assert (config.backbone, config.trunk_stride_in_1x1) == (backbone, stride_in_1x1)
    assert len(model.backbone.body.layer3) == 23
    first = model.backbone.body.layer2[0]
    assert isinstance(first, Bottleneck) and first.conv2.groups == groups
    assert (first.conv1.stride, first.conv2.stride) == (((2, 2), (1, 1)) if stride_in_1x1 else ((1, 1), (2, 2)))
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    det = Predictor(model).detect([image])[0]
    assert det.image_size == (64, 96) and torch.isfinite(det.boxes).all()
    assert det.masks is None or det.masks.shape[0] == len(det)


def test_x101_keeps_detectron2s_pixel_std_in_bgr_order() -> None:
    config = resolve_arch(str(RECORDED / "x101_fpn.yaml"))
    assert config.image_std == (57.375, 57.12, 58.395) and config.input_channels == "bgr"
