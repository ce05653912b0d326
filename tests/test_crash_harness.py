"""The crash fuzzer's smoke run (tests/fuzz/crash_harness.py --quick): 1,000 hostile
inputs over four families against a real server process, zero process crashes.
The same run against main before issue 13 crashed the process 10 times in 2,000 inputs (SIGSEGV)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz import crash_harness


def test_quick_crash_fuzz_run_has_no_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = crash_harness.main(["--quick", "--log", str(tmp_path / "ysync.log")])
    out = capsys.readouterr().out
    assert "process crashes: 0" in out and "hangs: 0" in out, out
    assert status == 0
