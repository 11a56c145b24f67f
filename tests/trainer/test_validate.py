"""The up-front check of a whole set: annotation ids renumbered, duplicate image ids and mis-sized images stop
train and evaluate with one line, orphan annotations are skipped with a warning naming them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from tests.trainer.cocosets import edited_copy, evaluate_results, load, perfect_results, save, write_squares
from trainer import cli
from trainer.data import CocoDetection, DataError


def _train(data: Path, out: Path, *extra: str) -> int:
    argv = ["--data", str(data), "--out", str(out), "--model", "tiny", "--max-iter", "1", "--batch-size", "2",
            "--num-workers", "0", "--device", "cpu"]  # fmt: skip
    return cli.train([*argv, *extra])


def _one_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"maskrcnn {command}: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


IDS = {
    "from 0": lambda anns: [a.update(id=i) for i, a in enumerate(anns)],
    "all 0 (CVAT)": lambda anns: [a.update(id=0) for a in anns],
    "repeated (merged exports)": lambda anns: [a.update(id=1 + i % 3) for i, a in enumerate(anns)],
}


@pytest.mark.parametrize("kind", list(IDS))
def test_annotation_ids_from_0_all_0_or_repeated_are_renumbered_and_perfect_results_score_100(
    kind: str, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    root = edited_copy(tiny_data, tmp_path / "ids", lambda data: IDS[kind](data["annotations"]))
    with caplog.at_level(logging.WARNING):
        status, metrics, _ = evaluate_results(root, perfect_results(load(root)), capsys)
    assert status == 0 and metrics["bbox_AP"] == metrics["segm_AP"] == 100
    assert "renumbered 1.." in caplog.text and "the file is unchanged" in caplog.text
    ids = [a["id"] for a in CocoDetection(root).coco.dataset["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    assert [a["id"] for a in load(root)["annotations"]] != ids  # our copy is renumbered, the user's file is not


def test_duplicate_image_ids_stop_train_and_evaluate_naming_the_id_and_files(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = edited_copy(tiny_data, tmp_path / "dup", lambda data: data["images"][2].update(id=2))
    assert _train(root, tmp_path / "out") == 2
    line = _one_line(capsys.readouterr().err, "train")
    assert "image id 2 is used by two images ('000002.png' and '000003.png')" in line
    status, _, err = evaluate_results(root, perfect_results(load(tiny_data)), capsys)
    assert status == 2 and "image id 2 is used by two images" in _one_line(err, "evaluate")


def test_annotations_of_unknown_images_are_skipped_with_a_warning_naming_them(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    def orphan(data: dict) -> None:
        data["annotations"][0]["image_id"] = 99
        data["annotations"][1]["image_id"] = 98

    root = edited_copy(tiny_data, tmp_path / "orphans", orphan)
    with caplog.at_level(logging.WARNING):
        ds = CocoDetection(root)
    assert "image_id names no image, skipped: 2 annotations, image ids [99, 98]" in caplog.text
    assert len(ds.coco.dataset["annotations"]) == len(load(root)["annotations"]) - 2
    valid = {**load(root), "annotations": load(root)["annotations"][2:]}
    status, metrics, _ = evaluate_results(root, perfect_results(valid), capsys)
    assert status == 0 and metrics["segm_AP"] == 100


def test_annotation_without_category_id_stops_before_the_first_iteration(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = edited_copy(tiny_data, tmp_path / "nocat", lambda data: data["annotations"][3].pop("category_id"))
    out = tmp_path / "out"
    assert _train(root, out) == 2
    assert "annotation 4 has no integer category_id" in _one_line(capsys.readouterr().err, "train")
    assert not out.exists()  # nothing ran: no config, metrics or checkpoint written


@pytest.mark.parametrize("nproc", [1, 2])
def test_image_resized_after_annotation_stops_train_and_evaluate_with_one_line(
    nproc: int, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = edited_copy(tiny_data, tmp_path / "resized")
    path = root / "images" / "000003.png"
    with Image.open(path) as img:
        img.resize((img.width // 2, img.height // 2)).save(path)
    status, _, err = evaluate_results(root, perfect_results(load(root)), capsys)
    assert status == 2 and "000003.png: the image is" in _one_line(err, "evaluate")  # not a silent score
    assert _train(root, tmp_path / "out", "--nproc", str(nproc), "--batch-size", "2") == 2
    line = _one_line(capsys.readouterr().err, "train")
    assert "000003.png: the image is" in line and "resized after annotation?" in line


def test_json_size_of_the_stored_frame_is_an_error_that_names_the_exif_orientation(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "exif6", [[(10, 5, 20)]], size=(60, 90), orientation=6)
    data = load(root)
    data["images"][0].update(height=90, width=60)  # the stored pixels' size, not the displayed one
    save(root, data)
    with pytest.raises(DataError, match="EXIF orientation 6 displays them as 60x90"):
        CocoDetection(root)
