"""`maskrcnn detect` on a folder, in-process and over HTTP: COCO files that load together, overlays, one
summary line; bad input exits 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from pycocotools.coco import COCO
from service_helpers import free_port

import maskrcnn_cli

CLIENT = Path(__file__).resolve().parents[2] / "client"


def _check_outputs(out: Path, photo_dir: Path) -> list[dict]:
    coco = COCO(str(out / "images.json"))
    names = [img["file_name"] for img in coco.dataset["images"]]
    assert names == [str(photo_dir / n) for n in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")]
    assert [c["name"] for c in coco.dataset["categories"]] == ["cat", "dog", "cup", "person"]
    results = coco.loadRes(str(out / "detections.json"))
    assert sorted(results.getImgIds()) == [1, 2, 3] and len(results.getAnnIds()) == 15
    for stem in ("astronaut", "chelsea", "coffee"):
        assert Image.open(out / f"{stem}.overlay.png").size == (160, 120)
    return json.loads((out / "detections.json").read_text())


def test_detect_in_process_and_over_http_write_the_same_coco_files(
    sdk_server, sdk_weights: Path, photo_dir: Path, tmp_path: Path, capsys
) -> None:
    common = [str(photo_dir), "--max-detections", "5", "--overlay"]
    local = ["detect", *common, "--weights", str(sdk_weights), "--out", str(tmp_path / "local")]
    assert maskrcnn_cli.main(local) == 0
    remote = ["detect", *common, "--url", sdk_server.url, "--out", str(tmp_path / "http")]
    assert maskrcnn_cli.main(remote) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("3 images, 15 detections" in line and "3 overlays" in line for line in lines)
    in_process = _check_outputs(tmp_path / "local", photo_dir)
    over_http = _check_outputs(tmp_path / "http", photo_dir)
    key = lambda d: (d["image_id"], d["category_id"], round(d["score"], 5), d["segmentation"]["counts"])  # noqa: E731
    assert [key(d) for d in in_process] == [key(d) for d in over_http]


def test_globs_and_files_pick_the_images_named(sdk_server, photo_dir: Path, tmp_path: Path) -> None:
    argv = [str(photo_dir / "c*.jpg"), str(photo_dir / "astronaut.jpg"), "--url", sdk_server.url]
    assert maskrcnn_cli.main(["detect", *argv, "--out", str(tmp_path), "--max-detections", "1"]) == 0
    images = json.loads((tmp_path / "images.json").read_text())["images"]
    assert [Path(i["file_name"]).name for i in images] == ["chelsea.jpg", "coffee.jpg", "astronaut.jpg"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no/such/file.jpg"], "no/such/file.jpg: no such file or folder"),
        (["{photo_dir}/*.gif"], "matches no files"),
        (["{photo_dir}", "--url", "http://127.0.0.1:{port}"], "cannot reach"),
        (["{photo_dir}/notes.txt", "--url", "{url}"], "no image could be read (1 skipped)"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, sdk_server, photo_dir: Path, tmp_path, capsys) -> None:
    argv = [a.format(photo_dir=photo_dir, port=free_port(), url=sdk_server.url) for a in argv]
    assert maskrcnn_cli.main(["detect", *argv, "--out", str(tmp_path), "--timeout", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maskrcnn detect: ") and message in err.splitlines()[-1]
    assert len(err.splitlines()) <= 2  # the refused file's own line, then the run's


@pytest.mark.parametrize("over_http", [True, False])
def test_a_refused_image_is_skipped_and_the_others_written(
    over_http: bool, sdk_server, photo_dir: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.jpg").write_text("not an image at all")
    (folder / "b.jpg").write_bytes(next(p for p in sorted(photo_dir.iterdir()) if p.suffix == ".jpg").read_bytes())
    argv = ["detect", str(folder), "--out", str(tmp_path / "out")] + (["--url", sdk_server.url] if over_http else [])
    assert maskrcnn_cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.count("skipped") == 1 and "a.jpg" in captured.err
    assert "1 images" in captured.out and "1 skipped" in captured.out
    images = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert [Path(i["file_name"]).name for i in images] == ["b.jpg"]


def test_the_client_script_needs_a_url_and_works_with_one(sdk_server, photo: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(CLIENT)}
    script = [sys.executable, "-m", "maskrcnn_client.cli", "detect", str(photo)]
    refused = subprocess.run(script, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "needs the `maskrcnn` package" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    done = subprocess.run([*script, "--url", sdk_server.url], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "detections" / "detections.json").is_file()
