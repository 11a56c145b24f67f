"""CPU inference: each convolution with its ReLU and residual add as one oneDNN primitive, weights packed once.

In eager PyTorch a ReLU or a residual add is a pass of its own over a feature map, and every convolution
reorders its weight into oneDNN's blocked layout on every call. oneDNN can apply both as post-ops inside the
convolution, which is what OpenVINO and inductor's CPU freezing do. `fuse_convolutions` rewrites a model in
place to call the same operators inductor emits, `torch.ops.mkldnn._convolution_pointwise` (unary: conv +
bias -> ReLU; binary: conv + bias + other -> ReLU), on weights packed once by
`torch.ops.mkldnn._reorder_convolution_weight`. No compiler is involved; the modules stay eager.

Numerics: the products and sums of `nn.Conv2d` on oneDNN, ReLU exact, the residual add on the float32 result:
fp32 maps of the full-size ResNet-50 trunk come out bit-identical to conv -> add -> relu; on small maps oneDNN may
pick another kernel for packed weights and sum in another order (float rounding, ~1e-6 relative). At bf16 the
add happens before the one rounding to bf16 instead of after two.

Rewritten (BatchNorm already folded into the convs, `models.inference.fold_batchnorm`):
- torchvision's `Bottleneck` / `BasicBlock` (the trunk, and the C4 head's res5) -> `FusedBlock`;
- the trunk's stem, conv1 -> ReLU;
- in every `nn.Sequential`, each Conv2d, fused with a ReLU that follows it (past folded-BN `Identity`s):
  torchvision's `Conv2dNormActivation`, so the FPN, the RPN head's conv, the mask and keypoint heads' convs;
- torchvision's `FeaturePyramidNetwork` -> `FusedFPN`: each top-down sum inside its lateral 1x1 conv.
Left as they are: convs with a string padding or a non-zero padding mode, transposed convs, and the
rest of the network. State-dict keys are kept (a fused conv saves its weight back in dense form).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import FeaturePyramidNetwork

from .resnet import ResNetTrunk


def available() -> bool:
    """True where this torch has oneDNN and the fused-convolution operators (x86 and ARM CPU builds)."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_convolution_pointwise")
        and hasattr(ops, "_reorder_convolution_weight")
    )


class FusedConv2d(nn.Module):
    """A Conv2d as one oneDNN primitive: x -> conv(x) + bias [+ other] [-> ReLU].

    Input FloatTensor[B, C_in, H, W] (cast to the weight's dtype, as autocast would), any memory format;
    output [B, C_out, H', W'] in the weight's dtype, channels-last for channels-last input. `other` is added before the
    ReLU and must have the output's shape. `weight` is packed into oneDNN's layout at the first call, for that
    call's input size (oneDNN picks its kernel by the problem's shape; other sizes still run, reordering as
    plain convolutions do). The module saves, copies, pickles, loads and moves (`.to`) with a dense weight,
    packed again at the next call.
    """

    def __init__(self, conv: nn.Conv2d, relu: bool) -> None:
        super().__init__()
        self.kernel_size = tuple(conv.kernel_size)
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.relu = relu
        self.register_buffer("weight", conv.weight.detach())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach())

    def forward(self, x: Tensor, other: Tensor | None = None) -> Tensor:
        x = x.to(self.weight.dtype)
        if not self.weight.is_mkldnn:
            self.weight = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, self.padding, self.stride, self.dilation, self.groups, list(x.shape)
            )
        args = (self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups)
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, *args, "relu" if self.relu else "none", [], "")
        other = other.to(self.weight.dtype)
        unary = "relu" if self.relu else None
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, *args, "add", 1.0, unary, [], "")

    def _dense_weight(self) -> Tensor:
        return self.weight.to_dense() if self.weight.is_mkldnn else self.weight

    def _unpack(self) -> None:
        self.weight = self._dense_weight()

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        destination[prefix + "weight"] = self._dense_weight()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._unpack()
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn: Any, recurse: bool = True) -> FusedConv2d:
        self._unpack()
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, Any]:  # copy.deepcopy, pickle: a dense weight
        state = self.__dict__.copy()
        state["_buffers"] = {**self._buffers, "weight": self._dense_weight()}
        return state


class FusedBlock(nn.Module):
    """torchvision's Bottleneck (conv1, conv2, conv3) or BasicBlock (conv1, conv2), BatchNorm folded, with the
    residual add and the last ReLU inside the last conv. Same input / output as the block it replaces."""

    def __init__(self, block: Bottleneck | BasicBlock) -> None:
        super().__init__()
        names = ["conv1", "conv2"] + (["conv3"] if isinstance(block, Bottleneck) else [])
        for name in names:
            self.add_module(name, FusedConv2d(getattr(block, name), relu=True))
        self.names = names
        self.downsample = None
        if block.downsample is not None:
            self.downsample = nn.Sequential(FusedConv2d(block.downsample[0], relu=False))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        *inner, last = (getattr(self, name) for name in self.names)
        out = x
        for conv in inner:
            out = conv(out)
        return last(out, identity)


