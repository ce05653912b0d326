"""The locust harness: its protocol client against a real ysync, and a short headless run."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ysync.loadtest.protocol import YClient
from ysync.loadtest.servers import free_port

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "ysync", "serve", "--store", "memory://"),
            *("--port", str(port), "--log-level", "warning"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "ysync exited before listening"
                assert time.monotonic() < deadline, "ysync not listening after 30 s"
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_client_times_an_edit_from_another_client(server_url: str) -> None:
    reports: list[tuple[str, str, float, BaseException | None]] = []

    def report(who: str):  # type: ignore[no-untyped-def]
        return lambda name, ms, length, exc: reports.append((who, name, ms, exc))

    writer = YClient(server_url, "locust-test/a", report("writer"))
    reader = YClient(server_url, "locust-test/a", report("reader"))
    writer.connect()
    reader.connect()
    try:
        writer.set_awareness({"user": {"name": "w"}})
        for _ in range(3):
            writer.edit(payload_bytes=10)
        deadline = time.monotonic() + 10
        while sum(1 for r in reports if r[:2] == ("reader", "delivery")) < 3:
            assert time.monotonic() < deadline, reports
            reader.receive(timeout=0.5)
    finally:
        writer.close()
        reader.close()
    assert ("writer", "connect") in {r[:2] for r in reports}
    assert all(exc is None for *_, exc in reports), reports
    delays = [ms for who, name, ms, _ in reports if (who, name) == ("reader", "delivery")]
    assert len(delays) == 3 and all(0 <= ms < 10_000 for ms in delays)
    assert len(reader.edits) == 3  # the reader's document holds the real Yjs edits


def test_headless_locust_run_reports_delivery(server_url: str, tmp_path: Path) -> None:
    # Never import locust here: it monkey-patches gevent into this process, after
    # which later tests' subprocesses hang. It runs in its own process below; the
    # `test` extra installs it, so a missing locust fails this test.
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py")),
            *("--headless", "-u", "6", "-r", "6", "-t", "4s", "--host", server_url),
            *("--rooms", "2", "--users-per-room", "3", "--edit-rate", "5"),
            *("--room-prefix", "locust-smoke", "--csv", str(tmp_path / "run"), "--only-summary"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["connect"]["Request Count"]) == 6
    assert int(rows["edit"]["Request Count"]) > 0
    # Two receivers per room see each edit.
    assert int(rows["delivery"]["Request Count"]) > 0
    for name in ("connect", "edit", "delivery"):
        assert int(rows[name]["Failure Count"]) == 0, proc.stdout + proc.stderr
