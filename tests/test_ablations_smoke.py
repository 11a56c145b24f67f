"""experiments/ablations.py: one variant trained and scored for 2 iterations through the trainer's own run, the
report written; variants this checkout cannot build are skipped with the reason; equal configs share a run."""

from __future__ import annotations

import json
from pathlib import Path

from experiments import ablations
from experiments.ablation_report import verdict
from experiments.ablation_variants import BY_NAME, EFFECTS, VARIANTS, Variant

SETUP = ablations.Setup("tiny", ablations.BASE_SET, 2, 2, None, 4, 2, (0,), 2)


def test_one_variant_for_two_iterations_writes_the_report(tmp_path: Path) -> None:
    report, out = tmp_path / "ABLATIONS.md", tmp_path / "out"
    argv = ["--variants", "fpn-pool", "fpn-align", "--iters", "2", "--batch-size", "2", "--train-images", "4",
            "--val-images", "2", "--out", str(out), "--report", str(report)]  # fmt: skip
    assert ablations.main(argv) == 0
    text = report.read_text()
    assert "python -m experiments.ablations --variants fpn-pool fpn-align --iters 2" in text
    assert "| fpn-pool | `pooler=pool` |" in text and "26.9 / 48.8 / 26.4, Table 2c (R50-C4)" in text
    assert "**RoIAlign vs RoIPool, FPN** (fpn-align - fpn-pool): ours " in text
    results = json.loads((out / "results.json").read_text())
    (pool, align) = results["variants"]
    assert pool["name"] == "fpn-pool" and pool["skipped"] is None
    assert {"segm_AP", "segm_AP50", "segm_AP75", "bbox_AP"} <= set(pool["metrics"][0])
    weights = out / "runs" / "fpn-pool-s0" / "model_final.safetensors"
    assert weights.is_file() and align["metrics"]


def test_a_variant_whose_setting_this_checkout_lacks_is_skipped_with_the_reason(tmp_path: Path) -> None:
    ghost = Variant("ghost", ("no_such_field=1",))
    (outcome,) = ablations.run_all([ghost], SETUP, tmp_path)
    assert outcome.metrics == [] and outcome.skipped is not None
    assert "no_such_field=1" in outcome.skipped and "unknown model config field 'no_such_field'" in outcome.skipped


def test_variants_with_the_same_config_share_one_run() -> None:
    base = ablations.run_key(BY_NAME["fpn-align"], SETUP)
    assert ablations.run_key(BY_NAME["mask-sigmoid"], SETUP) == base == ablations.run_key(BY_NAME["mask-fcn"], SETUP)
    assert ablations.run_key(BY_NAME["fpn-pool"], SETUP) != base


def test_every_effect_compares_two_known_variants_with_paper_figures() -> None:
    for effect in EFFECTS:
        better, worse = BY_NAME[effect.better], BY_NAME[effect.worse]
        assert better.paper is not None and worse.paper is not None and better.keypoints == worse.keypoints
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)


def test_verdict_states_the_direction_against_the_paper() -> None:
    assert verdict(2.0, 3.4) == "same direction as the paper"
    assert verdict(-2.0, 3.4) == "**opposite direction to the paper**"
    assert verdict(0.4, 3.4).startswith("no clear effect here")
    assert verdict(None, 3.4).startswith("no figure to compare")
