"""End to end inference: uint8 images -> COCO results (boxes, scores, classes, RLE masks).

`Predictor` owns the device and numeric precision; the model stays precision-agnostic. Masks leave the
model as [N, 28, 28] probabilities, are pasted box by box (`postprocess`) and encoded straight from the
crops (`rle`): no full-image mask is ever built unless asked for.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.ops import FrozenBatchNorm2d

from . import rle
from .box_ops import at_least
from .host_memory import retain_freed_memory
from .inference_layout import cast_weights, channels_last_heads
from .mask_rcnn import MaskRCNN
from .onednn_fusion import fuse_convolutions
from .options import InferenceOptions
from .postprocess import MaskCrops, paste_masks
from .structures import Detections

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Predictor:
    """A model on a device, at a precision: `detect` for tensors, `__call__` for COCO results.

    precision: fp32 everywhere; bf16 on CPUs with bf16 support and on GPUs; fp16 on GPUs. Reduced
    precision runs the convolutions and matrix products under autocast; box decoding, NMS and the mask
    paste stay in float32. fp32 on a GPU is IEEE float32, not TF32 (`ieee_fp32`). BatchNorm layers (frozen
    at inference) are folded into the convolutions before them, in a copy of the model: one pass less over
    every feature map, the same outputs to float rounding.
    channels_last (NHWC) convolutions are a quarter faster on the CPU (oneDNN) and suit GPU tensor cores.
    The copy is rewritten once more at load (models/inference_layout.py): on the CPU, heads that flatten RoI
    features read the poolers' channels-last output without an NCHW copy (fc columns permuted); at bf16 / fp16
    the conv and linear weights are stored in that precision, the cast autocast would otherwise do every call;
    on the CPU the convolutions of ResNet blocks, the FPN and conv stacks run with their ReLU and residual add as
    one oneDNN primitive on weights packed at the first call (models/onednn_fusion.py). A CPU Predictor also
    raises glibc's malloc thresholds for the process, so that feature maps reuse freed memory instead of
    page-faulting fresh pages (models/host_memory.py; threads started before it keep their own arenas).
    A model whose `config.inference_layout` is "exact" gets none of the layout rewrites (no BatchNorm folding, no
    channels-last heads, no fused convolutions; channels_last=None follows the layout), so its outputs are the
    model's own bit for bit.
    """

    def __init__(
        self,
        model: MaskRCNN,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 needs a CUDA device; use bf16 on the CPU")
        if precision == "bf16" and self.device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise ValueError("this CPU has no bf16 support; use fp32")
        self.precision = precision
        fast = model.config.inference_layout == "fast"
        self.model = (fold_batchnorm(model) if fast else copy.deepcopy(model)).eval().to(self.device)
        channels_last = fast if channels_last is None else channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if fast and self.device.type == "cpu":  # where the poolers' output is channels-last (models/poolers.py)
            channels_last_heads(self.model)
        if precision != "fp32":
            cast_weights(self.model, PRECISIONS[precision])
        if fast and self.device.type == "cpu":
            fuse_convolutions(self.model)
        if self.device.type == "cpu":
            retain_freed_memory()
        self.channels_last = channels_last
        self.config = model.config

    @contextlib.contextmanager
    def _numerics(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.precision == "fp32":
                with ieee_fp32() if self.device.type == "cuda" else contextlib.nullcontext():
                    yield
            else:
                with torch.autocast(self.device.type, dtype=PRECISIONS[self.precision]):
                    yield

    def detect(
        self, images: list[Tensor], options: InferenceOptions | None = None, masks: bool = True
    ) -> list[Detections]:
        """images: B UInt8Tensor[3, H_i, W_i] (any device) -> B Detections on this predictor's device."""
        with self._numerics():
            return self.model.predict([img.to(self.device, non_blocking=True) for img in images], options, masks)

    def __call__(
        self,
        images: list[Tensor],
        options: InferenceOptions | None = None,
        masks: bool = True,
        full_masks: bool = False,
    ) -> list[list[dict[str, Any]]]:
        """B images -> B lists of COCO-style results, best first (see `coco_results`)."""
        opts = (options or InferenceOptions()).resolve(self.config)
        return [self.results(det, opts, masks, full_masks=full_masks) for det in self.detect(images, opts, masks)]

    def results(
        self,
        det: Detections,
        options: InferenceOptions | None = None,
        masks: bool = True,
        labels: frozenset[int] | None = None,
        full_masks: bool = False,
    ) -> list[dict[str, Any]]:
        """One image's Detections -> its COCO results under `options` (see `select`), masks pasted at
        `mask_thresh` and RLE-encoded for the kept detections only.

        `det` may come from a call with looser options (a lower score threshold, more detections, no label
        filter), as the service's shared batches do: the result is what a call with `options` gives.
        """
        opts = (options or InferenceOptions()).resolve(self.config)
        det = select(det, opts.score_thresh, opts.detections_per_img, labels)
        crops = None
        if masks and det.masks is not None:
            config = self.config
            crops = paste_masks(
                det.masks.float(),
                det.boxes.float(),
                det.image_size,
                opts.mask_thresh,
                method=config.mask_paste,
                inclusive=config.mask_thresh_inclusive,
            )
        return coco_results(det, crops, self.config.class_names, self.config.category_ids, full_masks)


