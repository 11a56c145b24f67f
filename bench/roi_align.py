"""RoIAlign on the CPU: `models.roi_align_cpu.roi_align` against `torchvision.ops.roi_align`, one process.

The sizes that matter for `maskrcnn_resnet50_fpn` on an 800x1216 input: P2-P5 (strides 4-32, 256 channels),
1000 RoIs pooled to 7x7 (the box branch) and 100 to 14x14 (the mask branch), sampling ratio 2, not aligned.
Boxes are seeded synthetic proposals (centres uniform over the image, sides log-uniform 16-800 px, aspect
0.5-2, clipped) sent to their FPN level by torchvision's rule. Each case times all levels together:

- torchvision, 1 call: its CPU kernel on contiguous float32 NCHW features (one call per level);
- torchvision, split: the RoIs split across the threads (>= 32 per thread), as models/poolers.py does today;
- ours: the features as they come.

Feature layouts: fp32 NCHW; fp32 channels-last; bf16 channels-last (what the bf16 model produces). For the
latter two, torchvision's sides include the `.float().contiguous()` copy that its kernel needs. Sides take
turns, medians of N; ratios are torchvision's time over ours. The table is appended to bench/RESULTS.md.

    python -m bench.roi_align                 # median of 7
    python -m bench.roi_align --runs 11
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torchvision.ops import roi_align as tv_roi_align

from bench.pipeline import ROOT, machine_description, publish
from models.roi_align_cpu import roi_align

IMAGE_HW = (800, 1216)
STRIDES = (4, 8, 16, 32)
CHANNELS = 256
Align = Callable[[Tensor, Tensor, int, float], Tensor]
Layout = Literal["fp32 NCHW", "fp32 channels-last", "bf16 channels-last"]
LAYOUTS: tuple[Layout, ...] = ("fp32 NCHW", "fp32 channels-last", "bf16 channels-last")


@dataclass(frozen=True)
class Case:
    label: str
    rois: int
    output_size: int
    layout: Layout


CASES = [Case(f"{n} RoIs {s}x{s}, {layout}", n, s, layout) for n, s in ((1000, 7), (100, 14)) for layout in LAYOUTS]


def proposals(count: int, seed: int) -> list[Tensor]:
    """Synthetic proposals [R_l, 5] (batch index 0, x1, y1, x2, y2) per FPN level P2-P5."""
    g = torch.Generator().manual_seed(seed)
    h, w = IMAGE_HW
    centre = torch.rand(count, 2, generator=g) * torch.tensor([float(w), float(h)])
    side = torch.exp(torch.empty(count).uniform_(math.log(16), math.log(800), generator=g))
    aspect = torch.exp(torch.empty(count).uniform_(math.log(0.5), math.log(2.0), generator=g)).sqrt()
    half = torch.stack([side * aspect, side / aspect], dim=1) / 2
    boxes = torch.cat([centre - half, centre + half], dim=1)
    boxes = torch.minimum(boxes.clamp(min=0), torch.tensor([float(w), float(h)] * 2))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    level = torch.floor(4 + torch.log2(area.sqrt() / 224) + 1e-6).clamp(2, 5).to(torch.int64) - 2
    rois = torch.cat([torch.zeros(count, 1), boxes], dim=1)
    return [rois[level == i] for i in range(len(STRIDES))]


def features(layout: Layout) -> list[Tensor]:
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(1, CHANNELS, IMAGE_HW[0] // s, IMAGE_HW[1] // s, generator=g) for s in STRIDES]
    if layout != "fp32 NCHW":
        maps = [m.contiguous(memory_format=torch.channels_last) for m in maps]
    return [m.bfloat16() for m in maps] if layout.startswith("bf16") else maps


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers)


def split_align(feature: Tensor, rois: Tensor, size: int, scale: float) -> Tensor:
    """torchvision's kernel with the RoIs split across threads (its kernel runs on one core)."""
    threads = torch.get_num_threads()
    if threads == 1 or rois.shape[0] < 64:
        return tv_roi_align(feature, rois, size, scale, 2)
    chunks = rois.chunk(min(threads, rois.shape[0] // 32))
    return torch.cat(list(_pool(threads).map(lambda r: tv_roi_align(feature, r, size, scale, 2), chunks)))


def side(align: Align, maps: list[Tensor], rois: list[Tensor], size: int, copy: bool) -> Callable[[], Tensor]:
    def run() -> Tensor:
        levels = [m.float().contiguous() for m in maps] if copy else maps
        parts = [align(f, r, size, 1.0 / s) for f, r, s in zip(levels, rois, STRIDES, strict=True)]
        return torch.cat(parts)

    return run


def ours(feature: Tensor, rois: Tensor, size: int, scale: float) -> Tensor:
    return roi_align(feature, rois, size, scale, 2)


def time_case(case: Case, runs: int) -> tuple[list[float], float]:
    """Median ms of (torchvision 1 call, torchvision split, ours), and ours' max abs difference to torchvision."""
    maps, rois = features(case.layout), proposals(case.rois, seed=case.rois)
    copy = case.layout != "fp32 NCHW"
    sides = [
        side(lambda f, r, s, sc: tv_roi_align(f, r, s, sc, 2), maps, rois, case.output_size, copy),
        side(split_align, maps, rois, case.output_size, copy),
        side(ours, maps, rois, case.output_size, False),
    ]
    diff = float((sides[2]() - sides[0]()).abs().max())  # also the warm-up
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(runs):  # turns
        for fn, ts in zip(sides, times, strict=True):
            start = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - start) * 1000)
    return [statistics.median(ts) for ts in times], diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with torch.inference_mode():
        for case in CASES:
            (tv_one, tv_split, mine), diff = time_case(case, args.runs)
            row = (
                f"| {case.label} | {tv_one:.0f} | {tv_split:.0f} | {mine:.0f} | **{tv_one / mine:.1f}x** "
                f"| **{tv_split / mine:.1f}x** | {diff:.1e} |"
            )
            print(row, flush=True)
            rows.append(row)
    lines = [
        f"## {datetime.date.today()} · RoIAlign · {machine_description(torch.device('cpu'))}",
        "",
        f"`python -m bench.roi_align --runs {args.runs}`: P2-P5 of an {IMAGE_HW[0]}x{IMAGE_HW[1]} input, "
        f"{CHANNELS} channels, sampling ratio 2, synthetic proposals; medians of {args.runs} turns (ms, all "
        "levels). torchvision's sides include the fp32 NCHW copy for channels-last / bf16 features. "
        "Ratio = torchvision's time / ours; max |diff| = ours vs torchvision's 1-call output.",
        "",
        "| case | torchvision 1 call | torchvision split over threads | ours | vs 1 call | vs split | max diff |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    publish(lines, args.results, echo=False)


if __name__ == "__main__":
    main()
