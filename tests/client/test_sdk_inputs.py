"""Client.detect over a live server: every input type gives the same answer; batch, model card, health."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from maskrcnn_client import Client, DetectResult, Health, ModelInfo
from PIL import Image
from service_helpers import CLASS_NAMES


def _key(result: DetectResult) -> list[tuple]:
    return [(d.category_id, d.label, d.score, tuple(d.bbox), d.segmentation.counts) for d in result.detections]


def test_every_input_type_gives_the_same_detections(sdk_server, photo: Path) -> None:
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    with Client(sdk_server.url) as client, photo.open("rb") as file:
        results = {
            "str": client.detect(str(photo), max_detections=10),
            "path": client.detect(photo, max_detections=10),
            "bytes": client.detect(photo.read_bytes(), max_detections=10),
            "file": client.detect(file, max_detections=10),
            "pil": client.detect(Image.open(photo), max_detections=10),
            "numpy": client.detect(pixels, max_detections=10),
        }
    expected = _key(results["path"])
    assert len(expected) == 10
    for kind, result in results.items():
        assert (result.image.width, result.image.height) == (160, 120), kind
        assert _key(result) == expected, kind


def test_options_reach_the_server(sdk_server, photo: Path) -> None:
    with Client(sdk_server.url) as client:
        everything = client.detect(photo, max_detections=20)
        threshold = everything.detections[4].score
        cut = client.detect(photo, score_threshold=threshold, max_detections=20, masks=False)
        dogs = client.detect(photo, categories=["dog"], max_detections=5)
    assert [d.score for d in cut.detections] == [d.score for d in everything.detections if d.score >= threshold]
    assert all(d.segmentation is None for d in cut.detections)
    assert dogs.detections and {d.label for d in dogs.detections} == {"dog"}


def test_detect_batch_answers_each_image_as_detect_does(sdk_server, photo_dir: Path) -> None:
    photos = sorted(photo_dir.glob("*.jpg"))
    with Client(sdk_server.url) as client:
        batch = client.detect_batch(photos, max_detections=5)
        alone = [client.detect(p, max_detections=5) for p in photos]
    assert [_key(r) for r in batch] == [_key(r) for r in alone]


def test_model_card_and_health(sdk_server) -> None:
    with Client(sdk_server.url) as client:
        info = client.model()
        health = client.health()
    assert isinstance(info, ModelInfo) and [c.name for c in info.classes] == list(CLASS_NAMES[1:])
    assert isinstance(health, Health) and health.ready and bool(health) and health.status == "ready"


def test_results_keep_fields_a_newer_server_adds() -> None:
    body = {
        "model": {"name": "m", "weights_sha256": "x", "device": "cpu", "precision": "fp32", "new": 1},
        "image": {"width": 4, "height": 3},
        "detections": [{"category_id": 1, "label": "cat", "score": 0.5, "bbox": [0, 0, 1, 1], "depth": [1]}],
        "timing_ms": {"total": 1.0},
        "trace": "abc",
    }
    result = DetectResult.model_validate(body)
    assert result.model_extra == {"trace": "abc"}
    assert result.detections[0].model_extra == {"depth": [1]}
    assert result.model.model_extra == {"new": 1}


def test_a_numpy_image_of_the_wrong_shape_is_refused_before_sending(sdk_server) -> None:
    with Client(sdk_server.url) as client:
        for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)):
            with pytest.raises(ValueError, match="HxWx3 uint8"):
                client.detect(bad)
        with pytest.raises(TypeError, match="binary"):
            client.detect(io.StringIO("text"))  # type: ignore[arg-type]
