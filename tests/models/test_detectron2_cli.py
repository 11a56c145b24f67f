"""`maskrcnn weights convert model_final.pkl out.safetensors --arch ...` (serving the result:
tests/service/test_detectron2_serve.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import maskrcnn_cli
from models import weights

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "detectron2"


def run(*argv: str) -> int:
    return maskrcnn_cli.main(["weights", *argv])


def test_convert_with_a_zoo_name_or_a_yaml_writes_a_self_describing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "r50.safetensors"
    assert run("convert", str(RECORDED / "r50_fpn.pkl"), str(dst), "--arch", str(RECORDED / "r50_fpn.yaml")) == 0
    assert f"wrote {dst}" in capsys.readouterr().out
    config, _ = weights.read(dst)
    assert (config.backbone_width, config.input_channels, config.mask_paste) == (8, "bgr", "grid_sample")
    assert config.class_names[1] == "person" and config.category_ids[-1] == 90


def test_a_pkl_without_arch_is_refused_with_how_to_name_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("convert", str(RECORDED / "r50_fpn.pkl"), str(tmp_path / "x.safetensors")) == 2
    err = capsys.readouterr().err
    assert "does not say its architecture; pass --arch d2:<model-zoo name>" in err and err.count("\n") == 1


def test_a_zoo_arch_that_does_not_fit_the_file_names_the_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkl = str(RECORDED / "r50_fpn.pkl")
    assert run("convert", pkl, str(tmp_path / "x.safetensors"), "--arch", "d2:mask_rcnn_R_50_FPN_3x") == 2
    err = capsys.readouterr().err
    assert "weights do not fit d2:mask_rcnn_R_50_FPN_3x: size mismatch" in err and err.count("\n") == 1
    assert run("convert", pkl, str(tmp_path / "x.safetensors"), "--arch", "d2:nope") == 2
    assert "unknown Detectron2 model-zoo config 'nope'" in capsys.readouterr().err


def test_a_malicious_pkl_is_refused_by_the_cli_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"

    class Touch:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "model_final.pkl"
    evil.write_bytes(pickle.dumps({"model": {"x": Touch()}, "__author__": "?"}, protocol=2))
    dst = tmp_path / "x.safetensors"
    assert run("convert", str(evil), str(dst), "--arch", "d2:mask_rcnn_R_50_FPN_3x") == 2
    assert "refused to load: the pickle names posix.system" in capsys.readouterr().err
    assert not marker.exists() and not dst.exists()
