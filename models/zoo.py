"""Named pretrained checkpoints: torchvision's COCO weights, fetched once into torch's cache, served by name.

The catalogue is read from torchvision's own weights enums (URL, file size, categories), never copied here.
Files live where torch keeps downloaded checkpoints, `torch.hub.get_dir()/checkpoints` (TORCH_HOME or
~/.cache/torch/hub), under torchvision's own file names, so a checkpoint torchvision already fetched is found.

Downloads follow `torch.hub.load_state_dict_from_url(check_hash=True)`: the file name embeds the first hex
digits of the file's sha256 (`maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`, matched by `torch.hub.HASH_REGEX`) and
`torch.hub.download_url_to_file` checks them. The transfer goes to a temporary name in the cache folder and is
moved into place only after the hash matched, so a bad or truncated file never lands in the cache.
`MASKRCNN_WEIGHTS_MIRROR` (a base address; the file name is appended) serves air-gapped sites.
Serving never downloads: `resolve` finds a name in the cache or raises `WeightsError`.
"""

from __future__ import annotations

import http.client
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch.hub
from torchvision.models import detection

from .weights import WeightsError

MIRROR_ENV = "MASKRCNN_WEIGHTS_MIRROR"


class DownloadError(RuntimeError):
    """A checkpoint could not be fetched (offline, HTTP error, bad hash, truncated); the message is one line."""


@dataclass(frozen=True)
class Checkpoint:
    """One named checkpoint: where it comes from and what it holds.

    url: the file's address; its last path segment is the file name kept in the cache.
    size_mb: the file size in MB (torchvision's `_file_size` meta), None when unknown.
    categories: label names by index (index = label = COCO category id for torchvision's models).
    keypoints: keypoints per instance (Keypoint R-CNN), 0 for the others.
    servable: False for checkpoints this project cannot serve yet; `note` says why.
    """

    name: str
    url: str
    architecture: str
    categories: tuple[str, ...]
    size_mb: float | None = None
    keypoints: int = 0
    servable: bool = True
    note: str = ""

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str | None:
        """First hex digits of the file's sha256, from its name (as torch.hub's check_hash reads them)."""
        match = torch.hub.HASH_REGEX.search(self.filename)
        return match.group(1) if match and match.group(1) else None

    @property
    def classes(self) -> int:
        """Object classes, without the background and COCO's unused ("N/A") ids."""
        return sum(1 for name in self.categories[1:] if name != "N/A")

    def summary(self) -> str:
        """'Mask R-CNN, ResNet-50 FPN (v1), 80 COCO classes' plus keypoints and the note, if any."""
        text = f"{self.architecture}, {self.classes} COCO class{'es' if self.classes != 1 else ''}"
        if self.keypoints:
            text += f" ({', '.join(self.categories[1:])}), {self.keypoints} keypoints"
        return f"{text}; {self.note}" if self.note else text


def catalogue() -> tuple[Checkpoint, ...]:
    """The named checkpoints, from torchvision's weights enums (URLs, sizes and categories are theirs)."""
    rows = (
        (
            "maskrcnn_resnet50_fpn",
            detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
            "Mask R-CNN, ResNet-50 FPN (v1)",
            "",
        ),
        (
            "maskrcnn_resnet50_fpn_v2",
            detection.MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
            "Mask R-CNN, ResNet-50 FPN (v2)",
            "",
        ),
        (
            "keypointrcnn_resnet50_fpn",
            detection.KeypointRCNN_ResNet50_FPN_Weights.COCO_V1,
            "Keypoint R-CNN, ResNet-50 FPN",
            "",
        ),
    )
    return tuple(
        Checkpoint(
            name=name,
            url=enum.url,
            architecture=architecture,
            categories=tuple(enum.meta["categories"]),
            size_mb=enum.meta.get("_file_size"),
            keypoints=len(enum.meta.get("keypoint_names", ())),
            servable=not note,
            note=note,
        )
        for name, enum, architecture, note in rows
    )


def find(name: str) -> Checkpoint:
    """The catalogue entry called `name`. Raises KeyError with the known names."""
    for checkpoint in catalogue():
        if checkpoint.name == name:
            return checkpoint
    raise KeyError(f"unknown weights name {name!r}; choose from {', '.join(c.name for c in catalogue())}")


