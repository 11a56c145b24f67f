"""A model's categories against a data set's: (id, name) pairs compared, matched by name when only the ids
differ, by id with a warning when the names differ; the model's results reported in the data set's ids."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from models import build_model, preset
from models import weights as model_weights
from tests.trainer.cocosets import edited_copy
from trainer import cli
from trainer.categories import match

MODEL_IDS = (0, 1, 2, 3, 4)
MODEL_NAMES = ("__background__", "circle", "square", "triangle", "star")


def test_same_names_other_ids_are_matched_by_name_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        result = match(MODEL_IDS, MODEL_NAMES, {11: "circle", 12: "square", 13: "triangle", 14: "star"}, "set")
    assert result.to_dataset == {1: 11, 2: 12, 3: 13, 4: 14}
    assert result.label_of == {11: 1, 12: 2, 13: 3, 14: 4}
    assert "matched by name" in caplog.text and "'circle' 1 -> 11" in caplog.text


def test_swapped_ids_follow_the_names(caplog: pytest.LogCaptureFixture) -> None:
    cats = {1: "square", 2: "circle", 3: "triangle", 4: "star"}
    assert match(MODEL_IDS, MODEL_NAMES, cats, "set").to_dataset == {1: 2, 2: 1, 3: 3, 4: 4}


def test_other_names_are_matched_by_id_with_a_warning_and_missing_ones_are_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cats = {1: "circle", 2: "box", 3: "triangle", 7: "hexagon"}
    with caplog.at_level(logging.WARNING):
        result = match(MODEL_IDS, MODEL_NAMES, cats, "set")
    assert result.to_dataset == {1: 1, 2: 2, 3: 3}
    assert "category names differ, matched by id: id 2: 'square' in the model, 'box' here" in caplog.text
    assert "[(4, 'star')] are not in this data set" in caplog.text
    assert "[(7, 'hexagon')] are unknown to the model" in caplog.text
    identical = dict(zip(MODEL_IDS[1:], MODEL_NAMES[1:], strict=True))
    assert match(MODEL_IDS, MODEL_NAMES, identical, "s").to_dataset == {1: 1, 2: 2, 3: 3, 4: 4}


def test_evaluate_reports_results_in_the_data_sets_ids_when_only_ids_differ(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    model = build_model(preset("tiny", class_names=MODEL_NAMES, category_ids=MODEL_IDS))
    weights = tmp_path / "tiny.safetensors"
    model_weights.save(model, weights)

    def shift(data: dict) -> None:
        for item in data["categories"] + data["annotations"]:
            key = "id" if "name" in item else "category_id"
            item[key] += 10

    root = edited_copy(tiny_data, tmp_path / "shifted", shift)
    out = tmp_path / "results.json"
    argv = ["--data", str(root), "--weights", str(weights), "--output", str(out), "--limit", "2"]
    with caplog.at_level(logging.WARNING):
        assert cli.evaluate(argv) == 0
    assert "matched by name" in caplog.text
    reported = {r["category_id"] for r in json.loads(out.read_text())}
    assert reported and reported <= {11, 12, 13, 14}
    with caplog.at_level(logging.WARNING):
        assert cli.evaluate([*argv, "--limit", "1", "--max-detections", "150"]) == 0
    assert "--max-detections 150: the model returns at most 100 detections per image" in caplog.text
