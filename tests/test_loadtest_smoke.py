"""Smoke run of the benchmark: every scenario against ysync at a tiny size.

Checks that the report is produced and that every edit reached every probe; never
a pass/fail on speed (benchmarks are not timed tests). One `--quick` run of all four
scenarios serves every test here (about 20 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ysync.loadtest.node import JS_DIR, ensure_node_modules

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    return quick_bench(tmp_path_factory.mktemp("bench"))


def quick_bench(out: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """`bench --quick ARGS`: its output and its JSON report."""
    ensure_node_modules(JS_DIR)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "ysync.loadtest.bench", "--quick", *args),
            *("--json", str(out / "bench.json"), "--log-dir", str(out / "logs")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads((out / "bench.json").read_text())


def _runs(report: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    [result] = [r for r in report["results"] if r["scenario"] == scenario]
    assert result["server"] == "ysync"
    assert result["runs"], result
    return result["runs"]


def _check_full_delivery(run: dict[str, Any]) -> None:
    assert run["error"] is None, run["error"]
    res = run["result"]
    assert res["connect"]["failed"] == 0, res["errors"]
    assert res["unexpected_closes"] == 0, res["close_codes"]
    assert res["expected"] > 0
    assert res["delivered"] == res["expected"], res
    assert run["delivery"] == 1.0
    assert res["latency_ms"]["count"] == res["delivered"]
    assert run["server_cpu_pct"] is not None
    assert run["peak_rss_bytes"] > 0


def test_report_has_every_scenario(quick_run: tuple[str, dict[str, Any]]) -> None:
    stdout, report = quick_run
    assert "| scenario | metric | ysync |" in stdout
    for scenario in ("many-rooms", "hot-room", "idle", "saturate"):
        assert f"| {scenario} |" in stdout
    assert {r["scenario"] for r in report["results"]} == {
        "many-rooms",
        "hot-room",
        "idle",
        "saturate",
    }
    assert report["info"]["machine"]["cpu"]


@pytest.mark.parametrize("scenario", ["many-rooms", "hot-room"])
def test_every_edit_reaches_every_probe(
    quick_run: tuple[str, dict[str, Any]], scenario: str
) -> None:
    [run] = _runs(quick_run[1], scenario)
    _check_full_delivery(run)


def test_idle_measures_memory_per_connection(quick_run: tuple[str, dict[str, Any]]) -> None:
    [run] = _runs(quick_run[1], "idle")
    assert run["error"] is None, run["error"]
    connect = run["result"]["connect"]
    assert connect["ok"] == run["load"]["rooms"] and connect["failed"] == 0
    assert run["held_rss_bytes"] > 0 and run["baseline_rss_bytes"] > 0


def test_saturate_steps_deliver_everything(quick_run: tuple[str, dict[str, Any]]) -> None:
    runs = _runs(quick_run[1], "saturate")
    rates = [r["load"]["rate"] for r in runs]
    assert rates == sorted(rates)
    for run in runs:
        _check_full_delivery(run)


def test_the_hocuspocus_dialect_delivers_every_edit(tmp_path: Path) -> None:
    # The load generator speaks Hocuspocus to ysync (the root path): a document per room,
    # Auth first, SyncStatus acks on the way back.
    args = ("--dialect", "hocuspocus", "--scenario", "many-rooms", "--scenario", "hot-room")
    _, report = quick_bench(tmp_path, *args)
    for scenario in ("many-rooms", "hot-room"):
        [run] = _runs(report, scenario)
        _check_full_delivery(run)
