"""An image's detections never depend on what shares its forward, nor on the order of the batch.

The trained demo model on synthetic scenes of several sizes, portrait and landscape, each with a square touching
the right and bottom border (where a larger batch-mate's zero padding would reach). Before size groups, a
320x256 scene next to a 640x480 one lost detections and its border square's box moved by pixels.
"""

from __future__ import annotations

import pytest
import torch

from models import weights
from models.inference import Predictor
from tests.scenes import DEMO_WEIGHTS, assert_same_results, scene

SCENES = {
    "small": scene(320, 256, seed=1),
    "large": scene(640, 480, seed=2),
    "portrait": scene(240, 400, seed=3),
    "small_other": scene(300, 240, seed=4),  # resized to 320x256 as "small" is: they share one forward
}
BATCHES = [
    ["small", "large"],
    ["large", "small"],
    ["portrait", "small", "large", "small_other"],
    ["small_other", "portrait", "small", "small", "large"],
]


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(weights.load(DEMO_WEIGHTS))


def test_an_image_gets_its_alone_detections_in_any_batch_and_order(predictor: Predictor) -> None:
    alone = {name: predictor([image])[0] for name, image in SCENES.items()}
    assert all(alone.values()), "the demo model should find the shapes"
    small_width = SCENES["small"].shape[2]
    assert any(abs(r["bbox"][0] + r["bbox"][2] - small_width) < 2 for r in alone["small"]), "border square found"
    for names in BATCHES:
        for name, results in zip(names, predictor([SCENES[n] for n in names]), strict=True):
            assert_same_results(alone[name], results)


def test_images_that_pad_to_one_size_run_as_one_forward(predictor: Predictor) -> None:
    transform = predictor.model.transform
    images = [SCENES[n] for n in ("small", "large", "small_other", "portrait", "small")]
    groups = transform.size_groups(images)
    assert [indices for indices, _ in groups] == [[0, 2, 4], [1], [3]]
    for indices, batch in groups:
        own = [transform.padded_size(size) for size in batch.image_sizes]
        assert all(size == tuple(batch.tensors.shape[-2:]) for size in own)  # nobody padded beyond its own size
        assert batch.original_sizes == [tuple(images[i].shape[-2:]) for i in indices]


def test_detect_returns_one_result_per_image_in_input_order(predictor: Predictor) -> None:
    images = [SCENES["portrait"], SCENES["small"], torch.zeros((3, 64, 96), dtype=torch.uint8), SCENES["small"]]
    detections = predictor.detect(images)
    assert [d.image_size for d in detections] == [tuple(i.shape[-2:]) for i in images]
