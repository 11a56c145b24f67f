"""The markdown report of experiments/ablations.py: setup, per-variant AP beside the paper's, effects' directions.

A direction "agrees" when our difference has the paper's sign and is at least `NOISE` AP points; a smaller one
is reported as "no clear effect" (one short run per variant on a small set: differences of a point or so are
within what another seed gives). Every number is what the run produced; nothing is adjusted.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from experiments.ablation_variants import EFFECTS, PaperFigures

if TYPE_CHECKING:
    from experiments.ablations import Outcome, Setup

NOISE = 1.0  # AP points below which a difference is called "no clear effect"
COLUMNS = ("AP", "AP50", "AP75")


def metric_prefix(outcome: Outcome) -> str:
    """The COCOeval IoU type a variant is judged by: keypoints for the keypoint rows, else segm (mask AP)."""
    return "keypoints" if outcome.variant.keypoints else "segm"


def mean_metric(outcome: Outcome, name: str) -> float | None:
    """Mean over seeds of one metric (e.g. "segm_AP"); None when absent from every run."""
    values = [m[name] for m in outcome.metrics if m.get(name) is not None]
    return statistics.fmean(values) if values else None  # type: ignore[arg-type]


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _spread(outcome: Outcome, name: str) -> str:
    values = [m[name] for m in outcome.metrics if m.get(name) is not None]
    if len(values) < 2:
        return ""
    return f" ({min(values):.1f}-{max(values):.1f})"  # type: ignore[type-var]


def _paper(figures: PaperFigures | None) -> str:
    if figures is None:
        return "-"
    return f"{figures.ap:.1f} / {figures.ap50:.1f} / {figures.ap75:.1f}, {figures.source}"


def variant_table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| variant | settings | AP | AP50 | AP75 | box AP | paper AP / AP50 / AP75 | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        settings = " ".join(f"`{s}`" for s in o.variant.settings) + (
            " on keypoint shapes; AP is AP_kp" if o.variant.keypoints else ""
        )
        if o.skipped:
            lines.append(
                f"| {o.variant.name} | {settings} | skipped: {o.skipped} | | | | {_paper(o.variant.paper)} | |"
            )
            continue
        prefix = metric_prefix(o)
        cells = [_cell(mean_metric(o, f"{prefix}_{c}")) + _spread(o, f"{prefix}_{c}") for c in COLUMNS]
        seconds = f"same run as {o.shared_with}" if o.shared_with else f"{o.seconds:.0f}"
        box = _cell(mean_metric(o, "bbox_AP"))
        lines.append(
            f"| {o.variant.name} | {settings} | {' | '.join(cells)} | {box} | {_paper(o.variant.paper)} | {seconds} |"
        )
    return lines


def effect_lines(outcomes: list[Outcome]) -> list[str]:
    """One line per effect whose two variants both ran: our delta and the paper's, and the verdict."""
    by_name = {o.variant.name: o for o in outcomes}
    lines = []
    for effect in EFFECTS:
        better, worse = by_name.get(effect.better), by_name.get(effect.worse)
        if better is None or worse is None:
            continue
        if better.skipped or worse.skipped:
            lines.append(f"- **{effect.title}**: not run here ({better.skipped or worse.skipped}).")
            continue
        prefix = metric_prefix(better)
        ours = [_delta(better, worse, f"{prefix}_{c}") for c in COLUMNS]
        assert better.variant.paper is not None and worse.variant.paper is not None
        pb, pw = better.variant.paper, worse.variant.paper
        paper = [pb.ap - pw.ap, pb.ap50 - pw.ap50, pb.ap75 - pw.ap75]
        lines.append(
            f"- **{effect.title}** ({effect.better} - {effect.worse}): ours "
            f"{' / '.join(_signed(d) for d in ours)} AP / AP50 / AP75; paper "
            f"{' / '.join(_signed(d) for d in paper)}, {pb.source}: {verdict(ours[0], paper[0])}."
        )
    return lines


def _delta(a: Outcome, b: Outcome, name: str) -> float | None:
    x, y = mean_metric(a, name), mean_metric(b, name)
    return None if x is None or y is None else x - y


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def verdict(ours: float | None, paper: float) -> str:
    """The direction of our AP difference against the paper's."""
    if ours is None:
        return "no figure to compare (the evaluator reported none)"
    if abs(ours) < NOISE:
        return f"no clear effect here (|{ours:+.1f}| < {NOISE:.0f} AP; the paper's is {paper:+.1f})"
    if (ours > 0) == (paper > 0):
        return "same direction as the paper"
    return "**opposite direction to the paper**"


def render(outcomes: list[Outcome], setup: Setup, command: str) -> str:
    seeds, shapes = ", ".join(map(str, setup.seeds)), setup.shapes
    origin = f"trunk (and C4's res5) from `{setup.trunk_from}`" if setup.trunk_from else "trained from scratch"
    lines = [
        "# Ablations on the synthetic shapes (Mask R-CNN Tables 2b-2e, 4)",
        "",
        "Written by `experiments/ablations.py`; produced by:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Setup: preset `{setup.model}` with {' '.join(f'`{s}`' for s in setup.base_set) or 'no change'} "
        f"({origin}), each variant's settings on top; {setup.iters} iterations of batch "
        f"{setup.batch_size} (lr {'the trainer default' if setup.lr is None else setup.lr}), seed(s) {seeds}; "
        f"`maskrcnn synth` shapes, {setup.train_images} training images (seed 0) and {setup.val_images} held-out "
        f"images (seed 1), sides {shapes.min_side}-{shapes.max_side} px, up to {shapes.max_shapes} shapes of "
        f"radius {shapes.min_radius}-{shapes.max_radius} px; {setup.threads} CPU threads. AP columns: mask AP "
        "(segm) in percent, COCOeval on the held-out set (keypoint rows: AP_kp); the mean over seeds, with "
        "min-max when several. "
        "Paper columns: the paper's row for the same choice (ResNet-50 on COCO, far larger; its FPN rows for "
        "RoIPool/RoIWarp do not exist, so Table 2c's C4 figures stand beside ours).",
        "",
        *variant_table(outcomes),
        "",
        f"## Effects (ours vs the paper; under {NOISE:.0f} AP: no clear effect)",
        "",
        *(effect_lines(outcomes) or ["- none: no effect had both of its variants in this run."]),
        "",
    ]
    return "\n".join(lines)
