"""COCO compressed RLE of pasted masks, computed from their crops instead of full-image masks.

``pycocotools.mask.encode`` needs each full H x W mask in Fortran order; building those costs more than
the encoding. The run lengths of a full mask follow directly from its crop and offset, so we find them
with numpy and leave only the string compression to pycocotools (``frPyObjects`` turns uncompressed RLE
into compressed RLE). The output equals ``encode(np.asfortranarray(crops.full()[i].astype(np.uint8)))``.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from .postprocess import MaskCrops


def encode(crops: MaskCrops) -> list[dict]:
    """One COCO RLE per detection: {"size": [H, W], "counts": str}, compressed as pycocotools writes it."""
    height, width = crops.image_size
    uncompressed = [
        {"size": [height, width], "counts": run_lengths(crop, int(y0), int(x0), height, width)}
        for crop, (y0, x0) in zip(crops.crops, crops.offsets, strict=True)
    ]
    if not uncompressed:
        return []
    rles = mask_utils.frPyObjects(uncompressed, height, width)
    return [{"size": [height, width], "counts": rle["counts"].decode("ascii")} for rle in rles]


def run_lengths(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> np.ndarray:
    """Uncompressed COCO counts (int64) of the H x W mask that is ``crop`` at rows y0.., cols x0.., else 0.

    COCO RLE runs over the image in column-major order and alternates zeros and ones, starting with a
    (possibly empty) run of zeros; it ends with the last run, never with an empty one. Pixel (y, x) has
    position x * H + y. Column j of the crop (h pixels) therefore starts at (x0 + j) * H + y0.
    """
    h, w = crop.shape
    if h == 0 or w == 0 or not crop.any():
        return np.array([height * width], dtype=np.int64)
    # Lay the crop's columns end to end, each followed by a 0 separator unless the crop spans the full
    # height: then consecutive columns are adjacent in the image, and a run of ones that reaches the
    # bottom of one column continues at the top of the next. A leading 0 makes the first run a start.
    stride = h if h == height else h + 1
    line = np.zeros(w * stride + 2, dtype=bool)
    line[1:-1].reshape(w, stride)[:, :h] = crop.T
    # A run starts at line[q + 1], which holds crop column q // stride, row q % stride (row h: the
    # separator, i.e. the image pixel just below the crop, where a run of ones ends).
    q = np.flatnonzero(line[1:] != line[:-1])
    # Its image position (x0 + column) * H + y0 + row, with row = q - column * stride:
    edges = (x0 * height + y0) + q + (q // stride) * (height - stride)  # run starts, (exclusive) ends
    counts = np.diff(edges, prepend=0, append=height * width)
    return counts[:-1] if counts[-1] == 0 else counts
