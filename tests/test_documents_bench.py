"""tests/bench/documents.py --quick runs and prints every figure it measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "bench" / "documents.py"


def test_the_documents_benchmark_runs_quick() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for figure in ("GET /doc JSON", "GET /doc update", "applies/s", "restore", "deliveries/s"):
        assert figure in done.stdout, done.stdout
    assert "5/5 delivered" in done.stdout
