"""Smoke run of the benchmark: every scenario against ysync at a tiny size.

Checks that the report is produced and that every edit (and cursor move) reached every
probe; never a pass/fail on speed (benchmarks are not timed tests). One `--quick` run of
every scenario serves every test here but the dialect one (about 60 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ysync.loadtest.bench import SCENARIOS
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
        timeout=240,
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


# durable-postgres runs only with --postgres URL.
EVERY_SCENARIO = [s for s in SCENARIOS if s != "durable-postgres"]


def test_report_has_every_scenario(quick_run: tuple[str, dict[str, Any]]) -> None:
    stdout, report = quick_run
    assert "| scenario | metric | ysync |" in stdout
    for scenario in EVERY_SCENARIO:
        assert f"| {scenario} |" in stdout
    assert sorted(r["scenario"] for r in report["results"]) == sorted(EVERY_SCENARIO)
    assert report["info"]["machine"]["cpu"]


@pytest.mark.parametrize("scenario", ["many-rooms", "hot-room", "durable", "cluster"])
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


def _check_every_move_delivered(run: dict[str, Any]) -> None:
    _check_full_delivery(run)  # the writers' edits, among the cursors
    cursors = run["result"]["cursors"]
    assert cursors["moves_in_window"] > 0
    assert cursors["expected"] > 0
    assert cursors["delivered"] == cursors["expected"], cursors
    assert cursors["latency_ms"]["count"] == cursors["delivered"]
    assert run["result"]["window_frames_in"] > 0 and run["result"]["window_bytes_in"] > 0


def test_every_cursor_move_reaches_every_probe(quick_run: tuple[str, dict[str, Any]]) -> None:
    [run] = _runs(quick_run[1], "cursors")
    _check_every_move_delivered(run)


def test_cursors_saturate_steps_up_the_cursor_rate(quick_run: tuple[str, dict[str, Any]]) -> None:
    runs = _runs(quick_run[1], "cursors-saturate")
    rates = [r["load"]["cursor_rate"] for r in runs]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    for run in runs:
        _check_every_move_delivered(run)


def test_durable_runs_commit_to_sqlite(quick_run: tuple[str, dict[str, Any]]) -> None:
    for scenario in ("durable", "durable-saturate"):
        for run in _runs(quick_run[1], scenario):
            _check_full_delivery(run)
            # Read from ysync's /metrics: there were group commits.
            assert run["commit_p99_ms"] is not None and run["commit_p99_ms"] > 0


def test_cold_start_gives_every_client_its_stored_room(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    [run] = _runs(quick_run[1], "cold-start")
    assert run["error"] is None, run["error"]
    res, load = run["result"], run["load"]
    assert res["connect"] == res["connect"] | {"ok": load["rooms"] * 5, "failed": 0}
    assert res["unexpected_closes"] == 0
    # Every client's SyncStep2 carried its room's seeded content back from the store.
    assert res["sync_bytes_min"] >= load["seed_bytes"]
    assert run["startup_s"] is not None


def test_big_doc_times_joins_and_edits(quick_run: tuple[str, dict[str, Any]]) -> None:
    big, small = _runs(quick_run[1], "big-doc")
    for run in (big, small):
        _check_full_delivery(run)
    assert big["load"]["seed_elements"] > 0 and small["load"]["seed_elements"] == 0
    assert len(big["result"]["joins_ms"]) == 3
    # Each joining client was sent the whole document: at least some bytes per element.
    assert min(big["result"]["joins_sync_bytes"]) > 10 * big["load"]["seed_elements"]
    assert big["seeded_rss_bytes"] > 0


def test_idle_10k_holds_every_connection(quick_run: tuple[str, dict[str, Any]]) -> None:
    [run] = _runs(quick_run[1], "idle-10k")
    assert run["error"] is None, run["error"]
    connect = run["result"]["connect"]
    assert connect["ok"] == run["load"]["rooms"] * 5 and connect["failed"] == 0
    assert run["hold_cpu_pct"] is not None and run["held_rss_bytes"] > 0
