"""Small COCO sets for the data-fault tests, written to tmp_path: a copy of a synthetic set with its JSON edited,
images of bright squares on a dark background (PNG, 16-bit PNG, or JPEG stored rotated with an EXIF
orientation), and the ground truth written back as a perfect results file (which must score AP 100)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from trainer import cli

Square = tuple[int, int, int]  # x, y, side in pixels, in the displayed frame
DARK, BRIGHT = 20, 230
# EXIF orientation -> the stored array that a viewer shows as the given displayed one (inverse of the EXIF turn)
STORED = {1: lambda d: d, 3: lambda d: d[::-1, ::-1], 6: lambda d: d[:, ::-1].transpose(1, 0, 2)}


def load(root: Path) -> dict[str, Any]:
    return json.loads((root / "annotations.json").read_text())


def save(root: Path, data: dict[str, Any]) -> None:
    (root / "annotations.json").write_text(json.dumps(data))


def edited_copy(src: Path, dst: Path, edit: Callable[[dict[str, Any]], object] | None = None) -> Path:
    """A copy of the set in `src` at `dst`, its annotations.json passed through `edit` (in place) first."""
    shutil.copytree(src, dst)
    if edit is not None:
        data = load(dst)
        edit(data)
        save(dst, data)
    return dst


def polygon(x: float, y: float, side: float) -> list[float]:
    return [x, y, x + side, y, x + side, y + side, x, y + side]


def squares_image(height: int, width: int, squares: Sequence[Square]) -> np.ndarray:
    """uint8[h, w, 3]: DARK background, BRIGHT squares."""
    pixels = np.full((height, width, 3), DARK, dtype=np.uint8)
    for x, y, side in squares:
        pixels[y : y + side, x : x + side] = BRIGHT
    return pixels


def write_squares(
    root: Path, squares: Sequence[Sequence[Square]], size: tuple[int, int] = (60, 80), orientation: int = 1
) -> Path:
    """One image per entry of `squares` (height x width `size` as displayed), one "square" annotation (category
    1; category 2 "other" has none) per square, polygons in the displayed frame. orientation 1: PNG; else a JPEG
    stored turned, with that EXIF orientation."""
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for image_id, image_squares in enumerate(squares, 1):
        displayed = squares_image(*size, image_squares)
        name = f"{image_id}.png" if orientation == 1 else f"{image_id}.jpg"
        stored = Image.fromarray(np.ascontiguousarray(STORED[orientation](displayed)))
        if orientation == 1:
            stored.save(root / "images" / name)
        else:
            exif = Image.Exif()
            exif[0x0112] = orientation
            stored.save(root / "images" / name, exif=exif.tobytes(), quality=95)
        images.append({"id": image_id, "file_name": name, "height": size[0], "width": size[1]})
        for x, y, side in image_squares:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                 "segmentation": [polygon(x, y, side)], "bbox": [x, y, side, side], "area": side * side}
            )  # fmt: skip
    categories = [{"id": 1, "name": "square"}, {"id": 2, "name": "other"}]
    save(root, {"images": images, "annotations": annotations, "categories": categories})
    return root


def perfect_results(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The ground truth of `data` as detections with score 1 (polygons as RLE, as models report masks; keypoints
    where the annotation has them)."""
    sizes = {i["id"]: (i["height"], i["width"]) for i in data["images"]}
    results = []
    for a in data["annotations"]:
        seg = a["segmentation"]
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, *sizes[a["image_id"]]))
            seg = {"size": rle["size"], "counts": rle["counts"].decode()}
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                        "score": 1.0, "segmentation": seg})  # fmt: skip
        if a.get("keypoints"):
            results[-1]["keypoints"] = a["keypoints"]
    return results


def evaluate_results(
    data: Path, results: object, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    """`maskrcnn evaluate --results` -> (exit status, metrics of the last stdout line or {}, stderr)."""
    path = data.parent / f"{data.name}_results.json"
    path.write_text(json.dumps(results))
    argv = ["--data", str(data), "--results", str(path), "--output", str(data.parent / f"{data.name}_out.json")]
    status = cli.evaluate([*argv, *extra])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return status, json.loads(lines[-1]) if status == 0 else {}, err
