"""Installed versions carry the fixes for the advisories that concern a service parsing untrusted uploads,
and pyproject.toml asks for at least those versions."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from service_helpers import ROOT

# package -> (first fixed version, advisories)
MINIMUMS = {
    "pillow": ("11.3", "CVE-2025-48379, CVE-2024-28219, CVE-2023-50447"),
    "python-multipart": ("0.0.20", "CVE-2024-53981, CVE-2024-24762"),
    "starlette": ("0.49.1", "CVE-2025-62727, CVE-2025-54121"),
    "torch": ("2.6", "CVE-2025-32434 (torch.load weights_only)"),
    "h11": ("0.16", "CVE-2025-43859"),
}


@pytest.mark.parametrize("package", sorted(MINIMUMS))
def test_installed_version_has_the_fixes(package: str) -> None:
    minimum, advisories = MINIMUMS[package]
    installed = Version(version(package))
    assert installed >= Version(minimum), f"{package} {installed} < {minimum}: {advisories}"


@pytest.mark.parametrize("package", sorted(MINIMUMS))
def test_pyproject_pins_the_fixes(package: str) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = {re.sub(r"[-_.]+", "-", Requirement(d).name.lower()): Requirement(d) for d in deps}
    assert package in reqs, f"{package} missing from pyproject dependencies"
    floors = [Version(s.version) for s in reqs[package].specifier if s.operator in (">=", "==", "~=")]
    assert floors and max(floors) >= Version(MINIMUMS[package][0]), f"pyproject allows a {package} without the fixes"
