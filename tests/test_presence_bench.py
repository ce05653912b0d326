"""The presence benchmark (tests/bench/presence.py) runs end to end at smoke size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "bench" / "presence.py"


def test_the_presence_benchmark_runs_quick() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "events/s delivered; 20/20 got all" in done.stdout
    assert "node B (from Redis)" in done.stdout
