"""The `maskrcnn` dispatcher: help, unknown commands, and lazy imports of the packages behind each command."""

from __future__ import annotations

import subprocess
import sys

import maskrcnn_cli


def test_help_lists_every_command_on_stdout(capsys) -> None:
    assert maskrcnn_cli.main(["--help"]) == 0
    out = capsys.readouterr().out  # `maskrcnn --help | less` works
    for name in maskrcnn_cli.COMMANDS:
        assert name in out


def test_unknown_or_missing_command_is_a_usage_error(capsys) -> None:
    assert maskrcnn_cli.main(["frobnicate"]) == 2
    assert maskrcnn_cli.main([]) == 2
    assert "usage: maskrcnn COMMAND" in capsys.readouterr().err


def test_help_imports_neither_torch_nor_the_packages() -> None:
    code = (
        "import sys, maskrcnn_cli; maskrcnn_cli.main(['--help']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'service', 'trainer', 'models')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
