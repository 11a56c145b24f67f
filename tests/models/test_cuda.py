"""GPU-only paths against their CPU counterparts (skipped without CUDA): run with `pytest -m gpu` on a GPU.

The CPU suite covers the same code through the CPU (offset_nms, batched paste); these check the CUDA kernels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms

from models import InferenceOptions, build_model, preset
from models.box_ops import grouped_nms
from models.inference import Predictor
from tests.conftest import load_photo
from tests.models.test_box_ops import random_boxes

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("n", [0, 50, 5000])
def test_grouped_nms_on_cuda_equals_batched_nms_on_cpu(n: int) -> None:
    rng = np.random.default_rng(n)
    boxes = random_boxes(rng, n, 1333.0)
    scores = torch.from_numpy(rng.permutation(n).astype(np.float32) / max(n, 1))
    groups = torch.from_numpy(rng.integers(0, 90, n))
    expected = batched_nms(boxes, scores, groups, 0.5)
    assert torch.equal(grouped_nms(boxes.cuda(), scores.cuda(), groups.cuda(), 0.5).cpu(), expected)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(preset("tiny", num_classes=5)).eval()


def test_cuda_fp32_gives_the_cpu_detections(model: torch.nn.Module) -> None:
    images = [load_photo("astronaut.jpg"), load_photo("coffee.jpg")]
    options = InferenceOptions(score_thresh=0.0)
    cpu = Predictor(model, "cpu")(images, options)
    gpu = Predictor(model, "cuda")(images, options)
    for a, b in zip(cpu, gpu, strict=True):
        assert len(a) == len(b) == 100
        assert sorted(d["category_id"] for d in a) == sorted(d["category_id"] for d in b)
        assert max(abs(x["score"] - y["score"]) for x, y in zip(a, b, strict=True)) <= 1e-3


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_on_cuda_gives_finite_coco_results(model: torch.nn.Module, precision: str) -> None:
    results = Predictor(model, "cuda", precision)([load_photo("coffee.jpg")] * 3, InferenceOptions(score_thresh=0.0))
    for per_image in results:
        assert len(per_image) == 100
        assert all(math.isfinite(d["score"]) and all(map(math.isfinite, d["bbox"])) for d in per_image)
        assert all(d["segmentation"]["size"] == [400, 600] for d in per_image)
