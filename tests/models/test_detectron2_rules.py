"""Each Detectron2 rule of ModelConfig, on its own, against Detectron2's formula (defaults stay torchvision's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import FrozenBatchNorm2d

from models import build_model
from models.anchors import AnchorGenerator, exact_cell_anchors
from models.config import ModelConfig
from models.frozen_bn import BatchNormFrozenBN
from models.inference import Predictor
from models.postprocess import paste_masks
from models.presets import DETECTRON2_RULES, preset
from models.transform import ImageTransform, rescale_boxes


def test_defaults_are_torchvisions_and_the_d2_preset_sets_every_rule() -> None:
    default, d2 = ModelConfig(), preset("d2")
    assert all(getattr(default, k) != v for k, v in DETECTRON2_RULES.items())
    assert all(getattr(d2, k) == v for k, v in DETECTRON2_RULES.items())


def test_exact_cell_anchors_are_detectron2s_unrounded_ones() -> None:
    anchors = exact_cell_anchors((32,), (0.5, 1.0, 2.0))
    w = math.sqrt(32**2 / 0.5)
    expected = torch.tensor([[-w / 2, -w / 4, w / 2, w / 4], [-16, -16, 16, 16], [-w / 4, -w / 2, w / 4, w / 2]])
    assert torch.equal(anchors, expected.float())
    assert anchors[0, 0].item() == pytest.approx(-22.627, abs=1e-3)
    rounded = AnchorGenerator(((32,),), (0.5, 1.0, 2.0)).cell[0]
    assert rounded[0].tolist() == [-23.0, -11.0, 23.0, 11.0]
    c4 = exact_cell_anchors((32, 64), (0.5, 1.0, 2.0))  # sizes outer, ratios inner (C4's 15 on one level)
    assert torch.equal(c4[:3], anchors) and torch.equal(c4[3:], 2 * anchors)


def test_nominal_anchor_strides_are_powers_of_two_where_torchvision_divides() -> None:
    sizes = [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]  # P2-P6 of an 800 x 1216 batch
    per_level = ((32,), (64,), (128,), (256,), (512,))
    tv = AnchorGenerator(per_level, (1.0,))((800, 1216), sizes, torch.device("cpu"))
    d2 = AnchorGenerator(per_level, (1.0,), stride="nominal")((800, 1216), sizes, torch.device("cpu"))
    p6 = sum(h * w for h, w in sizes[:4])
    assert d2[p6 + 1, 0] - d2[p6, 0] == 64 and d2[p6 + 19, 1] - d2[p6, 1] == 64
    assert tv[p6 + 19, 1] - tv[p6, 1] == 61  # 800 // 13
    assert torch.equal(d2[:p6], tv[:p6])  # P2-P5 divide evenly: the same grid


def test_half_up_resize_sizes_are_resize_shortest_edges() -> None:
    def transform(rounding: str) -> ImageTransform:
        return ImageTransform(800, 1333, (0.0,) * 3, (1.0,) * 3, rounding=rounding)  # type: ignore[arg-type]

    assert transform("half_up").output_size((300, 451), 800) == (800, 1203)  # chelsea
    assert transform("floor").output_size((300, 451), 800) == (800, 1202)
    assert transform("half_up").output_size((600, 2000), 800) == (400, 1333)  # capped by max_size


def test_pil_resize_on_uint8_then_bgr_bytes_normalised_is_detectron2s_input() -> None:
    rgb = torch.randint(0, 256, (3, 45, 67), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)
    transform = ImageTransform(
        30, 1333, mean, std, channels="bgr", value_range="byte", rounding="half_up", kernel="pil_uint8"
    )
    batch, _ = transform([rgb])
    bgr = rgb.permute(1, 2, 0).numpy()[:, :, ::-1].copy()
    resized = np.asarray(Image.fromarray(bgr).resize((45, 30), Image.Resampling.BILINEAR))
    x = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
    expected = (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    assert batch.image_sizes == [(30, 45)]
    assert torch.equal(batch.tensors[0, :, :30, :45], expected)


def test_batch_norm_frozen_bn_is_f_batch_norm_with_torchvisions_keys() -> None:
    bn = BatchNormFrozenBN(4)
    g = torch.Generator().manual_seed(0)
    for buffer in (bn.weight, bn.bias, bn.running_mean):
        buffer.copy_(torch.randn(4, generator=g))
    bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
    x = torch.randn(2, 4, 5, 5, generator=g)
    expected = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, 1e-5)
    assert torch.equal(bn(x), expected)
    assert bn.state_dict().keys() == FrozenBatchNorm2d(4).state_dict().keys()


def _detectron2_paste(mask: torch.Tensor, box: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Detectron2's `_do_paste_mask` over the whole image for one mask (skip_empty=False), then >= 0.5."""
    x0, y0, x1, y1 = torch.split(box[None], 1, dim=1)
    img_y = (torch.arange(0, h, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
    img_x = (torch.arange(0, w, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    grid = torch.stack([img_x[:, None, :].expand(1, h, w), img_y[:, :, None].expand(1, h, w)], dim=3)
    return F.grid_sample(mask[None, None], grid, align_corners=False)[0, 0] >= 0.5


def test_grid_sample_paste_crops_equal_detectron2s_full_image_paste() -> None:
    g = torch.Generator().manual_seed(0)
    n, h, w = 40, 60, 90
    masks = torch.rand(n, 28, 28, generator=g)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
    wh = torch.rand(n, 2, generator=g) * 30 + 0.2
    boxes = torch.cat([xy, torch.minimum(xy + wh, torch.tensor([w, h]))], dim=1)
    crops = paste_masks(masks, boxes, (h, w), 0.5, method="grid_sample", inclusive=True)
    full = crops.full()
    for i in range(n):
        assert np.array_equal(full[i], _detectron2_paste(masks[i], boxes[i], h, w).numpy()), i
    assert sum(bool(f.any()) for f in full) > n // 2


def test_output_boxes_clip_to_the_original_image() -> None:
    boxes = torch.tensor([[-1.0, 2.0, 801.0, 600.5]])
    clipped = rescale_boxes(boxes, (800, 600), (800, 600), clip=True)
    assert clipped.tolist() == [[0.0, 2.0, 600.0, 600.5]]
    assert rescale_boxes(boxes, (800, 600), (800, 600)).tolist() == boxes.tolist()


def test_exact_layout_predictor_keeps_batchnorm_and_nchw() -> None:
    model = build_model(preset("tiny", inference_layout="exact", frozen_bn_arithmetic="batch_norm"))
    predictor = Predictor(model)
    assert not predictor.channels_last
    assert any(isinstance(m, BatchNormFrozenBN) for m in predictor.model.modules())
    fast = Predictor(build_model(preset("tiny")))
    assert fast.channels_last and not any(isinstance(m, FrozenBatchNorm2d) for m in fast.model.modules())
