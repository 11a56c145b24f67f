"""Mask paste by grid sampling, Detectron2's way (`ModelConfig.mask_paste = "grid_sample"`), box-limited.

Detectron2's `layers/mask_ops.py:_do_paste_mask` samples the M x M probabilities bilinearly
(`F.grid_sample(align_corners=False)`, zeros outside) at each image pixel centre, mapped into the box as
(x + 0.5 - x1) / (x2 - x1) * 2 - 1, then keeps pixels >= threshold (`paste_masks_in_image`). On the CPU it
pastes one mask at a time over [floor(x1) - 1, ceil(x2) + 1) x [floor(y1) - 1, ceil(y2) + 1), clipped to the
image: outside that region the mask is empty. Here every mask keeps just that region as its crop, and the
masks run in chunks of a padded common crop size; each output pixel is the same float32 arithmetic as
Detectron2's per-mask loop, so the crops equal its pasted masks bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 22  # grid pixels per chunk (each ~20 bytes: grid, samples, mask)


def paste_grid_sample(
    masks: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int], threshold: float, inclusive: bool
) -> tuple[list[np.ndarray], np.ndarray]:
    """masks float (N, M, M) probabilities, boxes float (N, 4) x1, y1, x2, y2 in image pixels, image (H, W)
    -> (bool crops (h_i, w_i), int64 offsets (N, 2) [y0, x0]). Pixels are in when p >= threshold (inclusive)
    or p > threshold."""
    height, width = image_size
    boxes = boxes.float()
    lo = (boxes[:, :2].floor() - 1).clamp(min=0).to(torch.int32)  # (N, 2) x0, y0: Detectron2's region
    hi_x = (boxes[:, 2].ceil() + 1).clamp(max=width).to(torch.int32)
    hi_y = (boxes[:, 3].ceil() + 1).clamp(max=height).to(torch.int32)
    start = torch.stack([lo[:, 1], lo[:, 0]], dim=1).cpu().numpy().astype(np.int64)  # [y0, x0]
    crop_hw = np.maximum(torch.stack([hi_y - lo[:, 1], hi_x - lo[:, 0]], dim=1).cpu().numpy(), 0).astype(np.int64)
    crops: list[np.ndarray] = [np.zeros((0, 0), dtype=bool)] * len(masks)
    order = np.argsort(crop_hw[:, 0] * crop_hw[:, 1], kind="stable")
    begin = 0
    while begin < len(order):
        end, max_h, max_w = begin, 0, 0
        while end < len(order):
            h, w = max(max_h, int(crop_hw[order[end], 0])), max(max_w, int(crop_hw[order[end], 1]))
            if end > begin and (end + 1 - begin) * h * w > CHUNK_ELEMENTS:
                break
            end, max_h, max_w = end + 1, h, w
        idx = torch.from_numpy(order[begin:end]).to(masks.device)
        chunk = _sample(masks[idx], boxes[idx], lo[idx], max_h, max_w)
        chunk = (chunk >= threshold if inclusive else chunk > threshold).cpu().numpy()
        for j, i in enumerate(order[begin:end]):
            crops[i] = chunk[j, : crop_hw[i, 0], : crop_hw[i, 1]]
        begin = end
    return crops, start


def _sample(masks: torch.Tensor, boxes: torch.Tensor, lo: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """grid_sample of k masks over their regions' first h x w pixels: float (k, h, w)."""
    device = masks.device
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)  # each (k, 1)
    img_x = (lo[:, :1] + torch.arange(w, device=device, dtype=torch.int32)).float() + 0.5  # (k, w)
    img_y = (lo[:, 1:] + torch.arange(h, device=device, dtype=torch.int32)).float() + 0.5  # (k, h)
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1
    k = masks.shape[0]
    grid = torch.stack([img_x[:, None, :].expand(k, h, w), img_y[:, :, None].expand(k, h, w)], dim=3)
    return F.grid_sample(masks[:, None].float(), grid, align_corners=False)[:, 0]
