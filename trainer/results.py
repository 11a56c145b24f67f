"""A COCO results file (a JSON list of detections) checked against the ground truth it is scored on.

pycocotools asserts, or fails with a TypeError, on the first detection it cannot use; here each one is checked
up front. A file that is not a JSON list, or whose detections are all unusable, raises DataError (one line:
`maskrcnn evaluate` exits 2). Single unusable detections are skipped with one warning line per kind:
not an object; image_id not in the ground truth; category_id not in its categories; no finite score; neither
a usable bbox, segmentation or keypoints. Repaired: a polygon or uncompressed-RLE segmentation is converted to
compressed RLE, a missing bbox is taken from the segmentation, a segmentation of another size than its image
is dropped (the detection still counts for bbox AP), and so are keypoints that are not 3 numbers (x, y, v) for
each keypoint its category names (ignored without a warning where the category names none: there is no keypoint
AP to score). A detection with keypoints but neither bbox nor segmentation counts for keypoint AP only (COCO's
keypoint results format).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from .errors import DataError, Issues
from .repair import is_id, is_number


def load_results(path: Path, coco_gt: COCO) -> list[dict[str, Any]]:
    """Detections {image_id, category_id, score, and at least one of bbox [x, y, w, h], segmentation (compressed
    RLE), keypoints [x1, y1, v1, ...] (pixels)}."""
    try:
        items = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read COCO results ({exc})") from None
    if not isinstance(items, list):
        kind = type(items).__name__.replace("dict", "an object").replace("str", "a string")
        raise DataError(f"{path}: COCO results must be a JSON list of detections, not {kind}")
    issues, usable = Issues(str(path), "detection"), []
    for k, item in enumerate(items):
        detection = _check(item, coco_gt, issues, k)
        if detection is not None:
            usable.append(detection)
    issues.log()
    if items and not usable:
        reasons = "; ".join(issues.lines(prefix=False))
        raise DataError(f"{path}: none of the {len(items)} detections can be scored on this ground truth ({reasons})")
    return usable


def _check(item: object, coco_gt: COCO, issues: Issues, k: int) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        issues.add("not an object, skipped", k, "positions")
        return None
    image_id, category_id, score = item.get("image_id"), item.get("category_id"), item.get("score")
    if not is_id(image_id) or image_id not in coco_gt.imgs:
        issues.add("image_id not in the ground truth, skipped", image_id, "image ids")
        return None
    if not is_id(category_id) or category_id not in coco_gt.cats:
        issues.add("category_id not in the ground truth's categories, skipped", category_id, "category ids")
        return None
    if not is_number(score):
        issues.add("no score, skipped", k, "positions")
        return None
    info = coco_gt.imgs[image_id]
    detection: dict[str, Any] = {"image_id": image_id, "category_id": category_id, "score": float(score)}
    rle = _rle(item.get("segmentation"), info["height"], info["width"])
    if rle is not None:
        detection["segmentation"] = rle
    elif "segmentation" in item:
        issues.add("segmentation unusable or of another size than its image, dropped", k, "positions")
    named = len(coco_gt.cats[category_id].get("keypoints") or ())
    keypoints = item.get("keypoints")
    if named and isinstance(keypoints, list) and len(keypoints) == 3 * named and all(map(is_number, keypoints)):
        detection["keypoints"] = [float(v) for v in keypoints]
    elif named and keypoints is not None:  # (a category without keypoint names has no keypoint AP to score)
        issues.add("keypoints not 3 numbers per keypoint its category names, dropped", k, "positions")
    box = item.get("bbox")
    if isinstance(box, (list, tuple)) and len(box) == 4 and all(is_number(v) for v in box):
        detection["bbox"] = [float(v) for v in box]
    elif rle is not None:
        detection["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
    elif "keypoints" not in detection:
        issues.add("no usable bbox, segmentation or keypoints, skipped", k, "positions")
        return None
    return detection


def _rle(seg: object, h: int, w: int) -> dict[str, Any] | None:
    """Compressed RLE {size: [h, w], counts: str} of a results segmentation, None if unusable or mis-sized."""
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not isinstance(size, (list, tuple)) or [*size] != [h, w]:
            return None
        if isinstance(counts, (str, bytes)) and counts:
            return {"size": [h, w], "counts": counts.decode() if isinstance(counts, bytes) else counts}
        if isinstance(counts, list) and all(is_id(c) and c >= 0 for c in counts) and sum(counts) == h * w:
            rle = mask_utils.frPyObjects(seg, h, w)
            return {"size": [h, w], "counts": rle["counts"].decode()}
        return None
    parts = [p for p in seg if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0] if isinstance(seg, list) else []
    if not parts or not all(is_number(v) for p in parts for v in p):
        return None
    rle = mask_utils.merge(mask_utils.frPyObjects(parts, h, w))
    return {"size": [h, w], "counts": rle["counts"].decode()}
