"""Where a data set's files may be: annotations.json or one instances*.json beside images/, COCO's
annotations/instances_<split>.json + <split>/, and a clear error when several JSON files could be the one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.trainer.cocosets import write_squares
from trainer.data import CocoDetection, DataError, find_annotations


def test_cvat_instances_default_json_beside_images_is_found(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "cvat", [[(10, 5, 20)]])
    (root / "annotations.json").rename(root / "instances_default.json")
    assert len(CocoDetection(root)) == 1
    nested = tmp_path / "nested"
    shutil.copytree(root, nested)
    (nested / "annotations").mkdir()
    (nested / "instances_default.json").rename(nested / "annotations" / "instances_default.json")
    assert find_annotations(nested).annotations == nested / "annotations" / "instances_default.json"


def test_coco_layout_with_split_image_folder_is_found(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "coco", [[(10, 5, 20)]])
    (root / "annotations").mkdir()
    (root / "annotations.json").rename(root / "annotations" / "instances_val2017.json")
    (root / "images").rename(root / "val2017")
    layout = find_annotations(root)
    assert layout.images == root / "val2017"
    _, image, target = CocoDetection(root)[0]
    assert image.shape == (3, 60, 80) and target.labels.tolist() == [1]


def test_file_names_relative_to_the_data_directory_are_found(tmp_path: Path) -> None:
    """Label Studio writes file_name "images/x.png" beside the images/ folder."""
    root = write_squares(tmp_path / "ls", [[(10, 5, 20)]])
    text = (root / "annotations.json").read_text().replace('"file_name": "1.png"', '"file_name": "images/1.png"')
    (root / "annotations.json").write_text(text)
    assert CocoDetection(root).paths[1] == root / "images" / "1.png"


def test_several_annotation_files_are_an_error_listing_them(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "two", [[(10, 5, 20)]])
    shutil.copy(root / "annotations.json", root / "instances_default.json")
    with pytest.raises(DataError, match=r"several annotation files \['annotations.json', 'instances_default.json'\]"):
        CocoDetection(root)
    (root / "annotations.json").unlink()
    shutil.rmtree(root / "images")
    with pytest.raises(DataError, match=r"no images/ .*folder beside instances_default\.json"):
        CocoDetection(root)


def test_coco_person_keypoints_file_is_found_when_there_is_no_instances_file(tmp_path: Path) -> None:
    root = write_squares(tmp_path / "kp", [[(10, 5, 20)]])
    (root / "annotations").mkdir()
    (root / "annotations.json").rename(root / "annotations" / "person_keypoints_val2017.json")
    (root / "images").rename(root / "val2017")
    layout = find_annotations(root)
    assert layout.annotations.name == "person_keypoints_val2017.json" and layout.images == root / "val2017"
    shutil.copy(layout.annotations, root / "annotations" / "instances_val2017.json")
    assert find_annotations(root).annotations.name == "instances_val2017.json"  # the instances file comes first
