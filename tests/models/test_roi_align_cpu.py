"""models.roi_align_cpu gives torchvision.ops.roi_align's values for every layout, dtype and box it may meet."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align as tv_roi_align

from models.roi_align_cpu import roi_align

SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)


def _features(n: int = 2, c: int = 6, h: int = 25, w: int = 38, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def _boxes(n_images: int, scale: float, h: int, w: int, count: int = 120, seed: int = 1) -> torch.Tensor:
    """[count, 5] rois in input pixels: inside, partly and fully outside the map, tiny, huge, degenerate."""
    g = torch.Generator().manual_seed(seed)
    img_w, img_h = w / scale, h / scale
    x1 = torch.rand(count, generator=g) * img_w * 1.6 - img_w * 0.3
    y1 = torch.rand(count, generator=g) * img_h * 1.6 - img_h * 0.3
    size = torch.exp(torch.rand(count, 2, generator=g) * 8.0 - 2.0)  # 0.14 .. 400 pixels
    boxes = torch.stack([x1, y1, x1 + size[:, 0] / scale / 16, y1 + size[:, 1] / scale / 16], dim=1)
    fixed = torch.tensor(
        [
            [0.0, 0.0, img_w, img_h],  # the whole image
            [-3 * img_w, -3 * img_h, 3 * img_w, 3 * img_h],  # much larger than the image
            [-50 / scale, -50 / scale, -20 / scale, -20 / scale],  # fully outside, top-left
            [img_w + 10 / scale, 0.0, img_w + 40 / scale, img_h],  # fully outside, right
            [5.0, 5.0, 5.0, 5.0],  # empty
            [12.0, 9.0, 7.0, 3.0],  # x2 < x1, y2 < y1
            [-1.0 / scale, -1.0 / scale, 3.0 / scale, 3.0 / scale],  # sample points near -1
            [img_w - 2.0 / scale, img_h - 2.0 / scale, img_w, img_h],  # the last row and column
        ]
    )
    boxes = torch.cat([boxes, fixed])
    batch = torch.arange(boxes.shape[0]) % n_images
    return torch.cat([batch[:, None].float(), boxes], dim=1)


@pytest.mark.parametrize("sampling_ratio", [2, 0, 1])
@pytest.mark.parametrize("aligned", [False, True])
def test_equals_torchvision_for_every_scale_output_size_and_box(sampling_ratio: int, aligned: bool) -> None:
    x = _features()
    for scale in SCALES:
        rois = _boxes(x.shape[0], scale, x.shape[2], x.shape[3])
        for size in [(7, 7), (14, 14), (3, 5)]:
            expected = tv_roi_align(x, rois, size, scale, sampling_ratio, aligned)
            got = roi_align(x, rois, size, scale, sampling_ratio, aligned)
            assert got.shape == expected.shape and got.dtype == torch.float32
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_channels_last_and_sliced_inputs_give_the_nchw_values() -> None:
    x = _features(c=16)
    rois = _boxes(2, 1 / 8, 25, 38)
    expected = tv_roi_align(x, rois, 7, 1 / 8, 2, False)
    torch.testing.assert_close(roi_align(x.contiguous(memory_format=torch.channels_last), rois, 7, 1 / 8, 2), expected)
    wide = torch.cat([x, x], dim=1)[:, 3:19]  # a non-contiguous view with other strides
    torch.testing.assert_close(
        roi_align(wide, rois, 7, 1 / 8, 2), tv_roi_align(wide.contiguous(), rois, 7, 1 / 8, 2, False)
    )


def test_float16_input_gives_float32_of_its_values() -> None:
    x = _features(c=16).half().contiguous(memory_format=torch.channels_last)
    for aligned in (False, True):
        rois = _boxes(2, 1 / 4, 25, 38)
        got = roi_align(x, rois, (14, 14), 1 / 4, 2, aligned)
        expected = tv_roi_align(x.float(), rois, (14, 14), 1 / 4, 2, aligned)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_bfloat16_input_is_pooled_in_bfloat16_within_its_rounding(memory_format: torch.memory_format) -> None:
    """bf16 maps (bf16 inference) are gathered without a float32 copy: bf16 out, within bf16's rounding of the
    weights and the sum (2^-8 relative each) of torchvision's float32 result on the same values."""
    x = _features(c=16).bfloat16().contiguous(memory_format=memory_format)
    for aligned in (False, True):
        rois = _boxes(2, 1 / 4, 25, 38)
        got = roi_align(x, rois, (14, 14), 1 / 4, 2, aligned)
        expected = tv_roi_align(x.float(), rois, (14, 14), 1 / 4, 2, aligned)
        assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
        scale = expected.abs().max()
        assert (got.float() - expected).abs().max() <= 2 * 2**-8 * scale
        assert (got.float() - expected).abs().mean() <= 2**-8 * expected.abs().mean()


