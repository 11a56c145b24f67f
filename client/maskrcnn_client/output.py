"""What `maskrcnn detect` writes: COCO results, a COCO dataset skeleton that they load into, overlays.

`COCO(out / "images.json").loadRes(str(out / "detections.json"))` works on the pair (pycocotools; note that
`loadRes` itself refuses an empty results list).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .results import Category, DetectResult


class CocoWriter:
    """Collects one DetectResult per image (image ids 1, 2, ... in order) and writes the two JSON files."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.images: list[dict[str, Any]] = []
        self.detections: list[dict[str, Any]] = []

    def add(self, path: Path, result: DetectResult) -> int:
        """Record `result` for the image at `path`; returns its image id."""
        image_id = len(self.images) + 1
        size = result.image
        self.images.append({"id": image_id, "file_name": str(path), "width": size.width, "height": size.height})
        self.detections.extend(result.to_coco(image_id))
        return image_id

    def write(self, categories: list[Category]) -> tuple[Path, Path]:
        """detections.json (a list of COCO results) and images.json ({"images", "categories", "annotations": []})."""
        self.out.mkdir(parents=True, exist_ok=True)
        detections, images = self.out / "detections.json", self.out / "images.json"
        detections.write_text(json.dumps(self.detections))
        skeleton = {
            "images": self.images,
            "categories": [{"id": c.id, "name": c.name} for c in categories],
            "annotations": [],
        }
        images.write_text(json.dumps(skeleton, indent=1))
        return detections, images

    def overlay_path(self, path: Path) -> Path:
        return self.out / f"{path.stem}.overlay.png"
