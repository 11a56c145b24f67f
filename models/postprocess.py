"""Paste Mask R-CNN masks into the image as one box-sized binary crop per detection.

torchvision's ``paste_masks_in_image`` returns an (N, H, W) float tensor: for 100 detections on an
800 x 1200 image that is 384 MB, nearly all zeros, because each mask can only be nonzero inside its
expanded box. We keep just that part, as a bool crop plus its offset. Inside the crop the pixels equal
``paste_masks_in_image(masks[:, None], boxes, (H, W), padding=1)[:, 0] > threshold`` bit for bit
(CPU loop path) or to within float rounding of the interpolation weights (batched path).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import MaskPaste
from .paste_grid import paste_grid_sample

PADDING = 1  # torchvision pads each M x M mask with one zero pixel and widens the box to match
CHUNK_ELEMENTS = 1 << 24  # output pixels per batched step: bounds its device memory (~10 bytes each)


@dataclass(frozen=True)
class MaskCrops:
    """Binary masks limited to their boxes: mask i covers rows y0:y0+h_i, cols x0:x0+w_i of an H x W image."""

    crops: list[np.ndarray]  # bool (h_i, w_i), on the CPU; h_i or w_i may be 0 when the box lies outside
    offsets: np.ndarray  # int64 (N, 2): [y0, x0] of each crop
    image_size: tuple[int, int]  # (H, W)

    def __len__(self) -> int:
        return len(self.crops)

    def full(self) -> np.ndarray:
        """(N, H, W) bool: the crops pasted into empty images, for callers that want full masks."""
        out = np.zeros((len(self.crops), *self.image_size), dtype=bool)
        for i, (crop, (y0, x0)) in enumerate(zip(self.crops, self.offsets, strict=True)):
            out[i, y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
        return out


def paste_masks(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
    batched: bool | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    method: MaskPaste = "interpolate",
    inclusive: bool = False,
) -> MaskCrops:
    """Binarize each mask inside its box, without building an (N, H, W) tensor.

    masks: float (N, M, M) probabilities of the predicted class; boxes: float (N, 4) x1, y1, x2, y2 in
    image pixels, x2 >= x1 and y2 >= y1; image_size: (H, W). ``batched`` (default: masks on CUDA) resizes
    all masks together on their device and copies back only the crops; otherwise one F.interpolate per
    mask, exactly as torchvision does. ``chunk_elements`` caps the floats one batched step holds.
    ``method`` and ``inclusive`` are the `ModelConfig` rules `mask_paste` and `mask_thresh_inclusive`:
    grid_sample is Detectron2's paste (`models.paste_grid`), inclusive keeps p >= threshold instead of >.
    """
    if masks.dim() != 3 or masks.shape[1] != masks.shape[2] or boxes.shape != (len(masks), 4):
        raise ValueError(f"expected masks (N, M, M) and boxes (N, 4), got {tuple(masks.shape)}, {tuple(boxes.shape)}")
    height, width = image_size
    if method == "grid_sample":
        grid_crops, offsets = paste_grid_sample(masks.detach(), boxes.detach(), image_size, threshold, inclusive)
        return MaskCrops(grid_crops, offsets, (height, width))
    m = masks.shape[-1]
    # torchvision: the padded (M + 2)^2 mask is stretched over the box widened by (M + 2) / M.
    box = _expand_boxes(boxes.detach().cpu(), (m + 2 * PADDING) / m)  # int64 (N, 4) x1, y1, x2, y2
    box_hw = np.maximum(box[:, 2:][:, ::-1] - box[:, 1::-1] + 1, 1)  # (N, 2): size F.interpolate resizes to
    start = np.clip(box[:, 1::-1], 0, image_size)  # (N, 2): [y0, x0], first crop pixel in the image
    stop = np.clip(box[:, 1::-1] + box_hw, 0, image_size)
    crop_hw = np.maximum(stop - start, 0)
    geometry = np.concatenate([box_hw, start - box[:, 1::-1], crop_hw], axis=1)  # (N, 6), see _paste_*
    padded = F.pad(masks.detach(), (PADDING,) * 4)  # (N, M + 2, M + 2)
    if len(masks) == 0:
        crops: list[np.ndarray] = []
    elif masks.is_cuda if batched is None else batched:
        crops = _paste_batched(padded, geometry, threshold, chunk_elements, inclusive)
    else:
        crops = _paste_loop(padded, geometry, threshold, inclusive)
    return MaskCrops(crops, start.astype(np.int64).reshape(-1, 2), (height, width))


def _expand_boxes(boxes: torch.Tensor, scale: float) -> np.ndarray:
    """torchvision's expand_boxes, float op for float op, then its truncation toward zero to int64."""
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    w_half *= scale
    h_half *= scale
    expanded = torch.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], dim=1)
    return expanded.to(torch.int64).numpy()


def _paste_loop(
    padded: torch.Tensor, geometry: np.ndarray, threshold: float, inclusive: bool = False
) -> list[np.ndarray]:
    """One F.interpolate per mask to its box size (h, w), then the crop: torchvision's exact arithmetic.

    padded: (N, P, P); geometry: int64 (N, 6) rows [box_h, box_w, src_y, src_x, crop_h, crop_w] where
    src is the crop's first pixel within the resized box.
    """
    crops = []
    for mask, (bh, bw, sy, sx, ch, cw) in zip(padded, geometry.tolist(), strict=True):
        if ch == 0 or cw == 0:
            crops.append(np.zeros((ch, cw), dtype=bool))
            continue
        resized = F.interpolate(mask[None, None], size=(bh, bw), mode="bilinear", align_corners=False)
        values = resized[0, 0, sy : sy + ch, sx : sx + cw]
        crops.append((values >= threshold if inclusive else values > threshold).cpu().numpy())
    return crops