def test_a_lone_box_on_a_copied_map_reads_every_row_it_needs() -> None:
    """NCHW maps are copied over the band of rows the boxes read: one box at a time makes it narrow."""
    x = _features(n=2, c=4, h=30, w=30)
    g = torch.Generator().manual_seed(3)
    for _ in range(40):
        y1, x1 = (torch.rand(2, generator=g) * 20).tolist()
        h, w = (torch.rand(2, generator=g) * 8 + 0.2).tolist()
        roi = torch.tensor([[1.0, x1, y1, x1 + w, y1 + h]])
        for sampling_ratio, aligned in ((2, False), (0, True)):
            expected = tv_roi_align(x, roi, 7, 1.0, sampling_ratio, aligned)
            torch.testing.assert_close(roi_align(x, roi, 7, 1.0, sampling_ratio, aligned), expected)
            half = roi_align(x.half(), roi, 7, 1.0, sampling_ratio, aligned)
            torch.testing.assert_close(half, tv_roi_align(x.half().float(), roi, 7, 1.0, sampling_ratio, aligned))


def test_no_boxes_give_an_empty_output_of_the_right_shape() -> None:
    out = roi_align(_features(c=5), torch.zeros(0, 5), (7, 6), 1 / 4, 2)
    assert out.shape == (0, 5, 7, 6) and out.dtype == torch.float32


def test_box_batch_index_picks_the_image() -> None:
    x = _features(n=3)
    on_third = roi_align(x, torch.tensor([[2.0, 0.0, 0.0, 80.0, 60.0]]), 7, 1 / 4, 2)
    alone = roi_align(x[2:], torch.tensor([[0.0, 0.0, 0.0, 80.0, 60.0]]), 7, 1 / 4, 2)
    on_first = roi_align(x, torch.tensor([[0.0, 0.0, 0.0, 80.0, 60.0]]), 7, 1 / 4, 2)
    torch.testing.assert_close(on_third, alone)
    assert not torch.allclose(on_third, on_first)


def test_grad_mode_with_an_input_that_requires_grad_goes_through_torchvision() -> None:
    x = _features(c=4).requires_grad_()
    rois = _boxes(2, 1 / 4, 25, 38, count=10)
    got = roi_align(x, rois, 7, 1 / 4, 2)
    got.sum().backward()
    grad = x.grad.clone()
    x.grad = None
    tv_roi_align(x, rois, 7, 1 / 4, 2).sum().backward()
    torch.testing.assert_close(grad, x.grad)
    with torch.no_grad():
        assert roi_align(x, rois, 7, 1 / 4, 2).grad_fn is None


def test_bad_arguments_raise_errors_naming_the_problem() -> None:
    x = _features()
    with pytest.raises(ValueError, match="boxes must be"):
        roi_align(x, torch.zeros(3, 4), 7, 1.0, 2)
    with pytest.raises(ValueError, match="batch indices"):
        roi_align(x, torch.tensor([[2.0, 0, 0, 5, 5]]), 7, 1.0, 2)
    with pytest.raises(ValueError, match="input must be"):
        roi_align(x[0], torch.zeros(1, 5), 7, 1.0, 2)
    with pytest.raises(TypeError, match="not a list"):
        roi_align(x, [torch.zeros(1, 4)], 7, 1.0, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dtype"):
        roi_align(x.double(), torch.zeros(1, 5), 7, 1.0, 2)
    with pytest.raises(ValueError, match="output_size"):
        roi_align(x, torch.zeros(1, 5), 0, 1.0, 2)
