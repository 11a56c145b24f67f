"""The evaluation path: perfect detections score AP 100, no detections score 0, a model's run gives the keys;
size ranges without ground truth are absent, and --max-detections scores images with many instances."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from models import build_model, preset
from models import weights as model_weights
from models.inference import Predictor
from tests.trainer.cocosets import evaluate_results, load, perfect_results, write_squares
from trainer import cli
from trainer.data import CocoDetection
from trainer.evaluate import COCOEvaluator, format_summary, run_inference


def _perfect_results(data: Path) -> list[dict]:
    """The ground truth itself as detections with score 1."""
    gt = json.loads((data / "annotations.json").read_text())
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
         "segmentation": a["segmentation"]}
        for a in gt["annotations"]
    ]  # fmt: skip


def test_evaluate_cli_scores_perfect_detections_100(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "perfect.json"
    results.write_text(json.dumps(_perfect_results(tiny_data)))
    out = tmp_path / "scored.json"
    assert cli.evaluate(["--data", str(tiny_data), "--results", str(results), "--output", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(lines[-1])
    assert metrics["bbox_AP"] == pytest.approx(100) and metrics["segm_AP"] == pytest.approx(100)
    assert any("Average Precision" in line for line in lines)
    assert len(json.loads(out.read_text())) == len(_perfect_results(tiny_data))


def test_evaluator_reset_and_no_detections(tiny_data: Path) -> None:
    ds = CocoDetection(tiny_data)
    evaluator = COCOEvaluator(ds.coco)
    for image_id in ds.image_ids:
        evaluator.process(image_id, [])
    assert evaluator.evaluate()["segm_AP"] == 0
    evaluator.reset()
    for r in _perfect_results(tiny_data):
        evaluator.process(r["image_id"], [r])
    assert evaluator.evaluate()["bbox_AP50"] == pytest.approx(100)


def test_evaluate_cli_runs_a_model(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = CocoDetection(tiny_data)
    model = build_model(preset("tiny", class_names=ds.class_names, category_ids=ds.category_ids))
    path = tmp_path / "tiny.safetensors"
    model_weights.save(model, path, half=True)  # float16 on disk, float32 again when loaded
    assert all(p.dtype == torch.float32 for p in model_weights.load(path).parameters())
    argv = ["--data", str(tiny_data), "--weights", str(path), "--output", str(tmp_path / "r.json")]
    assert cli.evaluate(argv) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"bbox_AP", "segm_AP"} <= set(metrics)
    direct = run_inference(Predictor(model_weights.load(path)), ds, COCOEvaluator(ds.coco), limit=2)
    assert 0 <= direct["segm_AP"] <= 100


def test_evaluate_cli_reports_bad_weights(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"not weights at all")
    assert cli.evaluate(["--data", str(tiny_data), "--weights", str(tmp_path / "bad.safetensors")]) == 2
    assert "maskrcnn evaluate:" in capsys.readouterr().err


def test_many_instances_per_image_warn_and_max_detections_scores_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """150 squares in one image: COCO's 100 detections per image cap AP; --max-detections 200 scores them all."""
    squares = [(4 + 8 * col, 4 + 8 * row, 6) for row in range(10) for col in range(15)]
    root = write_squares(tmp_path / "crowded", [squares], size=(128, 128))
    perfect = perfect_results(load(root))
    with caplog.at_level(logging.WARNING):
        status, capped, _ = evaluate_results(root, perfect, capsys)
    assert status == 0 and capped["segm_AP"] < 80
    assert "1 images have more ground-truth instances than the 100 detections scored per image (up to 150" in (
        caplog.text
    )
    status, metrics, _ = evaluate_results(root, perfect, capsys, "--max-detections", "200")
    assert status == 0 and metrics["bbox_AP"] == metrics["segm_AP"] == 100


def test_size_range_without_ground_truth_is_absent_not_zero(
    tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tiny set has no object larger than 96x96 px: APl is "no ground truth" (-1 in COCOeval), not AP 0."""
    status, metrics, _ = evaluate_results(tiny_data, perfect_results(load(tiny_data)), capsys)
    assert status == 0 and metrics["segm_AP"] == 100
    assert metrics["bbox_APl"] is None and metrics["segm_APl"] is None  # null in the JSON line
    table = format_summary(metrics).splitlines()
    assert table[1].split() == ["bbox", "100.00", "100.00", "100.00", "100.00", "100.00", "-"]
