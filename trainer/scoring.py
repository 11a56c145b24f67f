"""What `maskrcnn evaluate` scores: a model's detections on a validated set, or a COCO results file.

Both return (metrics, the `COCOEvaluator` that computed them: its `tables` are COCOeval's printed tables, its
`per_category` the per-category AP).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .evaluate import COCOEvaluator

MODEL_MAX_DETECTIONS = 100  # models.config.InferenceOptions caps detections_per_img here


def score_model(args: argparse.Namespace) -> tuple[dict[str, Any], COCOEvaluator]:
    """(metrics, evaluator) of the model in `args.weights` on the validated set `args.data`."""
    from models import weights
    from models.inference import Predictor
    from models.options import InferenceOptions

    from .data import CocoDetection
    from .evaluate import iou_types, run_inference, warn_capped

    model = weights.load(args.weights)
    ids = model.config.category_ids or tuple(range(model.config.num_classes))
    dataset = CocoDetection(args.data, category_ids=ids, class_names=model.config.class_names)
    returned = min(args.max_detections, MODEL_MAX_DETECTIONS)
    if args.max_detections > MODEL_MAX_DETECTIONS:
        logging.getLogger(__name__).warning(
            "--max-detections %d: the model returns at most %d detections per image", args.max_detections, returned
        )
    warn_capped(dataset.coco, returned, dataset.source)
    evaluator = COCOEvaluator(
        dataset.coco,
        output=Path(args.output),
        max_detections=args.max_detections,
        iou_types=iou_types(model.config, dataset.coco),
    )
    predictor = Predictor(model, args.device, args.precision)
    options = InferenceOptions(detections_per_img=returned)
    metrics = run_inference(
        predictor,
        dataset,
        evaluator,
        limit=args.limit,
        batch_size=args.batch_size,
        options=options,
        show_progress=True,
    )
    return metrics, evaluator


def score_results_file(
    data: Path, results: Path, output: Path, max_detections: int
) -> tuple[dict[str, Any], COCOEvaluator]:
    """(metrics, evaluator) of a results file on the validated ground truth of `data`: bbox and segm AP, and
    keypoint AP where the ground truth's categories name keypoints."""
    from .data import CocoDetection
    from .evaluate import warn_capped
    from .results import load_results

    ground_truth = CocoDetection(data)
    coco = ground_truth.coco
    warn_capped(coco, max_detections, ground_truth.source)
    detections = load_results(results, coco)
    keypoints = ("keypoints",) if any(c.get("keypoints") for c in coco.cats.values()) else ()
    evaluator = COCOEvaluator(
        coco, output=output, max_detections=max_detections, iou_types=("bbox", "segm", *keypoints)
    )
    by_image: dict[int, list[dict[str, Any]]] = {i: [] for i in coco.imgs}
    for d in detections:
        by_image[d["image_id"]].append(d)
    for image_id, dets in by_image.items():
        evaluator.process(image_id, dets)
    return evaluator.evaluate(), evaluator
