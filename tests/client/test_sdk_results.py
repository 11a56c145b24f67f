"""DetectResult's helpers on a live server's answers: masks, polygons, overlay, COCO export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from maskrcnn_client import Client, DetectResult
from maskrcnn_client.geometry import decode_masks, mask_polygons
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"


@pytest.fixture(scope="module")
def result(sdk_server, photo: Path) -> DetectResult:
    with Client(sdk_server.url) as client:
        return client.detect(photo, max_detections=10)


def test_masks_agree_with_pycocotools_and_lie_in_their_boxes(result: DetectResult) -> None:
    masks = result.masks()
    assert masks.dtype == bool and masks.shape == (10, 120, 160)
    for det, mask in zip(result.detections, masks, strict=True):
        rle = {"size": det.segmentation.size, "counts": det.segmentation.counts.encode()}
        assert np.array_equal(mask, mask_utils.decode(rle).astype(bool))
        ys, xs = np.nonzero(mask)
        if len(xs):
            x, y, w, h = det.bbox
            assert xs.min() >= np.floor(x) - 1 and xs.max() <= np.ceil(x + w) + 1
            assert ys.min() >= np.floor(y) - 1 and ys.max() <= np.ceil(y + h) + 1
    assert masks.any(axis=(1, 2)).sum() >= 1


def test_masks_without_segmentations_is_a_clear_error(sdk_server, photo: Path) -> None:
    with Client(sdk_server.url) as client:
        boxes_only = client.detect(photo, max_detections=3, masks=False)
    with pytest.raises(ValueError, match="masks=True"):
        boxes_only.masks()


def test_polygons_keep_holes_and_every_part() -> None:
    pytest.importorskip("cv2", reason="the polygons extra (OpenCV) is not installed")
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:25, 5:25] = True
    mask[10:20, 10:20] = False  # a hole
    mask[30:38, 40:55] = True  # a second part
    rings = mask_polygons(mask)
    outers = [r for r in rings if not r.hole]
    holes = [r for r in rings if r.hole]
    assert len(outers) == 2 and len(holes) == 1
    assert rings[holes[0].parent] is not None and not rings[holes[0].parent].hole
    hole_xs = holes[0].points[0::2]
    assert min(hole_xs) >= 9 and max(hole_xs) <= 20
    # Filling the outer rings and clearing the hole gives back the mask, to the boundary pixels (the rings run
    # through the centres of the mask's own boundary pixels).
    rle_outer = mask_utils.frPyObjects([r.points for r in outers], 40, 60)
    rle_hole = mask_utils.frPyObjects([holes[0].points], 40, 60)
    drawn = mask_utils.decode(rle_outer).any(axis=2) & ~mask_utils.decode(rle_hole).any(axis=2)
    assert (drawn & mask).sum() / (drawn | mask).sum() > 0.75


def test_polygons_of_a_result_one_list_per_detection(result: DetectResult) -> None:
    pytest.importorskip("cv2", reason="the polygons extra (OpenCV) is not installed")
    polygons = result.polygons()
    assert len(polygons) == len(result.detections)
    for rings, mask in zip(polygons, result.masks(), strict=True):
        assert all(len(r.points) >= 6 and len(r.points) % 2 == 0 for r in rings)
        ys, xs = np.nonzero(mask)
        for ring in rings:
            assert min(ring.points[0::2]) >= xs.min() and max(ring.points[0::2]) <= xs.max()
            assert min(ring.points[1::2]) >= ys.min() and max(ring.points[1::2]) <= ys.max()
    assert any(polygons)


def test_polygons_without_the_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['cv2'] = None\n"  # what an environment without OpenCV looks like to `import cv2`
        "import numpy as np\n"
        "from maskrcnn_client.geometry import mask_polygons\n"
        "try:\n    mask_polygons(np.ones((3, 3), bool))\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    env_path = f"{CLIENT_DIR}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": env_path}
    )
    assert "maskrcnn-client[polygons]" in out.stdout


def test_to_coco_loads_into_coco_loadres_and_evaluates(result: DetectResult, tmp_path: Path) -> None:
    best = result.detections[0]
    gt = {
        "images": [{"id": 7, "file_name": "chelsea.jpg", "width": 160, "height": 120}],
        "categories": [{"id": i, "name": n} for i, n in enumerate(("cat", "dog", "cup", "person"), start=1)],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": best.category_id,
                "bbox": best.bbox,
                "area": best.bbox[2] * best.bbox[3],
                "segmentation": {"size": best.segmentation.size, "counts": best.segmentation.counts},
                "iscrowd": 0,
            }
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    coco = COCO(str(tmp_path / "gt.json"))
    entries = result.to_coco(image_id=7)
    assert len(entries) == 10 and all(e["image_id"] == 7 for e in entries)
    detections = coco.loadRes(json.loads(json.dumps(entries)))
    evaluator = COCOeval(coco, detections, "segm")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] > 0.99  # the GT is the top detection's own mask


def test_overlay_is_an_image_of_the_input_size_with_something_drawn(result: DetectResult, photo: Path) -> None:
    overlay = result.overlay(photo)
    original = Image.open(photo).convert("RGB")
    assert overlay.mode == "RGB" and overlay.size == (160, 120)
    assert not np.array_equal(np.asarray(overlay), np.asarray(original))
    assert result.overlay(np.asarray(original)).size == (160, 120)
    with pytest.raises(ValueError, match="160x120"):
        result.overlay(original.resize((80, 60)))


def test_decode_masks_of_no_detections_is_empty() -> None:
    assert decode_masks([], 5, 7).shape == (0, 5, 7)


def test_overlay_colours_are_the_services_and_the_web_pages() -> None:
    from maskrcnn_client.overlay import colour

    from service.visualize import color

    assert all(colour(c) == color(c) for c in range(200))
