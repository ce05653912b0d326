"""Style and architecture checks, so the one test command covers them too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


def check(*command: str) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint() -> None:
    check(str(BIN / "ruff"), "check", ".")


def test_ruff_format() -> None:
    check(str(BIN / "ruff"), "format", "--check", ".")


def test_layers_point_one_way() -> None:
    # server -> presence -> rooms; nothing imports the server; the pure core imports
    # no asyncio, sockets, drivers or web frameworks (see pyproject.toml).
    check(str(BIN / "lint-imports"))


def test_types_check_strictly(tmp_path: Path) -> None:
    # The repository root is the `ysync` package (pyproject's package-dir), so mypy
    # is pointed at a directory where `ysync` is a link to it.
    (tmp_path / "ysync").symlink_to(ROOT, target_is_directory=True)
    result = subprocess.run(
        [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), "-p", "ysync"],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
