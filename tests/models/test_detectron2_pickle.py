"""Detectron2 weight files are read as data: the restricted unpickler refuses code before it runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from models.detectron2.pickle_loader import read_pickle, read_state
from models.weights import WeightsError


class _Touch:
    """Unpickling this object calls os.system("touch <path>"): proof of execution is the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)


def _write(path: Path, obj: object, protocol: int = 2) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _zoo_like(**extra: object) -> dict[str, object]:
    weights = {"backbone.bottom_up.stem.conv1.weight": np.ones((2, 3, 1, 1), np.float32), **extra}
    return {"model": weights, "__author__": "Detectron2 Model Zoo"}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_model_zoo_pickle_of_numpy_arrays_loads_as_float_tensors(tmp_path: Path, protocol: int) -> None:
    path = _write(tmp_path / "m.pkl", _zoo_like(**{"x.bias": np.arange(3, dtype=np.float64)}), protocol)
    state = read_state(path)
    assert set(state) == {"backbone.bottom_up.stem.conv1.weight", "x.bias"}
    assert state["x.bias"].dtype == torch.float32 and state["x.bias"].tolist() == [0.0, 1.0, 2.0]


def test_keys_detectron2_itself_skips_are_dropped(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.pkl",
        _zoo_like(pixel_mean=np.zeros(3), **{"anchor_generator.cell_anchors.0": np.zeros((3, 4))}),
    )
    assert list(read_state(path)) == ["backbone.bottom_up.stem.conv1.weight"]


def test_os_system_at_top_level_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.pkl", _Touch(marker))
    with pytest.raises(WeightsError, match=r"refused to load: the pickle names posix\.system|os\.system"):
        read_state(path)
    assert not marker.exists()


def test_os_system_nested_in_the_model_dict_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.pkl", _zoo_like(**{"roi_heads.box_head.fc1.weight": [_Touch(marker)]}))
    with pytest.raises(WeightsError, match="system, which is not a numpy array part"):
        read_pickle(path)
    assert not marker.exists()


def test_the_same_pickle_does_run_code_with_plain_pickle_load(tmp_path: Path) -> None:
    """The refusal tests above are meaningful: the marker file appears when nothing guards the load."""
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.pkl", _Touch(marker))
    pickle.loads(path.read_bytes())  # the point of the test
    assert marker.exists()


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.pkl", _zoo_like(**{"x.weight": np.array([1, "a"], dtype=object)}))
    with pytest.raises(WeightsError, match=r"'x\.weight' is a non-numeric array \(dtype object\)"):
        read_state(path)


def test_non_array_values_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.pkl", _zoo_like(**{"x.weight": [1.0, 2.0]}))
    with pytest.raises(WeightsError, match=r"'x\.weight' is a list, not an array"):
        read_state(path)


def test_a_truncated_pickle_gives_one_clear_error(tmp_path: Path) -> None:
    data = pickle.dumps(_zoo_like(**{"x.weight": np.zeros((64, 64), np.float32)}), protocol=2)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt pickle"):
        read_state(path)


def test_a_pickle_that_is_not_a_dict_of_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="holds a list, not a dict"):
        read_state(_write(tmp_path / "l.pkl", [1, 2]))
    with pytest.raises(WeightsError, match="no weights inside"):
        read_state(_write(tmp_path / "e.pkl", {"model": {}, "__author__": "x"}))
    with pytest.raises(WeightsError, match="no such file"):
        read_state(tmp_path / "missing.pkl")


def test_a_pth_saved_by_detectron2_loads_through_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "model_final.pth"
    torch.save({"model": {"a.weight": torch.ones(2, 2)}, "iteration": 5}, path)
    assert read_state(path)["a.weight"].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_a_pth_with_a_code_global_is_refused_by_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"a.weight": _Touch(marker)}}, path)
    with pytest.raises(WeightsError, match="unreadable torch checkpoint"):
        read_state(path)
    assert not marker.exists()
