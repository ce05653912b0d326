"""The persistence benchmark runs end to end (tiny sizes) and prints its tables.

No speed is asserted: figures on a shared CI machine mean little. The real run
is `python -m ysync.loadtest.bench_persistence`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_persistence_benchmark_runs_and_prints_its_tables(postgres_url: str) -> None:
    command = [
        sys.executable, "-m", "ysync.loadtest.bench_persistence",
        "--scale", "0.01", "--no-autodetect", "--store", postgres_url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=100, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for title in (
        "1. Appends through GroupCommit",
        "2. Fan-out latency",
        "3. Room load",
        "4. Bytes on disk per byte of document",
    ):
        assert title in out, out
    for row in ("sqlite ", "postgresql ", "memory "):
        assert row in out, out
    assert "appends/s" in out and "p99" in out
