"""Our pipeline vs the deployment runtimes: ONNX Runtime and OpenVINO on torchvision's exported model (issue 14).

The model: torchvision's `maskrcnn_resnet50_fpn` with seeded random weights; our side loads the same weights
through `models.weights` (bench/pipeline.py's `random_weight_models`). The photo: the 800x1200 bench photo.
torchvision's model is exported to ONNX as issue 14 did it, `torch.onnx.export(..., dynamo=False,
opset_version=17)`, with `paste_masks_in_image` patched to return its input, so the graph ends with boxes,
labels, scores and the 28x28 masks; the ONNX Runtime and OpenVINO sides then run our box-limited paste and RLE
(`models.postprocess.paste_masks`, `models.rle.encode`) on those. The graph bakes torchvision's score threshold
in, so it is exported once per threshold.

Sides take turns, median of --repeat runs after one warm-up each: torchvision eager (its own paste into full
images, pycocotools encode, as bench/pipeline.py; in a process of its own with the C library's default
settings, as its users run it: bench/side_process.py; and once more in this process, with the malloc
settings our Predictor sets, which speed it up too), ONNX Runtime (CPU provider, its default
threads, spin-waiting off), OpenVINO CPU at f32 (`INFERENCE_PRECISION_HINT`) and at its default precision
(bf16 where the CPU has it), ours fp32 and bf16 (where `torch.ops.mkldnn._is_mkldnn_bf16_supported()`).
Agreement of each side with torchvision fp32: detection count, same classes, min/mean mask IoU. Appended to
bench/RESULTS.md.

    pip install -e '.[bench]'        # onnx, onnxruntime, openvino
    python -m bench.peers            # thresholds 0 and 0.05, 5 runs per side
    python -m bench.peers --threshold 0.05 --repeat 3

Without the `bench` extra it prints which packages are missing and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import importlib.util
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torchvision.models.detection.roi_heads as tv_roi_heads
import torchvision.models.detection.transform as tv_transform

from bench.pipeline import (
    ROOT,
    load_photo,
    machine_description,
    mask_agreement,
    publish,
    random_weight_models,
    torchvision_pipeline,
    torchvision_side,
)
from bench.side_process import SideProcess
from bench.timing import compare
from models import InferenceOptions
from models.inference import Predictor
from models.postprocess import paste_masks
from models.rle import encode

EXTRA = ("onnx", "onnxruntime", "openvino")
HERE = "torchvision eager fp32, in this process"
Side = Callable[[], list[list[dict]]]


def missing_packages() -> list[str]:
    return [name for name in EXTRA if importlib.util.find_spec(name) is None]


@contextlib.contextmanager
def masks_unpasted() -> Iterator[None]:
    """torchvision's postprocess returns the [N, 1, 28, 28] mask probabilities instead of full-image masks."""
    saved = tv_transform.paste_masks_in_image, tv_roi_heads.paste_masks_in_image
    tv_transform.paste_masks_in_image = tv_roi_heads.paste_masks_in_image = lambda masks, *args, **kwargs: masks
    try:
        yield
    finally:
        tv_transform.paste_masks_in_image, tv_roi_heads.paste_masks_in_image = saved


def export_onnx(reference: torch.nn.Module, photo: torch.Tensor, path: Path) -> None:
    """torchvision's model (at its current score threshold) -> ONNX, as issue 14 exported it."""
    with masks_unpasted(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings about torchvision's data-dependent Python code
        torch.onnx.export(
            reference,
            ([photo.float() / 255],),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["boxes", "labels", "scores", "masks"],
        )


def coco_from_graph(
    boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray, size: tuple[int, int]
) -> list[list[dict]]:
    """The graph's outputs -> [COCO-style results of the one image]: our paste and RLE on the 28x28 masks."""
    boxes_t = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))
    rles = encode(paste_masks(torch.from_numpy(np.ascontiguousarray(masks[:, 0], dtype=np.float32)), boxes_t, size))
    xywh = torch.cat([boxes_t[:, :2], boxes_t[:, 2:] - boxes_t[:, :2]], dim=1).tolist()
    return [
        [
            {"category_id": int(c), "bbox": b, "segmentation": r}
            for c, b, r in zip(labels.tolist(), xywh, rles, strict=True)
        ]
    ]


