"""The loop: schedule, checkpoints readable with weights_only, exact resume, backbone init, final weights."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from models import build_model, preset
from models import weights as model_weights
from trainer import checkpoint, cli
from trainer.cli import parse_train_args
from trainer.engine import lr_lambda
from trainer.train import FINAL_WEIGHTS, load_backbone_weights, params_digest, run


def test_lr_warms_up_linearly_then_drops_tenfold() -> None:
    f = lr_lambda(warmup_iters=10, warmup_factor=0.001, steps=(75,))
    assert f(0) == pytest.approx(0.001)
    assert f(5) == pytest.approx(0.001 * 0.5 + 0.5)
    assert f(10) == f(74) == 1.0
    assert f(75) == pytest.approx(0.1)


def test_linear_scaling_rule_and_overrides() -> None:
    config = parse_train_args(["--data", "d", "--out", "o", "--batch-size", "8", "--nproc", "2"])
    assert config.base_lr == pytest.approx(0.02 * 8 / 16) and config.per_worker_batch(2) == 4
    assert parse_train_args(["--data", "d", "--out", "o", "--lr", "0.1"]).base_lr == 0.1
    assert not parse_train_args(["--data", "d", "--out", "o"]).resume


def test_rng_state_round_trips_through_weights_only_load(tmp_path: Path) -> None:
    state = checkpoint.rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.save(tmp_path / "c.pt", rng=state)
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "c.pt")["rng"])  # load uses weights_only=True
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def _config(data: Path, out: Path, max_iter: int, resume: bool = False) -> object:
    argv = [
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        "tiny",
        "--max-iter",
        str(max_iter),
        "--batch-size",
        "2",
        "--checkpoint-period",
        "2",
        "--num-workers",
        "0",
        "--log-period",
        "1",
        "--warmup-iters",
        "0",
        "--lr-steps",
        "1.0",
    ]  # fmt: skip  (the same schedule for max_iter 2 and 4)
    return parse_train_args([*argv, "--resume"] if resume else argv)


def test_resume_matches_an_uninterrupted_run(tiny_data: Path, tmp_path: Path) -> None:
    straight = run(_config(tiny_data, tmp_path / "a", 4))
    first = run(_config(tiny_data, tmp_path / "b", 2))
    assert checkpoint.latest(tmp_path / "b").name == "checkpoint_0000002.pt"
    resumed = run(_config(tiny_data, tmp_path / "b", 4, resume=True))
    assert (first["iteration"], resumed["start_iter"], resumed["iteration"]) == (2, 2, 4)
    assert resumed["params_sha256"] == straight["params_sha256"]
    model = model_weights.load(tmp_path / "b" / FINAL_WEIGHTS)
    assert params_digest(model) == resumed["params_sha256"]
    assert model.config.class_names == ("__background__", "circle", "square", "triangle", "star")
    with (tmp_path / "b" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iter"]) for r in rows] == [1, 2, 3, 4] and all(float(r["loss"]) > 0 for r in rows)


def test_train_cli_with_validation_set(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--data", str(tiny_data), "--val", str(tiny_data), "--out", str(tmp_path), "--model", "tiny",
            "--max-iter", "2", "--batch-size", "2", "--num-workers", "0", "--eval-images", "2"]  # fmt: skip
    assert cli.train(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"bbox_AP", "segm_AP"} <= set(summary["eval"])
    assert json.loads((tmp_path / "eval.jsonl").read_text().splitlines()[-1])["iter"] == 2


def test_backbone_weights_load_into_the_trunk(tmp_path: Path) -> None:
    resnet = torchvision.models.resnet18()
    torch.save(resnet.state_dict(), tmp_path / "r18.pth")
    model = build_model(preset("tiny", backbone_width=64))
    load_backbone_weights(model, tmp_path / "r18.pth")
    assert torch.equal(model.backbone.body.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)
    assert torch.equal(model.backbone.body.bn1.running_var, resnet.bn1.running_var)
    torch.save({"unrelated": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no tensor fits"):
        load_backbone_weights(model, tmp_path / "bad.pth")


def test_a_c4_model_takes_imagenet_layer4_into_its_res5_roi_head(tmp_path: Path) -> None:
    resnet = torchvision.models.resnet50()
    torch.save(resnet.state_dict(), tmp_path / "r50.pth")
    model = build_model(preset("r50-c4", num_classes=3))
    load_backbone_weights(model, tmp_path / "r50.pth")
    assert torch.equal(model.backbone.body.layer3[5].conv3.weight, resnet.layer3[5].conv3.weight)
    assert torch.equal(model.roi_heads.res5[2].conv2.weight, resnet.layer4[2].conv2.weight)
    assert torch.equal(model.roi_heads.res5[0].downsample[1].running_mean, resnet.layer4[0].downsample[1].running_mean)
    torch.save({"unrelated": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no tensor fits"):
        load_backbone_weights(model, tmp_path / "bad.pth")
