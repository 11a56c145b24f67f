"""Box branch: RoI features -> a shared representation -> class scores and class-specific box deltas."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation

from .box_coder import BoxCoder


class TwoMLPHead(nn.Module):
    """v1 head: flatten [R, C, 7, 7] -> fc6 -> fc7 -> [R, D] (torchvision's names)."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, dim)
        self.fc7 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(start_dim=1)))))


class ConvFCHead(nn.Sequential):
    """v2 head: four 3x3 conv+BN+ReLU, flatten, one fc -> [R, D] (indices give torchvision's keys: 0-3, 5)."""

    def __init__(self, channels: int, resolution: int, dim: int, conv_dim: int = 256) -> None:
        blocks: list[nn.Module] = []
        previous = channels
        for _ in range(4):
            blocks.append(Conv2dNormActivation(previous, conv_dim, norm_layer=nn.BatchNorm2d))
            previous = conv_dim
        blocks += [nn.Flatten(), nn.Linear(previous * resolution * resolution, dim), nn.ReLU(inplace=True)]
        super().__init__(*blocks)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")


class FastRCNNPredictor(nn.Module):
    """[R, D] -> class logits [R, K] and per-class deltas [R, 4K]."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(dim, num_classes)
        self.bbox_pred = nn.Linear(dim, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


def box_loss(class_logits: Tensor, box_deltas: Tensor, labels: Tensor, regression_targets: Tensor) -> dict[str, Tensor]:
    """Lcls (softmax cross-entropy) + Lbox (smooth L1 on the ground-truth class's deltas, positives only).

    class_logits [R, K], box_deltas [R, 4K], labels [R] (0 = background), regression_targets [R, 4].
    """
    classifier_loss = F.cross_entropy(class_logits, labels)
    positive = (labels > 0).nonzero().squeeze(1)
    deltas = box_deltas.view(box_deltas.shape[0], -1, 4)[positive, labels[positive]]
    reg_loss = F.smooth_l1_loss(deltas, regression_targets[positive], beta=1 / 9, reduction="sum")
    return {"loss_classifier": classifier_loss, "loss_box_reg": reg_loss / max(labels.numel(), 1)}


BOX_CODER = BoxCoder((10.0, 10.0, 5.0, 5.0))
