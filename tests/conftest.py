"""Shared fixtures: real photos (scikit-image's samples saved as JPEG) and small models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


def load_photo(name: str) -> torch.Tensor:
    """A fixture photo as UInt8Tensor[3, H, W]."""
    array = np.asarray(Image.open(FIXTURES / name).convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def certain_model(**overrides: object) -> torch.nn.Module:
    """The tiny preset whose classifier puts every RoI in class 1 with a logit margin of 100: its float32
    softmax score is exactly 1.0 (the other classes' 4e-44 vanish in the sum), for thresholds at the top."""
    from models import build_model, preset

    model = build_model(preset("tiny", **overrides))
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.zero_()
        model.roi_heads.box_predictor.cls_score.bias.zero_()
        model.roi_heads.box_predictor.cls_score.bias[1] = 100.0
    return model
