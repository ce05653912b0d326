"""The fault suite's --quick run (loadtest/chaos.py): 3 nodes, real Redis, real
y-websocket writers, node/writer/Redis kills, a pause and a rolling restart; no
due edit may be missing from the store afterwards."""

from __future__ import annotations

import subprocess
import sys


def test_quick_chaos_run_loses_no_edit() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ysync.loadtest.chaos", "--quick", "--store", "sqlite"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, summary
    assert " lost=0 " in summary and " divergent=0 " in summary and " stranded=0 " in summary
    assert "node kills" in summary
