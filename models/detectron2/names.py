"""Detectron2 state-dict names -> ours (torchvision's), and its class layout -> ours.

The map (shared/detectron2-notes.md, "The weight format and the name map"), Detectron2 -> ours:
- `backbone.bottom_up.stem.conv1.weight` / `.norm.*` (C4: `backbone.stem.*`) -> `backbone.body.conv1.weight`
  / `backbone.body.bn1.*`;
- `backbone.bottom_up.res{k}.{i}.conv{j}.weight` / `.norm.*` (C4: `backbone.res{k}`) ->
  `backbone.body.layer{k-1}.{i}.conv{j}.weight` / `.bn{j}.*`; `...res{k}.0.shortcut.weight` / `.shortcut.norm.*`
  -> `...layer{k-1}.0.downsample.0.weight` / `.downsample.1.*`; C4's `roi_heads.res5.{i}.*` keeps its prefix;
- `backbone.fpn_lateral{2..5}.*` / `fpn_output{2..5}.*` -> `backbone.fpn.inner_blocks.{0..3}.0.*` /
  `layer_blocks.{0..3}.0.*`;
- `proposal_generator.rpn_head.conv.*` / `objectness_logits.*` / `anchor_deltas.*` -> `rpn.head.conv.0.0.*` /
  `cls_logits.*` / `bbox_pred.*`;
- `roi_heads.box_head.fc1.*` / `fc2.*` -> `roi_heads.box_head.fc6.*` / `fc7.*`;
- `roi_heads.box_predictor.cls_score.*` (K + 1 rows, background last) -> rows `[K, 0, ..., K-1]`;
  `bbox_pred.*` (4K rows, no background) -> 4 zero rows first;
- `roi_heads.mask_head.mask_fcn{1..4}.*` -> `roi_heads.mask_head.{0..3}.0.*`; `mask_head.deconv.*` /
  `predictor.*` (K rows) -> `roi_heads.mask_predictor.conv5_mask.*` / `mask_fcn_logits.*` (1 zero row first).

Background moves from Detectron2's last class to our first; the zero rows stand for background's box and mask
outputs, which nothing reads. (The softmax then sums background first: scores within 1 ulp of Detectron2's.)
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from ..weights import WeightsError

_TRUNK_BLOCK = r"res(\d)\.(\d+)\.(conv\d|shortcut)\.(weight|norm\.\w+)"
_RULES: tuple[tuple[str, str], ...] = (
    (r"^backbone\.(?:bottom_up\.)?stem\.conv1\.weight$", "backbone.body.conv1.weight"),
    (r"^backbone\.(?:bottom_up\.)?stem\.conv1\.norm\.(\w+)$", r"backbone.body.bn1.\1"),
    (r"^backbone\.fpn_lateral([2-5])\.(weight|bias)$", "backbone.fpn.inner_blocks.{lvl}.0.\\2"),
    (r"^backbone\.fpn_output([2-5])\.(weight|bias)$", "backbone.fpn.layer_blocks.{lvl}.0.\\2"),
    (r"^proposal_generator\.rpn_head\.conv\.(weight|bias)$", r"rpn.head.conv.0.0.\1"),
    (r"^proposal_generator\.rpn_head\.objectness_logits\.(weight|bias)$", r"rpn.head.cls_logits.\1"),
    (r"^proposal_generator\.rpn_head\.anchor_deltas\.(weight|bias)$", r"rpn.head.bbox_pred.\1"),
    (r"^roi_heads\.box_head\.fc1\.(weight|bias)$", r"roi_heads.box_head.fc6.\1"),
    (r"^roi_heads\.box_head\.fc2\.(weight|bias)$", r"roi_heads.box_head.fc7.\1"),
    (r"^roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(weight|bias)$", r"roi_heads.box_predictor.\1.\2"),
    (r"^roi_heads\.mask_head\.mask_fcn([1-4])\.(weight|bias)$", "roi_heads.mask_head.{fcn}.0.\\2"),
    (r"^roi_heads\.mask_head\.deconv\.(weight|bias)$", r"roi_heads.mask_predictor.conv5_mask.\1"),
    (r"^roi_heads\.mask_head\.predictor\.(weight|bias)$", r"roi_heads.mask_predictor.mask_fcn_logits.\1"),
)


def our_name(name: str) -> str:
    """The key of our model that Detectron2's `name` becomes. Raises KeyError for a name outside the map."""
    block = re.match(rf"^(backbone\.(?:bottom_up\.)?|roi_heads\.){_TRUNK_BLOCK}$", name)
    if block:
        prefix, stage, index, layer, rest = block.groups()
        where = "roi_heads." if prefix == "roi_heads." else "backbone.body."
        head = f"res{stage}" if where == "roi_heads." else f"layer{int(stage) - 1}"
        if layer == "shortcut":
            part = "downsample.0.weight" if rest == "weight" else f"downsample.1.{rest.split('.', 1)[1]}"
        else:
            part = f"{layer}.weight" if rest == "weight" else f"bn{layer[4:]}.{rest.split('.', 1)[1]}"
        return f"{where}{head}.{index}.{part}"
    for pattern, replacement in _RULES:
        match = re.match(pattern, name)
        if match:
            out = match.expand(replacement)
            if "{lvl}" in out:
                out = out.replace("{lvl}", str(int(match.group(1)) - 2))
            if "{fcn}" in out:
                out = out.replace("{fcn}", str(int(match.group(1)) - 1))
            return out
    raise KeyError(name)


