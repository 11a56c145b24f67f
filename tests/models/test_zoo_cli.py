"""`maskrcnn weights list | pull | convert`, through the console script's dispatcher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_zoo import FileServer, closed_port, entry, tiny_checkpoint_bytes

import maskrcnn_cli
import models
from models import weights, zoo


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(zoo.MIRROR_ENV, raising=False)
    return tmp_path / "torch"


def run(*argv: str) -> int:
    return maskrcnn_cli.main(["weights", *argv])


def test_list_shows_each_name_what_it_is_its_size_and_whether_it_is_cached(
    torch_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cached = zoo.cache_path(zoo.find("maskrcnn_resnet50_fpn_v2"))
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"placeholder")
    assert run("list") == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    v1 = rows["maskrcnn_resnet50_fpn"]
    assert "Mask R-CNN, ResNet-50 FPN (v1), 80 COCO classes" in v1 and " 170 " in v1 and v1.endswith("not pulled")
    assert rows["maskrcnn_resnet50_fpn_v2"].endswith(str(cached))
    assert "Keypoint R-CNN, ResNet-50 FPN, 1 COCO class (person), 17 keypoints" in rows["keypointrcnn_resnet50_fpn"]


def test_pull_prints_where_the_file_landed_and_how_to_serve_it(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    data = tiny_checkpoint_bytes()
    filename = f"tiny_test-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    with FileServer({filename: data}) as server:
        monkeypatch.setattr(zoo, "catalogue", lambda: (entry(server.url + filename),))
        assert run("pull", "tiny_test", "--quiet") == 0
    out = capsys.readouterr().out
    assert f"tiny_test: {torch_home / 'hub' / 'checkpoints' / filename}" in out
    assert "MASKRCNN_WEIGHTS=tiny_test maskrcnn serve" in out


def test_pull_refusals_are_one_line_and_exit_2(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("pull", "resnet9000") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown weights name 'resnet9000'" in err, err
    url = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setenv(zoo.MIRROR_ENV, url)
    assert run("pull", "maskrcnn_resnet50_fpn") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"maskrcnn weights: cannot download maskrcnn_resnet50_fpn from {url}maskrcnn_resnet50_fpn_coco-"
    )
    assert f"set {zoo.MIRROR_ENV} or copy the file to {torch_home / 'hub' / 'checkpoints'}" in err


def test_convert_round_trip_keeps_tensors_and_coco_class_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = models.build_model(models.preset("resnet50_fpn"))  # torchvision's layout and 91 COCO labels
    src, dst = tmp_path / "maskrcnn_coco.pth", tmp_path / "out" / "coco.safetensors"
    dst.parent.mkdir()
    torch.save(model.state_dict(), src)
    assert run("convert", str(src), str(dst)) == 0
    assert f"wrote {dst} (" in capsys.readouterr().out
    config, state = weights.read(dst)
    assert config.class_names == weights.COCO_CATEGORIES and config.category_ids == ()
    expected = model.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert weights.load(dst).config == model.config


def test_convert_of_a_file_that_is_no_checkpoint_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\0" * 64)
    assert run("convert", str(junk), str(tmp_path / "out.safetensors")) == 2
    err = capsys.readouterr().err
    assert err.startswith("maskrcnn weights: ") and err.count("\n") == 1
    assert not (tmp_path / "out.safetensors").exists()
