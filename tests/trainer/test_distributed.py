"""Two CPU workers (gloo) through the elastic launcher: same parameters on both ranks, linear lr scaling,
checkpoint + --resume, final weights that `models.weights.load` reads, and a worker's data error as one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models import weights as model_weights
from trainer import checkpoint, cli, distributed
from trainer.cli import _train_worker, parse_train_args
from trainer.config import REFERENCE_BATCH, REFERENCE_LR
from trainer.train import FINAL_WEIGHTS, params_digest

pytestmark = pytest.mark.timeout(180)


def _argv(data: Path, out: Path, max_iter: int) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--model", "tiny", "--max-iter", str(max_iter),
            "--batch-size", "4", "--nproc", "2", "--num-workers", "0", "--checkpoint-period", "1",
            "--warmup-iters", "0", "--lr-steps", "1.0", "--log-period", "1"]  # fmt: skip


def test_two_workers_train_identically_checkpoint_and_resume(
    tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = parse_train_args(_argv(tiny_data, tmp_path, 2))
    results = distributed.launch(2, _train_worker, config)
    assert sorted(results) == [0, 1]
    assert results[0]["world_size"] == results[1]["world_size"] == 2
    assert results[0]["params_sha256"] == results[1]["params_sha256"], "ranks diverged after a DDP step"
    expected_lr = REFERENCE_LR * 4 / REFERENCE_BATCH  # global batch 4 = 2 workers x 2 images
    assert results[0]["lr"] == results[1]["lr"] == pytest.approx(expected_lr)
    assert checkpoint.latest(tmp_path).name == "checkpoint_0000002.pt"

    assert cli.train([*_argv(tiny_data, tmp_path, 3), "--resume"]) == 0
    out, err = capfd.readouterr()
    assert "resuming from" in err and "checkpoint_0000002.pt" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["start_iter"], summary["iteration"]) == (2, 3)
    model = model_weights.load(tmp_path / FINAL_WEIGHTS)
    assert params_digest(model) == summary["params_sha256"]
    assert checkpoint.latest(tmp_path).name == "checkpoint_0000003.pt"


def test_image_failing_to_decode_in_a_worker_process_is_one_line_and_exit_2(
    tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Headers are fine (checked up front in the launcher), pixel data is cut: each worker that meets it prints
    one line and exits 2; no worker's or launcher's traceback reaches the user."""
    root = tmp_path / "truncated"
    shutil.copytree(tiny_data, root)
    for path in (root / "images").iterdir():
        path.write_bytes(path.read_bytes()[:600])
    assert cli.train(_argv(root, tmp_path / "out", 2)) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("maskrcnn train:")]
    assert lines and all(line.endswith("truncated or corrupt image data") for line in lines), err
    assert "Traceback" not in err
