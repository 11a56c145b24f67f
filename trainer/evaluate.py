"""COCO evaluation: detections -> COCO results -> pycocotools COCOeval (bbox, segm, keypoints) -> AP numbers.

`COCOEvaluator` follows Detectron2's reset / process / evaluate: `process` takes one image's COCO results
(as `models.inference.coco_results` makes them), `evaluate` gathers them from every rank and runs COCOeval
on rank 0. `run_inference` feeds it from a `Predictor` over a data set; `evaluate` (the CLI) and the
training loop's periodic eval both use it.

Metrics are percentages; a metric COCOeval reports as -1 (no ground truth in that size range, e.g. APl on a
set of small objects) is None: null in JSON, "-" in `format_summary`, never a 0 that looks like a score.
`max_detections` is COCOeval's maxDets (the highest of its three values): the number of detections scored per
image, 100 by default as in COCO; an image with more ground-truth instances than that caps AP below 100, which
`warn_capped` says up front.

Keypoints (a keypoint model on a keypoint set) are scored by COCOeval's iouType "keypoints" (OKS instead of IoU)
over the categories that name keypoints, with `params.kpt_oks_sigmas` from the keypoint names
(`models.keypoint_names.oks_sigmas`: COCO's 17 person sigmas, 0.05 for other names such as the synthetic
shapes' extreme points); it reports AP, AP50, AP75, APm, APl (no APs: COCO scores no small keypoint objects).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from models.config import ModelConfig
from models.inference import Predictor
from models.keypoint_names import oks_sigmas
from models.options import InferenceOptions

from .data import CocoDetection
from .distributed import DistInfo, all_gather_objects
from .per_category import per_category_ap
from .progress import progress

log = logging.getLogger(__name__)
data_log = logging.getLogger("trainer.data")  # warnings about the data, muted on non-main ranks like the others
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl")  # COCOeval's first 5 keypoint stats
MAX_DETECTIONS = 100  # COCO's detections scored per image
Metrics = dict[str, float | None]


def warn_capped(coco_gt: COCO, max_detections: int, source: str | Path) -> None:
    """Warn when some image has more (non-crowd) ground-truth instances than detections are scored per image."""
    per_image = Counter(a["image_id"] for a in coco_gt.dataset["annotations"] if not a["iscrowd"])
    crowded = sorted((i for i, n in per_image.items() if n > max_detections), key=lambda i: -per_image[i])
    if crowded:
        data_log.warning(
            "%s: %d images have more ground-truth instances than the %d detections scored per image (up to %d, "
            "e.g. image ids %s): AP cannot reach 100; maskrcnn evaluate --max-detections N scores more",
            source,
            len(crowded),
            max_detections,
            per_image[crowded[0]],
            crowded[:5],
        )


class COCOEvaluator:
    """Accumulate COCO results for a ground-truth set, then score them with COCOeval (AP in percent)."""

    def __init__(
        self,
        coco_gt: COCO,
        dist: DistInfo | None = None,
        output: Path | None = None,
        max_detections: int = MAX_DETECTIONS,
        iou_types: tuple[str, ...] = ("bbox", "segm"),
    ) -> None:
        self.coco_gt = coco_gt
        self.iou_types = iou_types
        self.dist = dist or DistInfo()
        self.output = output
        self.max_detections = max_detections
        self.tables: dict[str, str] = {}
        self.per_category: dict[str, dict[int, float | None]] = {}  # iou type -> {category id: AP or None}
        self.reset()

    def reset(self) -> None:
        self._results: list[dict[str, Any]] = []
        self._image_ids: list[int] = []

    def process(self, image_id: int, results: list[dict[str, Any]]) -> None:
        """One image's detections in COCO results format (category_id, bbox xywh, score, segmentation RLE)."""
        self._image_ids.append(image_id)
        for r in results:
            item = {k: v for k, v in r.items() if k in ("category_id", "bbox", "score", "segmentation", "keypoints")}
            self._results.append({"image_id": image_id, **item})

    def evaluate(self) -> Metrics:
        """{bbox_AP, bbox_AP50, ..., segm_AP, ...} on rank 0 (an empty dict on the others); None: no ground
        truth in that size range."""
        results = [r for part in all_gather_objects(self._results) for r in part]
        image_ids = sorted({i for part in all_gather_objects(self._image_ids) for i in part})
        if not self.dist.is_main:
            return {}
        if self.output is not None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_text(json.dumps(results))
        metrics: Metrics = {}
        for iou_type in self.iou_types:
            stats, table = self._coco_eval(results, image_ids, iou_type)
            self.tables[iou_type] = table
            names = KEYPOINT_STAT_NAMES if iou_type == "keypoints" else STAT_NAMES
            for name, v in zip(names, stats[: len(names)], strict=True):
                metrics[f"{iou_type}_{name}"] = None if v < 0 else round(float(v) * 100, 3)
        return metrics

    def _coco_eval(self, results: list[dict[str, Any]], image_ids: list[int], iou_type: str) -> tuple[Any, str]:
        """COCOeval's 12 stats (-1: no ground truth in that range) and its printed table."""
        field = {"bbox": "bbox", "segm": "segmentation", "keypoints": "keypoints"}[iou_type]
        usable = [r for r in results if field in r]
        if iou_type == "keypoints":
            return self._keypoint_eval(usable, image_ids)
        max_dets = [1, min(10, self.max_detections), self.max_detections]
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            coco_dt = self.coco_gt.loadRes(copy.deepcopy(usable)) if usable else self._no_detections()
            ev = COCOeval(self.coco_gt, coco_dt, iou_type)
            ev.params.imgIds = image_ids
            ev.params.maxDets = max_dets
            ev.evaluate()
            ev.accumulate()
            self.per_category[iou_type] = per_category_ap(ev)
            # summarize() finds its slots by the values 1, 10, 100 (AP is always read "at 100"): name the three
            # accumulated slots so, then print their real values in the table.
            ev.params.maxDets = [1, 10, 100]
            ev.summarize()
        table = buffer.getvalue().replace("maxDets=100 ]", f"maxDets={max_dets[2]:>3d} ]")
        return np.asarray(ev.stats), table.replace("maxDets= 10 ]", f"maxDets={max_dets[1]:>3d} ]")

    def _keypoint_eval(self, usable: list[dict[str, Any]], image_ids: list[int]) -> tuple[Any, str]:
        """COCOeval "keypoints" over the categories that name keypoints: its 10 stats and its printed table."""
        cats = [c for c in sorted(self.coco_gt.cats) if self.coco_gt.cats[c].get("keypoints")]
        names = tuple(self.coco_gt.cats[cats[0]]["keypoints"]) if cats else ()
        # loadRes reads every detection as the first one is: give keypoint-only ones the box of their keypoints,
        # as loadRes itself would (its area decides the detection's size range)
        usable = [r if "bbox" in r else {**r, "bbox": _keypoint_box(r["keypoints"])} for r in usable]
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            coco_dt = self.coco_gt.loadRes(copy.deepcopy(usable)) if usable else self._no_detections()
            ev = COCOeval(self.coco_gt, coco_dt, "keypoints")
            ev.params.imgIds, ev.params.catIds = image_ids, cats
            ev.params.kpt_oks_sigmas = np.asarray(oks_sigmas(names))
            ev.params.maxDets = [self.max_detections]
            ev.evaluate()
            ev.accumulate()
            self.per_category["keypoints"] = per_category_ap(ev)
            ev.params.maxDets = [20]  # summarize() reads keypoint stats "at 20": the one accumulated slot
            ev.summarize()
        return np.asarray(ev.stats), buffer.getvalue().replace("maxDets= 20 ]", f"maxDets={self.max_detections:>3d} ]")

    def _no_detections(self) -> COCO:
        """An empty results set (pycocotools' loadRes fails on []): AP 0 where there is ground truth."""
        empty = COCO()
        empty.dataset = {k: self.coco_gt.dataset[k] for k in ("images", "categories")} | {"annotations": []}
        empty.createIndex()
        return empty


