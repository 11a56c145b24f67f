"""Hooks run in order around each step, and after_train runs even when training fails (in a finally)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from models import Targets, preset
from trainer import checkpoint
from trainer.distributed import DistInfo
from trainer.engine import Trainer, build_optimizer, lr_lambda
from trainer.hooks import CheckpointHook, HookBase


class _Linear(nn.Module):
    """A stand-in model: one weight, the Mask R-CNN call signature, a loss dict."""

    def __init__(self) -> None:
        super().__init__()
        self.config = preset("tiny")
        self.weight = nn.Parameter(torch.ones(2, 2))

    def forward(self, images: list[Tensor], targets: list[Targets]) -> dict[str, Tensor]:
        return {"loss_a": (self.weight * torch.stack(images).mean()).pow(2).sum()}


def _batches() -> Iterator[tuple[list[int], list[Tensor], list[Targets]]]:
    empty = Targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0, 2, 2, dtype=torch.uint8))
    while True:
        yield [1], [torch.ones(3, 2, 2)], [empty]


class _Recorder(HookBase):
    def __init__(self, fail_at: int) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at

    def before_train(self) -> None:
        self.calls.append("before_train")

    def before_step(self) -> None:
        self.calls.append(f"before_step {self.trainer.iter}")

    def after_step(self) -> None:
        self.calls.append(f"after_step {self.trainer.iter}")
        if self.trainer.iter == self.fail_at:
            raise RuntimeError("boom")

    def after_train(self) -> None:
        self.calls.append("after_train")


def test_after_train_runs_and_checkpoints_on_failure(tmp_path: Path) -> None:
    model = _Linear()
    optimizer = build_optimizer(model, 0.1, 0.9, 1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(0, 0.001, (100,)))
    trainer = Trainer(model, optimizer, scheduler, _batches(), max_iter=5, global_batch=1,
                      device=torch.device("cpu"), dist=DistInfo())  # fmt: skip
    recorder = _Recorder(fail_at=2)
    trainer.register(recorder, CheckpointHook(tmp_path, period=0, keep=1))
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert recorder.calls == [
        "before_train", "before_step 0", "after_step 1", "before_step 1", "after_step 2", "after_train",
    ]  # fmt: skip
    assert not trainer.completed
    saved = checkpoint.load(checkpoint.latest(tmp_path))  # the work done before the crash is kept
    assert saved["iteration"] == 2 and torch.equal(saved["model"]["weight"], model.weight.detach())
