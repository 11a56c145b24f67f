"""The trainer's config: one typed dataclass, filled from the command line (and optionally a JSON file).

Defaults are the paper's recipe: SGD with momentum 0.9 and weight decay 1e-4, lr 0.02 at a global batch of 16
scaled linearly with the batch (Goyal et al.'s rule), linear warm-up, lr / 10 at 3/4 of the schedule.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.config import ModelConfig

REFERENCE_LR = 0.02
# ModelConfig fields the training data decides (its categories, and its keypoint names when it has some).
DATA_FIELDS = frozenset({"num_classes", "class_names", "category_ids", "num_keypoints", "keypoint_names"})
REFERENCE_BATCH = 16


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    val: str | None = None
    model: str = "demo"  # a models.presets preset
    model_set: tuple[str, ...] = ()  # "FIELD=VALUE" overrides of the preset's ModelConfig fields (--model-set)
    max_iter: int = 1000
    batch_size: int = 16  # global: split evenly over the workers
    nproc: int = 1
    resume: bool = False
    backbone_weights: str | None = None  # a torchvision ImageNet ResNet state dict (.pth)
    lr: float | None = None  # None: REFERENCE_LR * batch_size / REFERENCE_BATCH
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 1000  # capped at max_iter // 4 so short runs still reach the base lr
    warmup_factor: float = 0.001
    lr_steps: tuple[float, ...] = (0.75,)  # fractions of max_iter where lr is divided by 10
    min_sizes: tuple[int, ...] = ()  # multi-scale training; () keeps the preset's min_size
    flip: bool = True
    device: str = "auto"  # auto: cuda when available
    amp: bool = True  # float16 autocast + grad scaling, on CUDA only
    seed: int = 0
    num_workers: int = 1
    checkpoint_period: int = 500
    keep_checkpoints: int = 2
    eval_period: int = 0  # 0: only at the end (when --val is given)
    eval_images: int = 0  # cap on validation images for periodic eval; 0 = all
    log_period: int = 20
    half_weights: bool = False  # store the final weights in float16

    @property
    def base_lr(self) -> float:
        """The linear scaling rule on the global batch, unless an lr was given explicitly."""
        return self.lr if self.lr is not None else REFERENCE_LR * self.batch_size / REFERENCE_BATCH

    @property
    def effective_warmup(self) -> int:
        return min(self.warmup_iters, self.max_iter // 4)

    def per_worker_batch(self, world_size: int) -> int:
        if self.batch_size % world_size:
            raise ValueError(f"batch size {self.batch_size} does not split over {world_size} workers")
        return self.batch_size // world_size

    def model_config(self, **data_fields: Any) -> ModelConfig:
        """The preset, `model_set` on top, then data_fields (the data's num_classes and names; --min-sizes).

        Raises ValueError (OverrideError) for an unknown preset, field or value, or a field the data decides.
        """
        from models.config_overrides import OverrideError, parse_overrides
        from models.presets import preset  # here: `maskrcnn synth` and friends need no torch

        overrides = parse_overrides(self.model_set)
        taken = sorted(set(overrides) & DATA_FIELDS)
        if taken:
            raise OverrideError(f"--model-set {', '.join(taken)}: set by the training data, not the command line")
        return preset(self.model, **{**overrides, **data_fields})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A JSON file of fields, then the command line's explicit values on top."""
        data = json.loads(Path(path).read_text())
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown training config keys {unknown}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**{**data, **overrides})
