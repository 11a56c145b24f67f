"""Training checkpoints: model, optimizer, scheduler, iteration and RNG states in one torch file.

Everything is stored as tensors, ints, strings, lists and dicts so that `torch.load(weights_only=True)` can
read it back: a checkpoint is data, never code. RNG states become tensors (numpy's and Python's too), so a
resumed run draws the same random numbers as an uninterrupted one would have.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

PATTERN = re.compile(r"^checkpoint_(\d{7})\.pt$")


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy's legacy global and Python's `random` states, as tensors."""
    version, py_state, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_meta": torch.tensor([version, 0 if gauss is None else 1], dtype=torch.int64),
        "python_gauss": torch.tensor(0.0 if gauss is None else gauss, dtype=torch.float64),
        "numpy": torch.from_numpy(np_keys.astype(np.int64)),
        "numpy_meta": torch.tensor([np_pos, np_has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor(np_gauss, dtype=torch.float64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, has_gauss = state["python_meta"].tolist()
    gauss = float(state["python_gauss"]) if has_gauss else None
    random.setstate((version, tuple(state["python"].tolist()), gauss))
    pos, np_has_gauss = state["numpy_meta"].tolist()
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, pos, np_has_gauss, float(state["numpy_gauss"])))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, **parts: Any) -> None:
    """Atomic write (tmp + rename): a run killed mid-save leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(parts, tmp)
    tmp.replace(path)


def path_for(out_dir: Path, iteration: int) -> Path:
    return out_dir / f"checkpoint_{iteration:07d}.pt"


def latest(out_dir: Path) -> Path | None:
    """The checkpoint with the highest iteration in `out_dir`, or None."""
    found = sorted(p for p in out_dir.glob("checkpoint_*.pt") if PATTERN.match(p.name)) if out_dir.is_dir() else []
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def prune(out_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (0 keeps all)."""
    if keep <= 0:
        return
    found = sorted(p for p in out_dir.glob("checkpoint_*.pt") if PATTERN.match(p.name))
    for old in found[:-keep]:
        old.unlink(missing_ok=True)
