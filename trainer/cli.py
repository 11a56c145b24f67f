"""`maskrcnn train | evaluate | synth | plot`: argument parsing only; the work lives in train.py, scoring.py,
synth.py, plot.py.

Each function takes argv (without the subcommand) and returns the exit status: 0, or 2 with one line
"maskrcnn <command>: <message>" on stderr for data that cannot be used (`DataError`), also when a DataLoader
worker or a `--nproc` worker process met it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .errors import DataError, one_line

if TYPE_CHECKING:
    from .train import TrainData

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "assets" / "demo.safetensors"
DATA_HELP = "directory with annotations.json (or one instances*.json) and images/"
DATA_ERROR_EXIT = 2


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maskrcnn train", description="Train Mask R-CNN on a COCO-format data set.")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--val", help="held-out directory, evaluated every --eval-period iterations and at the end")
    p.add_argument("--out", required=True, help="output directory: checkpoints, metrics.csv, final weights")
    p.add_argument("--model", default="demo", help="model preset (models.presets.preset), default demo")
    p.add_argument(
        "--model-set",
        action="append",
        metavar="FIELD=VALUE",
        help="override one ModelConfig field of the preset, e.g. pooler=pool or anchor_sizes=8,16,32,64,128 "
        "(repeatable); the choice is stored in the weights file",
    )
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
    """argv -> TrainConfig; exits with status 2 and argparse's usage line when --model or --model-set is bad."""
    parser = _train_parser()
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config")
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items() if v is not None}
    if not given.get("resume"):
        given.pop("resume", None)
    config = TrainConfig.from_file(config_file, **given) if config_file else TrainConfig(**given)
    try:
        config.model_config()  # the preset and --model-set, checked before any data is read
    except ValueError as exc:
        parser.error(str(exc))
    return config


def _train_worker(config: TrainConfig, data: TrainData | None = None) -> dict[str, Any]:
    """What each elastic-launched worker runs (module level so that spawned processes can import it).

    data: the validated `train.TrainData`. A DataError in a launched worker (an image that fails to decode
    mid-run) prints its one line and exits with status 2, which the launching process recognises.
    """
    from . import distributed
    from .train import run

    try:
        return run(config, data)
    except DataError as exc:
        if not distributed.env_info().distributed:
            raise
        print(f"maskrcnn train: {one_line(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(DATA_ERROR_EXIT) from None


def train(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from . import distributed
    from .train import configure_logging, load_data

    config = parse_train_args(argv)
    configure_logging()
    try:
        data = load_data(config)  # validated once, up front, before any worker starts
        if config.nproc > 1 and not distributed.env_info().distributed:
            with _quiet_data_error_exits():
                results = distributed.launch(config.nproc, _train_worker, config, data)
            summary = results[0]
        else:
            summary = _train_worker(config, data)
    except DataError as exc:
        print(f"maskrcnn train: {one_line(exc)}", file=sys.stderr)
        return DATA_ERROR_EXIT
    except ChildFailedError as exc:
        if exc.get_first_failure()[1].exitcode != DATA_ERROR_EXIT:
            raise
        return DATA_ERROR_EXIT  # the worker printed its one line
    if distributed.env_info().is_main:
        print(json.dumps(summary))
    return 0


class _DropDataErrorExits(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return f"(exitcode: {DATA_ERROR_EXIT})" not in record.getMessage()


@contextlib.contextmanager
def _quiet_data_error_exits() -> Iterator[None]:
    """torch's launcher logs a worker's non-zero exit with a traceback of its own; a worker that exits with
    DATA_ERROR_EXIT has printed its one line already, so that record is dropped (other failures are kept)."""
    logger = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    dropper = _DropDataErrorExits()
    logger.addFilter(dropper)
    try:
        yield
    finally:
        logger.removeFilter(dropper)


def evaluate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="maskrcnn evaluate", description="COCOeval a model on a COCO-format set.")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="weights file (default: the demo model)")
    p.add_argument("--results", help="score this COCO results JSON instead of running a model")
    p.add_argument("--output", default="coco_results.json", help="where to write the COCO results JSON")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    p.add_argument(
        "--max-detections",
        type=_positive,
        default=100,
        metavar="N",
        help="detections scored per image (COCOeval's maxDets, default 100 as in COCO); the model returns up to 100",
    )
    p.add_argument(
        "--per-category", metavar="FILE", help="write per-category bbox, segm (and keypoint) AP (.json or .csv)"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from models.weights import WeightsError

    from . import per_category
    from .evaluate import format_summary
    from .scoring import score_model, score_results_file

    try:
        if args.per_category:
            per_category.check_path(args.per_category)  # before the run, not after it
        if args.results:
            metrics, evaluator = score_results_file(
                Path(args.data), Path(args.results), Path(args.output), args.max_detections
            )
        else:
            metrics, evaluator = score_model(args)
    except (DataError, WeightsError) as exc:
        print(f"maskrcnn evaluate: {one_line(exc)}", file=sys.stderr)
        return 2
    for iou_type, table in evaluator.tables.items():
        print(f"IoU type {iou_type}:\n{table}")
    print(format_summary(metrics))
    if args.per_category:
        table = per_category.rows(evaluator.coco_gt, evaluator.per_category)
        print(f"per-category AP: {per_category.write(args.per_category, table)}", file=sys.stderr)
    print(json.dumps(metrics))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def synth(argv: list[str]) -> int:
    from .synth import SynthConfig, write_dataset

    p = argparse.ArgumentParser(prog="maskrcnn synth", description="Write a synthetic COCO-format shapes data set.")
    p.add_argument("out_dir")
    p.add_argument("--images", type=int, default=SynthConfig.images)
    p.add_argument("--seed", type=int, default=SynthConfig.seed)
    p.add_argument("--min-side", type=_positive, default=SynthConfig.min_side, help="smallest image side (pixels)")
    p.add_argument("--max-side", type=_positive, default=SynthConfig.max_side, help="largest image side (pixels)")
    p.add_argument(
        "--keypoints",
        action="store_true",
        help="annotate each shape's 4 extreme points (top, right, bottom, left) as COCO keypoints",
    )
    args = p.parse_args(argv)
    if args.max_side < args.min_side:
        p.error(f"--max-side {args.max_side} is below --min-side {args.min_side}")
    config = SynthConfig(
        images=args.images, seed=args.seed, min_side=args.min_side, max_side=args.max_side, keypoints=args.keypoints
    )
    path = write_dataset(args.out_dir, config, show_progress=True)
    print(f"wrote {args.images} images and {path}")
    return 0


def plot(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="maskrcnn plot", description="Draw a training run's loss and AP curves (metrics.csv, eval.jsonl)."
    )
    p.add_argument("run_dir", help="the --out directory of maskrcnn train")
    p.add_argument("--out", help="PNG to write (default: RUN_DIR/curves.png)")
    args = p.parse_args(argv)
    from .plot import PlotError, plot_run

    try:
        path = plot_run(args.run_dir, args.out)
    except PlotError as exc:
        print(f"maskrcnn plot: {one_line(exc)}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
