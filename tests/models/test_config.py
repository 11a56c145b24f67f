"""ModelConfig: each architecture field decides one thing, bad values are refused by name, and weights files of
format 1 (`variant` + "" norms) are upgraded on read to the same model as the explicit preset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from models import ModelConfig, build_model, preset, weights
from models.box_head import ConvFCHead, TwoMLPHead
from models.config import RESNET_LAYERS, Backbone
from models.inference import Predictor

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "assets" / "demo.safetensors"
SAMPLE = ROOT / "service" / "static" / "sample.png"
V2_FIELDS = {"rpn_conv_depth": 2, "box_head": "conv_fc", "fpn_norm": "bn", "mask_head_norm": "bn"}


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _has(module: nn.Module, kind: type[nn.Module]) -> bool:
    return any(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize(
    ("name", "value", "prefix"),
    [
        ("rpn_conv_depth", 2, "rpn.head."),
        ("box_head", "conv_fc", "roi_heads.box_head."),
        ("fpn_norm", "bn", "backbone.fpn."),
        ("fpn_norm", "gn", "backbone.fpn."),
        ("mask_head_norm", "bn", "roi_heads.mask_head."),
        ("mask_head_norm", "gn", "roi_heads.mask_head."),
        ("trunk_norm", "gn", "backbone.body."),
    ],
)
def test_each_field_changes_only_its_own_part_of_the_model(name: str, value: Any, prefix: str) -> None:
    base = _shapes(build_model(preset("tiny")))
    changed = _shapes(build_model(preset("tiny", **{name: value})))
    differing = {k for k in base.keys() | changed.keys() if base.get(k) != changed.get(k)}
    assert differing, f"{name}={value!r} changed nothing"
    assert all(k.startswith(prefix) for k in differing), sorted(k for k in differing if not k.startswith(prefix))


def test_rpn_depth_and_box_head_are_independent() -> None:
    deep = build_model(preset("tiny", rpn_conv_depth=2))
    assert len(deep.rpn.head.conv) == 2 and isinstance(deep.roi_heads.box_head, TwoMLPHead)
    conv_fc = build_model(preset("tiny", box_head="conv_fc"))
    assert len(conv_fc.rpn.head.conv) == 1 and isinstance(conv_fc.roi_heads.box_head, ConvFCHead)
    assert not _has(conv_fc.backbone.fpn, nn.BatchNorm2d) and not _has(conv_fc.roi_heads.mask_head, nn.BatchNorm2d)


def test_norm_fields_pick_the_norm_of_their_part() -> None:
    model = build_model(preset("tiny", fpn_norm="gn", mask_head_norm="bn"))
    assert _has(model.backbone.fpn, nn.GroupNorm) and not _has(model.backbone.fpn, nn.BatchNorm2d)
    assert _has(model.roi_heads.mask_head, nn.BatchNorm2d) and not _has(model.roi_heads.mask_head, nn.GroupNorm)
    assert len(model.rpn.head.conv) == 1 and isinstance(model.roi_heads.box_head, TwoMLPHead)


def test_defaults_are_torchvision_v1_and_the_v2_preset_sets_four_fields() -> None:
    v1 = ModelConfig()
    assert (v1.backbone, v1.trunk_norm, v1.fpn_norm, v1.rpn_conv_depth) == ("resnet50", "frozen_bn", "none", 1)
    assert (v1.box_head, v1.mask_head_norm, v1.pooler) == ("mlp", "none", "align")
    assert preset("resnet50_fpn") == v1
    assert preset("resnet50_fpn_v2") == ModelConfig(**V2_FIELDS)
    assert set(get_args(Backbone)) == set(RESNET_LAYERS)


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("backbone", "'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnext101_32x8d'"),
        ("features", "'fpn', 'c4', 'c5'"),
        ("trunk_norm", "'frozen_bn', 'bn', 'gn'"),
        ("fpn_norm", "'none', 'bn', 'gn'"),
        ("box_head", "'mlp', 'conv_fc'"),
        ("mask_head_norm", "'none', 'bn', 'gn'"),
        ("pooler", "'align', 'pool', 'warp'"),
    ],
)
def test_bad_literal_values_are_refused_naming_field_and_allowed_values(name: str, allowed: str) -> None:
    with pytest.raises(ValueError) as info:
        ModelConfig(**{name: ""})
    assert str(info.value) == f"{name} must be one of {allowed}; got ''"


def test_rpn_conv_depth_is_one_or_two() -> None:
    with pytest.raises(ValueError, match=r"rpn_conv_depth must be 1 or 2; got 3"):
        ModelConfig(rpn_conv_depth=3)


def _format_1(config: ModelConfig, variant: str | None) -> dict[str, Any]:
    """The dict a format-1 file would hold for `config`: no rpn_conv_depth / box_head, "" norms."""
    data = config.to_dict()
    del data["rpn_conv_depth"], data["box_head"]
    data["fpn_norm"] = data["mask_head_norm"] = ""
    if variant is not None:
        data["variant"] = variant
    return data


@pytest.mark.parametrize(
    ("variant", "name"), [("v1", "resnet50_fpn"), (None, "resnet50_fpn"), ("v2", "resnet50_fpn_v2")]
)
def test_format_1_config_upgrades_to_the_explicit_preset(variant: str | None, name: str) -> None:
    upgraded = ModelConfig.from_dict(weights.upgrade_format_1(_format_1(preset(name), variant)))
    assert upgraded == preset(name)
    assert _shapes(build_model(upgraded)) == _shapes(build_model(preset(name)))


def test_format_1_keeps_explicit_norms() -> None:
    data = {**_format_1(preset("tiny"), "v2"), "fpn_norm": "none", "mask_head_norm": "gn"}
    upgraded = ModelConfig.from_dict(weights.upgrade_format_1(data))
    assert upgraded == preset("tiny", **{**V2_FIELDS, "fpn_norm": "none", "mask_head_norm": "gn"})


def _write(path: Path, fmt: str, config: dict[str, Any], model: nn.Module) -> Path:
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path),
        {"format": fmt, "config": json.dumps(config)},
    )
    return path


def test_format_1_file_loads_through_the_upgrade(tmp_path: Path) -> None:
    config = preset("tiny", **V2_FIELDS)
    model = build_model(config)
    path = _write(tmp_path / "old.safetensors", "maskrcnn/1", _format_1(config, "v2"), model)
    loaded = weights.load(path)  # strict=True: every key and shape fits
    assert loaded.config == config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("fmt", "extra", "message"),
    [
        ("maskrcnn/1", {"colour": "red"}, r"unknown model config keys \['colour'\]"),
        ("maskrcnn/1", {"box_head": "mlp"}, r"unknown model config keys \['box_head'\]"),
        ("maskrcnn/1", {"variant": "v3"}, r"variant must be 'v1' or 'v2', got 'v3'"),
        ("maskrcnn/2", {"variant": "v1"}, r"unknown model config keys \['variant'\]"),
        ("maskrcnn/2", {"colour": "red"}, r"unknown model config keys \['colour'\]"),
    ],
)
def test_unknown_keys_still_fail(tmp_path: Path, fmt: str, extra: dict[str, Any], message: str) -> None:
    config = preset("tiny")
    data = _format_1(config, "v1") if fmt == "maskrcnn/1" else config.to_dict()
    path = _write(tmp_path / "bad.safetensors", fmt, {**data, **extra}, build_model(config))
    with pytest.raises(weights.WeightsError, match=message):
        weights.read(path)


def test_files_are_written_in_format_2(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    weights.save(build_model(preset("tiny")), path)
    with safe_open(str(path), framework="pt") as f:
        assert (f.metadata() or {})["format"] == weights.FORMAT == "maskrcnn/2"
    assert weights.read(path)[0] == preset("tiny")


def test_shipped_demo_file_of_format_1_loads_as_the_demo_preset() -> None:
    with safe_open(str(DEMO), framework="pt") as f:
        assert (f.metadata() or {})["format"] == "maskrcnn/1"  # shipped before format 2; not rewritten
    model = weights.load(DEMO)
    assert model.config == preset("demo")  # every field but class names and category ids
    image = torch.from_numpy(np.array(Image.open(SAMPLE).convert("RGB"))).permute(2, 0, 1)
    detections = Predictor(model, "cpu").detect([image])[0]
    # The sample's shapes, found with the scores the format-1 model gave before the upgrade (0.999, 0.997, 0.983).
    assert (detections.scores > 0.9).sum() >= 3
    assert set(detections.labels.tolist()) <= {1, 2, 3, 4}
