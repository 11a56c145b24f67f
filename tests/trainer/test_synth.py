"""`maskrcnn synth`: deterministic by seed, COCO-valid, and masks are the visible parts of the shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from trainer import cli
from trainer.synth import CLASSES, SynthConfig, render, write_dataset


def _decode(ann: dict) -> np.ndarray:
    return mask_utils.decode(ann["segmentation"]).astype(bool)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, tiny_data: Path, tiny_config: SynthConfig) -> None:
    tiny = tiny_config
    write_dataset(tmp_path / "again", tiny)
    assert (tmp_path / "again" / "annotations.json").read_bytes() == (tiny_data / "annotations.json").read_bytes()
    for image in (tiny_data / "images").iterdir():
        assert (tmp_path / "again" / "images" / image.name).read_bytes() == image.read_bytes()
    write_dataset(tmp_path / "other", SynthConfig(**{**tiny.__dict__, "seed": 1}))
    assert (tmp_path / "other" / "annotations.json").read_bytes() != (tiny_data / "annotations.json").read_bytes()


def test_annotations_are_visible_disjoint_masks_with_tight_boxes(tiny_data: Path, tiny_config: SynthConfig) -> None:
    tiny = tiny_config
    data = json.loads((tiny_data / "annotations.json").read_text())
    assert [c["name"] for c in data["categories"]] == list(CLASSES)
    assert len(data["images"]) == tiny.images and data["annotations"]
    for image in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        covered = np.zeros((image["height"], image["width"]), dtype=np.int64)
        for ann in anns:
            mask = _decode(ann)
            assert mask.shape == (image["height"], image["width"])
            assert mask.sum() == ann["area"] >= tiny.min_area
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann["bbox"]
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            covered += mask
        assert covered.max() <= 1, "visible masks of one image must not overlap"


def test_occluded_shape_keeps_only_its_visible_part() -> None:
    """Across many renders some shape is partly hidden: its mask is smaller than its drawn area yet annotated."""
    rng = np.random.default_rng(0)
    config = SynthConfig(min_side=96, max_side=96, max_shapes=6, min_radius=20, max_radius=40)
    image, instances = render(rng, config)
    assert image.dtype == np.uint8 and image.shape == (96, 96, 3)
    masks = np.stack([instance.mask for instance in instances])
    assert (masks.sum(0) <= 1).all()


def test_cli_writes_a_coco_set(tmp_path: Path) -> None:
    assert cli.synth([str(tmp_path / "s"), "--images", "2", "--seed", "5"]) == 0
    data = json.loads((tmp_path / "s" / "annotations.json").read_text())
    assert len(data["images"]) == 2
    assert all((tmp_path / "s" / "images" / i["file_name"]).is_file() for i in data["images"])


def test_keypoints_are_the_shapes_extreme_points(tmp_path: Path) -> None:
    assert cli.synth([str(tmp_path / "k"), "--images", "4", "--seed", "3", "--keypoints"]) == 0
    data = json.loads((tmp_path / "k" / "annotations.json").read_text())
    assert all(c["keypoints"] == ["top", "right", "bottom", "left"] for c in data["categories"])
    assert data["categories"][0]["skeleton"] == [[1, 2], [2, 3], [3, 4], [4, 1]]
    seen_visible = False
    for ann in data["annotations"]:
        points = np.asarray(ann["keypoints"]).reshape(4, 3)
        assert ann["num_keypoints"] == int((points[:, 2] > 0).sum())
        x, y, w, h = ann["bbox"]
        mask = mask_utils.decode({**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()})
        for (px, py, v), side in zip(points, ("top", "right", "bottom", "left"), strict=True):
            if v == 2:  # on top there: the pixel is in the visible mask, on the box's edge of that side
                seen_visible = True
                assert mask[int(py), int(px)]
                edge = {"top": py - 0.5 == y, "right": px + 0.5 == x + w, "bottom": py + 0.5 == y + h}
                assert edge.get(side, px - 0.5 == x)
    assert seen_visible
    plain = json.loads((Path(write_dataset(tmp_path / "p", SynthConfig(images=4, seed=3)))).read_text())
    assert "keypoints" not in plain["annotations"][0] and "keypoints" not in plain["categories"][0]
    assert [a["bbox"] for a in plain["annotations"]] == [a["bbox"] for a in data["annotations"]]
