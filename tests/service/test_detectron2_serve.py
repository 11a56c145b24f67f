"""`maskrcnn serve` takes a converted Detectron2 file as any other and answers with Detectron2's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from service_helpers import photo_bytes, serve_process

from models import zoo

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "detectron2"


def test_maskrcnn_serve_serves_a_converted_detectron2_file_with_its_outputs(tmp_path: Path) -> None:
    dst = zoo.convert(RECORDED / "r50_fpn.pkl", tmp_path / "r50.safetensors", str(RECORDED / "r50_fpn.yaml"))
    expected = json.loads((RECORDED / "r50_fpn.json").read_text())["chelsea.jpg"]
    with serve_process(dst) as (proc, url):
        response = httpx.post(f"{url}/detect", files={"image": photo_bytes("chelsea.jpg")}, timeout=120)
        proc.terminate()
        proc.communicate(timeout=30)
    assert response.status_code == 200, response.text
    detections = response.json()["detections"]
    assert [d["segmentation"]["counts"] for d in detections] == expected["masks"]
    assert len(detections) == len(expected["boxes"])
    for detection, box in zip(detections, expected["boxes"], strict=True):  # x, y within the 0.01 px
        assert detection["bbox"][:2] == pytest.approx(box[:2], abs=0.01)
    assert [d["category_id"] for d in detections] == [zoo_id(c) for c in expected["classes"]]


def zoo_id(d2_class: int) -> int:
    """COCO category id of Detectron2's contiguous class (0 = person ... 79 = toothbrush)."""
    from models.detectron2.arch import coco_classes

    return coco_classes()[1][d2_class + 1]
