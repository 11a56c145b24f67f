"""What a request's options mean, the same over HTTP as in the Python API: an inclusive score threshold, and
one default number of detections (the paper's 100, or what the weights file says)."""

from __future__ import annotations

from pathlib import Path

from service_helpers import LiveServer, photo_bytes

from models import InferenceOptions, build_model, preset, weights
from models.image import decode
from models.inference import Predictor
from tests.conftest import certain_model


def test_score_threshold_keeps_a_detection_scoring_exactly_the_threshold(server: LiveServer) -> None:
    with server.client() as client:
        everything = client.post("/detect", files={"image": photo_bytes()}, params={"score_threshold": 0}).json()
        scores = [d["score"] for d in everything["detections"]]
        assert len(scores) > 3
        for s in (scores[1], scores[len(scores) // 2], scores[-1]):
            kept = client.post("/detect", files={"image": photo_bytes()}, params={"score_threshold": repr(s)}).json()
            assert s in [d["score"] for d in kept["detections"]]  # repr(s) parses back to exactly s
            assert len(kept["detections"]) == sum(score >= s for score in scores)


def test_score_threshold_one_returns_the_detections_scoring_one(make_server, tmp_path: Path) -> None:
    path = tmp_path / "certain.safetensors"
    weights.save(certain_model(), path)
    server: LiveServer = make_server(weights=path)
    with server.client() as client:
        body = client.post("/detect", files={"image": photo_bytes()}, params={"score_threshold": 1.0}).json()
    assert body["detections"] and all(d["score"] == 1.0 for d in body["detections"])


def test_default_number_of_detections_is_the_python_apis(server: LiveServer, make_server, tmp_path: Path) -> None:
    """The model's detections_per_img (100 unless its weights file says otherwise) is the default of both."""
    path = tmp_path / "twenty.safetensors"
    weights.save(build_model(preset("tiny", detections_per_img=20)), path)
    image = decode(photo_bytes()).pixels
    for live, weights_path in ((server, server.settings.weights), (make_server(weights=path), path)):
        predictor = Predictor(weights.load(weights_path))
        expected = predictor([image], InferenceOptions(score_thresh=0.0))[0]
        assert len(expected) == predictor.config.detections_per_img
        with live.client() as client:
            body = client.post("/detect", files={"image": photo_bytes()}, params={"score_threshold": 0}).json()
        assert len(body["detections"]) == len(expected)
