"""`maskrcnn train --model-set FIELD=VALUE`: bad settings stop the command with one argparse error (status 2);
good ones travel in the weights file, so `maskrcnn evaluate` and `maskrcnn serve` need no flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import maskrcnn_cli
from models import weights
from models.poolers import RoIWarpOp
from service.config import Settings
from tests.service.service_helpers import LiveServer
from trainer.synth import SynthConfig, write_dataset

SET = SynthConfig(images=3, seed=0, min_side=96, max_side=112, max_shapes=2, min_radius=12, max_radius=30)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("pooler=roi", "bad value for pooler: 'roi'; choose from 'align', 'pool', 'warp'"),
        ("poolr=pool", "unknown model config field 'poolr'; valid fields: num_classes, backbone,"),
        ("num_classes=3", "--model-set num_classes: set by the training data, not the command line"),
        ("num_keypoints=4", "--model-set num_keypoints: set by the training data, not the command line"),
        ("rpn_conv_depth=3", "rpn_conv_depth must be 1 or 2; got 3"),
    ],
)
def test_bad_model_settings_are_one_usage_error(setting: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        maskrcnn_cli.main(["train", "--data", "d", "--out", "o", "--model", "tiny", "--model-set", setting])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: maskrcnn train") and f"maskrcnn train: error: {message}" in err


def test_settings_that_conflict_with_each_other_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--data", "d", "--out", "o", "--model-set", "pooler=pool", "--model-set", "pooler_aligned=1"]
    with pytest.raises(SystemExit, match="2"):
        maskrcnn_cli.main(argv)
    assert "error: pooler_aligned applies to pooler 'align' only; got pooler 'pool'" in capsys.readouterr().err


def test_unknown_preset_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="2"):
        maskrcnn_cli.main(["train", "--data", "d", "--out", "o", "--model", "huge"])
    assert "error: unknown model preset 'huge'; choose from" in capsys.readouterr().err


def test_trained_setting_travels_to_evaluate_and_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = tmp_path / "data", tmp_path / "run"
    write_dataset(data, SET)
    train = ["train", "--data", str(data), "--out", str(out), "--model", "tiny", "--max-iter", "2",
             "--batch-size", "1", "--num-workers", "0", "--device", "cpu",
             "--model-set", "pooler=warp", "--model-set", "pooler_sampling_ratio=0"]  # fmt: skip
    assert maskrcnn_cli.main(train) == 0
    path = out / "model_final.safetensors"
    model = weights.load(path)
    assert (model.config.pooler, model.config.pooler_sampling_ratio) == ("warp", 0)
    assert model.roi_heads.box_roi_pool.op == RoIWarpOp(0)
    assert isinstance(model.roi_heads.mask_roi_pool.op, RoIWarpOp)
    assert json.loads((out / "train_config.json").read_text())["model_set"] == [
        "pooler=warp",
        "pooler_sampling_ratio=0",
    ]

    capsys.readouterr()
    evaluate = ["evaluate", "--data", str(data), "--weights", str(path), "--output", str(tmp_path / "r.json")]
    assert maskrcnn_cli.main(evaluate) == 0
    assert "segm_AP" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    server = LiveServer(Settings(weights=path, device="cpu")).start()
    try:
        with server.client() as client:
            assert client.get("/v1/model").json()["architecture"]["pooler"] == "warp"
            image = (data / "images" / "000001.png").read_bytes()
            assert client.post("/detect", files={"image": ("a.png", image, "image/png")}).status_code == 200
    finally:
        server.stop()
