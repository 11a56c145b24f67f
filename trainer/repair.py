"""One COCO annotation -> a copy that pycocotools and the trainer can rely on, or the reason to skip it.

Checked against its image's size (height, width in pixels, after EXIF orientation). Each repair and each
skip comes back as a note (the caller logs one line per kind of note):

repaired
- `iscrowd` missing or null -> 0;
- polygon parts with fewer than 3 points, an odd number of coordinates or a non-number -> dropped, the valid
  parts kept; a flat list of coordinates (one polygon without the outer list) -> wrapped as one part;
- `area` missing, null, not a number, zero or negative -> the mask's pixel count (`pycocotools.mask.area`);
- `bbox` missing, null, malformed, empty, or outside the image -> the mask's box (`pycocotools.mask.toBbox`);
- `bbox` reaching outside the image -> clipped to it (noted when more than BOX_TOLERANCE px, as exporters round);
skipped
- no segmentation, an empty one (`[]`, `[[]]`), no valid polygon part, an RLE of another size than the image
  or whose counts do not add up to it, a mask with no pixel inside the image, `iscrowd` other than 0 or 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pycocotools import mask as mask_utils

BOX_TOLERANCE = 1.0  # pixels a box may overhang the image (rounding in exporters) before the clip is reported

# Notes: what was repaired ...
NO_ISCROWD = "no iscrowd, taken as 0"
BAD_PARTS = "polygon parts with fewer than 3 points or an odd number of coordinates dropped"
FLAT_POLYGON = "polygon not wrapped in a list of parts, taken as one part"
BAD_AREA = "area missing or not a positive number, computed from the mask"
BAD_BOX = "bbox missing, malformed, empty or outside the image, taken from the mask"
CLIPPED = f"bbox more than {BOX_TOLERANCE:g} px outside the image, clipped to it"
# ... and why an annotation was skipped.
EMPTY = "empty or missing segmentation, skipped"
NO_POLYGON = "no polygon part with 3 or more points, skipped"
RLE_SIZE = "RLE size differs from the image's, skipped"
RLE_COUNTS = "RLE counts malformed or not adding up to height x width, skipped"
EMPTY_MASK = "mask has no pixel inside the image, skipped"
BAD_CROWD = "iscrowd not 0 or 1, skipped"


@dataclass(frozen=True)
class Repaired:
    """annotation: the usable copy, None when skipped; notes: what was repaired, or why it was skipped."""

    annotation: dict[str, Any] | None
    notes: tuple[str, ...]


def is_number(value: object) -> bool:
    """A finite int or float (bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_id(value: object) -> bool:
    """An int that is not a bool (JSON true/false)."""
    return isinstance(value, int) and not isinstance(value, bool)


def repair_annotation(ann: dict[str, Any], height: int, width: int) -> Repaired:
    """Check and repair one annotation (image_id and category_id already checked) for an image of this size."""
    notes: list[str] = []
    crowd = ann.get("iscrowd")
    if crowd is None:
        crowd = 0
        notes.append(NO_ISCROWD)
    elif is_number(crowd) and crowd in (0, 1):
        crowd = int(crowd)
    else:
        return Repaired(None, (*notes, BAD_CROWD))
    segmentation, rle, reason = _segmentation(ann.get("segmentation"), height, width, notes)
    if rle is None:
        return Repaired(None, (*notes, reason))
    pixels = int(mask_utils.area(rle))
    if pixels == 0:
        return Repaired(None, (*notes, EMPTY_MASK))
    area = ann.get("area")
    if not is_number(area) or area <= 0:
        area = float(pixels)
        notes.append(BAD_AREA)
    bbox = _box(ann.get("bbox"), height, width, notes)
    if bbox is None:
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        notes.append(BAD_BOX)
    repaired = {**ann, "segmentation": segmentation, "area": area, "bbox": bbox, "iscrowd": crowd}
    return Repaired(repaired, tuple(notes))


def _segmentation(seg: object, h: int, w: int, notes: list[str]) -> tuple[object, dict[str, Any] | None, str]:
    """(the segmentation to keep, its RLE or None, the skip reason when None)."""
    if isinstance(seg, dict):
        return _rle(seg, h, w)
    if not isinstance(seg, list) or not any(seg):
        return seg, None, EMPTY
    if all(is_number(v) for v in seg):  # [x1, y1, x2, y2, ...]: one polygon without its list of parts
        seg = [seg]
        notes.append(FLAT_POLYGON)
    parts = [[float(v) for v in p] for p in seg if _valid_part(p)]
    if len(parts) < len(seg):
        if not parts:
            empty = all(isinstance(p, list) and not p for p in seg)
            return seg, None, EMPTY if empty else NO_POLYGON
        notes.append(BAD_PARTS)
    # Every part has 6+ numbers, so pycocotools reads them as polygons (4 numbers would be read as a box).
    return parts, mask_utils.merge(mask_utils.frPyObjects(parts, h, w)), ""


def _valid_part(part: object) -> bool:
    return isinstance(part, list) and len(part) >= 6 and len(part) % 2 == 0 and all(is_number(v) for v in part)


def _rle(seg: dict[str, Any], h: int, w: int) -> tuple[object, dict[str, Any] | None, str]:
    size, counts = seg.get("size"), seg.get("counts")
    if not isinstance(size, (list, tuple)) or [*size] != [h, w]:
        return seg, None, RLE_SIZE
    if isinstance(counts, list):  # uncompressed (crowd regions): the runs must cover the image exactly
        if not all(is_id(c) and c >= 0 for c in counts) or sum(counts) != h * w:
            return seg, None, RLE_COUNTS
        return seg, mask_utils.frPyObjects(seg, h, w), ""
    if isinstance(counts, str) and counts:
        return seg, {"size": [h, w], "counts": counts.encode("ascii", "replace")}, ""
    return seg, None, RLE_COUNTS


def _box(box: object, h: int, w: int, notes: list[str]) -> list[float] | None:
    """The box [x, y, w, h] clipped to the image; None when missing, malformed, empty or outside the image."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(is_number(v) for v in box):
        return None
    x, y, bw, bh = (float(v) for v in box)
    if bw <= 0 or bh <= 0:
        return None
    x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))
    if x2 <= x1 or y2 <= y1:
        return None
    if max(-x, -y, x + bw - w, y + bh - h) > BOX_TOLERANCE:
        notes.append(CLIPPED)
    return [x1, y1, x2 - x1, y2 - y1]
