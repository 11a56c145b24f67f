"""Ours vs Detectron2's `DefaultPredictor` on the same Detectron2 R50-FPN file and photo (issue 15).

The file: Detectron2's own full-size `mask_rcnn_R_50_FPN_3x` built by its `build_model` with seeded random
weights, calibrated as the test fixtures are (tests/fixtures/detectron2/record.py: unit-scale layers, lively
class scores) so that the photo gets 100 detections and the mask branch runs, saved as a model-zoo `.pkl`.
Detectron2 loads it through `DetectionCheckpointer` (`DefaultPredictor`); we load it through
`models.detectron2.load(pkl, "d2:mask_rcnn_R_50_FPN_3x")`. Sides take turns, median of --repeat runs after one
warm-up each; Detectron2 runs in a process of its own with the C library's default settings, as its users run
it (bench/side_process.py). Sides: Detectron2 `DefaultPredictor` (then its masks to COCO RLE, as a server
answers), ours fp32 with the exact layout (bit-equal to Detectron2), ours fp32 with the fast layout (BatchNorm
folded, channels-last; equal to float rounding), ours bf16 where the CPU has it. Agreement with Detectron2:
detections, identical boxes, identical masks. Appended to bench/RESULTS.md.

    PYTHONPATH=/path/to/detectron2 python -m bench.detectron2 [--repeat 5]

It needs Detectron2 importable (its Python source is enough; see record.py) and this project's packages in the
same environment; without Detectron2 it says so and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import importlib.util
import pickle
import tempfile
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from bench.pipeline import ROOT, load_photo, machine_description, publish
from bench.side_process import SideProcess
from bench.timing import compare
from models import InferenceOptions
from models.detectron2 import load
from models.inference import Predictor

ARCH = "d2:mask_rcnn_R_50_FPN_3x"
RECORD = ROOT / "tests" / "fixtures" / "detectron2" / "record.py"


def detectron2_file(directory: Path, photo_bgr: torch.Tensor) -> tuple[object, Path]:
    """(Detectron2 config, path of the saved .pkl) of a calibrated full-size R50-FPN made by Detectron2."""
    spec = importlib.util.spec_from_file_location("record", RECORD)
    assert spec is not None and spec.loader is not None
    record = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record)
    cfg = record.get_cfg()
    cfg.merge_from_file(str(record.D2_CONFIGS / "mask_rcnn_R_50_FPN_3x.yaml"))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    torch.manual_seed(0)
    model = record.build_model(cfg)
    record.calibrate(model, photo_bgr, seed=0)
    path = directory / "model_final.pkl"
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    with path.open("wb") as f:
        pickle.dump({"model": weights, "__author__": "bench/detectron2.py"}, f, protocol=4)
    cfg.MODEL.WEIGHTS = str(path)
    return cfg, path


def detectron2_side(cfg: object, photo: torch.Tensor):  # -> Callable[[], list[dict]]
    from detectron2.engine import DefaultPredictor

    predictor = DefaultPredictor(cfg)
    bgr = photo.permute(1, 2, 0).numpy()[:, :, ::-1].copy()

    def run() -> list[dict]:
        instances = predictor(bgr)["instances"]
        masks = np.asfortranarray(instances.pred_masks.numpy().transpose(1, 2, 0).astype(np.uint8))
        rles = mask_utils.encode(masks)
        boxes = instances.pred_boxes.tensor.tolist()
        return [{"box": b, "segmentation": r["counts"].decode()} for b, r in zip(boxes, rles, strict=True)]

    return run


def ours_side(predictor: Predictor, photo: torch.Tensor):  # -> Callable[[], list[dict]]
    def run() -> list[dict]:
        det = predictor.detect([photo])[0]
        results = predictor.results(det, InferenceOptions())
        boxes = det.boxes.tolist()
        return [{"box": b, "segmentation": r["segmentation"]["counts"]} for b, r in zip(boxes, results, strict=True)]

    return run


def agreement(reference: list[dict], ours: list[dict]) -> str:
    same_boxes = sum(a["box"] == b["box"] for a, b in zip(reference, ours, strict=False))
    same_masks = sum(a["segmentation"] == b["segmentation"] for a, b in zip(reference, ours, strict=False))
    return f"{len(ours)} | {same_boxes}/{len(reference)} | {same_masks}/{len(reference)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    if importlib.util.find_spec("detectron2") is None:
        print("bench.detectron2 skipped: detectron2 is not importable (PYTHONPATH=<its source>)")
        return
    cpu = torch.device("cpu")
    photo = load_photo()
    photo_bgr = photo.flip(0).float()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, pkl = detectron2_file(Path(tmp), photo_bgr)
        model = load(pkl, ARCH)
        fast_model = load_like(model, dataclasses.replace(model.config, inference_layout="fast"))
        detectron2 = SideProcess(functools.partial(detectron2_side, cfg, photo))  # reads the .pkl now
    with detectron2:
        sides = {
            "Detectron2 DefaultPredictor": detectron2,
            "ours fp32, exact layout": ours_side(Predictor(model), photo),
            "ours fp32, fast layout": ours_side(Predictor(fast_model), photo),
        }
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            sides["ours bf16, fast layout"] = ours_side(Predictor(fast_model, precision="bf16"), photo)
        stats = compare(sides, cpu, args.repeat)
    reference = stats["Detectron2 DefaultPredictor"]["out"]
    base = stats["Detectron2 DefaultPredictor"]["median"]
    lines = [
        f"## {datetime.date.today()} · detectron2 · {machine_description(cpu)}",
        "",
        f"`python -m bench.detectron2 --repeat {args.repeat}`: Detectron2's mask_rcnn_R_50_FPN_3x built by its own "
        f"code, seeded calibrated random weights, one model-zoo .pkl for both; photo {photo.shape[1]}x"
        f"{photo.shape[2]}. Sides take turns, Detectron2 in a process of its own (C library defaults); medians of "
        f"{args.repeat}; masks to COCO RLE on every side.",
        "",
        "| side | ms | speed-up over Detectron2 | detections | boxes identical | masks identical |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        lines.append(
            f"| {name} | {s['median'] * 1000:.0f} | {base / s['median']:.2f}x | {agreement(reference, s['out'])} |"
        )
    publish([*lines, ""], args.results)


def load_like(model: torch.nn.Module, config: object) -> torch.nn.Module:
    """The same weights under another config (here: another inference layout)."""
    from models import build_model

    other = build_model(config)  # type: ignore[arg-type]
    other.load_state_dict(model.state_dict(), strict=True)
    return other.eval()


if __name__ == "__main__":
    main()
