"""`maskrcnn train | evaluate | synth`: argument parsing only; the work lives in train.py, evaluate.py, synth.py.

Each function takes argv (without the subcommand) and returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .data import DataError

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "assets" / "demo.safetensors"


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maskrcnn train", description="Train Mask R-CNN on a COCO-format data set.")
    p.add_argument("--data", required=True, help="directory with annotations.json and images/")
    p.add_argument("--val", help="held-out directory, evaluated every --eval-period iterations and at the end")
    p.add_argument("--out", required=True, help="output directory: checkpoints, metrics.csv, final weights")
    p.add_argument("--model", default="demo", help="model preset (models.config.preset), default demo")
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16, help="global batch, split over the workers")
    p.add_argument("--nproc", type=int, default=1, help="local worker processes (DDP; gloo on CPU, NCCL on GPU)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--backbone-weights", help="torchvision ImageNet ResNet state dict for the trunk")
    p.add_argument("--config", help="JSON file of TrainConfig fields (command-line values win)")
    p.add_argument("--lr", type=float, help="base lr (default: 0.02 x batch / 16)")
    p.add_argument("--warmup-iters", type=int)
    p.add_argument("--lr-steps", type=float, nargs="+", help="fractions of --max-iter where lr drops 10x")
    p.add_argument("--min-sizes", type=int, nargs="+", help="multi-scale training: shorter sides to pick from")
    p.add_argument("--no-flip", dest="flip", action="store_false", default=None)
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None)
    p.add_argument("--seed", type=int)
    p.add_argument("--num-workers", type=int, help="data loader processes per worker")
    p.add_argument("--checkpoint-period", type=int)
    p.add_argument("--keep-checkpoints", type=int)
    p.add_argument("--eval-period", type=int)
    p.add_argument("--eval-images", type=int)
    p.add_argument("--log-period", type=int)
    p.add_argument("--half-weights", action="store_true", default=None, help="store final weights as float16")
    return p


def parse_train_args(argv: list[str]) -> TrainConfig:
    args = vars(_train_parser().parse_args(argv))
    config_file = args.pop("config")
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items() if v is not None}
    if not given.get("resume"):
        given.pop("resume", None)
    return TrainConfig.from_file(config_file, **given) if config_file else TrainConfig(**given)


def _train_worker(config: TrainConfig) -> dict[str, Any]:
    """What each elastic-launched worker runs (module level so that spawned processes can import it)."""
    from .train import run

    return run(config)


def train(argv: list[str]) -> int:
    from . import distributed

    config = parse_train_args(argv)
    try:
        if config.nproc > 1 and not distributed.env_info().distributed:
            results = distributed.launch(config.nproc, _train_worker, config)
            summary = results[0]
        else:
            summary = _train_worker(config)
    except DataError as exc:
        print(f"maskrcnn train: {exc}", file=sys.stderr)
        return 2
    if distributed.env_info().is_main:
        print(json.dumps(summary))
    return 0


def evaluate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="maskrcnn evaluate", description="COCOeval a model on a COCO-format set.")
    p.add_argument("--data", required=True, help="directory with annotations.json and images/")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="weights file (default: the demo model)")
    p.add_argument("--results", help="score this COCO results JSON instead of running a model")
    p.add_argument("--output", default="coco_results.json", help="where to write the COCO results JSON")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from models.weights import WeightsError

    from .evaluate import COCOEvaluator, format_summary, run_inference

    try:
        if args.results:
            metrics = _score_results_file(Path(args.data), Path(args.results), Path(args.output))
            tables = metrics.pop("_tables")
        else:
            from models import weights
            from models.inference import Predictor

            from .data import CocoDetection

            model = weights.load(args.weights)
            dataset = CocoDetection(args.data, category_ids=model.config.category_ids or None)
            evaluator = COCOEvaluator(dataset.coco, output=Path(args.output))
            predictor = Predictor(model, args.device, args.precision)
            metrics = run_inference(predictor, dataset, evaluator, limit=args.limit, batch_size=args.batch_size)
            tables = evaluator.tables
    except (DataError, WeightsError) as exc:
        print(f"maskrcnn evaluate: {exc}", file=sys.stderr)
        return 2
    for iou_type, table in tables.items():
        print(f"IoU type {iou_type}:\n{table}")
    print(format_summary(metrics))
    print(json.dumps(metrics))
    return 0


def _score_results_file(data: Path, results: Path, output: Path) -> dict[str, Any]:
    from .data import find_annotations, load_coco
    from .evaluate import COCOEvaluator

    coco = load_coco(find_annotations(data)[0])
    try:
        detections = json.loads(results.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{results}: cannot read COCO results ({exc})") from None
    evaluator = COCOEvaluator(coco, output=output)
    by_image: dict[int, list[dict[str, Any]]] = {i: [] for i in coco.imgs}
    for d in detections:
        by_image.setdefault(int(d["image_id"]), []).append(d)
    for image_id, dets in by_image.items():
        evaluator.process(image_id, dets)
    metrics: dict[str, Any] = evaluator.evaluate()
    metrics["_tables"] = evaluator.tables
    return metrics


def synth(argv: list[str]) -> int:
    from .synth import SynthConfig, write_dataset

    p = argparse.ArgumentParser(prog="maskrcnn synth", description="Write a synthetic COCO-format shapes data set.")
    p.add_argument("out_dir")
    p.add_argument("--images", type=int, default=SynthConfig.images)
    p.add_argument("--seed", type=int, default=SynthConfig.seed)
    args = p.parse_args(argv)
    path = write_dataset(args.out_dir, SynthConfig(images=args.images, seed=args.seed))
    print(f"wrote {args.images} images and {path}")
    return 0
