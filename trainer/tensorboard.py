"""TensorBoard event files for a training run: `<out>/tb/`, beside metrics.csv and eval.jsonl.

Scalars: `train/loss` (the total), `train/loss_*` (each component), `train/lr` and `train/images_per_s` at every
log period (the numbers of `MetricsHook`'s report, window means), and `eval/<iou>_<stat>` (bbox_AP, segm_AP50, ...)
after every evaluation. Rank 0 only. `SummaryWriter` needs the `tensorboard` package (the `curves` extra); without
it the hook logs one line saying how to get it, and the run goes on without event files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .hooks import EvalHook, HookBase, MetricsHook

log = logging.getLogger(__name__)
TB_DIR = "tb"
INSTALL_HINT = "pip install 'maskrcnn[curves]' (or: pip install tensorboard)"


def summary_writer(log_dir: Path, purge_step: int | None = None) -> Any:
    """A `torch.utils.tensorboard.SummaryWriter`, or None (with one log line) when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("no TensorBoard curves: the tensorboard package is not installed; %s", INSTALL_HINT)
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class TensorBoardHook(HookBase):
    """Write `metrics`' reports and `evaluation`'s results as scalars; register it after both hooks.

    A resumed run purges the events after its checkpoint's iteration, as metrics.csv drops those rows.
    """

    def __init__(self, out_dir: Path, metrics: MetricsHook, evaluation: EvalHook | None = None) -> None:
        self.log_dir = out_dir / TB_DIR
        self.metrics, self.evaluation = metrics, evaluation
        self._writer: Any = None
        self._reported_iter = -1
        self._evaluated_iter = -1

    def before_train(self) -> None:
        t = self.trainer
        if t.dist.is_main:
            self._writer = summary_writer(self.log_dir, purge_step=t.start_iter or None)

    def after_step(self) -> None:
        if self._writer is None:
            return
        report = self.metrics.last_report
        if report and int(report["iter"]) != self._reported_iter:
            step = self._reported_iter = int(report["iter"])
            for name, value in report.items():
                if name != "iter":
                    self._writer.add_scalar(f"train/{name}", value, step)
        self._write_eval()

    def _write_eval(self) -> None:
        ev = self.evaluation
        if ev is None or not ev.last or ev.done_at == self._evaluated_iter:
            return
        self._evaluated_iter = ev.done_at
        for name, value in ev.last.items():
            if value is not None:
                self._writer.add_scalar(f"eval/{name}", value, ev.done_at)

    def after_train(self) -> None:
        if self._writer is None:
            return
        self.after_step()  # the final report and the final evaluation (EvalHook.after_train ran before)
        self._writer.flush()
        self._writer.close()
        self._writer = None
