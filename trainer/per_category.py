"""Per-category AP from an accumulated COCOeval, and the `--per-category FILE.json|csv` table (bbox, segm, and
keypoints where they were scored).

As Detectron2's `_derive_coco_results`: COCOeval's `eval["precision"]` has shape [T, R, K, A, M] (IoU
thresholds, recall points, categories, area ranges, maxDets); one category's AP is the mean over IoU
thresholds and recall points at area "all" and the last (largest) maxDets, ignoring the -1 entries (no ground
truth). A category with no ground truth among the evaluated images has no AP: None (null in JSON, empty in CSV).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .errors import DataError

IOU_TYPES = ("bbox", "segm")
FORMATS = (".json", ".csv")


def per_category_ap(ev: COCOeval) -> dict[int, float | None]:
    """{category id: AP in percent, or None} for an evaluated and accumulated `ev`."""
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    out: dict[int, float | None] = {}
    for k, category_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        out[int(category_id)] = round(float(np.mean(p)) * 100, 3) if p.size else None
    return out


def rows(coco_gt: COCO, per_iou: dict[str, dict[int, float | None]]) -> list[dict[str, Any]]:
    """One row per ground-truth category, in id order: category_id, name, bbox_AP, segm_AP, and keypoints_AP
    when keypoints were scored (None for a category that names no keypoints)."""
    iou_types = IOU_TYPES + (("keypoints",) if "keypoints" in per_iou else ())
    return [
        {
            "category_id": cid,
            "name": coco_gt.cats[cid].get("name", str(cid)),
            **{f"{t}_AP": per_iou.get(t, {}).get(cid) for t in iou_types},
        }
        for cid in sorted(coco_gt.cats)
    ]


def check_path(path: str | Path) -> Path:
    """The output path, if its suffix names a format this module writes (DataError otherwise)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise DataError(f"--per-category {path}: the file name must end in .json or .csv")
    return path


def write(path: str | Path, table: list[dict[str, Any]]) -> Path:
    """Write `rows(...)` as a JSON list of objects or as CSV (by the suffix); returns the path."""
    path = check_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(table, indent=2) + "\n")
        return path
    with path.open("w", newline="") as f:
        columns = list(table[0]) if table else ["category_id", "name", *(f"{t}_AP" for t in IOU_TYPES)]
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in table)
    return path
