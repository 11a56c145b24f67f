"""Reduced precision on a trained model: bf16 (CPU) or fp16 (GPU) vs fp32, speed and agreement.

The pipeline bench uses torchvision's architecture with random weights, where every detection is a near-tie
and any rounding reshuffles them; agreement only means something for a trained model. This one runs the
demo model (or `--weights`) over a synthetic split it never saw (same generator, seed 2026), and reports
images/s, COCO AP of each precision, and the mean mask IoU of each fp32 detection to its reduced-precision
counterpart. Appends to bench/RESULTS.md.

`--random-weights` shows why the pipeline bench's agreement figure cannot judge a precision: on its random
weights and photo, torchvision's own model under autocast disagrees with its own fp32 as much as ours does.

    python -m bench.precision [--weights PATH] [--images 50] [--device cpu|cuda] [--random-weights]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.pipeline import (
    OPTIONS,
    ROOT,
    load_photo,
    machine_description,
    mask_agreement,
    publish,
    random_weight_models,
    torchvision_pipeline,
)
from models import InferenceOptions, weights
from models.inference import PRECISIONS, Predictor, ieee_fp32
from trainer.data import CocoDetection
from trainer.evaluate import COCOEvaluator
from trainer.synth import SynthConfig, write_dataset

DEMO = ROOT / "models" / "assets" / "demo.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=DEMO)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--random-weights", action="store_true", help="the pipeline bench's model and photo instead")
    args = parser.parse_args()
    device = torch.device(args.device)
    reduced = "bf16" if device.type == "cpu" else "fp16"
    lines = random_weights(device, reduced) if args.random_weights else trained(args, device, reduced)
    publish(lines, args.results)


def random_weights(device: torch.device, reduced: str) -> list[str]:
    """Agreement of each side's reduced precision with its own fp32, on the pipeline bench's random weights."""
    reference, model = random_weight_models(device)
    photo = load_photo()
    tv = torchvision_pipeline(reference, device)
    with ieee_fp32():  # what our fp32 runs on GPUs too
        tv_fp32 = tv([photo])[0]
    with torch.autocast(device.type, dtype=PRECISIONS[reduced]):
        tv_reduced = tv([photo])[0]
    ours_fp32 = Predictor(model, device=device)([photo], OPTIONS)[0]
    ours_reduced = Predictor(model, device=device, precision=reduced)([photo], OPTIONS)[0]
    lines = [
        f"## {datetime.date.today()} · precision on random weights · {machine_description(device)}",
        "",
        f"`python -m bench.precision --random-weights`: the pipeline bench's model (seed 0) and photo, score "
        f"threshold 0, 100 detections; {reduced} is autocast on both sides. Mean (min) mask IoU, detections "
        "paired by class and box as in the pipeline bench.",
        "",
        "| compared | mean mask IoU | min |",
        "|---|---|---|",
    ]
    for what, a, b in (
        (f"torchvision {reduced} vs torchvision fp32", tv_fp32, tv_reduced),
        (f"ours {reduced} vs ours fp32", ours_fp32, ours_reduced),
        ("ours fp32 vs torchvision fp32", tv_fp32, ours_fp32),
    ):
        _, lo, mean = mask_agreement(a, b)
        lines.append(f"| {what} | {mean:.4f} | {lo:.4f} |")
    return lines


def trained(args: argparse.Namespace, device: torch.device, reduced: str) -> list[str]:
    """Speed, AP and agreement of fp32 and `reduced` on a trained model over unseen synthetic images."""
    model = weights.load(args.weights)

    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, SynthConfig(images=args.images, seed=2026))
        dataset = CocoDetection(tmp, model.config.category_ids or None)
        images = [dataset.read_image(i) for i in dataset.image_ids]
        options = InferenceOptions(score_thresh=0.05)
        outputs, seconds, ap = {}, {}, {}
        for precision in ("fp32", reduced):
            predictor = Predictor(model, device=device, precision=precision)
            predictor(images[:2], options)  # warm-up
            times, outs = [], []
            for image in images:
                start = time.perf_counter()
                outs.append(predictor([image], options)[0])
                times.append(time.perf_counter() - start)
            outputs[precision], seconds[precision] = outs, statistics.median(times)
            evaluator = COCOEvaluator(dataset.coco)
            for image_id, results in zip(dataset.image_ids, outs, strict=True):
                evaluator.process(image_id, results)
            ap[precision] = evaluator.evaluate()

    ious = [mask_agreement(a, b)[2] for a, b in zip(outputs["fp32"], outputs[reduced], strict=True) if a]
    lines = [
        f"## {datetime.date.today()} · precision · {machine_description(device)}",
        "",
        f"`python -m bench.precision`: {args.weights.name} on {args.images} unseen synthetic images "
        f"(seed 2026), score threshold 0.05, batch 1, median latency",
        "",
        "| precision | latency | speed-up | bbox AP | segm AP | mean mask IoU vs fp32 |",
        "|---|---|---|---|---|---|",
    ]
    for precision in ("fp32", reduced):
        agreement = "-" if precision == "fp32" else f"{np.mean(ious):.4f}"
        lines.append(
            f"| {precision} | {seconds[precision] * 1000:.0f} ms | {seconds['fp32'] / seconds[precision]:.2f}x | "
            f"{ap[precision]['bbox_AP']:.1f} | {ap[precision]['segm_AP']:.1f} | {agreement} |"
        )
    return lines


if __name__ == "__main__":
    main()
