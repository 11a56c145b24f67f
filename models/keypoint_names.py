"""What keypoints mean: COCO's 17 person keypoints, the synthetic shapes' 4 extreme points, and what follows
from a model's keypoint names alone (the horizontal-flip permutation, the skeleton, COCOeval's sigmas).

A model's config carries its keypoint names (`ModelConfig.keypoint_names`, like `class_names`); everything
else is derived from them here, so no table of indices is ever copied into a config or a weights file.
"""

from __future__ import annotations

# COCO person keypoints in COCO's (and torchvision's `_COCO_PERSON_KEYPOINT_NAMES`) order.
COCO_PERSON_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO's `skeleton` of the person category (person_keypoints_*.json, 1-based there), as name pairs.
COCO_PERSON_SKELETON: tuple[tuple[str, str], ...] = (
    ("left_ankle", "left_knee"),
    ("left_knee", "left_hip"),
    ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"),
    ("left_eye", "right_eye"),
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
    ("left_ear", "left_shoulder"),
    ("right_ear", "right_shoulder"),
)
# Per-keypoint OKS falloff of COCO's keypoint evaluation (pycocotools' `Params.kpt_oks_sigmas`, /10 there).
COCO_PERSON_SIGMAS: dict[str, float] = dict(
    zip(
        COCO_PERSON_KEYPOINTS,
        # nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles
        (
            0.026,
            0.025,
            0.025,
            0.035,
            0.035,
            0.079,
            0.079,
            0.072,
            0.072,
            0.062,
            0.062,
            0.107,
            0.107,
            0.087,
            0.087,
            0.089,
            0.089,
        ),
        strict=True,
    )
)
# The synthetic shapes' keypoints (`maskrcnn synth --keypoints`): each shape's extreme points, the tips of its
# outline in the four directions; any shape has them, so one set of names serves every class.
EXTREME_POINTS: tuple[str, ...] = ("top", "right", "bottom", "left")
EXTREME_SKELETON: tuple[tuple[str, str], ...] = (
    ("top", "right"),
    ("right", "bottom"),
    ("bottom", "left"),
    ("left", "top"),
)
# OKS sigma for keypoints COCO has no figure for (the synthetic shapes' extreme points): a uniform 0.05, between
# COCO's face (0.025) and body (0.1) values: a tip off by 5% of the object's scale scores OKS ~0.6.
DEFAULT_SIGMA = 0.05


def mirrored(name: str) -> str:
    """The name of a keypoint's mirror image: left <-> right as "_"-separated words ("left_eye" ->
    "right_eye", "left" -> "right"); a name without a side is its own mirror ("nose")."""
    swap = {"left": "right", "right": "left"}
    return "_".join(swap.get(word, word) for word in name.split("_"))


def flip_permutation(names: tuple[str, ...]) -> tuple[int, ...]:
    """Index of each keypoint's mirror after a horizontal flip: flipped[:, i] = original[:, perm[i]].

    Raises ValueError when a name's mirror is missing (a left_x without its right_x).
    """
    index = {name: i for i, name in enumerate(names)}
    missing = sorted(mirrored(n) for n in names if mirrored(n) not in index)
    if missing:
        raise ValueError(f"keypoint names lack the mirror images {missing} needed to flip them")
    return tuple(index[mirrored(name)] for name in names)


def skeleton(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Index pairs of the known limbs (COCO's person skeleton, the shapes' outline) among `names`; ()
    for names with no known skeleton."""
    index = {name: i for i, name in enumerate(names)}
    return tuple((index[a], index[b]) for a, b in COCO_PERSON_SKELETON + EXTREME_SKELETON if a in index and b in index)


def oks_sigmas(names: tuple[str, ...]) -> tuple[float, ...]:
    """COCOeval's per-keypoint sigmas: COCO's for the person keypoints, DEFAULT_SIGMA for any other name."""
    return tuple(COCO_PERSON_SIGMAS.get(name, DEFAULT_SIGMA) for name in names)
