"""RoIAlign, RoIPool and RoIWarp (models/poolers.py) against hand computations on a small feature map, and each
of them training the tiny model."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign

from models import ModelConfig, Targets, build_model, preset
from models.poolers import (
    MultiLevelRoIPooler,
    RoIAlignOp,
    RoIOp,
    RoIPoolOp,
    RoIWarpOp,
    build_pooler,
    pooling_features,
    quantize_rois,
)

STRIDE = 4
# In image pixels; on the stride-4 grid (1.2, 2.6, 5.4, 6.3), which RoIPool and RoIWarp round to (1, 3, 5, 6).
BOX = torch.tensor([[4.8, 10.4, 21.6, 25.2]])


def _feature() -> Tensor:
    torch.manual_seed(0)
    return torch.randn(1, 1, 8, 8)


def _one_level(op: RoIAlignOp | RoIPoolOp | RoIWarpOp, size: int) -> Tensor:
    """The pooler on one stride-4 level (every box goes there) -> [S, S] for BOX."""
    pooler = MultiLevelRoIPooler(size, op, strides=(STRIDE,))
    return pooler([_feature()], [BOX])[0, 0]


def _bilinear(f: Tensor, y: float, x: float) -> float:
    """f[0, 0] at (y, x), pixel (i, j) sitting at (i, j): what roi_align samples (inside the map)."""
    y0, x0 = int(y), int(x)
    ly, lx = y - y0, x - x0
    g = f[0, 0]
    top = (1 - lx) * g[y0, x0] + lx * g[y0, x0 + 1]
    bottom = (1 - lx) * g[y0 + 1, x0] + lx * g[y0 + 1, x0 + 1]
    return float((1 - ly) * top + ly * bottom)


def test_quantize_rounds_scaled_coordinates_half_away_from_zero() -> None:
    rois = torch.tensor([[0.0, 4.8, 10.4, 21.6, 25.2], [1.0, 2.0, 6.0, 10.0, 14.0]])
    assert torch.equal(quantize_rois(rois, 0.25), torch.tensor([[0.0, 1, 3, 5, 6], [1.0, 1, 2, 3, 4]]))


def test_roi_pool_is_the_max_over_the_rounded_cells_split_as_fast_rcnn_does() -> None:
    f = _feature()[0, 0]
    # Rounded box: columns 1..5 (width 5, bins of 2.5), rows 3..6 (height 4, bins of 2); bin edges floor / ceil.
    expected = torch.tensor(
        [
            [f[3:5, 1:4].max(), f[3:5, 3:6].max()],
            [f[5:7, 1:4].max(), f[5:7, 3:6].max()],
        ]
    )
    assert torch.equal(_one_level(RoIPoolOp(), 2), expected)


def test_roi_warp_samples_bilinearly_over_the_rounded_box() -> None:
    # One bin, one sample: the centre of the rounded box (1, 3, 5, 6), i.e. x = 3, y = 4.5.
    got = _one_level(RoIWarpOp(sampling_ratio=1), 1)
    assert got.item() == pytest.approx(_bilinear(_feature(), 4.5, 3.0), abs=1e-6)


def test_roi_align_samples_the_unrounded_box_and_so_differs_from_warp_and_pool() -> None:
    # The centre of (1.2, 2.6, 5.4, 6.3): x = 3.3, y = 4.45.
    align = _one_level(RoIAlignOp(sampling_ratio=1), 1)
    assert align.item() == pytest.approx(_bilinear(_feature(), 4.45, 3.3), abs=1e-6)
    assert abs(align.item() - _one_level(RoIWarpOp(sampling_ratio=1), 1).item()) > 1e-3
    assert not torch.allclose(_one_level(RoIAlignOp(), 2), _one_level(RoIPoolOp(), 2))


def test_aligned_shifts_the_samples_by_half_a_feature_pixel() -> None:
    aligned = _one_level(RoIAlignOp(sampling_ratio=1, aligned=True), 1)
    assert aligned.item() == pytest.approx(_bilinear(_feature(), 4.45 - 0.5, 3.3 - 0.5), abs=1e-6)
    # The same as the legacy op on the box moved by half a level pixel (2 image pixels at stride 4), at any size.
    shifted = MultiLevelRoIPooler(7, RoIAlignOp(), strides=(STRIDE,))([_feature()], [BOX - STRIDE / 2])
    half = MultiLevelRoIPooler(7, RoIAlignOp(aligned=True), strides=(STRIDE,))([_feature()], [BOX])
    torch.testing.assert_close(half, shifted)


FPN_LEVELS = ["0", "1", "2", "3"]  # P2-P5's names in torchvision's FPN


def test_default_pooler_equals_torchvision_multiscale_roi_align_bitwise() -> None:
    torch.manual_seed(0)
    sizes = (64, 32, 16, 8)
    features = {k: torch.randn(2, 4, s, s + 4) for k, s in zip(FPN_LEVELS, sizes, strict=True)}
    boxes = [torch.tensor([[3.0, 5.0, 40.0, 60.0], [10.5, 2.25, 250.0, 200.0]]), torch.tensor([[0.0, 0.0, 9.0, 9.0]])]
    reference = MultiScaleRoIAlign(FPN_LEVELS, 7, 2)(features, boxes, [(256, 272), (256, 272)])
    ours = build_pooler("align", 7)(pooling_features(features), boxes)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("op", [RoIAlignOp(), RoIAlignOp(0, aligned=True), RoIPoolOp(), RoIWarpOp()])
def test_cpu_inference_equals_the_training_path(op: RoIAlignOp | RoIPoolOp | RoIWarpOp) -> None:
    """Inference splits RoIPool's boxes over threads and samples RoIAlign/RoIWarp with models/roi_align_cpu.py;
    training calls torchvision's kernels once: the same numbers (RoIAlign's to float32 rounding)."""
    torch.manual_seed(0)
    feature = torch.randn(1, 3, 40, 40)
    xy = torch.rand(200, 2) * 120
    boxes = [torch.cat([xy, xy + 8 + torch.rand(200, 2) * 30], dim=1)]
    pooler = MultiLevelRoIPooler(7, op, strides=(4,))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            threaded = pooler([feature], boxes)
    finally:
        torch.set_num_threads(threads)
    reference = pooler([feature], boxes).detach()
    torch.testing.assert_close(threaded, reference, rtol=0, atol=0 if isinstance(op, RoIPoolOp) else 1e-5)


BF16_OPS = {
    "align": RoIAlignOp(),
    "align, torchvision's kernel (exact layout)": RoIAlignOp(reference_kernel=True),
    "pool": RoIPoolOp(),
    "warp": RoIWarpOp(),
}


@pytest.mark.parametrize("op", BF16_OPS.values(), ids=BF16_OPS.keys())
@pytest.mark.parametrize("strides", [(4, 8, 16, 32), (16,)], ids=["four levels", "one level"])
def test_bf16_maps_pool_with_every_op_to_its_float32_values(op: RoIOp, strides: tuple[int, ...]) -> None:
    """bf16 inference keeps P2-P5 in bf16 (`pooling_features`); every op pools them, in one dtype per call,
    to the float32 result on the same values within bf16 rounding (ops that pool in float32: exactly)."""
    torch.manual_seed(0)
    maps = [
        torch.randn(1, 8, 256 // s, 256 // s).bfloat16().contiguous(memory_format=torch.channels_last) for s in strides
    ]
    xy = torch.rand(80, 2) * 180
    boxes = [torch.cat([xy, xy + 4 + torch.rand(80, 2) * 70], dim=1)]
    pooler = MultiLevelRoIPooler(7, op, strides=strides)
    with torch.inference_mode():
        got = pooler(pooling_features(dict(enumerate(maps))), boxes)
        expected = pooler([m.float() for m in maps], boxes)
        empty = pooler(pooling_features(dict(enumerate(maps))), [torch.zeros(0, 4)])
    assert got.shape == expected.shape == (80, 8, 7, 7) and empty.shape == (0, 8, 7, 7)
    assert got.dtype in (torch.bfloat16, torch.float32)
    torch.testing.assert_close(got.float(), expected, rtol=2**-7, atol=2**-7)


@pytest.mark.parametrize("mask_head", ["fcn", "mlp"])
def test_config_picks_the_op_of_every_branch(mask_head: str) -> None:
    model = build_model(preset("tiny", mask_head=mask_head, pooler="warp"))
    assert model.roi_heads.box_roi_pool.op == RoIWarpOp(2)
    assert model.roi_heads.mask_roi_pool.op == RoIWarpOp(2)
    assert model.roi_heads.mask_roi_pool.output_size == (14, 14)
    assert build_model(preset("tiny", pooler="pool")).roi_heads.mask_roi_pool.op == RoIPoolOp()


@pytest.mark.parametrize("mask_head", ["fcn", "mlp"])
def test_aligned_and_sampling_ratio_reach_every_branch(mask_head: str) -> None:
    model = build_model(preset("tiny", mask_head=mask_head, pooler_aligned=True, pooler_sampling_ratio=0))
    assert model.roi_heads.box_roi_pool.op == RoIAlignOp(0, aligned=True)
    assert model.roi_heads.mask_roi_pool.op == RoIAlignOp(0, aligned=True)


@pytest.mark.parametrize("pooler", ["pool", "warp"])
def test_aligned_is_refused_for_the_quantising_poolers(pooler: str) -> None:
    with pytest.raises(ValueError, match=f"pooler_aligned applies to pooler 'align' only; got pooler '{pooler}'"):
        ModelConfig(pooler=pooler, pooler_aligned=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pooler_aligned applies to the 'align' pooler only"):
        build_pooler(pooler, 7, aligned=True)  # type: ignore[arg-type]


def test_negative_sampling_ratio_is_refused() -> None:
    with pytest.raises(ValueError, match="pooler_sampling_ratio must be >= 0"):
        ModelConfig(pooler_sampling_ratio=-1)


@pytest.mark.parametrize(
    ("pooler", "aligned", "ratio"), [("align", False, 2), ("align", True, 0), ("pool", False, 2), ("warp", False, 2)]
)
def test_every_pooler_trains_a_step_with_finite_grads(pooler: str, aligned: bool, ratio: int) -> None:
    model = build_model(preset("tiny", pooler=pooler, pooler_aligned=aligned, pooler_sampling_ratio=ratio))
    image = torch.full((3, 128, 160), 0.2)
    image[:, 30:90, 20:100] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
    mask = torch.zeros(1, 128, 160, dtype=torch.uint8)
    mask[0, 30:90, 20:100] = 1
    target = Targets(torch.tensor([[20.0, 30.0, 100.0, 90.0]]), torch.tensor([1]), mask)
    model.train()
    losses = model([image], [target])
    sum(losses.values()).backward()  # type: ignore[union-attr]
    assert all(torch.isfinite(v) for v in losses.values())
    heads = dict(model.roi_heads.named_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    for name in ("box_head.fc6.weight", "mask_head.0.0.weight"):
        assert heads[name].grad.abs().sum() > 0, name  # the features reached the heads through the op


@pytest.mark.parametrize("kind", ["align", "pool", "warp"])
def test_strides_set_the_scale_of_a_single_level(kind: str) -> None:
    at_4 = build_pooler(kind, 3, strides=(4,))([_feature()], [BOX])  # type: ignore[arg-type]
    at_16 = build_pooler(kind, 3, strides=(16,))([_feature()], [BOX * 4])  # type: ignore[arg-type]
    assert torch.equal(at_4, at_16)
