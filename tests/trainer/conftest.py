"""Tiny synthetic COCO sets shared by the trainer tests (written once per session: a few images, small sides)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.synth import SynthConfig, write_dataset

TINY = SynthConfig(images=6, seed=0, min_side=96, max_side=128, max_shapes=3, min_radius=10, max_radius=36)


@pytest.fixture(scope="session")
def tiny_config() -> SynthConfig:
    return TINY


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-image synthetic set (96-128 px sides), the same for every test of the session; treat as read-only."""
    root = tmp_path_factory.mktemp("tiny_synth")
    write_dataset(root, TINY)
    return root


@pytest.fixture(scope="session")
def tiny_keypoint_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny set with each shape's 4 extreme points as COCO keypoints (`maskrcnn synth --keypoints`)."""
    root = tmp_path_factory.mktemp("tiny_synth_keypoints")
    write_dataset(root, SynthConfig(**{**TINY.__dict__, "keypoints": True}))
    return root
