"""The ablation variants of experiments/ablations.py and the Mask R-CNN paper's figures they are set beside.

Each variant is a few `ModelConfig` settings (`--model-set FIELD=VALUE`) on one small base model; each effect
is one difference between two variants, with the paper's difference of the same kind. Paper figures are mask AP
(COCO minival, ResNet-50, He et al. 2017, arXiv:1703.06870 v3), or keypoint AP for the keypoint rows:

- Table 2b (ResNet-50-C4): sigmoid 30.3 / 51.2 / 31.5 vs softmax 24.8 / 44.1 / 25.1 (AP / AP50 / AP75).
- Table 2c (ResNet-50-C4): RoIPool 26.9 / 48.8 / 26.4, RoIWarp (bilinear, average) 27.1 / 48.9 / 27.1, RoIAlign
  (average) 30.3 / 51.2 / 31.5. The paper has no FPN row for RoIPool or RoIWarp: the FPN variants are ours alone,
  set beside Table 2c's C4 figures.
- Table 2d (ResNet-50-C5, stride 32): RoIPool 23.6 / 46.5 / 21.6 vs RoIAlign 30.9 / 51.8 / 32.1.
- Table 2e (ResNet-50-FPN): MLP (fc 1024, 1024, 80 x 28 x 28) 31.5 / 53.7 / 32.8 vs FCN 33.6 / 55.2 / 35.3.
- Table 4 (ResNet-50-FPN, keypoints only): RoIPool 59.8 / 86.2 / 66.7 vs RoIAlign 64.2 / 86.6 / 69.7 AP_kp.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperFigures:
    """AP, AP50, AP75 (percent) of one row of the paper, and where it is."""

    ap: float
    ap50: float
    ap75: float
    source: str  # e.g. "Table 2c (R50-C4)"


@dataclass(frozen=True)
class Variant:
    """One trained model: name, `FIELD=VALUE` settings on the base, the paper's row it stands for (if any).

    keypoints: trained and scored on keypoints (synthetic shapes' extreme points; AP_kp is its figure).
    """

    name: str
    settings: tuple[str, ...]
    paper: PaperFigures | None = None
    keypoints: bool = False


@dataclass(frozen=True)
class Effect:
    """better minus worse, as the paper orders them (a positive paper delta: `better` won there)."""

    title: str
    better: str
    worse: str


C4_POOL = PaperFigures(26.9, 48.8, 26.4, "Table 2c (R50-C4)")
C4_WARP = PaperFigures(27.1, 48.9, 27.1, "Table 2c (R50-C4)")
C4_ALIGN = PaperFigures(30.3, 51.2, 31.5, "Table 2c (R50-C4)")
C5_POOL = PaperFigures(23.6, 46.5, 21.6, "Table 2d (R50-C5)")
C5_ALIGN = PaperFigures(30.9, 51.8, 32.1, "Table 2d (R50-C5)")
SOFTMAX = PaperFigures(24.8, 44.1, 25.1, "Table 2b (R50-C4)")
SIGMOID = PaperFigures(30.3, 51.2, 31.5, "Table 2b (R50-C4)")
MLP = PaperFigures(31.5, 53.7, 32.8, "Table 2e (R50-FPN)")
FCN = PaperFigures(33.6, 55.2, 35.3, "Table 2e (R50-FPN)")
KP_POOL = PaperFigures(59.8, 86.2, 66.7, "Table 4 (R50-FPN, AP_kp)")
KP_ALIGN = PaperFigures(64.2, 86.6, 69.7, "Table 4 (R50-FPN, AP_kp)")

VARIANTS: tuple[Variant, ...] = (
    # The base (FPN, RoIAlign, FCN mask head, sigmoid masks) is the paper's Mask R-CNN; FPN rows: Table 2c's C4.
    Variant("fpn-align", ("pooler=align",), C4_ALIGN),
    Variant("fpn-pool", ("pooler=pool",), C4_POOL),
    Variant("fpn-warp", ("pooler=warp",), C4_WARP),
    Variant("c4-align", ("features=c4", "pooler=align"), C4_ALIGN),
    Variant("c4-pool", ("features=c4", "pooler=pool"), C4_POOL),
    Variant("c4-warp", ("features=c4", "pooler=warp"), C4_WARP),
    Variant("c5-align", ("features=c5", "pooler=align"), C5_ALIGN),
    Variant("c5-pool", ("features=c5", "pooler=pool"), C5_POOL),
    Variant("mask-sigmoid", ("mask_loss=sigmoid",), SIGMOID),
    Variant("mask-softmax", ("mask_loss=softmax",), SOFTMAX),
    Variant("mask-fcn", ("mask_head=fcn",), FCN),
    Variant("mask-mlp", ("mask_head=mlp",), MLP),
    Variant("kp-align", ("pooler=align",), KP_ALIGN, keypoints=True),
    Variant("kp-pool", ("pooler=pool",), KP_POOL, keypoints=True),
)
BY_NAME = {v.name: v for v in VARIANTS}

EFFECTS: tuple[Effect, ...] = (
    Effect("RoIAlign vs RoIPool, FPN", "fpn-align", "fpn-pool"),
    Effect("RoIAlign vs RoIWarp, FPN", "fpn-align", "fpn-warp"),
    Effect("RoIWarp vs RoIPool, FPN", "fpn-warp", "fpn-pool"),
    Effect("RoIAlign vs RoIPool, C4", "c4-align", "c4-pool"),
    Effect("RoIAlign vs RoIWarp, C4", "c4-align", "c4-warp"),
    Effect("RoIWarp vs RoIPool, C4", "c4-warp", "c4-pool"),
    Effect("RoIAlign vs RoIPool, C5", "c5-align", "c5-pool"),
    Effect("sigmoid vs softmax masks", "mask-sigmoid", "mask-softmax"),
    Effect("FCN vs MLP mask head", "mask-fcn", "mask-mlp"),
    Effect("keypoints: RoIAlign vs RoIPool", "kp-align", "kp-pool"),
)
