"""Mask R-CNN: transform -> backbone (ResNet-FPN, -C4 or -C5) -> RPN -> RoI heads (box and mask branches).

`models.build.build_model(config)` assembles it from a `ModelConfig`; module names reproduce torchvision's
state-dict keys (`backbone.body.*`, `backbone.fpn.*`, `rpn.head.*`, `roi_heads.box_head.*`,
`roi_heads.mask_predictor.*`, ...) so its checkpoints load with `strict=True`.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from .backbone import Backbone
from .config import ModelConfig
from .options import InferenceOptions
from .res5_heads import Res5RoIHeads
from .roi_heads import RoIHeads
from .rpn import RegionProposalNetwork
from .structures import Detections, ImageBatch, Targets
from .transform import ImageTransform, rescale_boxes


class MaskRCNN(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        *,
        backbone: Backbone,
        rpn: RegionProposalNetwork,
        roi_heads: RoIHeads | Res5RoIHeads,
        transform: ImageTransform,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.transform = transform

    def forward(self, images: list[Tensor], targets: list[Targets]) -> dict[str, Tensor]:
        """Training: images [3, H_i, W_i] in [0, 1] and their targets -> the losses of the paper's L.

        L = Lcls + Lbox + Lmask (RoI heads) + the RPN's objectness and box losses.
        """
        batch, resized_targets = self.transform(images, targets, training=self.training)
        assert resized_targets is not None
        features = self.backbone(batch.tensors)
        proposals, losses = self.rpn(batch, list(features.values()), resized_targets)
        losses.update(
            self.roi_heads.losses(self._roi_features(features), proposals, batch.image_sizes, resized_targets)
        )
        return losses

    @torch.no_grad()
    def predict(
        self, images: list[Tensor], options: InferenceOptions | None = None, with_masks: bool = True
    ) -> list[Detections]:
        """images: B tensors [3, H_i, W_i] (uint8, or float in [0, 1]) of any sizes -> B Detections.

        Boxes come back in each input image's pixels; masks as [N, M, M] probabilities of the predicted
        class (M = 28; 14 in the C4 design), to be pasted into their boxes by `models.postprocess`.
        Batch-invariant: each image gets the detections it would get alone, whatever shares the call, because
        images run in groups of one padded size (`ImageTransform.size_groups`); a batch of images of one size
        runs as one forward, unless `config.inference_layout` is "exact": then every image runs alone, so that
        its outputs are bit for bit the single-image ones (those the reference library gives).
        """
        opts = (options or InferenceOptions()).resolve(self.config)
        by_index: dict[int, Detections] = {}
        alone = self.config.inference_layout == "exact"
        for indices, batch in self.transform.size_groups(images, alone=alone):
            by_index.update(zip(indices, self._predict_batch(batch, opts, with_masks), strict=True))
        return [by_index[i] for i in range(len(images))]

    def _predict_batch(self, batch: ImageBatch, opts: InferenceOptions, with_masks: bool) -> list[Detections]:
        features = self.backbone(batch.tensors)
        proposals, _ = self.rpn(batch, list(features.values()))
        out = self.roi_heads.predict(
            self._roi_features(features),
            proposals,
            batch.image_sizes,
            score_thresh=opts.score_thresh,
            nms_thresh=opts.nms_thresh,
            detections_per_img=opts.detections_per_img,
            with_masks=with_masks,
        )
        detections = []
        clip = self.config.output_box_clip
        for i, part in enumerate(_slices(out.counts)):
            det = Detections(
                boxes=rescale_boxes(out.boxes[part], batch.image_sizes[i], batch.original_sizes[i], clip=clip),
                scores=out.scores[part],
                labels=out.labels[part],
                image_size=batch.original_sizes[i],
                **self._to_original(out.fields, part, batch.image_sizes[i], batch.original_sizes[i]),
            )
            if clip:  # Detectron2's detector_postprocess drops the boxes clipping left empty
                det = det[torch.nonzero(((det.boxes[:, 2:] - det.boxes[:, :2]) > 0).all(dim=1)).squeeze(1)]
            detections.append(det)
        return detections

    def _roi_features(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """The maps the RoI heads pool from, finest first (the backbone's `roi_features`)."""
        return {name: features[name] for name in self.backbone.roi_features}

    def _to_original(
        self, fields: dict[str, Tensor], part: slice, resized: tuple[int, int], original: tuple[int, int]
    ) -> dict[str, Tensor]:
        """One image's RoI-branch values, from resized-image to original-image pixels (each branch knows how)."""
        scale_xy = (original[1] / resized[1], original[0] / resized[0])
        out = {}
        for field, values in fields.items():
            predictor = self.roi_heads.predictor(field)
            assert predictor is not None
            out[field] = predictor.to_original(values[part], scale_xy)
        return out


def _slices(counts: list[int]) -> list[slice]:
    """Consecutive slices of the given lengths: [2, 0, 3] -> [0:2, 2:2, 2:5]."""
    ends = list(itertools.accumulate(counts))
    return [slice(end - n, end) for n, end in zip(counts, ends, strict=True)]
