"""`FIELD=VALUE` overrides (models/config_overrides.py): typed by ModelConfig's hints, one clear error otherwise."""

from __future__ import annotations

import pytest

from models import ModelConfig, preset
from models.config_overrides import OverrideError, field_types, parse_overrides


def test_values_take_the_type_of_their_field() -> None:
    got = parse_overrides(
        [
            "pooler=warp",
            "pooler_aligned=false",
            "pooler_sampling_ratio=0",
            "rpn_nms_thresh=0.6",
            "anchor_sizes=8, 16,32,64,128",
            "aspect_ratios=0.5,1,2",
            "image_mean=0.5,0.5,0.5",
            "min_size=640,800",
            "max_size=512",
        ]
    )
    assert got == {
        "pooler": "warp",
        "pooler_aligned": False,
        "pooler_sampling_ratio": 0,
        "rpn_nms_thresh": 0.6,
        "anchor_sizes": (8, 16, 32, 64, 128),
        "aspect_ratios": (0.5, 1.0, 2.0),
        "image_mean": (0.5, 0.5, 0.5),
        "min_size": (640, 800),
        "max_size": 512,
    }
    assert isinstance(got["aspect_ratios"][1], float) and isinstance(got["pooler_sampling_ratio"], int)
    assert parse_overrides(["min_size=800"]) == {"min_size": 800}  # the union's first member that accepts it
    assert parse_overrides(["pooler_aligned=True"]) == {"pooler_aligned": True}
    assert preset("tiny", **got).pooler == "warp"


def test_every_field_can_be_set_from_its_own_default() -> None:
    config = ModelConfig(class_names=("a", "b"), category_ids=(1, 2), num_classes=2)
    for name, value in config.to_dict().items():
        text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        assert parse_overrides([f"{name}={text}"]) == {name: value}, name
    assert list(field_types())[:2] == ["num_classes", "backbone"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("poolr=pool", "unknown model config field 'poolr'; valid fields: num_classes, backbone, "),
        ("pooler=roi", "bad value for pooler: 'roi'; choose from 'align', 'pool', 'warp'"),
        ("pooler_aligned=maybe", "bad value for pooler_aligned: 'maybe' is not a bool (true or false)"),
        ("box_head_dim=1.5", "bad value for box_head_dim: '1.5' is not an int"),
        ("rpn_nms_thresh=high", "bad value for rpn_nms_thresh: 'high' is not a float"),
        ("image_std=1,2", "bad value for image_std: '1,2' is not 3 comma-separated values (a float, a float, a float)"),
        ("anchor_sizes=8,x", "bad value for anchor_sizes: 'x' is not an int"),
        ("min_size=big", "bad value for min_size: 'big' is not an int or comma-separated ints"),
        ("pooler", "model setting 'pooler' is not FIELD=VALUE"),
        ("=pool", "model setting '=pool' is not FIELD=VALUE"),
    ],
)
def test_bad_items_name_the_problem_and_the_valid_choices(item: str, message: str) -> None:
    with pytest.raises(OverrideError) as info:
        parse_overrides([item])
    assert str(info.value).startswith(message)


def test_unknown_field_error_lists_every_field() -> None:
    with pytest.raises(OverrideError) as info:
        parse_overrides(["nope=1"])
    assert all(name in str(info.value) for name in field_types())


def test_a_field_set_twice_is_refused() -> None:
    with pytest.raises(OverrideError, match="model config field 'pooler' is set twice"):
        parse_overrides(["pooler=pool", "pooler=warp"])
