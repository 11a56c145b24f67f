"""paste_masks against torchvision's paste_masks_in_image, pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection.roi_heads import paste_masks_in_image

from models.postprocess import MaskCrops, paste_masks


def pasted(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """torchvision's full-image mask probabilities, (N, H, W) float32. It raises for some boxes wholly
    outside the image (its crop slices go negative); the right answer there is an empty mask."""
    out = np.zeros((len(masks), *size), dtype=np.float32)
    for i, (mask, box) in enumerate(zip(masks, boxes, strict=True)):
        try:
            out[i] = paste_masks_in_image(mask[None, None], box[None], size, padding=1)[0, 0].numpy()
        except RuntimeError:
            continue
    return out


def random_masks(rng: np.random.Generator, n: int, m: int, kind: str = "any") -> torch.Tensor:
    """(n, m, m) float32 probabilities: uniform noise, smooth sigmoid blobs, or hard 0 / 0.5 / 1 values."""
    kind = rng.choice(["noise", "smooth", "hard"]) if kind == "any" else kind
    if kind == "noise":
        return torch.from_numpy(rng.random((n, m, m), dtype=np.float32))
    if kind == "smooth":
        coarse = torch.from_numpy(rng.normal(0, 4, (n, 1, 4, 4)).astype(np.float32))
        return torch.sigmoid(torch.nn.functional.interpolate(coarse, size=(m, m), mode="bilinear"))[:, 0]
    return torch.from_numpy(rng.choice(np.float32([0, 0.5, 1]), (n, m, m)))


@st.composite
def box(draw: st.DrawFn, height: int, width: int) -> list[float]:
    """x1, y1, x2, y2: ordinary, tiny, full-image, crossing the border, or wholly outside the image."""
    kind = draw(st.sampled_from(["any", "tiny", "full", "outside"]))
    if kind == "full":
        return draw(st.sampled_from([[0, 0, width, height], [0, 0, width - 1, height - 1]]))
    x1 = draw(st.floats(-1.5 * width, 1.5 * width, width=32))
    y1 = draw(st.floats(-1.5 * height, 1.5 * height, width=32))
    scale = 1.0 if kind == "tiny" else 1.5 * max(width, height)
    w, h = draw(st.floats(0, scale, width=32)), draw(st.floats(0, scale, width=32))
    if kind == "outside":
        x1 = draw(st.sampled_from([-w - 2 * draw(st.floats(1, 30)), width + draw(st.floats(1, 30))]))
    return [x1, y1, x1 + w, y1 + h]


@st.composite
def detections(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    height, width = draw(st.integers(1, 64)), draw(st.integers(1, 80))
    n, m = draw(st.integers(0, 6)), draw(st.sampled_from([1, 2, 7, 28]))
    masks = random_masks(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), n, m)
    boxes = torch.tensor([draw(box(height, width)) for _ in range(n)], dtype=torch.float32).reshape(n, 4)
    return masks, boxes, (height, width)


def check_crops(result: MaskCrops, n: int) -> np.ndarray:
    """Crops are bool and lie inside the image; returns result.full()."""
    height, width = result.image_size
    assert len(result) == n and result.offsets.dtype == np.int64 and result.offsets.shape == (n, 2)
    for crop, (y0, x0) in zip(result.crops, result.offsets, strict=True):
        assert crop.dtype == bool and 0 <= y0 <= height and 0 <= x0 <= width
        assert y0 + crop.shape[0] <= height and x0 + crop.shape[1] <= width
    full = result.full()
    assert full.dtype == bool and full.shape == (n, height, width)
    assert full.sum() == sum(int(crop.sum()) for crop in result.crops)  # crops do not overlap the edge
    return full


@settings(max_examples=100, deadline=None)
@given(detections())
def test_loop_path_is_bit_identical_to_torchvision(case: tuple) -> None:
    masks, boxes, size = case
    result = paste_masks(masks, boxes, size, batched=False)
    np.testing.assert_array_equal(check_crops(result, len(masks)), pasted(masks, boxes, size) > 0.5)


@settings(max_examples=100, deadline=None)
@given(detections(), st.integers(1, 20_000))
def test_batched_path_agrees_with_torchvision(case: tuple, chunk_elements: int) -> None:
    """Only pixels within float rounding of the threshold may differ. (For outputs with h + w <= 128
    PyTorch's CPU kernel takes a separable path whose weights round differently; CUDA uses FMAs.)"""
    masks, boxes, size = case
    probabilities = pasted(masks, boxes, size)
    result = paste_masks(masks, boxes, size, batched=True, chunk_elements=chunk_elements)
    differ = check_crops(result, len(masks)) != (probabilities > 0.5)
    assert np.all(np.abs(probabilities[differ] - 0.5) < 1e-6)


def realistic(seed: int, n: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth 28 x 28 masks and boxes of 5 .. 60 % of the image, some crossing its border."""
    rng = np.random.default_rng(seed)
    masks = random_masks(np.random.default_rng([seed, 1]), n, 28, "smooth")
    height, width = size
    wh = rng.uniform(0.05, 0.6, (n, 2)) * [width, height]
    xy = rng.uniform(-0.1, 1.0, (n, 2)) * [width, height]
    return masks, torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)


@pytest.mark.parametrize("chunk_elements", [1, 50_000, 1 << 25])
def test_batched_path_on_a_fixed_case(chunk_elements: int) -> None:
    """At least 99.99 % agreement in general; on this case (smooth masks, no ties) exact on the CPU."""
    masks, boxes = realistic(0, 40, (240, 320))
    expected = pasted(masks, boxes, (240, 320)) > 0.5
    full = paste_masks(masks, boxes, (240, 320), batched=True, chunk_elements=chunk_elements).full()
    assert (full != expected).sum() <= expected.size * 1e-4
    np.testing.assert_array_equal(full, expected)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.9])
def test_threshold(threshold: float) -> None:
    masks, boxes = realistic(1, 10, (100, 120))
    expected = pasted(masks, boxes, (100, 120)) > threshold
    for batched in (False, True):
        result = paste_masks(masks, boxes, (100, 120), threshold=threshold, batched=batched)
        np.testing.assert_array_equal(result.full(), expected)


@pytest.mark.parametrize("batched", [False, True])
def test_no_detections(batched: bool) -> None:
    result = paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), (30, 40), batched=batched)
    assert result.crops == [] and result.offsets.shape == (0, 2) and len(result) == 0
    assert result.full().shape == (0, 30, 40)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        paste_masks(torch.zeros(2, 28, 28), torch.zeros(3, 4), (30, 40))
    with pytest.raises(ValueError):
        paste_masks(torch.zeros(2, 1, 28, 28), torch.zeros(2, 4), (30, 40))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batched_path_agrees_with_cpu() -> None:
    masks, boxes = realistic(2, 100, (480, 640))
    expected = pasted(masks, boxes, (480, 640)) > 0.5
    result = paste_masks(masks.cuda(), boxes.cuda(), (480, 640))
    assert (result.full() != expected).sum() <= expected.size * 1e-4
