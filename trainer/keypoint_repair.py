"""COCO keypoints of a data set: the categories' keypoint names, and each annotation's keypoints repaired.

A COCO keypoint set (`person_keypoints_*.json`, `maskrcnn synth --keypoints`) names its keypoints per category
(`categories[i].keypoints`, a list of names) and gives each annotation `keypoints`, a flat [x1, y1, v1, ...,
xK, yK, vK] list in pixels (v: 0 not labelled, 1 labelled but hidden, 2 visible), and `num_keypoints`, the
count of v > 0 that COCOeval uses to ignore annotations without keypoints.

One model predicts one set of keypoints for every class (torchvision's Keypoint R-CNN head is class-agnostic),
so the categories that name keypoints must name the same ones (DataError otherwise). Annotations are repaired,
one note per kind:
- `keypoints` missing in a category with keypoint names -> K unlabelled points, num_keypoints 0 (silently: what
  COCOeval needs, and the annotation still trains boxes and masks);
- `keypoints` not 3K numbers (K of its category) -> K unlabelled points, num_keypoints 0;
- `keypoints` in a category without keypoint names -> dropped;
- a visibility other than 0, 1, 2 -> 0 (not labelled), and x, y of unlabelled points -> 0 (COCO's convention);
- `num_keypoints` missing or not the count of labelled points -> that count.
"""

from __future__ import annotations

from typing import Any

from .errors import DataError
from .repair import is_number

BAD_KEYPOINTS = "keypoints not 3 numbers per keypoint of its category, taken as unlabelled"
STRAY_KEYPOINTS = "keypoints in a category without keypoint names, dropped"
BAD_VISIBILITY = "keypoint visibility not 0, 1 or 2, taken as 0 (not labelled)"
BAD_COUNT = "num_keypoints missing or not the count of labelled keypoints, recounted"


def keypoint_names(categories: list[dict[str, Any]], source: object) -> tuple[str, ...]:
    """The keypoint names the set's categories share; () when none names keypoints. Raises DataError when a
    `keypoints` entry is not a list of strings or two categories name different keypoints."""
    found: dict[tuple[str, ...], int] = {}
    for cat in categories:
        names = cat.get("keypoints")
        if names is None or names == []:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise DataError(f"{source}: category {cat['id']} has keypoints that are not a list of names")
        found.setdefault(tuple(names), cat["id"])
    if len(found) > 1:
        (a, ida), (b, idb) = list(found.items())[:2]
        raise DataError(
            f"{source}: categories {ida} and {idb} name different keypoints ({list(a)} vs {list(b)}); one model "
            "predicts one set of keypoints for every class"
        )
    return next(iter(found), ())


def repair_keypoints(ann: dict[str, Any], count: int) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(the annotation with usable keypoints, or without the key; notes). count: K of its category (0: none)."""
    points = ann.get("keypoints")
    if count == 0:
        if points is None:
            return ann, ()
        return {k: v for k, v in ann.items() if k not in ("keypoints", "num_keypoints")}, (STRAY_KEYPOINTS,)
    unlabelled = {**ann, "keypoints": [0] * (3 * count), "num_keypoints": 0}
    if points is None:
        return unlabelled, ()
    if not isinstance(points, list) or len(points) != 3 * count or not all(map(is_number, points)):
        return unlabelled, (BAD_KEYPOINTS,)
    notes: list[str] = []
    fixed: list[float] = []
    for x, y, v in zip(points[0::3], points[1::3], points[2::3], strict=True):
        if v not in (0, 1, 2):
            notes.append(BAD_VISIBILITY)
            v = 0
        fixed += [x, y, v] if v else [0, 0, 0]
    labelled = sum(1 for v in fixed[2::3] if v > 0)
    if ann.get("num_keypoints") != labelled:
        notes.append(BAD_COUNT)
    return {**ann, "keypoints": fixed, "num_keypoints": labelled}, tuple(dict.fromkeys(notes))
