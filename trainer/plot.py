"""`maskrcnn plot RUN_DIR`: a training run's curves in one PNG, from its metrics.csv and eval.jsonl.

Left panel: the total loss against iteration (bold) and each loss component (thin, lighter). Right panel: bbox
and segm AP (solid) and AP50 (dashed) against iteration, from eval.jsonl (a note instead when the run had no
evaluation). Drawn with matplotlib's Agg backend (no display needed); matplotlib is in the `curves` extra.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any


class PlotError(Exception):
    """The run cannot be plotted: no metrics.csv (or no rows in it), or matplotlib is not installed."""


INSTALL_HINT = "pip install 'maskrcnn[curves]' (or: pip install matplotlib)"
Series = dict[str, tuple[list[int], list[float]]]


def read_losses(path: Path) -> Series:
    """{column: (iterations, values)} of every loss column of metrics.csv ("loss" is the total)."""
    with path.open(newline="") as f:
        table = list(csv.DictReader(f))
    if not table:
        raise PlotError(f"{path}: no rows yet")
    series: Series = {}
    for name in (c for c in table[0] if c.startswith("loss")):
        points = [(int(r["iter"]), float(r[name])) for r in table if r.get(name) not in (None, "")]
        series[name] = ([i for i, _ in points], [v for _, v in points])
    return series


def read_eval(path: Path) -> Series:
    """{metric: (iterations, values)} for bbox/segm AP and AP50 in eval.jsonl (empty when there is no file)."""
    series: Series = {}
    if not path.exists():
        return series
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        for name in ("bbox_AP", "segm_AP", "bbox_AP50", "segm_AP50"):
            value = record.get(name)
            if value is not None and math.isfinite(value):
                iters, values = series.setdefault(name, ([], []))
                iters.append(int(record["iter"]))
                values.append(float(value))
    return series


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotError(f"matplotlib is not installed; {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw the two panels of `run_dir` into `out` (default `<run_dir>/curves.png`); returns the PNG's path.

    PlotError: no metrics.csv in run_dir (not a training run, or not started), or matplotlib is missing.
    """
    run = Path(run_dir)
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        raise PlotError(f"{run}: no metrics.csv (is it a training run's --out directory?)")
    losses, evals = read_losses(metrics), read_eval(run / "eval.jsonl")
    plt = _pyplot()
    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    try:
        _draw_losses(ax_loss, losses)
        _draw_eval(ax_ap, evals)
        fig.suptitle(str(run.resolve().name))
        fig.tight_layout()
        path = Path(out) if out else run / "curves.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _draw_losses(ax: Any, losses: Series) -> None:
    from matplotlib.ticker import MaxNLocator

    for name, (iters, values) in losses.items():
        if name == "loss":
            continue
        ax.plot(iters, values, linewidth=1, alpha=0.45, label=name.removeprefix("loss_"))
    if "loss" in losses:
        ax.plot(*losses["loss"], color="black", linewidth=2, label="total")
    ax.set(title="training loss", xlabel="iteration", ylabel="loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def _draw_eval(ax: Any, evals: Series) -> None:
    from matplotlib.ticker import MaxNLocator

    colours = {"bbox": "tab:blue", "segm": "tab:red"}
    for name, (iters, values) in evals.items():
        iou_type, stat = name.split("_", 1)
        style = "-" if stat == "AP" else "--"
        ax.plot(iters, values, style, marker="o", color=colours[iou_type], label=f"{iou_type} {stat}")
    ax.set(title="validation AP", xlabel="iteration", ylabel="AP (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    top = max((v for _, values in evals.values() for v in values), default=0.0)
    ax.set_ylim(0, min(100.0, max(1.0, top * 1.1)))
    ax.grid(alpha=0.3)
    if evals:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no eval.jsonl (train with --val)", ha="center", va="center", transform=ax.transAxes)
