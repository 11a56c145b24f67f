"""The CLI's PATH arguments -> image files: files as given, folders' images (sorted), glob patterns."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


class InputError(ValueError):
    """A PATH that names nothing usable: the CLI prints it on one line and exits 2."""


def _folder(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def expand(patterns: Iterable[str], recursive: bool = False) -> list[Path]:
    """Image files in argument order, each once: a file is taken whatever its suffix; a folder gives its
    images (.jpg .jpeg .png .webp .bmp, any case) sorted by path, its subfolders too when `recursive`; a
    pattern with * ? [ is globbed (sorted). Raises InputError for a path that does not exist, a pattern or
    folder that matches no image, or no images at all."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = _folder(path, recursive)
            if not found:
                raise InputError(f"{pattern}: no images in this folder")
        elif glob.has_magic(pattern):
            matched = sorted(Path(p) for p in glob.glob(pattern, recursive=recursive))
            found = [p for p in matched if p.is_file()]
            found += [f for p in matched if p.is_dir() for f in _folder(p, recursive)]
            if not found:
                raise InputError(f"{pattern}: matches no files")
        else:
            raise InputError(f"{pattern}: no such file or folder")
        files.extend(found)
    unique = list(dict.fromkeys(files))
    if not unique:
        raise InputError("no images given")
    return unique
