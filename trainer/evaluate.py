"""COCO evaluation: detections -> COCO results -> pycocotools COCOeval (bbox and segm) -> AP numbers.

`COCOEvaluator` follows Detectron2's reset / process / evaluate: `process` takes one image's COCO results
(as `models.inference.coco_results` makes them), `evaluate` gathers them from every rank and runs COCOeval
on rank 0. `run_inference` feeds it from a `Predictor` over a data set; `evaluate` (the CLI) and the
training loop's periodic eval both use it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from models.inference import Predictor

from .data import CocoDetection
from .distributed import DistInfo, all_gather_objects

log = logging.getLogger(__name__)
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


class COCOEvaluator:
    """Accumulate COCO results for a ground-truth set, then score them with COCOeval (AP in percent)."""

    def __init__(self, coco_gt: COCO, dist: DistInfo | None = None, output: Path | None = None) -> None:
        self.coco_gt = coco_gt
        self.dist = dist or DistInfo()
        self.output = output
        self.tables: dict[str, str] = {}
        self.reset()

    def reset(self) -> None:
        self._results: list[dict[str, Any]] = []
        self._image_ids: list[int] = []

    def process(self, image_id: int, results: list[dict[str, Any]]) -> None:
        """One image's detections in COCO results format (category_id, bbox xywh, score, segmentation RLE)."""
        self._image_ids.append(image_id)
        for r in results:
            item = {k: v for k, v in r.items() if k in ("category_id", "bbox", "score", "segmentation")}
            self._results.append({"image_id": image_id, **item})

    def evaluate(self) -> dict[str, float]:
        """{bbox_AP, bbox_AP50, ..., segm_AP, ...} on rank 0 (an empty dict on the others)."""
        results = [r for part in all_gather_objects(self._results) for r in part]
        image_ids = sorted({i for part in all_gather_objects(self._image_ids) for i in part})
        if not self.dist.is_main:
            return {}
        if self.output is not None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_text(json.dumps(results))
        metrics: dict[str, float] = {}
        for iou_type in ("bbox", "segm"):
            stats, table = self._coco_eval(results, image_ids, iou_type)
            self.tables[iou_type] = table
            metrics.update(
                {f"{iou_type}_{name}": round(float(v) * 100, 3) for name, v in zip(STAT_NAMES, stats[:6], strict=True)}
            )
        return metrics

    def _coco_eval(self, results: list[dict[str, Any]], image_ids: list[int], iou_type: str) -> tuple[Any, str]:
        """COCOeval's 12 stats and its printed table; no detections at all scores 0 (pycocotools would fail)."""
        usable = [r for r in results if iou_type == "bbox" or "segmentation" in r]
        if not usable:
            return np.zeros(12), f"{iou_type}: no detections\n"
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            coco_dt = self.coco_gt.loadRes(copy.deepcopy(usable))
            ev = COCOeval(self.coco_gt, coco_dt, iou_type)
            ev.params.imgIds = image_ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = np.maximum(ev.stats, 0)  # -1 means "no ground truth in this range": report 0, not -100
        return stats, buffer.getvalue()


def run_inference(
    predictor: Predictor,
    dataset: CocoDetection,
    evaluator: COCOEvaluator,
    dist: DistInfo | None = None,
    limit: int = 0,
    batch_size: int = 4,
) -> dict[str, float]:
    """Predict every image (this rank's share of them) and evaluate. COCO category ids come from the model."""
    dist = dist or DistInfo()
    evaluator.reset()
    indices = list(range(len(dataset)))[: limit or None][dist.rank :: dist.world_size]
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        ids = [dataset.image_ids[i] for i in chunk]
        images = [dataset.read_image(i) for i in ids]
        for image_id, results in zip(ids, predictor(images), strict=True):
            evaluator.process(image_id, results)
    return evaluator.evaluate()


def format_summary(metrics: dict[str, float]) -> str:
    """A compact AP table: one row per IoU type, columns AP, AP50, AP75, APs, APm, APl."""
    lines = ["       " + "".join(f"{n:>8}" for n in STAT_NAMES)]
    for iou_type in ("bbox", "segm"):
        lines.append(f"{iou_type:<7}" + "".join(f"{metrics.get(f'{iou_type}_{n}', 0.0):8.2f}" for n in STAT_NAMES))
    return "\n".join(lines)
