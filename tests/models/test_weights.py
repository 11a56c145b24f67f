"""Weights I/O: our safetensors round trip, torchvision checkpoints, and one clear error per broken file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from models import build_model, preset, weights


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    config = preset("tiny", class_names=("bg", "a", "b", "c", "d"), category_ids=(0, 3, 5, 7, 9))
    path = tmp_path / "tiny.safetensors"
    weights.save(build_model(config), path)
    return path


def test_safetensors_round_trip_rebuilds_model_from_file_alone(tiny_file: Path) -> None:
    config, state = weights.read(tiny_file)
    assert config.class_names == ("bg", "a", "b", "c", "d")
    assert config.category_ids == (0, 3, 5, 7, 9)
    model = weights.load(tiny_file)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_torchvision_checkpoint_old_key_layout_loads(tmp_path: Path) -> None:
    """The official v1 COCO file predates Conv2dNormActivation (e.g. `rpn.head.conv.weight`)."""
    model = build_model(preset("resnet50_fpn"))
    renamed = {}
    for key, value in model.state_dict().items():
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        for kind in ("inner", "layer"):
            for i in range(4):
                key = key.replace(f"backbone.fpn.{kind}_blocks.{i}.0.", f"backbone.fpn.{kind}_blocks.{i}.")
        for i in range(4):
            key = key.replace(f"roi_heads.mask_head.{i}.0.", f"roi_heads.mask_head.mask_fcn{i + 1}.")
        renamed[key] = value
    assert "rpn.head.conv.weight" in renamed and "roi_heads.mask_head.mask_fcn1.weight" in renamed
    path = tmp_path / "old.pth"
    torch.save({"model": renamed, "epoch": 25}, path)  # torchvision reference-script checkpoint layout
    loaded = weights.load(path)
    assert loaded.config.class_names[1] == "person" and loaded.config.num_classes == 91
    assert torch.equal(loaded.rpn.head.conv[0][0].weight, model.rpn.head.conv[0][0].weight)


def _corrupt(kind: str, good: Path, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.bin"
    data = good.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "junk":
        path.write_bytes(os.urandom(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "unreadable safetensors"),
        ("junk", "neither safetensors nor a torch checkpoint"),
        ("empty", "empty or truncated"),
        ("missing", "no such file"),
    ],
)
def test_broken_files_give_one_clear_error(kind: str, message: str, tiny_file: Path, tmp_path: Path) -> None:
    with pytest.raises(weights.WeightsError, match=message):
        weights.load(_corrupt(kind, tiny_file, tmp_path))


def test_truncated_torch_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "t.pth"
    torch.save(build_model(preset("resnet50_fpn")).state_dict(), path)
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(weights.WeightsError, match="truncated or corrupt torch checkpoint"):
        weights.load(path)


def test_shape_mismatch_names_the_tensor(tmp_path: Path) -> None:
    state = build_model(preset("resnet50_fpn")).state_dict()
    state["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(10, 1024)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(weights.WeightsError, match=r"cls_score\.weight"):
        weights.load(path)


def test_not_a_mask_rcnn(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(weights.WeightsError, match="not a Mask R-CNN checkpoint"):
        weights.load(path)


def test_safetensors_without_our_metadata(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(weights.WeightsError, match="without maskrcnn metadata"):
        weights.load(path)