def runtime_sides(onnx_path: Path, photo: torch.Tensor) -> dict[str, Side]:
    """ONNX Runtime and OpenVINO (f32 and default precision) on the exported graph, each with our post-process."""
    import onnxruntime as ort
    import openvino as ov

    size = (photo.shape[1], photo.shape[2])
    options = ort.SessionOptions()
    # ORT's pool spin-waits after each run by default, which on a small CPU slows the side that runs next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    core = ov.Core()
    graph = core.read_model(str(onnx_path))
    ov_f32 = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ov_default = core.compile_model(graph, "CPU")
    hint = ov_default.get_property("INFERENCE_PRECISION_HINT")
    default_precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)  # "bf16", "f32"

    def ort_side() -> list[list[dict]]:
        boxes, labels, _, masks = session.run(None, {"image": (photo.float() / 255).numpy()})
        return coco_from_graph(boxes, labels, masks, size)

    def ov_side(compiled: object) -> Side:
        def run() -> list[list[dict]]:
            out = compiled([(photo.float() / 255).numpy()])  # type: ignore[operator]
            boxes, labels, _, masks = (out[o] for o in compiled.outputs)  # type: ignore[attr-defined]
            return coco_from_graph(boxes, labels, masks, size)

        return run

    return {
        "ONNX Runtime (CPU)": ort_side,
        "OpenVINO f32": ov_side(ov_f32),
        f"OpenVINO default ({default_precision})": ov_side(ov_default),
    }


def measure(
    reference: torch.nn.Module, model: torch.nn.Module, photo: torch.Tensor, threshold: float, repeat: int, tmp: Path
) -> list[str]:
    """Export at `threshold`, time every side, and return the report's table for it."""
    cpu = torch.device("cpu")
    reference.roi_heads.score_thresh = threshold
    onnx_path = tmp / f"maskrcnn_{threshold}.onnx"
    start = time.perf_counter()
    export_onnx(reference, photo, onnx_path)
    export_s = time.perf_counter() - start
    options = InferenceOptions(score_thresh=threshold)
    with SideProcess(functools.partial(torchvision_side, reference, "cpu")) as tv:
        here = torchvision_pipeline(reference, cpu)
        sides: dict[str, Callable[[], object]] = {
            "torchvision eager fp32": lambda: tv(images=[photo]),
            HERE: lambda: here([photo]),  # with the malloc settings our Predictor gives this process
        }
        sides.update(runtime_sides(onnx_path, photo))
        ours = {"ours fp32": Predictor(model)}
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            ours["ours bf16"] = Predictor(model, precision="bf16")
        for name, predictor in ours.items():
            sides[name] = lambda p=predictor: p([photo], options)
        stats = compare(sides, cpu, repeat)

    base = stats["ours fp32"]["median"]
    reference_out = stats["torchvision eager fp32"]["out"][0]
    lines = [
        f"score threshold {threshold} (ONNX export {export_s:.0f} s, {onnx_path.stat().st_size >> 20} MiB):",
        "",
        "| side | ms | time / ours fp32 | peak RSS growth | detections | same classes | mask IoU vs tv min / mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        out = s["out"][0]
        agree = "— | —"
        if reference_out and out:
            same, lo, mean = mask_agreement(reference_out, out)
            agree = f"{same} | {lo:.4f} / {mean:.4f}"
        lines.append(
            f"| {name} | {s['median'] * 1000:.0f} | {s['median'] / base:.2f}x | {s['peak'] >> 20} MiB | "
            f"{len(out)} | {agree} |"
        )
    ov_names = [n for n in stats if n.startswith("OpenVINO")]
    versus = [f"ours fp32 over {ov_names[0]}: **{stats[ov_names[0]]['median'] / base:.2f}x**"]
    if "ours bf16" in stats:
        bf16 = stats["ours bf16"]["median"]
        versus.append(f"ours bf16 over {ov_names[1]}: **{stats[ov_names[1]]['median'] / bf16:.2f}x**")
    return [*lines, "", "Speed-up of " + "; ".join(versus) + " (> 1: ours is faster).", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    if missing := missing_packages():
        print(f"bench.peers skipped: missing {', '.join(missing)} (pip install -e '.[bench]')")
        return
    import onnxruntime as ort
    import openvino as ov

    reference, model = random_weight_models(torch.device("cpu"))
    photo = load_photo()
    lines = [
        f"## {datetime.date.today()} · peers · {machine_description(torch.device('cpu'))}",
        "",
        f"`python -m bench.peers --threshold {' '.join(map(str, args.threshold))} --repeat {args.repeat}`: "
        f"maskrcnn_resnet50_fpn, seeded random weights, photo {photo.shape[1]}x{photo.shape[2]}; onnxruntime "
        f"{ort.__version__}, openvino {ov.__version__}. Sides take turns; medians of {args.repeat}. torchvision "
        "eager runs in a process of its own (C library defaults), and once more in this one. ONNX Runtime and "
        "OpenVINO run torchvision's graph exported without the paste, then our paste + RLE.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for threshold in args.threshold:
            table = measure(reference, model, photo, threshold, args.repeat, Path(tmp))
            print("\n".join(table), flush=True)
            lines += table
    publish(lines, args.results, echo=False)


if __name__ == "__main__":
    main()
