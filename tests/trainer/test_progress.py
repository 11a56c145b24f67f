"""Progress bars are drawn on a terminal and nowhere else: `maskrcnn synth` and `maskrcnn train` under a
pseudo-terminal show tqdm's bar (training with loss, lr, images/s and ETA in its postfix); with pipes they print
plain lines only, so CI logs and files stay clean."""

from __future__ import annotations

import io
from pathlib import Path

from tests.trainer.terminal import BAR_MARKS, in_terminal, maskrcnn, with_pipes
from trainer.progress import NoBar, progress

SMALL_SYNTH = ("--images", "3", "--min-side", "48", "--max-side", "64")


def test_progress_off_a_terminal_is_a_no_op_that_still_iterates() -> None:
    stream = io.StringIO()
    bar = progress([1, 2, 3], desc="x", stream=stream)
    assert isinstance(bar, NoBar) and list(bar) == [1, 2, 3]
    bar.update(2)
    bar.set_postfix_str("loss 1.0")
    bar.close()
    assert stream.getvalue() == ""


def test_synth_draws_a_bar_on_a_terminal_and_none_through_pipes(tmp_path: Path) -> None:
    status, shown = in_terminal(maskrcnn("synth", str(tmp_path / "tty"), *SMALL_SYNTH))
    assert status == 0, shown
    assert "synth: 100%|" in shown and "3/3" in shown and "image/s" in shown
    status, logged = with_pipes(maskrcnn("synth", str(tmp_path / "piped"), *SMALL_SYNTH))
    assert status == 0, logged
    assert [m for m in BAR_MARKS if m in logged] == [] and "image/s" not in logged
    assert logged.strip() == f"wrote 3 images and {tmp_path / 'piped' / 'annotations.json'}"


def test_training_on_a_terminal_shows_a_bar_with_loss_lr_speed_and_eta_instead_of_log_lines(
    tiny_data: Path, tmp_path: Path
) -> None:
    argv = maskrcnn("train", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--model", "tiny",
                    "--max-iter", "3", "--batch-size", "2", "--num-workers", "0", "--device", "cpu",
                    "--log-period", "1")  # fmt: skip
    status, shown = in_terminal(argv)
    assert status == 0, shown
    assert "train: 100%|" in shown and "3/3" in shown
    final = [redraw for redraw in shown.split("\r") if "3/3" in redraw][-1]
    for field in ("loss ", "lr ", "img/s", "eta 0:00:00"):
        assert field in final, final
    assert "iter 1/3" not in shown  # the bar replaces the plain lines
