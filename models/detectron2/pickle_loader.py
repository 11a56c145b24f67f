"""Read Detectron2's weight files as data: model-zoo `.pkl` pickles without running their code, `.pth` files
through `torch.load(weights_only=True)`.

A model-zoo `model_final_*.pkl` is a pickle of `{"model": {name: ndarray}, "__author__": ...}` (Detectron2's
`DetectionCheckpointer._load_file` reads it with `pickle.load(f, encoding="latin1")` and recognises it by those
two keys). A pickle can name any importable callable and call it while loading, so `pickle.load` on a
downloaded file runs whatever it names. `RestrictedUnpickler.find_class` admits only what rebuilds a numpy
array (`numpy.core.multiarray._reconstruct` or numpy 2's `numpy._core.multiarray._reconstruct`, protocol
5's `numeric._frombuffer`, `numpy.ndarray`, `numpy.dtype`) and `_codecs.encode` (how Python 3 writes bytes
in protocol-2 pickles, as torch's own weights-only unpickler admits it); any other global stops the load,
before it is called, with a `WeightsError` that names it. Arrays of a non-numeric dtype (object, strings)
are refused after loading.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..weights import WeightsError

# (module, name) pairs a weights pickle may name; nothing else is ever imported or called.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5's array form
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)
_NUMERIC_KINDS = frozenset("biuf")  # bool, signed, unsigned, float (numpy dtype.kind)


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only `ALLOWED_GLOBALS`; any other global raises `WeightsError`."""

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise WeightsError(
                f"{self.source}: refused to load: the pickle names {module}.{name}, which is not a numpy array "
                "part (a weights file needs none; this one may run code)"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError(f"{self.source}: refused to load: the pickle uses persistent ids (not a .pkl of arrays)")


def read_pickle(path: str | Path) -> dict[str, Any]:
    """The top-level dict of a Detectron2 `.pkl`, arrays and all, without running code from the file.

    Raises WeightsError: a refused global (named), a truncated or corrupt pickle, or a top level that is not
    a dict.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = RestrictedUnpickler(f, str(path)).load()
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise WeightsError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: the pickle holds a {type(data).__name__}, not a dict of weights")
    return data


def read_state(path: str | Path) -> dict[str, Tensor]:
    """Detectron2's state dict {name: float tensor} from a model-zoo `.pkl` or a `.pth` it saved.

    `.pkl`: {"model": {name: ndarray}, "__author__": ...} (or a bare {name: ndarray}); `.pth`:
    {"model": {name: tensor}, ...} read with `torch.load(weights_only=True)`. Keys Detectron2's own loader
    skips (`pixel_mean`, `pixel_std`, `anchor_generator.cell_anchors.*`) are dropped. Raises WeightsError
    for a missing file, a refused or corrupt pickle, a non-numeric array, or no weights inside.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    data = _read_torch(path) if zipfile.is_zipfile(path) else read_pickle(path)
    weights = data.get("model", data)
    if not isinstance(weights, dict) or not weights:
        raise WeightsError(f"{path}: no weights inside (expected {{'model': {{name: array}}}})")
    state: dict[str, Tensor] = {}
    for name, value in weights.items():
        if not isinstance(name, str):
            raise WeightsError(f"{path}: weight name {name!r} is not a string")
        if name in ("pixel_mean", "pixel_std") or name.startswith("anchor_generator.cell_anchors"):
            continue
        state[name] = _tensor(value, name, path)
    return state


def _read_torch(path: Path) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise WeightsError(f"{path}: unreadable torch checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: the checkpoint holds a {type(data).__name__}, not a dict of weights")
    return data


def _tensor(value: Any, name: str, path: Path) -> Tensor:
    if isinstance(value, Tensor):
        array_kind = "f" if value.dtype.is_floating_point else "i"
        tensor = value
    elif isinstance(value, np.ndarray):
        array_kind = value.dtype.kind
        if array_kind not in _NUMERIC_KINDS:
            raise WeightsError(f"{path}: weight {name!r} is a non-numeric array (dtype {value.dtype})")
        tensor = torch.from_numpy(np.ascontiguousarray(value))
    else:
        raise WeightsError(f"{path}: weight {name!r} is a {type(value).__name__}, not an array")
    return tensor.float() if array_kind == "f" else tensor
