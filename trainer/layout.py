"""Where a COCO-format data set keeps its files: one instances JSON and the image folder beside it.

Accepted, in a data directory D:
- `D/annotations.json` (what `maskrcnn synth` writes) or one `D/instances*.json` (CVAT's `instances_default.json`,
  COCO's `instances_val2017.json`), or one `D/annotations/instances*.json` (COCO's and CVAT's export layout);
  where there is no instances file, one `person_keypoints*.json` in the same places (COCO's keypoint set);
- the images in `D/images/`, or for `instances_<split>.json` / `person_keypoints_<split>.json` in `D/<split>/`
  (COCO's `val2017/`).
An image's `file_name` is looked up in the image folder, then in D itself (exports that write `images/x.jpg`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DataError


@dataclass(frozen=True)
class Layout:
    """A data set's files: `annotations` the instances JSON, `images` the folder its file names refer to."""

    root: Path
    annotations: Path
    images: Path

    def image_path(self, file_name: str) -> Path:
        """The file an image's `file_name` names (it may not exist: the caller checks)."""
        path = self.images / file_name
        if not path.is_file() and (self.root / file_name).is_file():
            return self.root / file_name
        return path


def find_annotations(data_dir: str | Path) -> Layout:
    """The layout of `data_dir`; raises DataError naming what is missing, or listing the candidates when several
    JSON files could be the annotations."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    candidates = [root / "annotations.json"] if (root / "annotations.json").is_file() else []
    candidates += sorted(root.glob("instances*.json")) + sorted(root.glob("annotations/instances*.json"))
    if not candidates:
        candidates = sorted(root.glob("person_keypoints*.json")) + sorted(
            root.glob("annotations/person_keypoints*.json")
        )
    if not candidates:
        raise DataError(f"{root}: no annotations.json or instances*.json (looked in {root} and {root / 'annotations'})")
    if len(candidates) > 1:
        names = [str(p.relative_to(root)) for p in candidates]
        raise DataError(f"{root}: several annotation files {names}; keep one per data directory")
    ann = candidates[0]
    prefix = next((p for p in ("instances_", "person_keypoints_") if ann.stem.startswith(p)), "")
    split = ann.stem.removeprefix(prefix) if prefix else ""
    for folder in (root / "images", root / split if split else None):
        if folder is not None and folder.is_dir():
            return Layout(root, ann, folder)
    wanted = "images/" + (f" or {split}/" if split else "")
    raise DataError(f"{root}: no {wanted} folder beside {ann.name}")
