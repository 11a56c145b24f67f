"""What batching buys, and what batch invariance costs: forward passes in one process, no HTTP.

Eight images per run, through `Predictor.detect` (what the service's batcher calls):
1. same size: one at a time vs one batch of 8 (the gain dynamic batching can give);
2. mixed sizes (landscape, portrait and square photos): one at a time vs one call, which runs one forward per
   padded size (`ImageTransform.size_groups`: each image gets its alone-answer) vs the old way, every image
   padded to the largest in one forward (faster where padding is cheap, but each answer then depends on its
   batch-mates: `max |score change|` says by how much).
Medians of alternating runs, appended to bench/RESULTS.md.

    python -m bench.batching                         # the demo model on the CPU
    python -m bench.batching --model resnet50_fpn    # full size, random weights (minutes on 2 cores)
    python -m bench.batching --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import models
from bench.pipeline import machine_description, publish
from models import InferenceOptions, weights
from models.inference import Predictor
from models.structures import Detections

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "assets" / "demo.safetensors"
OPTIONS = InferenceOptions(score_thresh=0.0)
SIZES = [(800, 1200), (1200, 800), (900, 900), (600, 1000)]  # (H, W): landscape, portrait, square, wide


def _photo(size: tuple[int, int]) -> torch.Tensor:
    from PIL import Image

    image = Image.open(ROOT / "tests" / "fixtures" / "coffee_800x1200.jpg").convert("RGB")
    image = image.resize((size[1], size[0]))
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size[0], size[1], 3).permute(2, 0, 1)


def _padded(predictor: Predictor, images: list[torch.Tensor]) -> list[Detections]:
    """The pre-invariance batch: every image padded to the largest, one forward (batch-dependent answers)."""
    model = predictor.model
    with predictor._numerics():
        batch, _ = model.transform([img.to(predictor.device) for img in images])
        return model._predict_batch(batch, OPTIONS.resolve(model.config), True)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def measure(predictor: Predictor, repeat: int) -> dict[str, float]:
    same = [_photo(SIZES[0])] * 8
    mixed = [_photo(SIZES[i % len(SIZES)]) for i in range(8)]
    sides: dict[str, Callable[[], object]] = {
        "same_single": lambda: [predictor.detect([img], OPTIONS) for img in same],
        "same_batch": lambda: predictor.detect(same, OPTIONS),
        "mixed_single": lambda: [predictor.detect([img], OPTIONS) for img in mixed],
        "mixed_groups": lambda: predictor.detect(mixed, OPTIONS),
        "mixed_padded": lambda: _padded(predictor, mixed),
    }
    for fn in sides.values():  # warm-up: allocator, kernels
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeat):
        for name, fn in sides.items():
            times[name].append(_timed(fn, predictor.device))
    result = {name: statistics.median(values) for name, values in times.items()}
    alone = [predictor.detect([img], OPTIONS)[0] for img in mixed]
    padded = _padded(predictor, mixed)
    result["padded_score_change"] = max(_score_change(a, p) for a, p in zip(alone, padded, strict=True))
    grouped = predictor.detect(mixed, OPTIONS)
    result["grouped_score_change"] = max(_score_change(a, g) for a, g in zip(alone, grouped, strict=True))
    result["groups"] = len(predictor.model.transform.size_groups(mixed))
    return result


def _score_change(a: Detections, b: Detections) -> float:
    """Largest difference between the k-th best scores of two answers (0 when identical)."""
    n = max(len(a), len(b))
    sa = F.pad(a.scores.float().cpu(), (0, n - len(a)))
    sb = F.pad(b.scores.float().cpu(), (0, n - len(b)))
    return float((sa - sb).abs().max()) if n else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", choices=("demo", "resnet50_fpn", "tiny"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = weights.load(DEMO) if args.model == "demo" else models.build_model(models.preset(args.model))
    predictor = Predictor(model, args.device)
    r = measure(predictor, args.repeat)
    sizes = ", ".join(f"{w}x{h}" for h, w in SIZES)
    lines = [
        f"## {datetime.date.today()} · batching · {machine_description(predictor.device)}",
        "",
        f"`python -m bench.batching --model {args.model}{' --device ' + args.device if args.device != 'cpu' else ''}`:"
        f" 8 images per run, score threshold 0, median of {args.repeat}; mixed sizes cycle {sizes} "
        f"({r['groups']:.0f} padded sizes after the model's resize).",
        "",
        "| what | one at a time | batched | ratio |",
        "|---|---|---|---|",
        f"| 8 images of one size: one forward | {r['same_single']:.0f} ms | {r['same_batch']:.0f} ms | "
        f"**{r['same_single'] / r['same_batch']:.2f}x** |",
        f"| 8 mixed sizes: one forward per padded size (batch-invariant) | {r['mixed_single']:.0f} ms | "
        f"{r['mixed_groups']:.0f} ms | **{r['mixed_single'] / r['mixed_groups']:.2f}x** |",
        f"| 8 mixed sizes: all padded to the largest, one forward (before) | {r['mixed_single']:.0f} ms | "
        f"{r['mixed_padded']:.0f} ms | {r['mixed_single'] / r['mixed_padded']:.2f}x |",
        "",
        f"Largest change of a detection score vs the image alone: padded batch {r['padded_score_change']:.4f}, "
        f"size groups {r['grouped_score_change']:.1e}. On these mixed sizes the batch-invariant call takes "
        f"{r['mixed_groups'] / r['mixed_padded']:.2f}x the time of the padded one.",
        "",
    ]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
