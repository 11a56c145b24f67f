"""The paper's ablations (Mask R-CNN Tables 2b-2e, 4) on the synthetic shapes, at one equal budget per variant.

Every variant is the same small model (`--model`, default the `tiny` preset, with `--base-set` on top) with a
few `ModelConfig` settings changed (experiments/ablation_variants.py), trained by the trainer's own `run`
(`maskrcnn train`'s code: same data loading, schedule and end-of-run COCO evaluation on the held-out set) for
`--iters` iterations of `--batch-size` images, then scored by its own evaluator. Variants whose settings this
checkout's ModelConfig (or data) lacks are listed as skipped, with the reason; variants with identical settings
share one run. The report (markdown: the command, the setup, per-variant AP beside the paper's, and each
effect's direction against the paper's) goes to `--report`; raw numbers to OUT/results.json.

    python -m experiments.ablations                                  # every variant, the default budget
    python -m experiments.ablations --variants fpn-align fpn-pool --iters 50 --report /tmp/a.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from experiments.ablation_report import render
from experiments.ablation_variants import BY_NAME, VARIANTS, Variant
from models import weights
from models.config_overrides import OverrideError, field_types, parse_overrides
from trainer.config import TrainConfig
from trainer.synth import SynthConfig, write_dataset
from trainer.train import run

ROOT = Path(__file__).resolve().parent.parent
# Trained from scratch: a trainable trunk norm, GroupNorm in the mask head (as the demo preset).
BASE_SET = ("trunk_norm=bn", "mask_head_norm=gn")
# Small images with few, large shapes: a task the tiny model learns within a few hundred iterations.
SHAPES = SynthConfig(min_side=128, max_side=160, max_shapes=3, min_radius=16, max_radius=48)


@dataclass(frozen=True)
class Setup:
    """What every variant shares: base model, data sizes, budget, seeds."""

    model: str
    base_set: tuple[str, ...]
    iters: int
    batch_size: int
    lr: float | None
    train_images: int
    val_images: int
    seeds: tuple[int, ...]
    threads: int
    trunk_from: str | None = None  # our weights file whose trunk starts every variant (None: from scratch)
    shapes: SynthConfig = SHAPES  # the synthetic sets' drawing (images and seed are set per set)


@dataclass
class Outcome:
    """One variant: its metrics per seed (empty when skipped), why it was skipped, seconds spent training."""

    variant: Variant
    metrics: list[dict[str, float | None]] = dataclasses.field(default_factory=list)
    skipped: str | None = None
    shared_with: str | None = None  # the variant whose run (same settings) it reuses
    seconds: float = 0.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.ablations", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--variants",
        nargs="+",
        default=[v.name for v in VARIANTS],
        choices=list(BY_NAME),
        metavar="V",
        help=f"which to run (default: all): {', '.join(BY_NAME)}",
    )
    p.add_argument("--iters", type=int, default=300, help="training iterations per variant (the equal budget)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.02, help="base lr (the trainer's default would be 0.02 x batch / 16)")
    p.add_argument("--model", default="tiny", help="the base preset")
    p.add_argument("--base-set", nargs="*", default=list(BASE_SET), metavar="FIELD=VALUE", help="on every variant")
    p.add_argument("--train-images", type=int, default=300)
    p.add_argument("--val-images", type=int, default=60)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed; the report shows the mean")
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads (1 when other work shares the cores: OpenMP waits collapse)",
    )
    p.add_argument(
        "--trunk-from",
        metavar="WEIGHTS",
        help="start every variant's trunk (and C4's res5) from this weights file's, as the paper starts from "
        "ImageNet (e.g. models/assets/demo.safetensors, trained on these shapes); its trunk fields join the base",
    )
    p.add_argument("--out", default="runs/ablations", help="data, runs and results.json")
    p.add_argument("--report", default=str(ROOT / "experiments" / "ABLATIONS.md"))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    setup = Setup(
        args.model, tuple(args.base_set), args.iters, args.batch_size, args.lr, args.train_images,
        args.val_images, tuple(args.seeds), args.threads, args.trunk_from,
    )  # fmt: skip
    if setup.trunk_from:
        trunk = trunk_fields(setup.trunk_from)
        named = {t.split("=")[0] for t in trunk}
        rest = tuple(s for s in setup.base_set if s.split("=")[0] not in named)
        setup = dataclasses.replace(setup, base_set=trunk + rest)
    try:
        parse_overrides(setup.base_set)
    except OverrideError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING)
    threads = torch.get_num_threads()
    torch.set_num_threads(setup.threads)
    out = Path(args.out)
    try:
        outcomes = run_all([BY_NAME[name] for name in args.variants], setup, out)
    finally:
        torch.set_num_threads(threads)
    command = "python -m experiments.ablations " + shlex.join(argv)
    (out / "results.json").write_text(json.dumps(_as_json(outcomes, setup, command), indent=2))
    Path(args.report).write_text(render(outcomes, setup, command))
    print(f"wrote {args.report} and {out / 'results.json'}")
    return 0


def trunk_fields(path: str) -> tuple[str, ...]:
    """The settings that make a variant's trunk the same shape as the one in `path`."""
    config, _ = weights.read(path)
    return (f"backbone={config.backbone}", f"backbone_width={config.backbone_width}", f"trunk_norm={config.trunk_norm}")