class FusedFPN(nn.Module):
    """torchvision's FeaturePyramidNetwork with each top-down sum inside its lateral 1x1 conv (a binary post-op):
    the same maps, one pass over each fine level fewer. Holds the FPN's `inner_blocks`, `layer_blocks` and
    `extra_blocks` under their names; input / output as `FeaturePyramidNetwork.forward`."""

    def __init__(self, fpn: FeaturePyramidNetwork) -> None:
        super().__init__()
        self.inner_blocks, self.layer_blocks, self.extra_blocks = fpn.inner_blocks, fpn.layer_blocks, fpn.extra_blocks

    def forward(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        names, maps = list(x.keys()), list(x.values())
        last_inner = self.inner_blocks[-1](maps[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(maps) - 2, -1, -1):
            top_down = F.interpolate(last_inner, size=maps[idx].shape[-2:], mode="nearest")
            last_inner = _only_conv(self.inner_blocks[idx])(maps[idx], top_down)  # 1x1: the lateral's size
            results.insert(0, self.layer_blocks[idx](last_inner))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, maps, names)
        return OrderedDict(zip(names, results, strict=True))


def fuse_convolutions(model: nn.Module) -> nn.Module:
    """Rewrite `model` in place as the module docstring lists, for CPU inference (eval, no autograd), after its
    BatchNorms are folded and its weights are in their final dtype and memory format. Returns `model`.
    A model on another device, or a torch without `available()` operators, is returned untouched."""
    if not available() or any(p.device.type != "cpu" for p in model.parameters()):
        return model
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (Bottleneck, BasicBlock)) and _folded_block(child):
                setattr(parent, name, FusedBlock(child))
    for trunk in [m for m in model.modules() if isinstance(m, ResNetTrunk)]:
        if _fusable(trunk.conv1) and isinstance(trunk.bn1, nn.Identity):
            trunk.conv1, trunk.relu = FusedConv2d(trunk.conv1, relu=True), nn.Identity()
    for sequential in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        _fuse_sequential(sequential)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is FeaturePyramidNetwork and all(_lateral(block) for block in child.inner_blocks):
                setattr(parent, name, FusedFPN(child))
    return model


def _fuse_sequential(sequential: nn.Sequential) -> None:
    """Each fusable Conv2d of `sequential` -> FusedConv2d, taking in the first ReLU after it when only folded
    BatchNorms (`Identity`) stand between them (that ReLU becomes an Identity)."""
    children = list(sequential)
    for i, child in enumerate(children):
        if not _fusable(child):
            continue
        relu_at = _relu_after(children, i)
        if relu_at is not None:
            sequential[relu_at] = nn.Identity()
        sequential[i] = FusedConv2d(child, relu=relu_at is not None)


def _relu_after(children: list[nn.Module], i: int) -> int | None:
    """The index of the ReLU after children[i] with only Identity modules between, or None."""
    for j in range(i + 1, len(children)):
        if isinstance(children[j], nn.ReLU):
            return j
        if not isinstance(children[j], nn.Identity):
            return None
    return None


def _only_conv(block: nn.Module) -> FusedConv2d:
    """The one FusedConv2d of a Sequential whose other children are Identity (a `_lateral` block)."""
    return next(m for m in block if isinstance(m, FusedConv2d))


def _lateral(block: nn.Module) -> bool:
    """A fused FPN lateral: a Sequential of one 1x1, stride-1, unpadded FusedConv2d without ReLU (+ Identity)."""
    if not isinstance(block, nn.Sequential):
        return False
    convs = [m for m in block if isinstance(m, FusedConv2d)]
    others_ok = all(isinstance(m, (FusedConv2d, nn.Identity)) for m in block)
    if len(convs) != 1 or not others_ok:
        return False
    conv = convs[0]
    return conv.kernel_size == (1, 1) and conv.stride == [1, 1] and conv.padding == [0, 0] and not conv.relu


def _fusable(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and module.weight.dtype in (torch.float32, torch.bfloat16)
    )


def _folded_block(block: Bottleneck | BasicBlock) -> bool:
    names = ["1", "2"] + (["3"] if isinstance(block, Bottleneck) else [])
    convs_ok = all(_fusable(getattr(block, f"conv{n}")) for n in names)
    norms_ok = all(isinstance(getattr(block, f"bn{n}"), nn.Identity) for n in names)
    downsample = block.downsample
    downsample_ok = downsample is None or (
        isinstance(downsample, nn.Sequential)
        and _fusable(downsample[0])
        and all(isinstance(m, nn.Identity) for m in list(downsample)[1:])
    )
    return convs_ok and norms_ok and downsample_ok
