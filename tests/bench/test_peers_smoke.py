"""bench.peers end to end on small models (seconds), and its clean skip without the `bench` extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from bench import peers
from models import build_model, preset


class _TinyBackbone(nn.Sequential):
    out_channels = 8

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())


def test_skips_cleanly_without_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(peers, "missing_packages", lambda: ["openvino"])
    monkeypatch.setattr(sys, "argv", ["bench.peers", "--results", str(tmp_path / "RESULTS.md")])
    peers.main()  # returns: exit status 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "openvino" in out[0]
    assert not (tmp_path / "RESULTS.md").exists()


@pytest.mark.skipif(bool(peers.missing_packages()), reason="needs the bench extra (onnx, onnxruntime, openvino)")
def test_every_side_runs_on_tiny_models(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = MaskRCNN(
        _TinyBackbone(),
        num_classes=5,
        min_size=128,
        max_size=192,
        rpn_anchor_generator=AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
    ).eval()
    model = build_model(preset("tiny"))
    photo = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    lines = peers.measure(reference, model, photo, 0.0, 1, tmp_path)
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| side")]
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    assert names[:4] == ["torchvision eager fp32", peers.HERE, "ONNX Runtime (CPU)", "OpenVINO f32"]
    assert names[4].startswith("OpenVINO default") and "ours fp32" in names
    assert any("faster" in ln for ln in lines)
