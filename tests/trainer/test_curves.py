"""Training curves: a short run with a validation set writes TensorBoard event files (every loss, lr and
images/s at each log period; AP after each evaluation) that TensorBoard's own reader loads, prints plain
`iter N/M` lines (no bar) through pipes, and `maskrcnn plot` draws its loss and AP curves into a PNG."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.trainer.terminal import BAR_MARKS, maskrcnn, with_pipes
from trainer import cli

LOSSES = ("loss", "loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask")


@pytest.fixture(scope="module")
def run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the run's --out directory, its piped output) of 4 iterations, logged every 2, evaluated every 2."""
    out = tmp_path_factory.mktemp("curves") / "run"
    argv = maskrcnn("train", "--data", str(tiny_data), "--val", str(tiny_data), "--out", str(out),
                    "--model", "tiny", "--max-iter", "4", "--batch-size", "2", "--num-workers", "0",
                    "--device", "cpu", "--log-period", "2", "--eval-period", "2", "--eval-images", "2")  # fmt: skip
    status, output = with_pipes(argv)
    assert status == 0, output
    return out, output


def test_piped_training_output_has_plain_iteration_lines_and_no_bar(run: tuple[Path, str]) -> None:
    _, output = run
    assert "iter 2/4  loss " in output and "iter 4/4  loss " in output
    assert [m for m in BAR_MARKS if m in output] == []


def test_event_files_hold_each_loss_lr_and_speed_per_log_period_and_ap_per_evaluation(run: tuple[Path, str]) -> None:
    out, _ = run
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for name in (*LOSSES, "lr", "images_per_s"):
        assert [e.step for e in events.Scalars(f"train/{name}")] == [2, 4], name
    for name in ("bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50"):
        assert [e.step for e in events.Scalars(f"eval/{name}")] == [2, 4], name
    assert "eval/bbox_APl" not in tags  # None (no large objects) is not written as a value
    assert events.Scalars("train/lr")[0].value > 0 and events.Scalars("train/loss")[0].value > 0


def test_plot_writes_a_two_panel_png_with_several_colours(run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = run
    png = tmp_path / "curves.png"
    assert cli.plot([str(out), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[1] > pixels.shape[0] > 300  # wide: two panels side by side
    colours = {tuple(c) for c in pixels.reshape(-1, 3)[::7]}
    assert len(colours) > 20
    assert cli.plot([str(out)]) == 0 and (out / "curves.png").is_file()  # default: beside metrics.csv


def test_plot_of_a_directory_without_metrics_says_so_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.plot([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("maskrcnn plot: ") and "no metrics.csv" in err and err.count("\n") == 1


def test_without_tensorboard_the_writer_is_none_and_one_line_says_how_to_get_it(tmp_path: Path) -> None:
    code = (
        "import sys, logging; logging.basicConfig(); sys.modules['tensorboard'] = None  # as if not installed\n"
        "from pathlib import Path; from trainer.tensorboard import summary_writer\n"
        f"assert summary_writer(Path({str(tmp_path / 'tb')!r})) is None"
    )
    status, output = with_pipes([sys.executable, "-c", code])
    assert status == 0, output
    assert "tensorboard package is not installed" in output and "maskrcnn[curves]" in output
    assert not (tmp_path / "tb").exists()