def select(
    det: Detections, score_thresh: float, detections_per_img: int, labels: frozenset[int] | None = None
) -> Detections:
    """The detections with score >= score_thresh (inclusive) and a label in `labels` (contiguous class
    indices; None = all), best first, at most `detections_per_img`.

    Cutting a looser call's detections this way equals running with these options: class-wise NMS only lets
    a higher score suppress a lower one, so candidates under the threshold never change what survives above
    it. (A label filter applies to the best detections of all classes, as the service documents.)
    """
    keep = at_least(det.scores, score_thresh)
    if labels is not None:
        keep &= torch.isin(det.labels, torch.tensor(sorted(labels), device=det.labels.device))
    index = torch.nonzero(keep).squeeze(1)
    index = index[torch.argsort(det.scores[index], descending=True, stable=True)][:detections_per_img]
    return det[index]


@contextlib.contextmanager
def ieee_fp32() -> Iterator[None]:
    """Full-precision float32 convolutions and matrix products on CUDA while the block runs.

    By default PyTorch lets cuDNN run float32 convolutions in TF32 (10-bit mantissa, like float16) on Ampere
    and newer GPUs. That moves scores by ~1e-3 and, where scores nearly tie, changes which detections win, and
    differently for every conv algorithm (channels-last, folded BN). "fp32" here means the CPU's float32, so
    that a GPU gives the detections torchvision gives. These are process-wide flags: restored on exit.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` with every eval-mode BatchNorm that follows a conv merged into that conv.

    Covers torchvision's ResNet blocks (`convN` + `bnN`, `downsample` = conv, BN) and `Conv2dNormActivation`
    (conv, BN, ReLU) in the FPN and heads of v2.
    """
    model = copy.deepcopy(model).eval()
    norm_types = (FrozenBatchNorm2d, nn.BatchNorm2d)
    for parent in list(model.modules()):
        children = dict(parent.named_children())
        pairs = [(f"conv{n[2:]}", n) for n in children if n.startswith("bn") and f"conv{n[2:]}" in children]
        names = list(children)
        if isinstance(parent, nn.Sequential):
            pairs += [(a, b) for a, b in itertools.pairwise(names) if isinstance(children[a], nn.Conv2d)]
        for conv_name, bn_name in pairs:
            conv, bn = children[conv_name], children[bn_name]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, norm_types)):
                continue
            weight, bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
            )
            conv.weight, conv.bias = weight, bias
            setattr(parent, bn_name, nn.Identity())
    return model


def coco_results(
    det: Detections,
    crops: MaskCrops | None,
    class_names: tuple[str, ...],
    category_ids: tuple[int, ...],
    full_masks: bool = False,
) -> list[dict[str, Any]]:
    """One dict per detection, in COCO results format (drops into `COCO.loadRes`).

    {category_id, label, score, bbox: [x, y, w, h] in input-image pixels, segmentation: {size: [h, w],
    counts: str}}; `mask`: (H, W) bool array too when full_masks. Keypoint models add `keypoints`, COCO's flat
    [x1, y1, v1, ..., xK, yK, vK] in input-image pixels with v = 2 (predicted), and `keypoint_scores`, the K
    heatmap logits (torchvision's `keypoints_scores`).
    """
    labels = det.labels.tolist()
    scores = det.scores.float().tolist()
    boxes = det.boxes.float().cpu()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    segmentations = rle.encode(crops) if crops is not None else [None] * len(labels)
    full = crops.full() if crops is not None and full_masks else None
    keypoints: list[Any] = [None] * len(labels)
    keypoint_scores: list[Any] = [None] * len(labels)
    if det.keypoints is not None:
        points = det.keypoints.float().cpu()
        flat = torch.cat([points[..., :2], torch.full_like(points[..., 2:], 2.0)], dim=-1)
        keypoints, keypoint_scores = flat.flatten(1).tolist(), points[..., 2].tolist()
    results = []
    for i, (label, score, bbox, seg) in enumerate(zip(labels, scores, xywh, segmentations, strict=True)):
        item: dict[str, Any] = {
            "category_id": category_ids[label] if category_ids else label,
            "label": class_names[label] if class_names else str(label),
            "score": score,
            "bbox": bbox,
        }
        if seg is not None:
            item["segmentation"] = seg
        if full is not None:
            item["mask"] = full[i]
        if keypoints[i] is not None:
            item["keypoints"], item["keypoint_scores"] = keypoints[i], keypoint_scores[i]
        results.append(item)
    return results
