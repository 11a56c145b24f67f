"""A torch-free check of the installed SDK, for CI's clean client-only venv (`.ci/run`): no server, no torch.

Run as `python tests/client/sdk_smoke.py`; exits non-zero on the first failed assertion. Also run by
tests/client/test_sdk_layering.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from pycocotools import mask as mask_utils


def main() -> None:
    import maskrcnn_client
    from maskrcnn_client import DetectResult, MaskRCNNError, UnavailableError

    mask = np.zeros((30, 40), dtype=np.uint8, order="F")
    mask[5:20, 10:30] = 1
    rle = mask_utils.encode(mask)
    body = {
        "model": {"name": "m", "weights_sha256": "0" * 64, "device": "cpu", "precision": "fp32"},
        "image": {"width": 40, "height": 30},
        "detections": [
            {
                "category_id": 3,
                "label": "cup",
                "score": 0.9,
                "bbox": [10, 5, 20, 15],
                "segmentation": {"size": [30, 40], "counts": rle["counts"].decode()},
            }
        ],
        "timing_ms": {"decode": 1, "queue": 0, "inference": 2, "postprocess": 1, "total": 4, "batch_size": 1},
        "added_by_a_newer_server": True,
    }
    result = DetectResult.model_validate(json.loads(json.dumps(body)))
    assert np.array_equal(result.masks()[0], mask.astype(bool))
    assert result.to_coco(5)[0]["image_id"] == 5
    assert result.overlay(np.zeros((30, 40, 3), np.uint8)).size == (40, 30)
    assert issubclass(UnavailableError, MaskRCNNError)
    refused = subprocess.run(
        [sys.executable, "-m", "maskrcnn_client.cli", "x.jpg"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2 and "--url" in refused.stderr, refused.stderr
    assert "torch" not in sys.modules, "the SDK imported torch"
    print(f"maskrcnn_client {maskrcnn_client.__version__}: torch-free smoke check passed")


if __name__ == "__main__":
    main()
