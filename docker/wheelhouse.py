"""Fill a folder with the wheels that `pip install torch==X torchvision==Y` needs, from this machine's disk.

pip resolves the set (for this interpreter's Python and platform, which must match the image's: CPython 3.11 on
x86-64 Linux); every wheel that pip's configured indexes serve from a local file is hard-linked (copied across
file systems), so gigabytes of CUDA wheels are neither downloaded nor duplicated; the few served over HTTPS are
downloaded. The Docker build then installs them with `--no-index --find-links` (TORCH_WHEELS=local).

    python docker/wheelhouse.py DEST torch==2.14.1 torchvision==0.29.1
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse


def resolve(requirements: list[str]) -> list[str]:
    """The download URLs of every distribution pip would install for `requirements` into an empty venv."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-qq", "--dry-run", "--ignore-installed",
             "--only-binary", ":all:", "--report", str(report), *requirements],
            check=True,
        )  # fmt: skip
        return [item["download_info"]["url"] for item in json.loads(report.read_text())["install"]]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    dest = Path(argv[0])
    dest.mkdir(parents=True, exist_ok=True)
    remote = []
    for url in resolve(argv[1:]):
        parsed = urlparse(url)
        if parsed.scheme != "file":
            remote.append(url)
            continue
        source = Path(unquote(parsed.path))
        target = dest / source.name
        if target.exists():
            continue
        try:
            os.link(source, target)
        except OSError:  # another file system, or no permission to link
            shutil.copy2(source, target)
    if remote:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(dest), *remote], check=True
        )
    print(f"{dest}: {len(list(dest.glob('*.whl')))} wheels", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