def _keypoint_box(keypoints: list[float]) -> list[float]:
    """[x, y, w, h] spanning the keypoints' coordinates, as pycocotools' `loadRes` makes it for keypoint results."""
    xs, ys = keypoints[0::3], keypoints[1::3]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def run_inference(
    predictor: Predictor,
    dataset: CocoDetection,
    evaluator: COCOEvaluator,
    dist: DistInfo | None = None,
    limit: int = 0,
    batch_size: int = 4,
    options: InferenceOptions | None = None,
    show_progress: bool = False,
) -> Metrics:
    """Predict every image (this rank's share of them) and evaluate.

    show_progress: a bar of images scored on stderr when it is a terminal (rank 0 only).

    The model reports its own category ids; each result is given the data set's id of the same category
    (`dataset.categories`, matched by name when the ids differ) and dropped when the set has no such category.
    """
    dist = dist or DistInfo()
    evaluator.reset()
    to_dataset = dataset.categories.to_dataset
    indices = list(range(len(dataset)))[: limit or None][dist.rank :: dist.world_size]
    bar = progress(total=len(indices), desc="evaluate", unit="image", enabled=show_progress and dist.is_main)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        ids = [dataset.image_ids[i] for i in chunk]
        images = [dataset.read_image(i) for i in ids]
        for image_id, results in zip(ids, predictor(images, options), strict=True):
            mapped = [
                {**r, "category_id": to_dataset[r["category_id"]]} for r in results if r["category_id"] in to_dataset
            ]
            evaluator.process(image_id, mapped)
        bar.update(len(chunk))
    bar.close()
    return evaluator.evaluate()


def iou_types(config: ModelConfig, coco_gt: COCO) -> tuple[str, ...]:
    """What a model's detections can be scored on: bbox, segm with a mask branch, keypoints with a keypoint
    branch on a set whose categories name keypoints."""
    types = ("bbox",) + (("segm",) if config.mask_head != "none" else ())
    if config.num_keypoints and any(c.get("keypoints") for c in coco_gt.cats.values()):
        types += ("keypoints",)
    return types


def format_summary(metrics: Metrics) -> str:
    """A compact AP table: one row per IoU type, columns AP, AP50, AP75, APs, APm, APl; "-" where absent."""
    lines = ["       " + "".join(f"{n:>8}" for n in STAT_NAMES)]
    keypoints = any(name.startswith("keypoints_") for name in metrics)
    for iou_type in ("bbox", "segm", *(("keypoints",) if keypoints else ())):
        values = (metrics.get(f"{iou_type}_{n}") for n in STAT_NAMES)
        label = {"keypoints": "kpts"}.get(iou_type, iou_type)
        lines.append(f"{label:<7}" + "".join(f"{'-':>8}" if v is None else f"{v:8.2f}" for v in values))
    return "\n".join(lines)
