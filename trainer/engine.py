"""The training loop: iteration-based, image-centric batches, hooks around each step.

One step: a batch of (image, Targets) -> model losses {loss_objectness, loss_rpn_box_reg, loss_classifier,
loss_box_reg, loss_mask} -> L = their sum (the paper's Lcls + Lbox + Lmask, plus the RPN's) -> SGD step ->
scheduler step. Under DDP the gradients are averaged over ranks in backward, so every rank holds the same
parameters after each step. On CUDA, float16 autocast with a GradScaler.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from models import MaskRCNN, Targets

from . import checkpoint
from .distributed import DistInfo, reduce_mean
from .hooks import HookBase

log = logging.getLogger(__name__)
Batch = tuple[list[int], list[Tensor], list[Targets]]


def lr_lambda(warmup_iters: int, warmup_factor: float, steps: tuple[int, ...]) -> Any:
    """Multiplier of the base lr at iteration i: linear warm-up from `warmup_factor`, then / 10 at each step."""

    def factor(i: int) -> float:
        warm = 1.0
        if i < warmup_iters:
            alpha = i / warmup_iters
            warm = warmup_factor * (1 - alpha) + alpha
        return warm * 0.1 ** sum(i >= s for s in steps)

    return factor


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD on trainable parameters; no weight decay on norm layers' scales and shifts (1-d parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


class Trainer:
    """Owns model, optimizer, scheduler and the data stream; `train()` runs start_iter..max_iter with hooks."""

    def __init__(
        self,
        model: MaskRCNN,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        data: Iterator[Batch],
        *,
        max_iter: int,
        global_batch: int,
        device: torch.device,
        dist: DistInfo,
        amp: bool = False,
    ) -> None:
        self.model = model
        self.ddp: nn.Module = model
        if dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.ddp = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)
        self.optimizer, self.scheduler, self.data = optimizer, scheduler, data
        self.max_iter, self.global_batch, self.device, self.dist = max_iter, global_batch, device, dist
        self.amp = amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.hooks: list[HookBase] = []
        self.iter = self.start_iter = 0
        self.last_losses: dict[str, float] = {}
        self.completed = False
        self.step_lr = 0.0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def register(self, *hooks: HookBase) -> None:
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iter,
            "rng": checkpoint.rng_state(),
            "model_config": self.model.config.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._reapply_schedule()
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iter = self.start_iter = int(state["iteration"])
        checkpoint.set_rng_state(state["rng"])

    def _reapply_schedule(self) -> None:
        """lr = base lr x this run's schedule at the resumed iteration: the optimizer state holds the lr of the
        run that saved it, whose schedule (warm-up, steps from its max_iter) may differ from this one's."""
        lambdas = getattr(self.scheduler, "lr_lambdas", None)
        if not lambdas:
            return
        epoch = self.scheduler.last_epoch
        for group, base, fn in zip(self.optimizer.param_groups, self.scheduler.base_lrs, lambdas, strict=True):
            group["lr"] = base * fn(epoch)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]  # what get_last_lr() reports

    def train(self) -> None:
        self.model.train()
        try:
            for h in self.hooks:
                h.before_train()
            while self.iter < self.max_iter:
                for h in self.hooks:
                    h.before_step()
                self.step()
                self.iter += 1
                for h in self.hooks:
                    h.after_step()
            self.completed = True
        finally:
            for h in self.hooks:
                h.after_train()

    def step(self) -> None:
        _, images, targets = next(self.data)
        images = [img.to(self.device, non_blocking=True) for img in images]
        targets = [t.to(self.device) for t in targets]
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            losses = self.ddp(images, targets)
        total = sum(losses.values())
        assert isinstance(total, Tensor)
        if not math.isfinite(total.item()):
            raise FloatingPointError(f"loss is {total.item()} at iteration {self.iter}: {_floats(losses)}")
        self.step_lr = self.lr  # the lr this step uses; the scheduler moves it on for the next one
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.last_losses = reduce_mean({"loss": total.item(), **_floats(losses)})


def _floats(losses: dict[str, Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in losses.items()}
