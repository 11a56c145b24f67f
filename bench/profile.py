"""Where our pipeline's time goes: per-stage CPU time of one photo, from transform to RLE (issue 14).

The model: torchvision's `maskrcnn_resnet50_fpn` with seeded random weights loaded through `models.weights`
(bench/pipeline.py's `random_weight_models`), or the demo model; the photo: the 800x1200 bench photo. Each stage
is wrapped from the outside in a `torch.profiler.record_function` range (the model's code is not touched):
transform, trunk, FPN, RPN head convs and the rest of the RPN, the RoI heads' feature conversion, box RoIAlign,
box head, `select_detections`, mask RoIAlign, mask head, then the paste and the RLE. Stage times are the
ranges' wall time on the calling thread (RoIAlign's worker threads included), medians of N profiled runs.
"Outside the convolutions" is everything but the trunk and FPN: the part issue 14 wants cut to a third. The
top ops by self CPU time outside the trunk and FPN say what to attack next (ops of the calling thread only: the
profiler does not see `roi_align` on the RoIAlign worker threads, whose time the RoIAlign rows carry). The table
is appended to bench/RESULTS.md.

    python -m bench.profile                              # fp32, random weights, score threshold 0.05
    python -m bench.profile --precision bf16 --threshold 0 --runs 7
    python -m bench.profile --model demo
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import models.inference
import models.rle
import models.roi_heads
from bench.pipeline import ROOT, load_photo, machine_description, publish, random_weight_models
from models import InferenceOptions, weights
from models.inference import Predictor

DEMO = ROOT / "models" / "assets" / "demo.safetensors"
CONV_STAGES = ("trunk", "FPN")
# (row, range, ranges nested in it whose time the row leaves out)
ROWS: list[tuple[str, str, tuple[str, ...]]] = [
    ("transform (resize, normalise, pad)", "transform", ()),
    ("trunk (ResNet-50 convs)", "trunk", ()),
    ("FPN", "FPN", ()),
    ("RPN head convs", "rpn.head", ()),
    ("RPN anchors, decode, top-k, NMS", "rpn", ("rpn.head",)),
    ("RoI maps to pool from (no copy)", "pooling_features", ()),
    ("box RoIAlign", "box_roi_pool", ()),
    ("box head + predictor (FCs)", "box_head", ()),
    ("select_detections (softmax, decode, NMS)", "select_detections", ()),
    ("mask RoIAlign", "mask_roi_pool", ()),
    ("mask head + predictor (convs)", "mask_head", ()),
    (
        "RoI heads, rest",
        "roi_heads.predict",
        ("pooling_features", "box_roi_pool", "box_head", "select_detections", "mask_roi_pool", "mask_head"),
    ),
    ("predict, rest (rescale, split)", "detect", ("transform", "trunk", "FPN", "rpn", "roi_heads.predict")),
    ("paste masks into boxes", "paste_masks", ()),
    ("RLE encode", "rle.encode", ()),
    ("results, rest (select, COCO dicts)", "results", ("paste_masks", "rle.encode")),
]


def _ranged(name: str, fn: Callable[..., Any], materialise: bool = False) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(name):
            out = fn(*args, **kwargs)
            return list(out) if materialise else out

    return wrapper


@contextlib.contextmanager
def instrumented(model: torch.nn.Module) -> Iterator[None]:
    """Open a named profiler range around each stage of `model` (a Predictor's copy) and of the post-process."""
    patches: list[tuple[object, str, str, bool]] = [
        (model.transform, "size_groups", "transform", True),  # a generator: run it inside the range
        (model.backbone.body, "forward", "trunk", False),
        (model.backbone.fpn, "forward", "FPN", False),
        (model.rpn.head, "forward", "rpn.head", False),
        (model.rpn, "forward", "rpn", False),
        (model.roi_heads, "predict", "roi_heads.predict", False),
        (model.roi_heads.box_roi_pool, "forward", "box_roi_pool", False),
        (model.roi_heads.box_head, "forward", "box_head", False),
        (model.roi_heads.box_predictor, "forward", "box_head", False),
        (model.roi_heads.mask_roi_pool, "forward", "mask_roi_pool", False),
        (model.roi_heads.mask_head, "forward", "mask_head", False),
        (model.roi_heads.mask_predictor, "logits_for_labels", "mask_head", False),
        (models.roi_heads, "pooling_features", "pooling_features", False),
        (models.roi_heads, "select_detections", "select_detections", False),
        (models.inference, "paste_masks", "paste_masks", False),
        (models.rle, "encode", "rle.encode", False),
    ]
    saved = [(obj, attr, obj.__dict__.get(attr)) for obj, attr, _, _ in patches]
    for obj, attr, name, materialise in patches:
        setattr(obj, attr, _ranged(name, getattr(obj, attr), materialise))
    try:
        yield
    finally:
        for obj, attr, original in saved:
            if original is None:
                delattr(obj, attr)  # an instance's method: the class's comes back
            else:
                setattr(obj, attr, original)


def run_once(predictor: Predictor, photo: torch.Tensor, opts: InferenceOptions) -> list[dict]:
    with record_function("detect"):
        det = predictor.detect([photo], opts)[0]
    with record_function("results"):
        return predictor.results(det, opts)


def _under(event: Any, names: tuple[str, ...]) -> bool:
    while event is not None:
        if event.name in names:
            return True
        event = event.cpu_parent
    return False


def profiled_run(predictor: Predictor, photo: torch.Tensor, opts: InferenceOptions) -> tuple[dict, dict, int]:
    """One run under the profiler -> ({range: ms}, {op: self ms outside trunk and FPN}, detections)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = run_once(predictor, photo, opts)
    ranges: dict[str, float] = collections.defaultdict(float)
    ops: dict[str, float] = collections.defaultdict(float)
    range_names = {r for _, r, _ in ROWS} | {"detect", "results"}
    for event in prof.events():
        if event.name in range_names:
            ranges[event.name] += event.cpu_time_total / 1000
        elif not _under(event, CONV_STAGES):
            ops[event.name] += event.self_cpu_time_total / 1000
    return ranges, ops, len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--model", default="resnet50_fpn", choices=["resnet50_fpn", "demo"])
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()

    model = random_weight_models(torch.device("cpu"))[1] if args.model == "resnet50_fpn" else weights.load(DEMO)
    predictor = Predictor(model, precision=args.precision)
    photo = load_photo()
    opts = InferenceOptions(score_thresh=args.threshold).resolve(predictor.config)
    run_once(predictor, photo, opts)  # warm-up
    plain = []
    per_run: list[tuple[dict, dict, int]] = []
    with instrumented(predictor.model):
        for _ in range(args.runs):  # profiled and plain runs take turns
            per_run.append(profiled_run(predictor, photo, opts))
            start = time.perf_counter()
            run_once(predictor, photo, opts)
            plain.append((time.perf_counter() - start) * 1000)

    def median(ms: Callable[[dict[str, float]], float]) -> float:
        """Median over the runs of a figure computed within each run (nested ranges subtracted run by run)."""
        return statistics.median(ms(r) for r, _, _ in per_run)

    rows = [(label, median(lambda r, a=rng, m=minus: r[a] - sum(r[c] for c in m))) for label, rng, minus in ROWS]
    total = median(lambda r: r["detect"] + r["results"])
    outside = median(lambda r: r["detect"] + r["results"] - r["trunk"] - r["FPN"])
    convs = ("trunk", "FPN", "rpn.head", "mask_head")
    outside_convs = median(lambda r: r["detect"] + r["results"] - sum(r[c] for c in convs))
    ops = {name: statistics.median(o.get(name, 0.0) for _, o, _ in per_run) for _, o, _ in per_run for name in o}
    model_name = "maskrcnn_resnet50_fpn, seeded random weights" if args.model == "resnet50_fpn" else "demo model"
    lines = [
        f"## {datetime.date.today()} · profile · {machine_description(torch.device('cpu'))}",
        "",
        f"`python -m bench.profile --precision {args.precision} --model {args.model} --threshold {args.threshold}`: "
        f"{model_name}, photo {photo.shape[1]}x{photo.shape[2]}, {per_run[-1][2]} detections; medians of "
        f"{args.runs} profiled runs (torch.profiler ranges around each stage); the same runs without the profiler: "
        f"median {statistics.median(plain):.0f} ms.",
        "",
        "| stage | ms | share |",
        "|---|---|---|",
        *(f"| {label} | {ms:.1f} | {ms / total:.1%} |" for label, ms in rows),
        f"| **total** (median of the runs' totals) | **{total:.0f}** | 100% |",
        f"| **outside the trunk + FPN convolutions** | **{outside:.0f}** | **{outside / total:.1%}** |",
        f"| **outside all convolutions** (trunk, FPN, RPN head, mask head) | **{outside_convs:.0f}** "
        f"| **{outside_convs / total:.1%}** |",
        "",
        "Top 15 ops by self CPU time outside the trunk and FPN (median ms per run; calling thread only, so not "
        "`roi_align` on the RoIAlign worker threads):",
        "",
        "| op | self ms |",
        "|---|---|",
        *(f"| `{name}` | {ms:.1f} |" for name, ms in sorted(ops.items(), key=lambda kv: -kv[1])[:15]),
    ]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
