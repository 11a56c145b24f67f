"""Architecture of a Mask R-CNN: a small frozen dataclass that travels inside the weights file.

Like a nanoGPT checkpoint's `model_args`, the config is all a reader needs to rebuild the model from the file
alone; the service has no architecture flags. Inference defaults (score threshold, NMS IoU, ...) live here
too, and each request may override them through `InferenceOptions`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, get_args, get_origin, get_type_hints

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


Backbone = Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnext101_32x8d"]
# Which maps the heads read (the paper's section 3.1, "Network Architecture"): fpn = P2-P6 for the RPN, P2-P5 for
# RoIAlign; c4 = res4 (stride 16) for both, with res5 as the RoI head (Detectron2's `Res5ROIHeads`; box_head*,
# mask_head_norm unused, mask_head_dim = its deconv's width); c5 = res5 (stride 32) for both, with the FPN heads
# (the paper's Table 2d). c4 and c5 have no FPN (fpn_* unused).
Features = Literal["fpn", "c4", "c5"]
TrunkNorm = Literal["frozen_bn", "bn", "gn"]
Norm = Literal["none", "bn", "gn"]
BoxHead = Literal["mlp", "conv_fc"]
Pooler = Literal["align", "pool", "warp"]
MaskHead = Literal["fcn", "mlp", "none"]
MaskLoss = Literal["sigmoid", "softmax"]
InputChannels = Literal["rgb", "bgr"]
InputRange = Literal["unit", "byte"]
ResizeRounding = Literal["floor", "half_up"]
ResizeKernel = Literal["float_bilinear", "pil_uint8"]
FrozenBNArithmetic = Literal["scale_shift", "batch_norm"]
InferenceLayout = Literal["fast", "exact"]
AnchorRounding = Literal["round", "exact"]
AnchorStride = Literal["padded_over_feature", "nominal"]
RpnNmsScore = Literal["probability", "logit"]
RpnBoxFilter = Literal["min_size", "empty"]
MaskPaste = Literal["interpolate", "grid_sample"]
SoftmaxBackground = Literal["first", "last"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes the network; each field decides one thing. Defaults: torchvision's v1 model.

    torchvision's `maskrcnn_resnet50_fpn_v2` differs from v1 in four fields: rpn_conv_depth=2,
    box_head="conv_fc", fpn_norm="bn", mask_head_norm="bn" (the `resnet50_fpn_v2` preset).
    """

    num_classes: int = 91  # including background at index 0
    # Trunk: the ResNet depth (torchvision's resnet18 ... resnet101) and its stem width; 64 is torchvision's
    # ResNet, smaller is a narrow one.
    backbone: Backbone = "resnet50"
    backbone_width: int = 64
    # Stride of each strided bottleneck on its 1x1 conv1 instead of the 3x3 conv2: Detectron2's MSRA trunks
    # (`MODEL.RESNETS.STRIDE_IN_1X1`, its R50/R101); False is torchvision's (and Detectron2's X101).
    trunk_stride_in_1x1: bool = False
    features: Features = "fpn"
    # The trunk's norm: frozen_bn (ImageNet statistics, the paper's choice with a pretrained trunk; torchvision's
    # FrozenBatchNorm2d) | bn | gn. A model trained from scratch needs a trainable one.
    trunk_norm: TrunkNorm = "frozen_bn"
    fpn_channels: int = 256
    # The norm after each FPN conv (torchvision's `FeaturePyramidNetwork(norm_layer=)`): none in v1, bn in v2.
    fpn_norm: Norm = "none"
    # RPN: 3x3 convs before the objectness and box convs (torchvision's `RPNHead(conv_depth=)`): 1 in v1, 2 in v2.
    rpn_conv_depth: int = 1
    # One anchor size per FPN level (P2-P6), or all of them on the single level of c4 / c5; per aspect ratio.
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    # RoI heads.
    # RoI features for every branch (models/poolers.py): align = RoIAlign, the paper's choice (torchvision's
    # MultiScaleRoIAlign) | pool = RoIPool (quantised, max) | warp = RoIWarp (quantised box, bilinear); Table 2c.
    pooler: Pooler = "align"
    pooler_aligned: bool = False  # align only: half-pixel offset (roi_align(aligned=True), Detectron2's ROIAlignV2)
    pooler_sampling_ratio: int = 2  # align and warp: bilinear samples per bin side; 0 = adaptive (Detectron2)
    # The box head: mlp = two fc layers (torchvision's TwoMLPHead, v1) | conv_fc = four 3x3 conv+BN, one fc
    # (torchvision's FastRCNNConvFCHead, v2).
    box_head: BoxHead = "mlp"
    box_head_dim: int = 1024  # width of the box head's fc layers
    # The norm after each of the mask head's 4 convs (torchvision's `MaskRCNNHeads(norm_layer=)`): none in v1, bn
    # in v2.
    mask_head_norm: Norm = "none"
    mask_head_dim: int = 256  # channels of the 4 mask FCN convs
    # The mask branch (paper Table 2e): fcn = 4 convs + deconv (models/mask_head.py) | mlp = fc layers
    # (models/mask_mlp_head.py) | none = no mask branch (e.g. Keypoint R-CNN alone).
    mask_head: MaskHead = "fcn"
    mask_mlp_dim: int = 1024  # width of the MLP mask head's two fc layers
    # Mask probabilities and loss (Table 2b): sigmoid = per-class sigmoid + BCE on the ground-truth class (the
    # paper's) | softmax = per-pixel softmax over the K classes + multinomial cross-entropy (models/mask_losses.py).
    mask_loss: MaskLoss = "sigmoid"
    # RoI feature size for the mask head; predicted masks are twice this. c4: the RoI size of both branches
    # before res5 (which halves it), and of the predicted masks (Detectron2's R50-C4: 14).
    mask_resolution: int = 14
    # Keypoint branch (Keypoint R-CNN, paper sec. 5; torchvision's KeypointRCNNHeads / Predictor): 0 = none.
    num_keypoints: int = 0
    keypoint_head_dim: int = 512  # channels of its 8 3x3 convs
    keypoint_resolution: int = 14  # RoI feature size; heatmaps are 4x this (56)
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    # Inference defaults.
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 100
    mask_thresh: float = 0.5
    # Input transform.
    min_size: int | tuple[int, ...] = 800  # several sizes: training picks one per image, inference the last
    max_size: int = 1333
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    # ---- Detectron2's inference rules, one field each (models/detectron2 sets them all: the `d2` preset). The
    # defaults are torchvision's behaviour; numbers are the rows of shared/detectron2-notes.md, and each field's
    # comment names the Detectron2 function it reproduces.
    # 1. Channel order the trunk sees (`INPUT.FORMAT`; Detectron2's MSRA/FAIR trunks take BGR).
    input_channels: InputChannels = "rgb"
    # 1. Pixel range image_mean / image_std apply to: unit = [0, 1] (torchvision) | byte = 0-255 (Detectron2's
    #    `GeneralizedRCNN.preprocess_image`, PIXEL_MEAN / PIXEL_STD).
    input_range: InputRange = "unit"
    # 1. Padding of each batch to a multiple of this (FPN: 32; Detectron2's C4 pads to none, `size_divisibility`
    #    0, which is 1 here).
    size_divisible: int = 32
    # 2. Resized size: floor(side x scale) (torchvision) | int(side x scale + 0.5) of Detectron2's
    #    `ResizeShortestEdge.get_output_shape`.
    resize_rounding: ResizeRounding = "floor"
    # 2. Resampling: bilinear on the normalised float image (F.interpolate, torchvision) | PIL's bilinear on the
    #    uint8 image before normalising (Detectron2's `ResizeTransform.apply_image`).
    resize_kernel: ResizeKernel = "float_bilinear"
    # 4. Frozen BatchNorm of the trunk: x * scale + shift (torchvision's FrozenBatchNorm2d) | F.batch_norm with the
    #    running statistics (Detectron2's FrozenBatchNorm2d at inference).
    frozen_bn_arithmetic: FrozenBNArithmetic = "scale_shift"
    # 4. How inference lays the model out: fast = frozen BatchNorm folded into the conv before it, NHWC
    #    (channels-last) convolutions, images of one padded size batched; outputs equal to float rounding |
    #    exact = the modules as built, NCHW, one image per forward, so that outputs equal the reference
    #    library's bit for bit (`Predictor`, `MaskRCNN.predict`).
    inference_layout: InferenceLayout = "fast"
    # 5. Cell anchors: rounded to whole pixels (torchvision's `AnchorGenerator.generate_anchors`) | exact
    #    (Detectron2's `DefaultAnchorGenerator.generate_cell_anchors`, e.g. +-22.627 x 11.314).
    anchor_rounding: AnchorRounding = "round"
    # 6. Anchor grid step: padded size // feature size (torchvision; 61 on P6 of an 800-high batch) | the level's
    #    nominal stride, the power of two nearest that ratio (Detectron2's fixed strides 4 ... 64).
    anchor_stride: AnchorStride = "padded_over_feature"
    # 7. Score the RPN ranks proposals by in NMS: probability (sigmoid; torchvision) | logit (Detectron2's
    #    `find_top_rpn_proposals`; the sigmoid saturates into ties).
    rpn_nms_score: RpnNmsScore = "probability"
    # 7. Proposals dropped before NMS: min_size = a side under 1e-3 px (torchvision's remove_small_boxes) |
    #    empty = a side <= 0 (Detectron2's `Boxes.nonempty`).
    rpn_box_filter: RpnBoxFilter = "min_size"
    # 13. Output boxes, once scaled to the original image: as they are (torchvision) | clipped to it again and
    #    empty ones dropped (Detectron2's `detector_postprocess`).
    output_box_clip: bool = False
    # 14. Mask paste: interpolate = the 28x28 mask padded to 30, box widened and rounded, F.interpolate
    #    (torchvision's paste_masks_in_image) | grid_sample = bilinear samples at pixel centres within the exact
    #    box (Detectron2's `_do_paste_mask`).
    mask_paste: MaskPaste = "interpolate"
    # 11. Where the background logit sits when the box classifier's softmax is summed: first (ours, torchvision)
    #    | last (Detectron2's class order, `fast_rcnn_inference_single_image`). Only float rounding differs.
    box_softmax_background: SoftmaxBackground = "first"
    # 14. A pixel is in the mask when its probability is > mask_thresh (torchvision) or >= (Detectron2).
    mask_thresh_inclusive: bool = False
    # What the classes mean: name and dataset category id of each contiguous label (index 0 = background).
    # Empty category_ids means label == category id (torchvision's COCO models use COCO's 91 ids directly).
    class_names: tuple[str, ...] = field(default=(), compare=False)
    category_ids: tuple[int, ...] = field(default=(), compare=False)
    # Name of each keypoint (models.keypoint_names derives the flip map, skeleton and OKS sigmas from them).
    keypoint_names: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name, allowed in _literal_fields().items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
        if self.size_divisible < 1:
            raise ValueError(f"size_divisible must be >= 1 (1 = no padding); got {self.size_divisible}")
        if self.features == "fpn" and len(self.anchor_sizes) != 5:
            raise ValueError(f"fpn needs one anchor size per level P2-P6 (5); got {len(self.anchor_sizes)}")
        if self.features == "c4" and self.mask_head == "mlp":
            raise ValueError("c4 runs res5 as the mask head: mask_head must be 'fcn' (its deconv predictor) or 'none'")
        if self.trunk_stride_in_1x1 and RESNET_LAYERS[self.backbone].block == "basic":
            raise ValueError(f"trunk_stride_in_1x1 needs a bottleneck trunk; {self.backbone} has basic blocks")
        if self.rpn_conv_depth not in (1, 2):
            raise ValueError(f"rpn_conv_depth must be 1 or 2; got {self.rpn_conv_depth!r}")
        if self.pooler_aligned and self.pooler != "align":
            raise ValueError(f"pooler_aligned applies to pooler 'align' only; got pooler {self.pooler!r}")
        if self.pooler_sampling_ratio < 0:
            raise ValueError(f"pooler_sampling_ratio must be >= 0 (0 = adaptive); got {self.pooler_sampling_ratio}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if self.category_ids and len(self.category_ids) != self.num_classes:
            raise ValueError(f"{len(self.category_ids)} category ids for {self.num_classes} classes")
        if self.num_keypoints < 0:
            raise ValueError(f"num_keypoints must be >= 0; got {self.num_keypoints}")
        if self.num_keypoints and self.features == "c4":
            raise ValueError("c4's res5 RoI head has no keypoint branch: num_keypoints needs features 'fpn' or 'c5'")
        if self.keypoint_names and len(self.keypoint_names) != self.num_keypoints:
            raise ValueError(f"{len(self.keypoint_names)} keypoint names for {self.num_keypoints} keypoints")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from JSON: unknown keys are an error (a newer file), lists become tuples."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@cache
def _literal_fields() -> dict[str, tuple[Any, ...]]:
    """The allowed values of each `Literal`-typed field of ModelConfig, read from its type hints."""
    hints = get_type_hints(ModelConfig)
    return {name: get_args(hint) for name, hint in hints.items() if get_origin(hint) is Literal}


@dataclass(frozen=True)
class ResNetSpec:
    """One trunk of torchvision's `models.resnet`: block type, blocks per stage (res2-res5), and ResNeXt's
    cardinality (`groups`) and width of each group at width 64 (`width_per_group`)."""

    block: Literal["basic", "bottleneck"]
    layers: tuple[int, int, int, int]
    groups: int = 1
    width_per_group: int = 64


# torchvision's resnet18 ... resnet101 and resnext101_32x8d.
RESNET_LAYERS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2)),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3)),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetSpec("bottleneck", (3, 4, 23, 3)),
    "resnext101_32x8d": ResNetSpec("bottleneck", (3, 4, 23, 3), groups=32, width_per_group=8),
}
