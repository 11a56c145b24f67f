"""Predictor: uint8 images -> COCO results that pycocotools loads and evaluates; options and precisions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from models import Detections, InferenceOptions, build_model, preset
from models.inference import Predictor, coco_results, fold_batchnorm, ieee_fp32
from models.mask_head import mask_targets
from models.postprocess import paste_masks
from tests.conftest import certain_model, load_photo

NAMES = ("__background__", "square", "disc")
CATEGORY_IDS = (0, 7, 11)


def _ground_truth() -> tuple[dict, list[np.ndarray], list[tuple[int, int, int]]]:
    """Two 90x120 images: a square (category 7) and a disc (category 11) on each; full masks kept aside."""
    images, annotations, masks, owners = [], [], [], []
    yy, xx = np.mgrid[:90, :120]
    for image_id, shift in ((1, 0), (2, 17)):
        images.append({"id": image_id, "height": 90, "width": 120, "file_name": f"{image_id}.png"})
        square = (yy >= 10 + shift) & (yy < 45 + shift) & (xx >= 8) & (xx < 50)
        disc = (yy - 60) ** 2 + (xx - 85 + shift // 2) ** 2 < 20**2
        for label, mask in ((1, square), (2, disc)):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[label],
                    "segmentation": rle,
                    "area": float(mask.sum()),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
            masks.append(mask)
            owners.append((image_id, label, len(annotations) - 1))
    categories = [{"id": CATEGORY_IDS[i], "name": NAMES[i]} for i in (1, 2)]
    return {"images": images, "annotations": annotations, "categories": categories}, masks, owners


def test_results_load_into_coco_and_evaluate_to_full_ap() -> None:
    """Detections whose masks are the ground truth resampled to 28x28 (the mask head's target) score AP ~1."""
    gt, masks, owners = _ground_truth()
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    coco.createIndex()
    results = []
    for image_id in (1, 2):
        mine = [(label, idx) for img, label, idx in owners if img == image_id]
        boxes = torch.tensor(
            [
                [
                    *gt["annotations"][i]["bbox"][:2],
                    *np.add(gt["annotations"][i]["bbox"][:2], gt["annotations"][i]["bbox"][2:]),
                ]
                for _, i in mine
            ],
            dtype=torch.float32,
        )
        full = torch.from_numpy(np.stack([masks[i] for _, i in mine]).astype(np.uint8))
        probs = mask_targets(full, boxes, torch.arange(len(mine)), 28)
        det = Detections(boxes, torch.tensor([0.9, 0.8]), torch.tensor([lab for lab, _ in mine]), (90, 120), probs)
        for r in coco_results(det, paste_masks(det.masks, det.boxes, det.image_size), NAMES, CATEGORY_IDS):
            assert r["category_id"] in (7, 11) and r["label"] in NAMES[1:]
            results.append({**r, "image_id": image_id})
    loaded = coco.loadRes(results)
    # Boxes are exact; masks went through 28x28 and back, so only the strictest IoU levels may miss.
    for iou_type, floor in (("bbox", 0.99), ("segm", 0.9)):
        ev = COCOeval(coco, loaded, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] >= floor, (iou_type, ev.stats[0])


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(preset("tiny", class_names=("bg", "a", "b", "c", "d"), category_ids=(0, 10, 20, 30, 40)))


def _images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [
        torch.randint(0, 256, (3, 96, 130), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (3, 150, 110), generator=g, dtype=torch.uint8),
    ]


def test_predictor_results_are_coco_style(tiny_model: torch.nn.Module) -> None:
    images = _images()
    out = Predictor(tiny_model)(images, InferenceOptions(score_thresh=0.0, detections_per_img=7), full_masks=True)
    assert [len(r) for r in out] == [7, 7]
    for image, results in zip(images, out, strict=True):
        h, w = image.shape[1:]
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        for r in results:
            assert r["category_id"] in (10, 20, 30, 40) and r["label"] in ("a", "b", "c", "d")
            x, y, bw, bh = r["bbox"]
            assert 0 <= x <= x + bw <= w and 0 <= y <= y + bh <= h
            assert r["segmentation"]["size"] == [h, w]
            decoded = mask_utils.decode({"size": [h, w], "counts": r["segmentation"]["counts"].encode()})
            assert np.array_equal(decoded.astype(bool), r["mask"])


def test_predictor_does_not_touch_the_model_it_is_given(tiny_model: torch.nn.Module) -> None:
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    Predictor(tiny_model)
    after = tiny_model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_folded_batchnorm_gives_the_same_detections(tiny_model: torch.nn.Module) -> None:
    model = copy.deepcopy(tiny_model)
    for m in model.modules():  # non-trivial statistics, so that folding has work to do
        if hasattr(m, "running_var") and m.running_var is not None:
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.uniform_(-0.2, 0.2)
    opts = InferenceOptions(score_thresh=0.0)
    with torch.no_grad():
        plain = model.eval().predict(_images(), opts)
        folded = fold_batchnorm(model).predict(_images(), opts)
    for a, b in zip(plain, folded, strict=True):
        assert torch.equal(a.labels, b.labels)
        assert torch.allclose(a.boxes, b.boxes, atol=1e-3)
        assert torch.allclose(a.masks, b.masks, atol=1e-4)


def test_bf16_on_cpu_runs_where_supported(tiny_model: torch.nn.Module) -> None:
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        with pytest.raises(ValueError, match="bf16"):
            Predictor(tiny_model, precision="bf16")
        return
    out = Predictor(tiny_model, precision="bf16", channels_last=True)(_images(), InferenceOptions(score_thresh=0.0))
    assert all(len(r) == 100 for r in out)
    assert all(isinstance(r["score"], float) for r in out[0])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (InferenceOptions(score_thresh=1.5), "score_thresh"),
        (InferenceOptions(detections_per_img=0), "detections_per_img"),
        (InferenceOptions(detections_per_img=101), "detections_per_img"),
        (InferenceOptions(nms_thresh=-0.1), "nms_thresh"),
        (InferenceOptions(mask_thresh=1.0), "mask_thresh"),
    ],
)
def test_out_of_range_options_are_refused(tiny_model: torch.nn.Module, options: InferenceOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Predictor(tiny_model)(_images(), options)


def test_fp16_needs_a_gpu(tiny_model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Predictor(tiny_model, precision="fp16")


def test_ieee_fp32_turns_tf32_off_and_restores_the_flags() -> None:
    """The flags exist in every build (CPU ones too); on a GPU they decide whether fp32 convs round to TF32."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32
    try:
        cudnn.allow_tf32 = matmul.allow_tf32 = True
        with pytest.raises(RuntimeError, match="inside"), ieee_fp32():
            assert (cudnn.allow_tf32, matmul.allow_tf32) == (False, False)
            raise RuntimeError("inside")
        assert (cudnn.allow_tf32, matmul.allow_tf32) == (True, True)
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before


def test_score_threshold_is_inclusive_at_a_returned_score_and_at_one(tiny_model: torch.nn.Module) -> None:
    predictor = Predictor(tiny_model)
    image = load_photo("chelsea.jpg")
    results = predictor([image], InferenceOptions(score_thresh=0.0))[0]
    for k in (0, len(results) // 2, len(results) - 1):
        s = results[k]["score"]
        kept = predictor([image], InferenceOptions(score_thresh=s))[0]
        assert s in [r["score"] for r in kept]  # "at least s": the detection scoring exactly s stays
        assert len(kept) == min(100, sum(r["score"] >= s for r in results))
    certain = Predictor(certain_model())([image], InferenceOptions(score_thresh=1.0))[0]
    assert certain and all(r["score"] == 1.0 for r in certain)


def test_default_detections_per_image_is_the_papers_100_everywhere() -> None:
    from models import weights
    from tests.scenes import DEMO_WEIGHTS

    assert all(preset(name).detections_per_img == 100 for name in ("resnet50_fpn", "resnet50_fpn_v2", "tiny", "demo"))
    assert weights.read(DEMO_WEIGHTS)[0].detections_per_img == 100