def to_ours(state: dict[str, Tensor], source: str = "") -> dict[str, Tensor]:
    """A Detectron2 Mask R-CNN state dict in our names and class layout (background first).

    Raises WeightsError naming the keys outside the map (a Detectron2 model this loader does not know: cascade
    heads, keypoints, class-agnostic box regression ...) or a box predictor whose shapes do not agree.
    """
    out: dict[str, Tensor] = {}
    unknown = []
    for name, value in state.items():
        try:
            out[our_name(name)] = value
        except KeyError:
            unknown.append(name)
    if unknown:
        more = f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise WeightsError(f"{source}: not a Detectron2 Mask R-CNN the loader knows: keys {unknown[:5]}{more}")
    for key in ("roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.bbox_pred.weight"):
        if key not in out:
            raise WeightsError(f"{source}: no box predictor ({key}) in the file")
    classes = out["roi_heads.box_predictor.cls_score.weight"].shape[0] - 1
    if out["roi_heads.box_predictor.bbox_pred.weight"].shape[0] != 4 * classes:
        raise WeightsError(
            f"{source}: bbox_pred has {out['roi_heads.box_predictor.bbox_pred.weight'].shape[0]} rows for "
            f"{classes} classes (class-agnostic box regression is not supported)"
        )
    for suffix in ("weight", "bias"):
        cls = f"roi_heads.box_predictor.cls_score.{suffix}"
        out[cls] = torch.cat([out[cls][-1:], out[cls][:-1]])  # background: last -> first
        out[f"roi_heads.box_predictor.bbox_pred.{suffix}"] = _zero_first(
            out[f"roi_heads.box_predictor.bbox_pred.{suffix}"], 4
        )
        logits = f"roi_heads.mask_predictor.mask_fcn_logits.{suffix}"
        if logits in out:
            out[logits] = _zero_first(out[logits], 1)
    return out


def num_classes(state: dict[str, Tensor]) -> int:
    """Object classes of a Detectron2 state dict (its cls_score rows less background)."""
    return state["roi_heads.box_predictor.cls_score.weight"].shape[0] - 1


def _zero_first(t: Tensor, rows: int) -> Tensor:
    return torch.cat([t.new_zeros((rows, *t.shape[1:])), t])
