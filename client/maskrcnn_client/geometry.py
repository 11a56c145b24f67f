"""Masks from COCO RLE (pycocotools) and polygons from masks (OpenCV, the optional `polygons` extra)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from pycocotools import mask as mask_utils

POLYGONS_EXTRA = "pip install 'maskrcnn-client[polygons]'"


class Ring(NamedTuple):
    """One closed outline: points = flat [x0, y0, x1, y1, ...] in pixels (pixel centres of the boundary, as
    OpenCV traces them); hole = True for an inner boundary; parent = index of its outer ring (-1 for outer)."""

    points: list[float]
    hole: bool
    parent: int


def decode_masks(rles: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """COCO RLEs (counts as str or bytes) -> bool ndarray (N, height, width)."""
    if not rles:
        return np.zeros((0, height, width), dtype=bool)
    encoded = [{"size": list(r["size"]), "counts": _as_bytes(r["counts"])} for r in rles]
    masks = mask_utils.decode(encoded)  # uint8 (H, W, N), Fortran order
    return np.ascontiguousarray(masks.transpose(2, 0, 1)).astype(bool)


def _as_bytes(counts: str | bytes) -> bytes:
    return counts.encode("ascii") if isinstance(counts, str) else counts


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(f"polygons() needs OpenCV for contour tracing: {POLYGONS_EXTRA}") from exc
    return cv2


def mask_polygons(mask: np.ndarray) -> list[Ring]:
    """bool (H, W) mask -> its outlines: every outer boundary (one per connected part) and every hole, as
    `Ring`s, outer rings first in OpenCV's order with their holes after them. Raises ImportError without
    the `polygons` extra."""
    cv2 = _cv2()
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    # RETR_CCOMP: a two-level tree; hierarchy[0][i] = (next, previous, first child, parent); parent -1 = outer.
    tree = hierarchy[0]
    rings: list[Ring] = []
    for i, contour in enumerate(contours):
        if tree[i][3] != -1 or len(contour) < 3:
            continue
        outer = len(rings)
        rings.append(Ring(contour.reshape(-1).astype(float).tolist(), hole=False, parent=-1))
        child = tree[i][2]
        while child != -1:
            if len(contours[child]) >= 3:
                rings.append(Ring(contours[child].reshape(-1).astype(float).tolist(), hole=True, parent=outer))
            child = tree[child][0]
    return rings