def export_trunk(path: str, out: Path) -> Path:
    """The trunk of our weights file `path` as a torchvision ResNet state dict (`conv1.weight`, `layer4.*`, ...):
    what `maskrcnn train --backbone-weights` loads (into res5 too, for C4)."""
    _, state = weights.read(path)
    trunk = {k.removeprefix("backbone.body."): v for k, v in state.items() if k.startswith("backbone.body.")}
    out.mkdir(parents=True, exist_ok=True)
    torch.save(trunk, out / "trunk.pth")
    return out / "trunk.pth"


def run_all(variants: list[Variant], setup: Setup, out: Path) -> list[Outcome]:
    """Train and score every variant that this checkout supports, one after the other."""
    outcomes: list[Outcome] = []
    done: dict[str, Outcome] = {}
    for variant in variants:
        outcome = Outcome(variant)
        outcomes.append(outcome)
        outcome.skipped = unsupported(variant, setup)
        if outcome.skipped:
            print(f"skip {variant.name}: {outcome.skipped}", file=sys.stderr)
            continue
        key = run_key(variant, setup)
        if key in done:
            outcome.metrics, outcome.shared_with = done[key].metrics, done[key].variant.name
            continue
        data = dataset(out / "data", setup, variant.keypoints)
        start = time.monotonic()
        for seed in setup.seeds:
            print(f"train {variant.name} seed {seed}: {setup.iters} iterations", file=sys.stderr)
            outcome.metrics.append(
                train_and_score(variant, setup, data, out / "runs" / f"{variant.name}-s{seed}", seed)
            )
        outcome.seconds = time.monotonic() - start
        done[key] = outcome
    return outcomes


def unsupported(variant: Variant, setup: Setup) -> str | None:
    """Why this checkout cannot run the variant (a setting its ModelConfig lacks, no keypoint data), or None."""
    if variant.keypoints and "keypoints" not in {f.name for f in dataclasses.fields(SynthConfig)}:
        return "needs keypoint data (`maskrcnn synth --keypoints`), not in this checkout"
    if variant.keypoints and "num_keypoints" not in field_types():
        return "needs a keypoint branch (ModelConfig.num_keypoints), not in this checkout"
    config = TrainConfig(data="", out="", model=setup.model, model_set=setup.base_set + variant.settings)
    try:
        config.model_config(num_classes=5)
    except ValueError as exc:
        return f"needs {' '.join(variant.settings)}, which this checkout's ModelConfig refuses: {_first(exc)}"
    return None


def run_key(variant: Variant, setup: Setup) -> str:
    """Variants that build the same ModelConfig (fpn-align, mask-sigmoid, mask-fcn: all the base) share a run."""
    config = TrainConfig(data="", out="", model=setup.model, model_set=setup.base_set + variant.settings)
    return json.dumps([variant.keypoints, config.model_config(num_classes=5).to_dict()], sort_keys=True)


def dataset(root: Path, setup: Setup, keypoints: bool) -> tuple[Path, Path]:
    """The synthetic train and held-out sets (seeds 0 and 1), written once per size, drawing and kind."""
    extra: dict[str, Any] = {"keypoints": True} if keypoints else {}
    shapes = setup.shapes
    drawing = f"{shapes.min_side}-{shapes.max_side}px-{shapes.max_shapes}x{shapes.min_radius}-{shapes.max_radius}"
    name = f"{'kp-' if keypoints else ''}{setup.train_images}-{setup.val_images}-{drawing}"
    paths = (root / f"{name}-train", root / f"{name}-val")
    for path, images, seed in zip(paths, (setup.train_images, setup.val_images), (0, 1), strict=True):
        if not (path / "annotations.json").is_file():
            write_dataset(path, dataclasses.replace(setup.shapes, images=images, seed=seed, **extra))
    return paths


def train_and_score(
    variant: Variant, setup: Setup, data: tuple[Path, Path], out: Path, seed: int
) -> dict[str, float | None]:
    """`trainer.train.run` on the variant: its end-of-run COCO evaluation on the held-out set."""
    config = TrainConfig(
        data=str(data[0]), val=str(data[1]), out=str(out), model=setup.model,
        model_set=setup.base_set + variant.settings, max_iter=setup.iters, batch_size=setup.batch_size,
        lr=setup.lr, seed=seed, device="cpu", num_workers=0, checkpoint_period=setup.iters, keep_checkpoints=1,
        log_period=max(1, setup.iters // 5),
        backbone_weights=str(export_trunk(setup.trunk_from, out)) if setup.trunk_from else None,
    )  # fmt: skip
    return run(config)["eval"]


def _first(exc: Exception) -> str:
    return str(exc).split("; valid fields")[0]


def _as_json(outcomes: list[Outcome], setup: Setup, command: str) -> dict[str, Any]:
    return {
        "command": command,
        "setup": dataclasses.asdict(setup),
        "variants": [
            {
                "name": o.variant.name,
                "settings": list(o.variant.settings),
                "metrics": o.metrics,
                "skipped": o.skipped,
                "shared_with": o.shared_with,
                "seconds": round(o.seconds, 1),
            }
            for o in outcomes
        ],
    }


if __name__ == "__main__":
    raise SystemExit(main())
