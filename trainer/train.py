"""Assemble a training run from a `TrainConfig`: data, model, optimizer, schedule, hooks; then run it.

`run(config)` is what each worker executes (alone, under `--nproc N`, or under torchrun). It returns a small
summary (final iteration, last lr, a digest of the parameters) that the launcher collects from every rank;
the tests use it to check that all ranks end with identical parameters.

The data (training set and `--val` set) is loaded and validated once, up front, by `load_data`, before a
model is built or a worker started: `maskrcnn train --nproc N` validates in the launching process and hands
the checked sets to its workers, so that bad data stops the run with one line and its warnings print once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from models import build_model
from models import weights as model_weights
from models.inference import Predictor

from . import checkpoint, distributed
from .config import TrainConfig
from .data import CocoDetection, TrainingView, collate
from .engine import Trainer, build_optimizer, lr_lambda
from .evaluate import MAX_DETECTIONS, COCOEvaluator, iou_types, run_inference, warn_capped
from .hooks import CheckpointHook, EvalHook, MetricsHook
from .sampler import ResumableBatchSampler
from .tensorboard import TensorBoardHook
from .validate import warn_untrainable

log = logging.getLogger(__name__)
FINAL_WEIGHTS = "model_final.safetensors"


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """A torchvision ImageNet ResNet state dict -> `model.backbone.body`, non-strictly (the fc layer is ignored).

    A C4 model's trunk stops at res4: ImageNet's `layer4` goes to its RoI head, `roi_heads.res5` (as Detectron2's
    Res5ROIHeads starts from the ImageNet res5).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    parts: list[tuple[str, nn.Module, dict[str, torch.Tensor]]] = [("backbone", model.backbone.body, state)]  # type: ignore[list-item]
    res5 = getattr(model.roi_heads, "res5", None)
    if isinstance(res5, nn.Module):
        state, layer4 = _split_prefix(state, "layer4.")
        parts = [("backbone", model.backbone.body, state), ("res5 RoI head", res5, layer4)]  # type: ignore[list-item]
    for name, module, part in parts:
        result = module.load_state_dict(part, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        loaded = len(part) - len(result.unexpected_keys)
        if loaded == 0:
            raise ValueError(f"{path}: no tensor fits the {type(module).__name__} {name}; is it a ResNet state dict?")
        log.info(
            "%s: loaded %d tensors from %s; %d missing, %d ignored",
            name,
            loaded,
            path,
            len(missing),
            len(result.unexpected_keys),
        )


def _split_prefix(
    state: dict[str, torch.Tensor], prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the keys without `prefix`, the keys with it, stripped of it)."""
    rest = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return rest, {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def params_digest(model: nn.Module) -> str:
    """sha256 over every parameter and buffer, in state-dict order: equal digests mean identical models."""
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@dataclass(frozen=True)
class TrainData:
    """The validated training set, and the validation set with its categories matched to the training set's."""

    train: CocoDetection
    val: CocoDetection | None


def load_data(config: TrainConfig) -> TrainData:
    """Load and validate `config.data` and `config.val` (DataError: the run cannot start). Under torchrun every
    rank loads its own copy; only rank 0 logs the data warnings."""
    quiet = not distributed.env_info().is_main
    data_log = logging.getLogger("trainer.data")
    level = data_log.level
    if quiet:
        data_log.setLevel(logging.ERROR)
    try:
        train = CocoDetection(config.data)
        warn_untrainable(train.coco, train.source)
        val = None
        if config.val:
            val = CocoDetection(config.val, category_ids=train.category_ids, class_names=train.class_names)
            warn_capped(val.coco, MAX_DETECTIONS, val.source)
    finally:
        data_log.setLevel(level)
    return TrainData(train, val)


def run(config: TrainConfig, data: TrainData | None = None) -> dict[str, Any]:
    """Train as this process's rank; returns {iteration, lr, base_lr, params_sha256, images_per_s, rank, ...}.

    data: the sets `load_data` returned (loaded here when None).
    """
    configure_logging()
    device_name = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    info, device = distributed.setup(device_name)
    try:
        summary = _run(config, data if data is not None else load_data(config), info, device)
    except BaseException:
        distributed.abort()  # no barrier: the other ranks may never get there
        raise
    distributed.cleanup()
    return summary


def _run(config: TrainConfig, data: TrainData, info: distributed.DistInfo, device: torch.device) -> dict[str, Any]:
    if info.distributed and device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.world_size))
    out = Path(config.out)
    per_worker = config.per_worker_batch(info.world_size)
    dataset = data.train
    overrides: dict[str, Any] = {
        "num_classes": len(dataset.category_ids),
        "class_names": dataset.class_names,
        "category_ids": dataset.category_ids,
    }
    if dataset.keypoint_names:  # a keypoint set trains the keypoint branch too
        overrides |= {"num_keypoints": len(dataset.keypoint_names), "keypoint_names": dataset.keypoint_names}
    if config.min_sizes:
        overrides["min_size"] = tuple(config.min_sizes)
    model_config = config.model_config(**overrides)
    _seed_all(config.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = build_model(model_config)
    if config.backbone_weights:
        load_backbone_weights(model, config.backbone_weights)
    model.to(device)
    optimizer = build_optimizer(model, config.base_lr, config.momentum, config.weight_decay)
    steps = tuple(int(f * config.max_iter) for f in config.lr_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(config.effective_warmup, config.warmup_factor, steps)
    )
    _seed_all(config.seed + 1000 * info.rank)  # different augmentation draws per rank
    state = None
    if config.resume:
        last = checkpoint.latest(out)
        if last is None:
            _say(info, f"--resume: no checkpoint in {out}, starting from iteration 0")
        else:
            state = checkpoint.load(last)
            saved = state["model_config"]
            if "variant" in saved:  # saved before weights format 2: upgrade as a format-1 file's config
                saved = model_weights.upgrade_format_1(saved)
            if saved != model_config.to_dict():
                raise ValueError(f"{last}: checkpoint was trained with another model config")
            _say(info, f"resuming from {last} (iteration {int(state['iteration'])})")
    start_iter = int(state["iteration"]) if state else 0
    batches = ResumableBatchSampler(dataset, per_worker, info.rank, info.world_size, config.seed, start_iter)
    loader = DataLoader(
        TrainingView(dataset, flip=config.flip),
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
    )
    trainer = Trainer(
        model,
        optimizer,
        scheduler,
        iter(loader),
        max_iter=config.max_iter,
        global_batch=config.batch_size,
        device=device,
        dist=info,
        amp=config.amp,
    )
    if state is not None:
        trainer.load_state_dict(state)  # after the loader drew its worker seeds, as an uninterrupted run did
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    metrics_hook = MetricsHook(out, config.log_period)
    trainer.register(CheckpointHook(out, config.checkpoint_period, config.keep_checkpoints), metrics_hook)
    eval_hook = None
    if data.val is not None:
        val = data.val
        evaluator = COCOEvaluator(
            val.coco, info, output=out / "eval" / "coco_results.json", iou_types=iou_types(model_config, val.coco)
        )

        def evaluate() -> dict[str, float | None]:
            predictor = Predictor(model, device, channels_last=False)
            return run_inference(predictor, val, evaluator, info, limit=config.eval_images)

        eval_hook = EvalHook(out, config.eval_period, evaluate)
        trainer.register(eval_hook)
    trainer.register(TensorBoardHook(out, metrics_hook, eval_hook))  # after both: it reads their results
    trainer.train()
    if info.is_main:
        model_weights.save(model, out / FINAL_WEIGHTS, half=config.half_weights)
        _say(info, f"final weights: {out / FINAL_WEIGHTS}")
    return {
        "rank": info.rank,
        "world_size": info.world_size,
        "iteration": trainer.iter,
        "start_iter": trainer.start_iter,
        "lr": trainer.step_lr,
        "base_lr": config.base_lr,
        "params_sha256": params_digest(model),
        "images_per_s": metrics_hook.images_per_s,
        "eval": eval_hook.last if eval_hook else {},
    }


def _say(info: distributed.DistInfo, message: str) -> None:
    if info.is_main:
        log.info(message)
