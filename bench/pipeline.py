"""Our pipeline vs torchvision's, same weights, same photo: speed, memory and output agreement.

torchvision side: `maskrcnn_resnet50_fpn` forward (which pastes every mask into a full image), `> 0.5`,
pycocotools `encode`, run in a process of its own with the C library's default settings, as its users run it
(bench/side_process.py: our Predictor's malloc settings would speed it up too; the fp32 row's note also gives
its time in this process). Our side: `Predictor` (box-limited paste, RLE from the crops). Score threshold 0,
so both return 100 detections. Runs alternate between the sides; medians are reported, then appended to
bench/RESULTS.md with the date and machine. The post-process row compares the two paste + RLE routes on our
detections, both in this process.

    python -m bench.pipeline                       # CPU: fp32 and bf16
    python -m bench.pipeline --device cuda         # GPU: batch 1 fp32, batch 8 fp16

fp32 means IEEE float32 on both sides (`models.inference.ieee_fp32`), also on GPUs where PyTorch's default
would let cuDNN round fp32 convolutions to TF32; the fp16 row compares with torchvision at that default.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import torch
from PIL import Image
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.models.detection.roi_heads import paste_masks_in_image

from bench.side_process import SideProcess
from bench.timing import Measured, compare
from models import InferenceOptions, weights
from models.inference import Predictor, ieee_fp32
from models.postprocess import paste_masks
from models.rle import encode

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "tests" / "fixtures" / "coffee_800x1200.jpg"
OPTIONS = InferenceOptions(score_thresh=0.0)


def random_weight_models(device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """torchvision's maskrcnn_resnet50_fpn built with seed 0 (score threshold 0, on `device`), and ours
    loaded from its state dict through `models.weights`, as a user would load a torchvision checkpoint."""
    torch.manual_seed(0)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, box_score_thresh=0.0).eval().to(device)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(reference.state_dict(), Path(tmp) / "torchvision.pth")
        model = weights.load(Path(tmp) / "torchvision.pth")
    return reference, model


def load_photo() -> torch.Tensor:
    """The bench photo as UInt8Tensor[3, 800, 1200]."""
    return torch.from_numpy(np.asarray(Image.open(PHOTO).convert("RGB")).copy()).permute(2, 0, 1).contiguous()


def torchvision_pipeline(model: torch.nn.Module, device: torch.device) -> Callable[[list[torch.Tensor]], list]:
    def run(images: list[torch.Tensor]) -> list[list[dict]]:
        with torch.inference_mode():
            outputs = model([img.to(device).float() / 255 for img in images])
        results = []
        for out in outputs:
            binary = (out["masks"][:, 0] > 0.5).cpu().numpy()
            rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0).astype(np.uint8)))
            boxes = out["boxes"].cpu()
            xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
            results.append(
                [
                    {"category_id": int(c), "bbox": b, "segmentation": r}
                    for c, b, r in zip(out["labels"], xywh, rles, strict=True)
                ]
            )
        return results

    return run


def torchvision_side(model: torch.nn.Module, device: str) -> Callable[..., list[list[dict]]]:
    """`torchvision_pipeline` for a `SideProcess`: call it with images=[...], and ieee=True for IEEE fp32."""
    pipeline = torchvision_pipeline(model, torch.device(device))

    def run(images: list[torch.Tensor], ieee: bool = False) -> list[list[dict]]:
        with ieee_fp32() if ieee else contextlib.nullcontext():
            return pipeline(images)

    return run


def mask_agreement(reference: list[dict], ours: list[dict]) -> tuple[bool, float, float]:
    """(same classes, min and mean mask IoU over the reference's detections).

    Each reference detection is paired with the unused detection of ours of the same class whose box
    overlaps it most (orders differ where scores nearly tie); an unpaired one counts as IoU 0, and two
    empty masks as IoU 1.
    """
    same_labels = sorted(r["category_id"] for r in reference) == sorted(o["category_id"] for o in ours)
    used: set[int] = set()
    ious = []
    for ref in reference:
        candidates = [i for i, o in enumerate(ours) if o["category_id"] == ref["category_id"] and i not in used]
        if not candidates:
            ious.append(0.0)
            continue
        box_iou = mask_utils.iou([ours[i]["bbox"] for i in candidates], [ref["bbox"]], [0])[:, 0]
        best = candidates[int(np.argmax(box_iou))]
        used.add(best)
        seg_r, seg_o = ref["segmentation"], ours[best]["segmentation"]
        if mask_utils.area(seg_r) == 0 and mask_utils.area(seg_o) == 0:
            ious.append(1.0)
        else:
            ious.append(float(mask_utils.iou([seg_o], [seg_r], [0])[0, 0]))
    return same_labels, min(ious), float(np.mean(ious))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    device = torch.device(args.device)

    reference, model = random_weight_models(device)
    photo = load_photo()
    lines = [f"## {datetime.date.today()} · {machine_description(device)}", ""]

    def report(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with SideProcess(functools.partial(torchvision_side, reference, str(device)), device) as tv:
        _race(report, tv, reference, model, photo, device, args.repeat)
    publish(lines, args.results, echo=False)


def _race(
    report: Callable[[str], None],
    tv: SideProcess,
    reference: torch.nn.Module,
    model: torch.nn.Module,
    photo: torch.Tensor,
    device: torch.device,
    repeat: int,
) -> None:
    """The table's rows: the post-process alone (CPU), then end to end at fp32 and at the reduced precision."""
    fp32 = Predictor(model, device=device)
    report(f"photo {photo.shape[1]}x{photo.shape[2]}, score threshold 0 (100 detections), median of {repeat}")
    report("")
    report("| what | torchvision | ours | ratio | peak mem tv / ours | output |")
    report("|---|---|---|---|---|---|")

    if device.type == "cpu":
        det = fp32.detect([photo], OPTIONS)[0]
        h, w = det.image_size

        def tv_post() -> list:
            full = paste_masks_in_image(det.masks[:, None], det.boxes, (h, w))[:, 0] > 0.5
            return mask_utils.encode(np.asfortranarray(full.numpy().transpose(1, 2, 0).astype(np.uint8)))

        post = compare({"tv": tv_post, "ours": lambda: encode(paste_masks(det.masks, det.boxes, (h, w)))}, device, 5)
        equal = [r["counts"].decode() for r in post["tv"]["out"]] == [r["counts"] for r in post["ours"]["out"]]
        _row(report, "post-process (paste + 0.5 + RLE)", post, f"RLE identical: {equal}")

    here = torchvision_side(reference, str(device))
    batches = [("fp32", 1)] + ([("bf16", 1)] if device.type == "cpu" else [("fp16", 8)])
    baseline = None
    for precision, batch in batches:
        predictor = fp32 if precision == "fp32" else Predictor(model, device=device, precision=precision)
        images = [photo] * batch

        # fp32 rows: torchvision under the same IEEE float32 as ours (on GPUs its default lets convs use TF32, whose
        # rounding reshuffles near-tie detections); the fp16 row races torchvision at its fastest default.
        def tv_side(im: list[torch.Tensor] = images, ieee: bool = precision == "fp32") -> Measured:
            return tv(images=im, ieee=ieee)

        sides = {"tv": tv_side, "ours": lambda im=images, p=predictor: p(im, OPTIONS)}
        if precision == "fp32":  # torchvision once more in this process, with the malloc settings ours gave it
            sides["tv here"] = lambda im=images: here(im, ieee=True)
        stats = compare(sides, device, repeat)
        ours_out = stats["ours"]["out"][0]
        if precision == "fp32":
            baseline = ours_out
            same, lo, mean = mask_agreement(stats["tv"]["out"][0], ours_out)
            here_s = stats["tv here"]["median"]
            note = (
                f"same classes: {same}; mask IoU vs tv min {lo:.4f} mean {mean:.4f}; torchvision in this process "
                f"(our malloc settings) {here_s * 1000:.0f} ms, {here_s / stats['ours']['median']:.1f}x"
            )
        else:
            _, lo, mean = mask_agreement(baseline, ours_out)
            note = f"mean mask IoU vs our fp32 {mean:.4f} (min {lo:.4f})"
        ips = f"{batch / stats['tv']['median']:.2f} vs {batch / stats['ours']['median']:.2f} img/s"
        _row(report, f"end to end {precision}, batch {batch} ({ips})", stats, note)


def _row(report: Callable[[str], None], what: str, stats: dict, note: str) -> None:
    tv, ours = stats["tv"], stats["ours"]
    mib = 1 << 20
    report(
        f"| {what} | {tv['median'] * 1000:.0f} ms | {ours['median'] * 1000:.0f} ms | "
        f"**{tv['median'] / ours['median']:.1f}x** | {tv['peak'] / mib:.0f} / {ours['peak'] / mib:.0f} MiB | {note} |"
    )


def publish(lines: list[str], results: Path, echo: bool = True) -> None:
    """Print a report (unless already printed line by line) and append it to bench/RESULTS.md as one section."""
    report = "\n".join(lines).strip("\n")
    if echo:
        print(report)
    print(f"appended to {results}")
    with results.open("a") as f:
        f.write("\n" + report + "\n")


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.processor())
        name = f"{name}, {torch.get_num_threads()} threads"
    return f"{name} · torch {torch.__version__}, torchvision {__import__('torchvision').__version__}"


if __name__ == "__main__":
    main()
