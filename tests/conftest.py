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
