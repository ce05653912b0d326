"""The benchmark's bookkeeping without servers: the saturate ladder and the table."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from ysync.loadtest import bench
from ysync.loadtest.bench import Load, Options, RunResult, ScenarioResult
from ysync.loadtest.servers import YSYNC


def _result(load: Load, p99: float, delivered: int = 100) -> dict[str, Any]:
    return {
        "connect": {"ok": load.connections, "failed": 0, "seconds": 1.0, "p99_ms": 5.0},
        "expected": 100,
        "delivered": delivered,
        "edits_in_window": round(load.offered_edits_per_s * load.duration),
        "latency_ms": {"count": delivered, "p50": 1.0, "p95": 2.0, "p99": p99, "max": p99},
    }


def test_saturate_steps_up_until_p99_fails_then_refines(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 3  # edits/s per writer this fake server sustains
    seen: list[float] = []

    async def fake_run_load(spec: Any, load: Load, opts: Options, tag: str) -> RunResult:
        seen.append(load.rate)
        return RunResult(spec.name, load, _result(load, 10.0 if load.rate <= limit else 150.0))

    monkeypatch.setattr(bench, "run_load", fake_run_load)
    result = asyncio.run(bench.run_scenario("saturate", YSYNC, Options(), lambda line: None))
    # 0.1 ... 2 pass, 4 fails, then one step halfway: 3 passes.
    assert seen == [0.1, 0.5, 1, 2, 4, 3]
    assert result.sustained_edits_per_s == 3000
    assert result.main is not None and result.main.load.rate == 3


def test_saturate_counts_lost_edits_as_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_run_load(spec: Any, load: Load, opts: Options, tag: str) -> RunResult:
        return RunResult(spec.name, load, _result(load, 1.0, delivered=99))  # 99 % < 99.9 %

    monkeypatch.setattr(bench, "run_load", fake_run_load)
    result = asyncio.run(bench.run_scenario("saturate", YSYNC, Options(), lambda line: None))
    assert result.sustained_edits_per_s is None
    assert "failed the first step (100 edits/s)" in result.note
    assert "| saturate | sustained edits/s (↑) | < 100 |" in bench.table([result])


def test_table_has_ratios_to_each_peer() -> None:
    load = bench.scenario_load("hot-room", Options())
    results = [
        ScenarioResult("hot-room", name, [RunResult(name, load, _result(load, p99))])
        for name, p99 in (("ysync", 10.0), ("y-websocket", 40.0))
    ]
    lines = bench.table(results).splitlines()
    assert lines[0] == "| scenario | metric | ysync | y-websocket | ysync ÷ y-websocket |"
    [p99_row] = [line for line in lines if "| p99 ms" in line]
    assert p99_row == "| hot-room | p99 ms (↓) | 10.0 | 40.0 | 0.25 |"


def test_scenario_sizes_follow_the_issue() -> None:
    many = bench.scenario_load("many-rooms", Options())
    assert (many.rooms, many.clients_per_room, many.writers_per_room, many.rate) == (1000, 5, 1, 2)
    hot = bench.scenario_load("hot-room", Options())
    assert (hot.rooms, hot.clients_per_room, hot.writers_per_room, hot.rate) == (1, 200, 10, 10)
    idle = bench.scenario_load("idle", Options())
    assert (idle.rooms, idle.clients_per_room, idle.writers_per_room) == (5000, 1, 0)
    quick = bench.scenario_load("many-rooms", Options(scale=0.02, quick=True))
    assert quick.rooms == 20 and quick.duration == 2.0


def test_the_server_is_pinned_to_its_cpu_after_the_benchmark_pins_itself_elsewhere() -> None:
    # The benchmark moves itself onto the generator's CPU before starting servers; the
    # server's CPU must still be pinned (it used to inherit the generator's CPU instead).
    script = (
        "import os, json; from ysync.loadtest.servers import pinned; "
        "cpus = sorted(os.sched_getaffinity(0)); os.sched_setaffinity(0, {cpus[-1]}); "
        "print(json.dumps([cpus, pinned(['server'], cpus[0])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    cpus, command = json.loads(out)
    if shutil.which("taskset") is None:
        assert command == ["server"]
    else:
        assert command == ["taskset", "-c", str(cpus[0]), "server"]


def test_cursors_saturate_steps_the_cursor_rate_until_p99_passes_16_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[float] = []

    async def fake_run_load(spec: Any, load: Load, opts: Options, tag: str) -> RunResult:
        seen.append(load.cursor_rate)
        p99 = 10.0 if load.cursor_rate <= 20 else 30.0  # this fake server fails past 20 Hz
        result = _result(load, 1.0) | {
            "cursors": {"expected": 10, "delivered": 10, "on_time": 10, "latency_ms": {"p99": p99}}
        }
        return RunResult(spec.name, load, result)

    monkeypatch.setattr(bench, "run_load", fake_run_load)
    opts = Options()
    result = asyncio.run(bench.run_scenario("cursors-saturate", YSYNC, opts, lambda line: None))
    assert seen == [1, 2, 5, 10, 20, 30, 25]
    load = bench.scenario_load("cursors-saturate", opts)
    assert result.sustained_edits_per_s == 20 * load.connections  # moves/s offered
    assert result.main is not None and result.main.load.cursor_rate == 20
    assert "| cursors-saturate | sustained cursor moves/s (↑) |" in bench.table([result])
