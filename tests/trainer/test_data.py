"""COCO reading: label mapping, polygons and RLE, crowd regions, empty images, loud failures on bad data, and
pixels through the service's decoder (EXIF orientation, 16-bit) aligned with their targets."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from models import Targets
from tests.trainer.cocosets import BRIGHT, DARK, evaluate_results, load, perfect_results, squares_image, write_squares
from trainer import cli
from trainer.data import CocoDetection, DataError, TrainingView, collate, hflip
from trainer.sampler import ResumableBatchSampler


def _write_set(root: Path, annotations: list[dict], images: int = 2, write_images: bool = True) -> Path:
    (root / "images").mkdir(parents=True)
    infos = []
    for i in range(1, images + 1):
        infos.append({"id": i, "file_name": f"{i}.png", "height": 40, "width": 50})
        if write_images:
            Image.fromarray(np.full((40, 50, 3), 30 * i, dtype=np.uint8)).save(root / "images" / f"{i}.png")
    cats = [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}]
    (root / "annotations.json").write_text(
        json.dumps({"images": infos, "annotations": annotations, "categories": cats})
    )
    return root


def _ann(i: int, image_id: int, cat: int, bbox: list[float], segmentation: object, crowd: int = 0) -> dict:
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "segmentation": segmentation,
            "area": bbox[2] * bbox[3], "iscrowd": crowd}  # fmt: skip


SQUARE = [[10, 5, 30, 5, 30, 25, 10, 25]]  # polygon of a 20x20 square at (10, 5)


def test_polygons_rle_crowd_and_label_mapping(tmp_path: Path) -> None:
    m = np.zeros((40, 50), dtype=np.uint8)
    m[20:30, 0:15] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode()
    anns = [
        _ann(1, 1, 7, [10, 5, 20, 20], SQUARE),
        _ann(2, 1, 3, [0, 20, 15, 10], rle),
        _ann(3, 1, 3, [0, 0, 50, 40], SQUARE, crowd=1),
    ]
    ds = CocoDetection(_write_set(tmp_path, anns))
    assert ds.category_ids == (0, 3, 7) and ds.class_names == ("__background__", "three", "seven")
    image_id, image, target = ds[0]
    assert image_id == 1 and image.shape == (3, 40, 50) and image.dtype == torch.uint8
    assert target.labels.tolist() == [2, 1]  # category 7 -> label 2, 3 -> 1; the crowd region is not a target
    assert target.boxes.tolist() == [[10, 5, 30, 25], [0, 20, 15, 30]]
    assert target.masks.shape == (2, 40, 50) and target.masks[1].sum() == 150
    assert 350 < target.masks[0].sum() <= 441
    _, _, empty = ds[1]  # an image without annotations: empty targets of the right shapes
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,) and empty.masks.shape == (0, 40, 50)


def test_box_over_the_border_is_clipped_and_empty_mask_skipped_up_front_with_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    anns = [
        _ann(1, 1, 7, [40, 5, 20, 20], SQUARE),  # 10 px over the 50-px-wide image: clipped, not dropped
        _ann(2, 1, 7, [10, 5, 20, 20], [[60, 60, 61, 60, 61, 61]]),  # polygon outside: empty mask
        _ann(3, 1, 3, [10, 5, 20, 20], SQUARE),
    ]
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection(_write_set(tmp_path, anns))
    assert "clipped" in caplog.text and "no pixel inside the image" in caplog.text  # at load, before any item
    _, _, target = ds[0]
    assert target.labels.tolist() == [2, 1]
    assert target.boxes.tolist() == [[40, 5, 50, 25], [10, 5, 30, 25]]


def test_missing_image_and_broken_json_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing"):
        CocoDetection(_write_set(tmp_path / "a", [], write_images=False))
    broken = _write_set(tmp_path / "b", [])
    (broken / "annotations.json").write_text('{"images": [')
    with pytest.raises(DataError, match="cannot read annotations JSON"):
        CocoDetection(broken)
    (broken / "annotations.json").write_text('{"images": []}')
    with pytest.raises(DataError, match="not a COCO instances file"):
        CocoDetection(broken)
    with pytest.raises(DataError, match="no such directory"):
        CocoDetection(tmp_path / "nowhere")
    (broken / "annotations.json").unlink()
    with pytest.raises(DataError, match=r"no annotations\.json or instances\*\.json"):
        CocoDetection(broken)


def test_hflip_mirrors_boxes_with_masks() -> None:
    masks = torch.zeros((1, 4, 10), dtype=torch.uint8)
    masks[0, 1:3, 1:4] = 1
    target = Targets(torch.tensor([[1.0, 1.0, 4.0, 3.0]]), torch.tensor([1]), masks)
    image, flipped = hflip(torch.arange(40).reshape(1, 4, 10).expand(3, 4, 10), target)
    assert flipped.boxes.tolist() == [[6.0, 1.0, 9.0, 3.0]]
    _, xs = torch.nonzero(flipped.masks[0], as_tuple=True)
    assert (xs.min(), xs.max() + 1) == (6, 9)
    assert image[0, 0, 0] == 9


def test_training_view_and_collate_keep_image_sizes(tiny_data: Path) -> None:
    ds = CocoDetection(tiny_data)
    view = TrainingView(ds)
    ids, images, targets = collate([view[(0, True)], view[(1, False)]])
    assert ids == ds.image_ids[:2]
    assert torch.equal(images[0], ds[0][1].flip(-1)) and torch.equal(images[1], ds[1][1])
    assert all(t.masks.shape[1:] == img.shape[1:] for t, img in zip(targets, images, strict=True))


def test_sampler_is_resumable_and_splits_ranks() -> None:
    data = list(range(10))
    full = ResumableBatchSampler(data, 3, rank=0, world_size=1, seed=4)
    stream = iter(full)
    batches = [next(stream) for _ in range(8)]
    resumed = iter(ResumableBatchSampler(data, 3, rank=0, world_size=1, seed=4, start_iter=5))
    assert [next(resumed) for _ in range(3)] == batches[5:]
    first_epoch = [i for b in batches for i, _ in b][:10]
    assert sorted(first_epoch) == data  # every image once per epoch
    r0 = next(iter(ResumableBatchSampler(data, 5, 0, 2, seed=4)))
    r1 = next(iter(ResumableBatchSampler(data, 5, 1, 2, seed=4)))
    assert sorted(i for i, _ in r0 + r1) == data  # one epoch split over two ranks, no overlap


@pytest.mark.parametrize("orientation", [3, 6])
def test_exif_rotated_jpeg_gives_targets_aligned_with_pixels(
    orientation: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JPEG stored turned, with EXIF orientation 3 (180 degrees) or 6 (90, width and height swapped), and its
    annotations in the displayed frame: each target mask lies on its bright square."""
    squares = [(10, 5, 20), (55, 30, 25)]
    root = write_squares(tmp_path / "exif", [squares], size=(60, 90), orientation=orientation)
    _, image, target = CocoDetection(root)[0]
    assert image.shape == (3, 60, 90)
    assert len(target.masks) == 2
    for mask in target.masks.bool():
        assert image[:, mask].float().mean() > BRIGHT - 15  # pixels under the target are the square's
    assert image[:, ~target.masks.bool().any(0)].float().mean() < DARK + 10  # and no square lies outside the targets
    status, metrics, _ = evaluate_results(root, perfect_results(load(root)), capsys)
    assert status == 0 and metrics["bbox_AP"] == metrics["segm_AP"] == 100


