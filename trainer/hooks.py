"""Detectron2-style hooks: what happens around the training step (checkpoints, logs, evaluation).

The loop calls before_train / before_step / after_step / after_train on each hook in order; after_train runs
in a `finally`, so a crashed run still flushes its logs. Hooks that write files run on rank 0 only.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checkpoint
from .progress import TERSE, NoBar, progress, say

if TYPE_CHECKING:
    from .engine import Trainer

log = logging.getLogger(__name__)


class HookBase:
    """Override any of the four methods; `self.trainer` is set by `Trainer.register`."""

    trainer: Trainer

    def before_train(self) -> None: ...

    def after_train(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...


class CheckpointHook(HookBase):
    """Every `period` iterations and at the end: save the full training state (rank 0), keep the newest few."""

    def __init__(self, out_dir: Path, period: int, keep: int) -> None:
        self.out_dir, self.period, self.keep = out_dir, period, keep

    def _save(self) -> None:
        t = self.trainer
        if not t.dist.is_main:
            return
        path = checkpoint.path_for(self.out_dir, t.iter)
        checkpoint.save(path, **t.state_dict())
        checkpoint.prune(self.out_dir, self.keep)
        log.info("saved checkpoint %s", path)

    def after_step(self) -> None:
        if self.period > 0 and self.trainer.iter % self.period == 0 and self.trainer.iter < self.trainer.max_iter:
            self._save()

    def after_train(self) -> None:
        if self.trainer.iter > self.trainer.start_iter:
            self._save()


class MetricsHook(HookBase):
    """Progress (loss, lr, images/s, ETA) every `period` iterations, and every iteration's losses in a CSV.

    On a terminal (rank 0) a tqdm bar advances every iteration and shows these numbers in its postfix; elsewhere
    (CI, a file, a pipe) a plain `iter N/M ...` line is printed instead. Images/s counts the global batch over
    wall time since the previous report, so data loading is included. `last_report` holds the latest report's
    numbers ({"iter", "lr", "images_per_s", "loss", "loss_*"}) for other hooks (TensorBoard) to read.
    """

    def __init__(self, out_dir: Path, period: int, stream: Any = None) -> None:
        self.path = out_dir / "metrics.csv"
        self.period = period
        self.stream = stream or sys.stderr
        self._file: Any = None
        self._writer: Any = None
        self._window: list[dict[str, float]] = []
        self._tick = 0.0
        self._tick_iter = 0
        self.images_per_s = 0.0
        self.last_report: dict[str, float] = {}
        self._bar: Any = NoBar()

    def before_train(self) -> None:
        t = self.trainer
        self._tick, self._tick_iter = time.perf_counter(), t.start_iter
        self._bar = progress(
            total=t.max_iter,
            initial=t.start_iter,
            desc="train",
            stream=self.stream,
            enabled=t.dist.is_main,
            bar_format=TERSE,  # the postfix has the loss, lr, images/s and ETA
        )
        if t.dist.is_main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            kept = _rows_until(self.path, t.start_iter) if t.start_iter > 0 else []
            self._file = self.path.open("w", newline="")
            if kept:  # a resumed run: keep the rows up to its checkpoint, drop those of the lost iterations
                self._writer = csv.DictWriter(self._file, fieldnames=list(kept[0]), extrasaction="ignore")
                self._writer.writeheader()
                self._writer.writerows(kept)

    def after_step(self) -> None:
        t = self.trainer
        row = {"iter": t.iter, "lr": t.step_lr, **t.last_losses}
        self._window.append(row)
        if t.dist.is_main and self._file is not None:
            if self._writer is None:
                self._writer = csv.DictWriter(self._file, fieldnames=list(row), extrasaction="ignore")
                if self._file.tell() == 0:
                    self._writer.writeheader()
            self._writer.writerow(row)
        self._bar.update(1)
        if t.iter % self.period == 0 or t.iter == t.max_iter:
            self._report()

    def _report(self) -> None:
        t = self.trainer
        now = time.perf_counter()
        steps = t.iter - self._tick_iter
        self.images_per_s = steps * t.global_batch / max(now - self._tick, 1e-9)
        eta = (t.max_iter - t.iter) * (now - self._tick) / max(steps, 1)
        self._tick, self._tick_iter = now, t.iter
        mean = {k: sum(r[k] for r in self._window) / len(self._window) for k in t.last_losses}
        self._window.clear()
        self.last_report = {"iter": t.iter, "lr": t.step_lr, "images_per_s": self.images_per_s, **mean}
        if t.dist.is_main:
            loss, lr = mean.get("loss", 0), t.step_lr
            if not isinstance(self._bar, NoBar):
                self._bar.set_postfix_str(
                    f"loss {loss:.3f}, lr {lr:.2e}, {self.images_per_s:.2f} img/s, eta {_duration(eta)}"
                )
                if t.iter == t.max_iter:
                    self._bar.close()  # before the end-of-run log lines
            else:
                losses = " ".join(f"{k.removeprefix('loss_')}={v:.3f}" for k, v in mean.items() if k != "loss")
                print(
                    f"iter {t.iter}/{t.max_iter}  loss {loss:.3f} ({losses})  lr {lr:.5f}  "
                    f"{self.images_per_s:.2f} img/s  eta {_duration(eta)}",
                    file=self.stream,
                    flush=True,
                )
            if self._file is not None:
                self._file.flush()

    def after_train(self) -> None:
        self._bar.close()
        if self._file is not None:
            self._file.close()


class EvalHook(HookBase):
    """Every `period` iterations (and at the end), run `evaluate()` -> metrics; rank 0 appends them to eval.jsonl.

    Every rank calls `evaluate` (it may gather results across ranks); the model is put back in train mode.
    """

    def __init__(self, out_dir: Path, period: int, evaluate: Callable[[], dict[str, float | None]]) -> None:
        self.path = out_dir / "eval.jsonl"
        self.period, self.evaluate = period, evaluate
        self.last: dict[str, float | None] = {}
        self.done_at = -1  # the iteration of the last evaluation

    def _run(self) -> None:
        t = self.trainer
        if self.done_at == t.iter:
            return
        metrics = self.evaluate()
        t.model.train()
        self.last, self.done_at = metrics, t.iter
        if t.dist.is_main:
            say(f"eval at iter {t.iter}: " + json.dumps(metrics), sys.stderr)
            with self.path.open("a") as f:
                f.write(json.dumps({"iter": t.iter, **metrics}) + "\n")

    def after_step(self) -> None:
        if self.period > 0 and self.trainer.iter % self.period == 0:
            self._run()

    def after_train(self) -> None:
        if self.trainer.completed:
            self._run()


def _rows_until(path: Path, iteration: int) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["iter"]) <= iteration]


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
