"""RoI feature extraction over the FPN levels.

The paper's RoIAlign (bilinear sampling, no quantisation) assigns each box to level
floor(4 + log2(sqrt(wh) / 224)) clamped to P2-P5, exactly torchvision's `MultiScaleRoIAlign`, which we use.
"""

from __future__ import annotations

from torchvision.ops import MultiScaleRoIAlign

FPN_LEVELS = ["0", "1", "2", "3"]  # P2-P5; P6 ('pool') feeds only the RPN


def build_pooler(kind: str, output_size: int, sampling_ratio: int = 2) -> MultiScaleRoIAlign:
    """features (dict of [B, C, H, W]), boxes (list of [R_i, 4]), image sizes -> [sum R_i, C, S, S]."""
    if kind != "align":
        raise ValueError(f"unknown RoI pooler {kind!r}")
    return MultiScaleRoIAlign(FPN_LEVELS, output_size=output_size, sampling_ratio=sampling_ratio)
