"""Weights are data, never code: our safetensors files, and torchvision's `.pth` checkpoints.

Our format: one safetensors file whose metadata holds the `ModelConfig` as JSON (architecture, class names,
category ids, input size), so a reader rebuilds the model from the file alone. torchvision checkpoints are
read with `torch.load(weights_only=True)`, recognised from their keys, and loaded with `strict=True`.
Every way a file can be wrong ends in one `WeightsError` that names the problem.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

from .build import build_model
from .config import ModelConfig
from .keypoint_names import COCO_PERSON_KEYPOINTS
from .mask_rcnn import MaskRCNN
from .presets import preset

FORMAT = "maskrcnn/2"  # 2: explicit architecture fields instead of `variant`; files of format 1 are upgraded
FORMAT_1 = "maskrcnn/1"
COCO_CATEGORIES: tuple[str, ...] = tuple(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
_SAFETENSORS_MAX_HEADER = 100_000_000


class WeightsError(ValueError):
    """The weights file is missing, unreadable, or does not fit the architecture it claims."""


def save(model: MaskRCNN, path: str | Path, half: bool = False) -> None:
    """Write the model's tensors and its config to a safetensors file.

    half stores float32 tensors as float16 (half the bytes, e.g. for a model committed to the repo);
    `read` upcasts them back to float32.
    """
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}
    metadata = {"format": FORMAT, "config": json.dumps(model.config.to_dict())}
    save_file(state, str(path), metadata=metadata)


def load(path: str | Path, device: str | torch.device = "cpu") -> MaskRCNN:
    """Build the model a weights file describes (ours or torchvision's), in eval mode on `device`."""
    config, state = read(path)
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the architecture: {first_problems(str(exc))}") from None
    return model.eval().to(device)


def read(path: str | Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    """(config, state dict) of a weights file, without building a model."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(16)
    if len(head) < 16:
        raise WeightsError(f"{path}: file is empty or truncated ({len(head)} bytes)")
    header_len = int.from_bytes(head[:8], "little")
    if head[8:9] == b"{" and header_len < _SAFETENSORS_MAX_HEADER:
        return _read_safetensors(path)
    return _read_torchvision(path)


def _read_safetensors(path: Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable safetensors file ({exc})") from None
    file_format = metadata.get("format")
    if file_format not in (FORMAT, FORMAT_1) or "config" not in metadata:
        raise WeightsError(f"{path}: safetensors file without maskrcnn metadata (format {file_format!r})")
    try:
        data = json.loads(metadata["config"])
        if file_format == FORMAT_1:
            data = upgrade_format_1(data)
        config = ModelConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise WeightsError(f"{path}: bad model config in metadata: {exc}") from None
    return config, {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}


def upgrade_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict of format 1 in today's fields: `variant` (v1 | v2, default v1) becomes rpn_conv_depth and
    box_head, and the "" of fpn_norm / mask_head_norm becomes the variant's norm (v1: none, v2: bn).

    Fields that format 1 never had are refused, as unknown keys are by `ModelConfig.from_dict`.
    """
    data = dict(data)
    newer = sorted({"rpn_conv_depth", "box_head"} & set(data))
    if newer:
        raise ValueError(f"unknown model config keys {newer} in a file of format {FORMAT_1}")
    variant = data.pop("variant", "v1")
    if variant not in ("v1", "v2"):
        raise ValueError(f"variant must be 'v1' or 'v2', got {variant!r}")
    v2 = variant == "v2"
    data["rpn_conv_depth"] = 2 if v2 else 1
    data["box_head"] = "conv_fc" if v2 else "mlp"
    for name in ("fpn_norm", "mask_head_norm"):
        if data.get(name, "") == "":
            data[name] = "bn" if v2 else "none"
    return data


def _read_torchvision(path: Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        with path.open("rb") as f:
            zipped = f.read(2) == b"PK"
        what = "truncated or corrupt torch checkpoint" if zipped else "neither safetensors nor a torch checkpoint"
        raise WeightsError(f"{path}: {what}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # a training checkpoint of torchvision's reference scripts
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: torch checkpoint does not hold a state dict of tensors")
    state = upgrade_torchvision_keys(dict(obj))
    return torchvision_config(state, path), state


def torchvision_config(state: dict[str, Tensor], path: Path | str = "") -> ModelConfig:
    """Recognise torchvision's maskrcnn_resnet50_fpn (v1) or _v2, or keypointrcnn_resnet50_fpn, from the keys of
    its state dict.

    v2 has two RPN convs; its other three differences (box_head, fpn_norm, mask_head_norm) come with them. A
    keypoint predictor (`kps_score_lowres`, weight [D, K, 4, 4]) adds K keypoints (COCO's person keypoints when
    K = 17); without a mask predictor the model has no mask branch.
    """
    logits = state.get("roi_heads.mask_predictor.mask_fcn_logits.weight")
    keypoints = state.get("roi_heads.keypoint_predictor.kps_score_lowres.weight")
    classifier = state.get("roi_heads.box_predictor.cls_score.weight")
    if (logits is None and keypoints is None) or classifier is None or "backbone.body.conv1.weight" not in state:
        raise WeightsError(
            f"{path}: not a Mask R-CNN checkpoint, nor a Keypoint R-CNN one (no mask or keypoint predictor, box "
            "predictor or ResNet trunk keys)"
        )
    v2 = "rpn.head.conv.1.0.weight" in state
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"backbone\.body\.layer3\.(\d+)\.", k))}
    depth = {6: "resnet50", 23: "resnet101"}.get(len(blocks))
    if depth is None:
        raise WeightsError(f"{path}: unsupported ResNet trunk ({len(blocks)} blocks in layer3)")
    num_classes = (logits if logits is not None else classifier).shape[0]
    names = COCO_CATEGORIES if num_classes == len(COCO_CATEGORIES) else ()
    if keypoints is not None and num_classes == 2:
        names = ("__background__", "person")
    if not names:
        names = ("__background__", *(f"class_{i}" for i in range(1, num_classes)))
    layout = (
        {"rpn_conv_depth": 2, "box_head": "conv_fc", "fpn_norm": "bn", "mask_head_norm": "bn"}
        if v2
        else {"rpn_conv_depth": 1, "box_head": "mlp", "fpn_norm": "none", "mask_head_norm": "none"}
    )
    if keypoints is not None:
        count = keypoints.shape[1]
        layout |= {
            "num_keypoints": count,
            "keypoint_head_dim": keypoints.shape[0],
            "keypoint_names": COCO_PERSON_KEYPOINTS if count == len(COCO_PERSON_KEYPOINTS) else (),
            "mask_head": "fcn" if logits is not None else "none",
        }
        return preset("keypointrcnn_resnet50_fpn", backbone=depth, num_classes=num_classes, class_names=names, **layout)
    return preset("resnet50_fpn", backbone=depth, num_classes=num_classes, class_names=names, **layout)


def upgrade_torchvision_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename keys of torchvision's older (version 1) module layouts to the current ones.

    The official v1 COCO checkpoint predates `Conv2dNormActivation`: `rpn.head.conv.weight`,
    `backbone.fpn.inner_blocks.0.weight`, `roi_heads.mask_head.mask_fcn1.weight`. torchvision renames them
    through pickled module versions; `weights_only` loading cannot rely on that, so we rename explicitly.
    """
    rules = [
        (r"^rpn\.head\.conv\.(weight|bias)$", r"rpn.head.conv.0.0.\1"),
        (r"^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.(weight|bias)$", r"backbone.fpn.\1_blocks.\2.0.\3"),
    ]
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        m = re.match(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$", key)
        if m:
            key = f"roi_heads.mask_head.{int(m.group(1)) - 1}.0.{m.group(2)}"
        out[key] = value
    return out


def first_problems(message: str, limit: int = 3) -> str:
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and not ln.startswith("Error(s)")]
    return "; ".join(lines[:limit]) + (f" (+{len(lines) - limit} more)" if len(lines) > limit else "")
