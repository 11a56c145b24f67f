"""Load-time rewrites of the Predictor's inference copy of a model: the same outputs, less work per call.

- `channels_last_heads`: on the CPU the RoI poolers give channels-last features [R, C, S, S]
  (models/roi_align_cpu.py), whose memory order is (r, h, w, c). A head that flattens them for a fully connected
  layer (`x.flatten(1)`, (c, h, w) order) copies all of them into NCHW order first: 1000 x 256 x 7 x 7 floats
  for the box head. Here the first fc's weight columns are permuted once to (h, w, c) order and the head
  flattens in that order, which is a free view of a channels-last tensor (and a copy, still correct, of any
  other layout). fp32 outputs change only by float rounding (the same products, summed in another order).
- `cast_weights`: the weights and biases of every convolution and linear layer stored in bf16 (or fp16) once,
  instead of autocast casting the float32 ones on every call (`torch.autocast` casts a float32 weight to the
  lower precision, and passes a weight already in it through). The numbers are autocast's: the same
  round-to-nearest cast, done once. Norm layers keep float32 weights, as autocast leaves them; box decoding,
  NMS, softmax and RoIAlign positions run in float32 as before.

Neither changes the state-dict keys: the heads keep their layers' names (`fc6`, `fc7`, `fc1`, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .box_head import ConvFCHead, TwoMLPHead
from .mask_mlp_head import MLPMaskHead

_LINEAR_NAMES: dict[type[nn.Module], tuple[str, str]] = {TwoMLPHead: ("fc6", "fc7"), MLPMaskHead: ("fc1", "fc2")}


def hwc_flatten(x: Tensor) -> Tensor:
    """[R, C, H, W] -> [R, H*W*C] in (h, w, c) order: a view of a channels-last tensor, a copy otherwise."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class ChannelsLastFlatten(nn.Module):
    """`nn.Flatten()` in (h, w, c) order (`hwc_flatten`); the next fc's columns must be in that order too."""

    def forward(self, x: Tensor) -> Tensor:
        return hwc_flatten(x)


class ChannelsLastMLPHead(nn.Module):
    """Inference form of `TwoMLPHead` (fc6, fc7) and `MLPMaskHead` (fc1, fc2): [R, C, S, S] -> hwc_flatten ->
    fc -> ReLU -> fc -> ReLU -> [R, D], the first fc's columns in (h, w, c) order (`hwc_columns`).

    Holds the given layers under their own names, so the state-dict keys stay those of the head it replaces.
    """

    def __init__(self, first: tuple[str, nn.Linear], second: tuple[str, nn.Linear]) -> None:
        super().__init__()
        self.names = (first[0], second[0])
        for name, layer in (first, second):
            self.add_module(name, layer)

    def forward(self, x: Tensor) -> Tensor:
        first, second = (getattr(self, name) for name in self.names)
        return F.relu(second(F.relu(first(hwc_flatten(x)))))


@torch.no_grad()
def hwc_columns(linear: nn.Linear, channels: int, height: int, width: int) -> None:
    """Permute `linear`'s weight columns in place from (c, h, w) to (h, w, c) order: the layer then gives on
    `hwc_flatten(x)` what it gave on `x.flatten(1)`. Raises ValueError if in_features != channels*height*width."""
    if linear.in_features != channels * height * width:
        raise ValueError(
            f"fc with {linear.in_features} inputs cannot read [{channels}, {height}, {width}] RoI features"
        )
    weight = linear.weight.reshape(linear.out_features, channels, height, width).permute(0, 2, 3, 1)
    linear.weight = nn.Parameter(weight.reshape(linear.out_features, -1).contiguous(), linear.weight.requires_grad)


def channels_last_heads(model: nn.Module) -> nn.Module:
    """Rewrite, in place, the heads of `model.roi_heads` that flatten RoI features for an fc (the box head:
    `TwoMLPHead` or `ConvFCHead`; an MLP mask head) to read channels-last features in (h, w, c) order.
    Other heads (convolutional, res5) are left as they are. Returns `model`.
    """
    heads = getattr(model, "roi_heads", None)
    pairs = [("box_head", "box_roi_pool"), ("mask_head", "mask_roi_pool")]
    for head_name, pool_name in pairs:
        head, pool = getattr(heads, head_name, None), getattr(heads, pool_name, None)
        if head is None or pool is None:
            continue
        height, width = pool.output_size
        if type(head) in _LINEAR_NAMES:
            first, second = _LINEAR_NAMES[type(head)]
            fc = getattr(head, first)
            hwc_columns(fc, fc.in_features // (height * width), height, width)
            setattr(heads, head_name, ChannelsLastMLPHead((first, fc), (second, getattr(head, second))))
        elif isinstance(head, ConvFCHead):
            index = next(i for i, layer in enumerate(head) if isinstance(layer, nn.Flatten))
            fc = head[index + 1]
            hwc_columns(fc, fc.in_features // (height * width), height, width)
            head[index] = ChannelsLastFlatten()
    return model


def cast_weights(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store the weights and biases of every Conv2d, ConvTranspose2d and Linear of `model` in `dtype` (in
    place, memory format kept), the cast autocast would do on each call. Returns `model`."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            module.to(dtype)
    return model
