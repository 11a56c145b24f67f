"""The mask branch's design space (paper Table 2b, 2e): FCN or MLP head, sigmoid or softmax masks, or none."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import InferenceOptions, build_model, preset
from models.mask_losses import SigmoidMasks, SoftmaxMasks
from models.mask_mlp_head import MLPMaskPredictor
from models.weights import load, save
from tests.scenes import shapes_batch

VARIANTS = [("fcn", "sigmoid"), ("fcn", "softmax"), ("mlp", "sigmoid"), ("mlp", "softmax")]


def _tiny(**overrides: object):
    torch.manual_seed(0)
    return build_model(preset("tiny", mask_mlp_dim=32, **overrides))


@pytest.mark.parametrize(("head", "loss"), VARIANTS)
def test_each_mask_variant_trains_with_finite_gradients_infers_and_round_trips(head: str, loss: str, tmp_path) -> None:
    model = _tiny(mask_head=head, mask_loss=loss)
    images, targets = shapes_batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) >= {"loss_mask", "loss_classifier"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.roi_heads.mask_predictor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)

    model.eval()
    options = InferenceOptions(score_thresh=0.0)
    detections = model.predict(images, options)
    masks = detections[0].masks
    assert masks is not None and masks.shape == (len(detections[0]), 28, 28)
    assert len(detections[0]) > 0 and masks.min() >= 0.0 and masks.max() <= 1.0

    save(model, tmp_path / "m.safetensors")
    again = load(tmp_path / "m.safetensors")
    assert (again.config.mask_head, again.config.mask_loss) == (head, loss)
    for ours, theirs in zip(detections, again.predict(images, options), strict=True):
        assert torch.equal(ours.labels, theirs.labels) and torch.equal(ours.masks, theirs.masks)


def test_without_a_mask_branch_there_is_no_mask_loss_and_no_masks(tmp_path) -> None:
    model = _tiny(mask_head="none")
    assert not any(name.startswith("roi_heads.mask") for name in model.state_dict())
    images, targets = shapes_batch()
    model.train()
    assert "loss_mask" not in model(images, targets)
    model.eval()
    assert all(det.masks is None for det in model.predict(images, InferenceOptions(score_thresh=0.0)))


def test_softmax_masks_are_the_predicted_class_channel_of_a_per_pixel_softmax_with_background_outside() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 4, 4)
    labels = torch.tensor([1, 4, 2])
    targets = (torch.rand(3, 4, 4) > 0.5).float()

    class Fixed:
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            return logits

        def logits_for_labels(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return logits[torch.arange(3), labels]

    probs = SoftmaxMasks().probabilities(Fixed(), torch.empty(3), labels)
    assert torch.allclose(probs[1], logits[1].softmax(0)[4])
    by_hand = torch.stack(
        [
            -logits[r].log_softmax(0)[int(labels[r]) if targets[r, i, j] else 0, i, j]
            for r in range(3)
            for i in range(4)
            for j in range(4)
        ]
    ).mean()
    assert torch.allclose(SoftmaxMasks().loss(logits, labels, targets), by_hand)
    sigmoid = SigmoidMasks()
    assert torch.allclose(sigmoid.probabilities(Fixed(), torch.empty(3), labels)[2], logits[2, 2].sigmoid())
    expected = F.binary_cross_entropy_with_logits(logits[torch.arange(3), labels], targets)
    assert torch.allclose(sigmoid.loss(logits, labels, targets), expected)


def test_mlp_predictor_computes_only_the_asked_class_rows_with_the_full_forwards_numbers() -> None:
    torch.manual_seed(0)
    predictor = MLPMaskPredictor(16, 5, 6, SigmoidMasks())
    torch.nn.init.normal_(predictor.mask_fc_logits.weight)
    x, labels = torch.randn(4, 16), torch.tensor([0, 3, 3, 4])
    full = predictor(x)[torch.arange(4), labels]
    assert torch.allclose(predictor.logits_for_labels(x, labels), full, atol=1e-5)


def test_relu_in_place_equals_relu_in_bf16_and_fp32_and_keeps_gradients() -> None:
    from models.mask_head import relu_

    values = torch.tensor([-3.5, -1e-30, -0.0, 0.0, 1e-30, 2.25, float("inf"), float("-inf")])
    x = torch.cat([values, torch.randn(1000)])
    for dtype in (torch.bfloat16, torch.float32):
        got = relu_(x.to(dtype).clone())
        assert torch.equal(got, torch.relu(x.to(dtype)))
    leaf = x[:20].clone().requires_grad_()
    relu_(leaf * 2).sum().backward()
    assert torch.equal(leaf.grad, 2.0 * (leaf > 0))
