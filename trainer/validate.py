"""Read and check a COCO instances file once, up front, for every set: the training set, the `--val` set and
the ground truth of `maskrcnn evaluate`, before the first iteration or the first image is scored.

Repairs are made on our in-memory copy; the user's file is never rewritten. Three outcomes:
- repaired, one warning line per kind: what `repair.py` repairs, plus image `height`/`width` missing -> read
  from the file's header; annotation ids missing, 0, negative or repeated -> all renumbered 1..N (pycocotools
  matches detections to ground truth by these ids, and treats id 0 as "no match");
- skipped, one warning line per kind: annotations whose `image_id` names no image or whose `category_id`
  names no category, and those `repair.py` skips (unusable segmentation);
- DataError, the run stops: unreadable JSON; no images/annotations/categories lists; an image or category
  without an integer id or repeated ids; a category without a name; an image without `file_name`; an image
  file missing or not an image; an image whose size differs from the JSON's (the displayed size, after EXIF
  orientation); an annotation without `image_id` or `category_id`.
Keypoints (COCO keypoint sets) are checked and repaired by `keypoint_repair.py`.
Image sizes come from the headers (`models.image.probe`): no pixel is decoded here.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO

from models import image as image_io

from .errors import DataError, Issues
from .keypoint_repair import keypoint_names, repair_keypoints
from .layout import Layout
from .repair import is_id, is_number, repair_annotation

log = logging.getLogger("trainer.data")
NO_SIZE = "no height/width, taken from the image file"


@dataclass(frozen=True)
class ValidCoco:
    """coco: pycocotools' index over our repaired copy; paths: image id -> its file; source: the JSON file;
    keypoint_names: the keypoints its categories name, () for a set without keypoints."""

    coco: COCO
    paths: dict[int, Path]
    source: Path
    keypoint_names: tuple[str, ...] = ()


def load_coco(layout: Layout) -> ValidCoco:
    """Read, check and repair `layout.annotations`; warnings are logged, fatal problems raise DataError."""
    source = layout.annotations
    try:
        data = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{source}: cannot read annotations JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{source}: not a COCO instances file (a JSON object expected)")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DataError(f"{source}: not a COCO instances file (missing lists {missing})")
    categories = _categories(data["categories"], source)
    images, paths = _images(data["images"], layout)
    names = keypoint_names(categories, source)
    counts = {c["id"]: len(c.get("keypoints") or ()) for c in categories}  # K per category, 0 without keypoints
    annotations = _annotations(data["annotations"], images, counts, source)
    coco = COCO()
    coco.dataset = {**data, "images": list(images.values()), "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return ValidCoco(coco, paths, source, names)


def _categories(items: list[Any], source: Path) -> list[dict[str, Any]]:
    seen: set[int] = set()
    for k, cat in enumerate(items):
        if not isinstance(cat, dict) or not is_id(cat.get("id")):
            raise DataError(f"{source}: categories[{k}] has no integer id")
        if not isinstance(cat.get("name"), str):
            raise DataError(f"{source}: category {cat['id']} has no name")
        if cat["id"] in seen:
            raise DataError(f"{source}: category id {cat['id']} is used twice; category ids must be unique")
        seen.add(cat["id"])
    return [dict(c) for c in items]


def _images(items: list[Any], layout: Layout) -> tuple[dict[int, dict[str, Any]], dict[int, Path]]:
    """{id: image info with height and width} and {id: file}; raises DataError (see the module docstring)."""
    source, images, paths = layout.annotations, {}, {}
    for k, info in enumerate(items):
        if not isinstance(info, dict) or not is_id(info.get("id")):
            raise DataError(f"{source}: images[{k}] has no integer id")
        image_id, name = info["id"], info.get("file_name")
        if not isinstance(name, str) or not name:
            raise DataError(f"{source}: image {image_id} has no file_name")
        if image_id in images:
            first = images[image_id]["file_name"]
            raise DataError(f"{source}: image id {image_id} is used by two images ({first!r} and {name!r})")
        images[image_id], paths[image_id] = dict(info), layout.image_path(name)
    absent = [images[i]["file_name"] for i, p in paths.items() if not p.is_file()]
    if absent:
        raise DataError(f"{layout.images}: {len(absent)} image file(s) missing, e.g. {absent[:3]}")
    issues, wrong = Issues(str(source), "image"), []
    for image_id, info in images.items():
        try:
            header = image_io.probe(paths[image_id])
        except image_io.ImageError as exc:
            raise DataError(str(exc)) from None
        h, w = info.get("height"), info.get("width")
        if h is None or w is None:
            info["height"], info["width"] = header.height, header.width
            issues.add(NO_SIZE, image_id)
        elif not (is_number(h) and is_number(w) and float(h).is_integer() and float(w).is_integer()):
            raise DataError(f"{source}: image {image_id} has height {h!r} and width {w!r}; integers expected")
        elif (int(h), int(w)) != (header.height, header.width):
            wrong.append(_size_error(paths[image_id], (int(h), int(w)), header, source))
        info["height"], info["width"] = int(info["height"]), int(info["width"])
    if wrong:
        more = f" ({len(wrong)} images differ from the JSON's sizes)" if len(wrong) > 1 else ""
        raise DataError(wrong[0] + more)
    issues.log()
    return images, paths


def _size_error(path: Path, json_size: tuple[int, int], header: image_io.ImageHeader, source: Path) -> str:
    message = (
        f"{path}: the image is {header.height}x{header.width} (height x width) but {source.name} says "
        f"{json_size[0]}x{json_size[1]}; resized after annotation?"
    )
    if header.orientation >= 5 and json_size == (header.width, header.height):
        message = (
            f"{path}: {source.name} says {json_size[0]}x{json_size[1]} (height x width), the size of the stored "
            f"pixels, but EXIF orientation {header.orientation} displays them as {header.height}x{header.width}; "
            "sizes and annotations must be in the displayed frame (as annotation tools and browsers show it)"
        )
    return message


def _annotations(
    items: list[Any], images: dict[int, dict[str, Any]], keypoint_counts: dict[int, int], source: Path
) -> list[dict[str, Any]]:
    """The usable annotations, repaired (see repair.py, keypoint_repair.py), ids unique and positive; warnings
    logged. keypoint_counts: the number of keypoints of each category id (0 for none)."""
    issues, kept = Issues(str(source)), []
    for k, ann in enumerate(items):
        if not isinstance(ann, dict):
            raise DataError(f"{source}: annotations[{k}] is not an object")
        ref = f"annotation {ann['id']}" if "id" in ann else f"annotations[{k}]"
        for name in ("image_id", "category_id"):
            if not is_id(ann.get(name)):
                raise DataError(f"{source}: {ref} has no integer {name}")
        if ann["image_id"] not in images:
            issues.add("image_id names no image, skipped", ann["image_id"], "image ids")
            continue
        if ann["category_id"] not in keypoint_counts:
            issues.add("category_id names no category, skipped", ann["category_id"], "category ids")
            continue
        info = images[ann["image_id"]]
        repaired = repair_annotation(ann, info["height"], info["width"])
        notes = repaired.notes
        if repaired.annotation is not None:
            usable, keypoint_notes = repair_keypoints(repaired.annotation, keypoint_counts[ann["category_id"]])
            kept.append(usable)
            notes += keypoint_notes
        for note in notes:
            issues.add(note, ann.get("id", f"#{k}"))
    issues.log()
    _renumber(kept, source)
    return kept


def _renumber(annotations: list[dict[str, Any]], source: Path) -> None:
    """Ids 1..N in file order, in place, when any id is missing, not a positive integer, or repeated."""
    ids = [a.get("id") for a in annotations]
    bad = [i for i in ids if not is_id(i) or i <= 0]
    repeated = sorted(i for i, n in Counter(i for i in ids if is_id(i) and i > 0).items() if n > 1)
    if not bad and not repeated:
        return
    for n, ann in enumerate(annotations, 1):
        ann["id"] = n
    log.warning(
        "%s: annotation ids must be unique positive integers (%d missing, 0, negative or not integers, e.g. %s; "
        "%d repeated, e.g. %s): renumbered 1..%d in our copy, the file is unchanged",
        source,
        len(bad),
        list(dict.fromkeys(bad))[:5],
        len(repeated),
        repeated[:5],
        len(annotations),
    )


def warn_untrainable(coco: COCO, source: str | Path) -> None:
    """A training set's warnings: no annotation that can be a target (none, or all crowd regions), and
    categories without any (a "root" category): each still becomes a class the model never sees."""
    anns = coco.dataset["annotations"]
    per_category = Counter(a["category_id"] for a in anns if not a["iscrowd"])
    if not per_category:
        crowd = sum(1 for a in anns if a["iscrowd"])
        log.warning(
            "%s: no annotation can be a training target (%d annotations, %d of them crowd regions, which are "
            "never targets): the model learns background only",
            source,
            len(anns),
            crowd,
        )
        return
    empty = [(c, coco.cats[c]["name"]) for c in sorted(coco.cats) if not per_category[c]]
    if empty:
        log.warning(
            "%s: categories %s have no (non-crowd) annotations: each still becomes a class the model never sees",
            source,
            empty,
        )
