"""The paper's losses are right when the model can overfit a tiny synthetic batch with them."""

from __future__ import annotations

import torch

from models import InferenceOptions, build_model, preset
from models.postprocess import paste_masks
from tests.scenes import shapes_batch


def test_losses_overfit_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = build_model(preset("tiny", mask_head_dim=32, box_head_dim=64))
    images, targets = shapes_batch()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=2e-3)
    model.train()
    first = None
    for _ in range(120):
        losses = model(images, targets)
        assert set(losses) == {
            "loss_objectness",
            "loss_rpn_box_reg",
            "loss_classifier",
            "loss_box_reg",
            "loss_mask",
        }
        total = sum(losses.values())
        first = first if first is not None else {k: v.item() for k, v in losses.items()}
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    last = {k: v.item() for k, v in losses.items()}
    assert last["loss_mask"] < 0.3 * first["loss_mask"], (first, last)
    assert last["loss_classifier"] < 0.3 * first["loss_classifier"], (first, last)

    model.eval()
    detections = model.predict(images, InferenceOptions(score_thresh=0.5))
    for det, target in zip(detections, targets, strict=True):
        for label, gt_mask in zip(target.labels, target.masks, strict=True):
            hits = (det.labels == label).nonzero().flatten()
            assert hits.numel() > 0, f"class {int(label)} not found"
            best = hits[0]
            gt_box = target.boxes[(target.labels == label).nonzero()[0, 0]]
            assert (det.boxes[best] - gt_box).abs().max() < 8, (det.boxes[best], gt_box)
            pasted = paste_masks(det.masks[best : best + 1], det.boxes[best : best + 1], det.image_size).full()[0]
            gt = gt_mask.numpy().astype(bool)
            assert (pasted & gt).sum() / (pasted | gt).sum() > 0.7