def test_16_bit_png_is_scaled_to_8_bits_not_read_as_white(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "gray16", [[(10, 5, 20)]])
    gray = squares_image(60, 80, [(10, 5, 20)])[..., 0].astype(np.uint16) * 257  # 20 -> 5140, 230 -> 59110
    Image.fromarray(gray).save(root / "images" / "1.png")
    assert Image.open(root / "images" / "1.png").mode.startswith("I;16")
    _, image, target = CocoDetection(root)[0]
    assert image[:, target.masks[0].bool()].unique().tolist() == [BRIGHT]
    assert image[:, ~target.masks[0].bool()].unique().tolist() == [DARK]


def test_image_that_fails_to_decode_in_a_loader_worker_is_one_line(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The header is fine (validation passes), the pixel data is cut: the loader worker's error reaches the
    user as one line, not as the worker's traceback."""
    root = tmp_path / "truncated"
    shutil.copytree(tiny_data, root)
    for path in (root / "images").iterdir():
        path.write_bytes(path.read_bytes()[:600])
    argv = ["--data", str(root), "--out", str(tmp_path / "out"), "--model", "tiny", "--max-iter", "1",
            "--batch-size", "1", "--num-workers", "1", "--device", "cpu"]  # fmt: skip
    assert cli.train(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("maskrcnn train:")]
    assert len(lines) == 1 and lines[0].endswith("truncated or corrupt image data"), err
    assert "Traceback" not in err