def cache_dir() -> Path:
    """torch's checkpoint cache, `torch.hub.get_dir()/checkpoints` (honours TORCH_HOME and torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(checkpoint: Checkpoint) -> Path:
    """Where the checkpoint lives once pulled (whether or not it is there)."""
    return cache_dir() / checkpoint.filename


def cached(checkpoint: Checkpoint) -> Path | None:
    """The cached file, or None when it has not been pulled."""
    path = cache_path(checkpoint)
    return path if path.is_file() else None


def source_url(checkpoint: Checkpoint) -> str:
    """The checkpoint's own URL, or the mirror's base address (MASKRCNN_WEIGHTS_MIRROR) + its file name."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return checkpoint.url
    return (mirror if mirror.endswith("/") else mirror + "/") + checkpoint.filename


def pull(checkpoint: Checkpoint, progress: bool = True) -> Path:
    """Download the checkpoint into the cache (a no-op when it is there) and return its path.

    Uses `torch.hub.download_url_to_file` with the sha256 prefix from the file name; the bytes go to a
    temporary name in the cache folder, moved into place only once the hash matched. Raises DownloadError
    (one line: name, URL, reason, and what to do) on any network, HTTP, hash or disk failure, and when the
    file name carries no hash to check against.
    """
    dst = cache_path(checkpoint)
    if dst.is_file():
        return dst
    url = source_url(checkpoint)

    def fail(reason: str) -> DownloadError:
        return DownloadError(
            f"cannot download {checkpoint.name} from {url}: {reason}; set {MIRROR_ENV} or copy the file to {dst}"
        )

    if checkpoint.hash_prefix is None:
        raise fail("its file name carries no sha256 prefix to check the download against")
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.download")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(tmp), hash_prefix=checkpoint.hash_prefix, progress=progress)
        os.replace(tmp, dst)
    except (OSError, RuntimeError, ValueError, http.client.HTTPException) as exc:
        raise fail(_reason(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def resolve(name: str) -> Path:
    """The cached file of a servable checkpoint name; never downloads.

    Raises KeyError for an unknown name, WeightsError when the checkpoint is not servable or not pulled yet.
    """
    checkpoint = find(name)
    if not checkpoint.servable:
        raise WeightsError(f"{name}: {checkpoint.note}")
    path = cached(checkpoint)
    if path is None:
        raise WeightsError(
            f"{name}: not in the weights cache ({cache_path(checkpoint)}); `maskrcnn weights pull {name}` fetches it"
        )
    return path


def _reason(exc: BaseException) -> str:
    """One line for a failed transfer: HTTP status, socket error, hash mismatch, ..."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):  # urllib.error.HTTPError
        return f"HTTP {code} {getattr(exc, 'reason', '')}".strip()
    reason = getattr(exc, "reason", None)  # urllib.error.URLError wraps the socket error
    text = str(reason if reason is not None else exc) or type(exc).__name__
    if text.startswith("invalid hash value"):
        text = f"the file is corrupt or truncated ({text})"
    return text.splitlines()[0]


def convert(src: str | Path, dst: str | Path, arch: str | None = None) -> Path:
    """Rewrite a torchvision `.pth` (or any file `weights.load` reads) as our safetensors file at `dst`.

    The model config travels along: architecture recognised from the keys, COCO class names (torchvision's
    categories meta, index = label), and no category_ids (label == COCO category id, as torchvision's COCO
    models use them). With `arch` (`d2:<model-zoo name>` or a Detectron2 YAML), `src` is a Detectron2 `.pkl` /
    `.pth` (`models.detectron2.load`): the file then carries that architecture and Detectron2's rules, COCO's
    80 names and category ids. Raises WeightsError when `src` is not a Mask R-CNN checkpoint, or is a
    Detectron2 `.pkl` without `arch`.
    """
    from .weights import load, save

    dst = Path(dst)
    if arch is not None:
        from .detectron2 import load as load_detectron2

        save(load_detectron2(src, arch), dst)
        return dst
    if Path(src).suffix == ".pkl":
        raise WeightsError(
            f"{src}: a Detectron2 .pkl does not say its architecture; pass --arch d2:<model-zoo name> "
            "(e.g. d2:mask_rcnn_R_50_FPN_3x) or --arch <its Detectron2 config .yaml>"
        )
    save(load(src), dst)
    return dst


def listing() -> list[str]:
    """The catalogue as table rows: name, what it is, size in MB, and its cached path (or 'not pulled')."""
    rows = [("NAME", "WHAT", "MB", "CACHED")]
    for checkpoint in catalogue():
        path = cached(checkpoint)
        size = f"{checkpoint.size_mb:.0f}" if checkpoint.size_mb is not None else "?"
        rows.append((checkpoint.name, checkpoint.summary(), size, str(path) if path else "not pulled"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]]) for row in rows]