def _paste_batched(
    padded: torch.Tensor, geometry: np.ndarray, threshold: float, chunk_elements: int, inclusive: bool = False
) -> list[np.ndarray]:
    """Resize, threshold and pack all crops on padded's device; one copy of the packed bits to the host.

    Masks are sorted by crop area and cut into chunks of k masks so that k * max_h * max_w <=
    chunk_elements (one mask at least). Each chunk is resized only over its crop region, padded to
    (k, max_h, max_w); the valid pixels of each crop are then gathered row-major into one flat tensor.
    """
    device, n = padded.device, len(padded)
    order = np.argsort(geometry[:, 4] * geometry[:, 5], kind="stable")
    sorted_geometry = geometry[order]
    table = torch.from_numpy(np.concatenate([order[:, None], sorted_geometry], axis=1)).to(device)
    padded, table = padded[table[:, 0]].float(), table[:, 1:]  # (N, P, P), (N, 6), both in sorted order
    sizes = sorted_geometry[:, 4] * sorted_geometry[:, 5]
    packed, begin = [], 0
    while begin < n:
        end, max_h, max_w = begin, 0, 0
        while end < n:
            h, w = max(max_h, int(sorted_geometry[end, 4])), max(max_w, int(sorted_geometry[end, 5]))
            if end > begin and (end + 1 - begin) * h * w > chunk_elements:
                break
            end, max_h, max_w = end + 1, h, w
        total = int(sizes[begin:end].sum())
        packed.append(_resize_chunk(padded[begin:end], table[begin:end], max_h, max_w, total, threshold, inclusive))
        begin = end
    flat = torch.cat(packed).cpu().numpy()  # the single device -> host copy
    pieces = np.split(flat, np.cumsum(sizes)[:-1])
    crops: list[np.ndarray] = [np.empty(0)] * n
    for i, piece, (ch, cw) in zip(order, pieces, sorted_geometry[:, 4:].tolist(), strict=True):
        crops[i] = piece.reshape(ch, cw)
    return crops


def _resize_chunk(
    padded: torch.Tensor,
    geometry: torch.Tensor,
    max_h: int,
    max_w: int,
    total: int,
    threshold: float,
    inclusive: bool = False,
) -> torch.Tensor:
    """Bilinear resize of the crop regions of k masks, thresholded and packed to a flat bool tensor.

    padded: (k, P, P); geometry: int64 (k, 6) as in _paste_loop; total: number of crop pixels, known on
    the host so that packing needs no sync. Separable form in PyTorch's order:
    along x first ((k, P, max_w)), then along y ((k, max_h, max_w)); two source taps per output pixel.
    """
    box_h, box_w, src_y, src_x, crop_h, crop_w = geometry.unbind(1)
    size = padded.shape[-1]
    y0, y1, ly0, ly1 = _source_taps(src_y, box_h, max_h, size)  # (k, max_h) each
    x0, x1, lx0, lx1 = _source_taps(src_x, box_w, max_w, size)  # (k, max_w) each
    k = len(padded)
    rows = padded.gather(2, x0[:, None].expand(k, size, max_w)) * lx0[:, None]
    rows += padded.gather(2, x1[:, None].expand(k, size, max_w)) * lx1[:, None]  # (k, P, max_w)
    out = rows.gather(1, y0[:, :, None].expand(k, max_h, max_w)).mul_(ly0[:, :, None])
    out += rows.gather(1, y1[:, :, None].expand(k, max_h, max_w)).mul_(ly1[:, :, None])  # (k, max_h, max_w)
    binary = out >= threshold if inclusive else out > threshold
    del out  # peak memory: 8 bytes per element here, 10 (bool, bool, int64) below
    r = torch.arange(max_h, device=padded.device)
    c = torch.arange(max_w, device=padded.device)
    inside = (r[None, :, None] < crop_h[:, None, None]) & (c[None, None, :] < crop_w[:, None, None])
    return binary.view(-1)[torch.nonzero_static(inside.view(-1), size=total).squeeze(1)]


def _source_taps(
    first: torch.Tensor, out_size: torch.Tensor, count: int, in_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch's bilinear (align_corners=False) source taps for output pixels first .. first + count - 1.

    first, out_size: int64 (k,). Returns i0, i1 int64 (k, count) and weights (1 - lambda), lambda float32
    (k, count), following src = (dst + 0.5) * (in / out) - 0.5 clamped at 0, i0 = floor(src),
    i1 = min(i0 + 1, in - 1), lambda = src - i0. Pixels past the crop get clamped, unused taps.
    """
    dst = (first[:, None] + torch.arange(count, device=first.device)).float()
    scale = (torch.tensor(float(in_size), device=first.device) / out_size.float())[:, None]
    src = (scale * (dst + 0.5) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(in_size - 1)
    lam = (src - i0).clamp(0, 1)
    return i0, (i0 + 1).clamp_max(in_size - 1), 1 - lam, lam
