"""rle.encode against pycocotools' encode of the full masks."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from models.postprocess import MaskCrops, paste_masks
from models.rle import encode, run_lengths

# pycocotools' decode under numpy 2


def check(crops: MaskCrops) -> None:
    """encode(crops) is pycocotools' RLE of crops.full(), and decodes back to it."""
    full = crops.full()
    ours = encode(crops)
    assert len(ours) == len(full)
    for rle, mask in zip(ours, full, strict=True):
        expected = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle == {"size": list(crops.image_size), "counts": expected["counts"].decode("ascii")}
        np.testing.assert_array_equal(mask_utils.decode({**rle, "counts": rle["counts"].encode()}), mask)


@st.composite
def mask_crops(draw: st.DrawFn) -> MaskCrops:
    """Crops of any size inside the image (often full height or width), sparse, dense or random."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 50))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    crops, offsets = [], []
    for _ in range(draw(st.integers(0, 5))):
        y0 = draw(st.sampled_from([0, int(rng.integers(height + 1))]))
        x0 = int(rng.integers(width + 1))
        h = draw(st.sampled_from([height - y0, int(rng.integers(height - y0 + 1))]))
        w = int(rng.integers(width - x0 + 1))
        crops.append(rng.random((h, w)) < draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])))
        offsets.append([y0, x0])
    return MaskCrops(crops, np.array(offsets, dtype=np.int64).reshape(-1, 2), (height, width))


@settings(max_examples=200, deadline=None)
@given(mask_crops())
def test_random_crops_match_pycocotools(crops: MaskCrops) -> None:
    check(crops)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 64), st.integers(1, 80), st.integers(0, 2**32 - 1))
def test_pasted_masks_match_pycocotools(height: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 8))
    logits = torch.from_numpy(rng.normal(0, 3, (n, 1, 4, 4)).astype(np.float32))
    masks = torch.sigmoid(torch.nn.functional.interpolate(logits, size=(28, 28), mode="bilinear"))[:, 0]
    xy = rng.uniform(-0.3, 1.1, (n, 2)) * [width, height]
    boxes = np.concatenate([xy, xy + rng.uniform(0, 1.2, (n, 2)) * [width, height]], 1)
    check(paste_masks(masks, torch.tensor(boxes, dtype=torch.float32), (height, width)))


def test_empty_and_full_masks() -> None:
    zeros, ones = np.zeros((3, 4), bool), np.ones((3, 4), bool)
    empty_crop = np.zeros((0, 3), bool)
    crops = MaskCrops([zeros, ones, empty_crop], np.array([[0, 0], [0, 0], [3, 1]]), (3, 4))
    check(crops)
    assert run_lengths(zeros, 0, 0, 3, 4).tolist() == [12]
    assert run_lengths(ones, 0, 0, 3, 4).tolist() == [0, 12]  # leading empty run of zeros, no trailing one
    assert run_lengths(empty_crop, 3, 1, 3, 4).tolist() == [12]


def test_full_height_runs_merge_across_columns() -> None:
    crop = np.ones((5, 3), bool)
    crop[:2, 0] = False  # one run: column 0 rows 2..4, columns 1 and 2 whole
    crop[4, 2] = False  # ends one pixel before the bottom of column 2
    crops = MaskCrops([crop], np.array([[0, 2]]), (5, 6))
    assert run_lengths(crop, 0, 2, 5, 6).tolist() == [12, 12, 6]
    check(crops)
    shorter = MaskCrops([crop[1:]], np.array([[1, 2]]), (5, 6))  # not full height: runs stay apart
    assert run_lengths(crop[1:], 1, 2, 5, 6).tolist() == [12, 3, 1, 4, 1, 3, 6]
    check(shorter)


def test_mask_ending_at_the_last_pixel() -> None:
    crop = np.ones((2, 2), bool)
    assert run_lengths(crop, 3, 4, 5, 6).tolist() == [23, 2, 3, 2]
    check(MaskCrops([crop], np.array([[3, 4]]), (5, 6)))


def test_no_detections() -> None:
    assert encode(MaskCrops([], np.zeros((0, 2), np.int64), (10, 20))) == []
