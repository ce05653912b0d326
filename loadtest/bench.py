"""The benchmark: ysync (and with --compare its peers) under four scenarios, one table.

    python -m ysync.loadtest.bench                      # ysync, every scenario, full size
    python -m ysync.loadtest.bench --compare --write-docs docs/benchmarks.md
    python -m ysync.loadtest.bench --quick              # seconds: the CI smoke size

Scenarios (issue 8):

- ``many-rooms``: 1,000 rooms x 5 clients, 1 writer per room at 2 edits/s.
- ``hot-room``: 1 room x 200 clients, 10 writers at 10 edits/s each.
- ``idle``: 5,000 idle connections, one room each: server memory per connection, connect rate.
- ``saturate``: the many-rooms shape with the rate stepped up until p99 > 100 ms or delivery
  < 99.9 %; reports the highest offered edits/s that met both.

The load comes from one Node.js process (``loadtest/js/loadgen.mjs``: yjs + ws), neutral to
every server: writers make real Yjs updates, a sample of receivers ("probes") apply and time
every update, the rest only drain their sockets. Each server starts fresh for each scenario
(and each saturate step) on a free 127.0.0.1 port, pinned with ``taskset`` to CPU 0; the
generator runs on CPU 1 and this process stays off CPU 0 too. Server CPU and peak RSS are
measured over the server's whole process tree from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ysync.loadtest import profile as profiling
from ysync.loadtest.node import JS_DIR, NodeError, ensure_node_modules, node_binary
from ysync.loadtest.procs import ProcessTree, RssSampler, machine_busy_seconds
from ysync.loadtest.servers import (
    PEERS,
    SERVERS,
    YSYNC,
    ServerSpec,
    die_with_parent,
    pinned,
    start_server,
    ysync_at,
)

SCENARIOS = ("many-rooms", "hot-room", "idle", "saturate")
SATURATE_P99_MS = 100.0
SATURATE_DELIVERY = 0.999
# Offered edits/s per writer in saturate; the total is this times the number of rooms.
SATURATE_RATES = (0.1, 0.5, 1, 2, 4, 6, 8, 12, 16, 20)
GENERATOR_BOUND_PCT = 90.0  # generator CPU above this: the result measures the generator


@dataclass(frozen=True)
class Load:
    """One run of the load generator (see loadgen.mjs for the meaning of each field)."""

    rooms: int
    clients_per_room: int
    writers_per_room: int = 0
    probes_per_room: int = 0
    rate: float = 0.0
    payload: int = 100
    warmup: float = 3.0
    duration: float = 15.0
    drain: float = 10.0
    hold: float = 0.0
    connect_concurrency: int = 100
    connect_timeout: float = 30.0

    @property
    def connections(self) -> int:
        return self.rooms * self.clients_per_room

    @property
    def offered_edits_per_s(self) -> float:
        return self.rooms * self.writers_per_room * self.rate

    def deadline(self) -> float:
        """A hard bound on the generator's run, seconds."""
        connect = 60 + self.connections / 20
        return connect + self.hold + self.warmup + self.duration + self.drain + 30


@dataclass(frozen=True)
class Options:
    scale: float = 1.0
    quick: bool = False
    server_cpu: int | None = 0
    load_cpu: int | None = 1
    log_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "ysync-bench")
    max_saturate_steps: int = len(SATURATE_RATES)
    quiet_wait: float = 0.0  # seconds to wait, before each run, for the machine to be idle
    profile_dir: Path | None = None  # py-spy each Python server's measured window into here
    saturate_refine: bool = True  # one more step between the last pass and the first failure


async def wait_for_quiet(max_wait: float, threshold_pct: float = 25.0) -> float:
    """Wait until the machine's CPUs are less than `threshold_pct` busy over one second.

    Returns the busy percentage last seen (other sessions' tests on a shared machine
    skew every figure; the table reports what the window saw anyway).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    while True:
        before, t0 = machine_busy_seconds(), time.monotonic()
        await asyncio.sleep(1.0)
        busy = 100 * (machine_busy_seconds() - before) / (time.monotonic() - t0)
        if busy < threshold_pct or loop.time() >= deadline:
            return busy


def scenario_load(name: str, opts: Options) -> Load:
    s = opts.scale
    timing: dict[str, Any] = {}
    if opts.quick:
        timing = {"warmup": 0.5, "duration": 2.0, "drain": 5.0}
    if name in ("many-rooms", "saturate"):
        rooms = max(2, round(1000 * s))
        return Load(rooms, 5, 1, 1, rate=2.0, **timing)
    if name == "hot-room":
        clients = max(8, round(200 * s))
        writers = max(2, round(10 * s))
        probes = max(2, round(20 * s))
        return Load(1, clients, writers, probes, rate=10.0, **timing)
    if name == "idle":
        return Load(max(20, round(5000 * s)), 1, hold=1.0 if opts.quick else 5.0)
    raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")


# -- one run --------------------------------------------------------------------------------


@dataclass
class RunResult:
    server: str
    load: Load
    result: dict[str, Any] = field(default_factory=dict)  # loadgen.mjs's "result" line
    server_cpu_pct: float | None = None  # over the measurement window (idle: the connect phase)
    generator_cpu_pct: float | None = None
    # Everything else on the machine (other processes, this script) in the same window:
    # a busy neighbour makes the figures noisy.
    other_cpu_pct: float | None = None
    peak_rss_bytes: int = 0
    baseline_rss_bytes: int = 0
    held_rss_bytes: int = 0  # idle: with every connection open
    error: str | None = None

    @property
    def delivery(self) -> float | None:
        expected = self.result.get("expected", 0)
        return self.result["delivered"] / expected if expected else None

    @property
    def p99_ms(self) -> float | None:
        p99: float | None = self.result.get("latency_ms", {}).get("p99")
        return p99

    @property
    def edits_per_s(self) -> float | None:
        sent = self.result.get("edits_in_window")
        return sent / self.load.duration if sent is not None else None

    @property
    def generator_bound(self) -> bool:
        return (self.generator_cpu_pct or 0) > GENERATOR_BOUND_PCT

    def ok(self) -> bool:
        """Met the saturate criteria (p99 and delivery) with every client connected."""
        connect = self.result.get("connect", {})
        return (
            self.error is None
            and connect.get("failed", 1) == 0
            and self.delivery is not None
            and self.delivery >= SATURATE_DELIVERY
            and self.p99_ms is not None
            and self.p99_ms <= SATURATE_P99_MS
        )


async def _start_profiler(
    pid: int, out: Path, seconds: float, opts: Options
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *pinned(profiling.record_command(pid, seconds, out), opts.load_cpu),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish_profiler(spy: asyncio.subprocess.Process, profile: Any) -> None:
    try:
        _, err = await asyncio.wait_for(spy.communicate(), 30)
    except TimeoutError:
        spy.kill()
        await spy.wait()
        return
    out = profile[1]
    if spy.returncode != 0 or not out.exists():
        print(f"  py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
        return
    summary = profiling.summarise(out.read_text(), top=12)
    out.with_suffix(".summary.txt").write_text(summary + "\n")
    print(f"  profile {out}:\n" + "\n".join("    " + line for line in summary.splitlines()))


def _snapshot(tree: ProcessTree, gen_tree: ProcessTree) -> tuple[Any, Any, float, float]:
    return tree.sample(), gen_tree.sample(), machine_busy_seconds(), time.monotonic()


def _cpu_pct(before: float, after: float, seconds: float) -> float | None:
    return round(100 * (after - before) / seconds, 1) if seconds > 0 else None


async def run_load(spec: ServerSpec, load: Load, opts: Options, tag: str) -> RunResult:
    """Start `spec` fresh, run the generator with `load` against it, measure, stop it."""
    run = RunResult(spec.name, load)
    opts.log_dir.mkdir(parents=True, exist_ok=True)
    if opts.quiet_wait > 0:
        await wait_for_quiet(opts.quiet_wait)
    config = {
        **{k: v for k, v in asdict(load).items()},
        "protocol": spec.protocol,
        "room_prefix": f"bench-{tag}",
        "deadline": load.deadline(),
    }
    try:
        async with start_server(
            spec, cpu=opts.server_cpu, log_path=opts.log_dir / f"{spec.name}.log"
        ) as server:
            config["url"] = server.url
            tree = ProcessTree(server.process.pid)
            await asyncio.sleep(0.5)  # let start-up work settle before the baseline
            run.baseline_rss_bytes = tree.sample().rss_bytes
            async with RssSampler(tree) as rss:
                profile = None
                if opts.profile_dir is not None and spec.python:
                    opts.profile_dir.mkdir(parents=True, exist_ok=True)
                    profile = (server.process.pid, opts.profile_dir / f"{tag}.txt")
                await _drive(run, config, tree, opts, profile)
            run.peak_rss_bytes = rss.peak
            if server.process.returncode is not None:
                run.error = f"server exited with code {server.process.returncode}"
    except (OSError, RuntimeError, TimeoutError, NodeError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    return run


async def _drive(
    run: RunResult,
    config: dict[str, Any],
    tree: ProcessTree,
    opts: Options,
    profile: tuple[int, Path] | None = None,
) -> None:
    command = pinned([node_binary(), "loadgen.mjs", json.dumps(config)], opts.load_cpu)
    stderr_path = opts.log_dir / "loadgen.stderr.log"
    with stderr_path.open("ab") as stderr:
        gen = await asyncio.create_subprocess_exec(
            *command,
            cwd=JS_DIR,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            limit=16 * 1024 * 1024,
            preexec_fn=die_with_parent,
        )
    gen_tree = ProcessTree(gen.pid)
    launched = _snapshot(tree, gen_tree)
    spy: asyncio.subprocess.Process | None = None
    window: dict[str, Any] = {}
    try:
        async with asyncio.timeout(config["deadline"] + 30):
            assert gen.stdout is not None
            async for raw in gen.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                event = msg.get("event")
                if event in ("connected", "measure_start", "measure_end"):
                    window[event] = _snapshot(tree, gen_tree)
                if event == "measure_start" and profile is not None:
                    spy = await _start_profiler(*profile, run.load.duration, opts)
                elif event == "result":
                    run.result = msg
                    run.held_rss_bytes = tree.sample().rss_bytes
                elif event == "error":
                    run.error = f"load generator: {msg.get('error')}"
            await gen.wait()
    except TimeoutError:
        run.error = "load generator did not finish in time"
    finally:
        if gen.returncode is None:
            gen.kill()
            await gen.wait()
        if spy is not None:
            await _finish_profiler(spy, profile)
    if "measure_start" in window and "measure_end" in window:
        (s0, g0, m0, t0), (s1, g1, m1, t1) = window["measure_start"], window["measure_end"]
    elif "connected" in window:  # idle: the connect phase is the work
        (s0, g0, m0, t0), (s1, g1, m1, t1) = launched, window["connected"]
    else:
        return
    server, generator = s1.cpu_seconds - s0.cpu_seconds, g1.cpu_seconds - g0.cpu_seconds
    run.server_cpu_pct = _cpu_pct(0, server, t1 - t0)
    run.generator_cpu_pct = _cpu_pct(0, generator, t1 - t0)
    run.other_cpu_pct = _cpu_pct(server + generator, m1 - m0, t1 - t0)
    if not run.result and run.error is None:
        run.error = f"load generator exited with code {gen.returncode} without a result"


# -- scenarios ------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    scenario: str
    server: str
    runs: list[RunResult]
    sustained_edits_per_s: float | None = None  # saturate only
    note: str = ""

    @property
    def main(self) -> RunResult | None:
        """The run the table reports (saturate: the last step that met the criteria)."""
        if self.scenario != "saturate":
            return self.runs[0] if self.runs else None
        passed = [r for r in self.runs if r.ok()]
        return max(passed, key=lambda r: r.load.rate) if passed else None


async def run_scenario(name: str, spec: ServerSpec, opts: Options, log: Any) -> ScenarioResult:
    load = scenario_load(name, opts)
    if name != "saturate":
        run = await run_load(spec, load, opts, f"{name}-{spec.name}")
        log(describe(name, run))
        return ScenarioResult(name, spec.name, [run])
    result = ScenarioResult(name, spec.name, [])

    async def step(rate: float, label: str) -> RunResult:
        run = await run_load(spec, replace(load, rate=rate), opts, f"{name}-{label}-{spec.name}")
        result.runs.append(run)
        log(describe(f"{name} @ {run.load.offered_edits_per_s:g}/s", run))
        return run

    passed = failed = None
    for i, rate in enumerate(SATURATE_RATES[: opts.max_saturate_steps]):
        run = await step(rate, str(i))
        if not run.ok():
            failed = rate
            break
        passed = rate
        result.sustained_edits_per_s = run.load.offered_edits_per_s
        if run.generator_bound:
            result.note = "load generator saturated: the server may sustain more"
            break
    else:
        if result.sustained_edits_per_s is not None:
            result.note = "met the criteria at every step tried"
    # One step halfway between the last pass and the first failure sharpens the figure.
    if opts.saturate_refine and passed is not None and failed is not None:
        middle = round((passed + failed) / 2, 3)
        run = await step(middle, "refine")
        if run.ok():
            result.sustained_edits_per_s = run.load.offered_edits_per_s
    if result.sustained_edits_per_s is None:
        first = SATURATE_RATES[0] * load.rooms * load.writers_per_room
        result.note = f"failed the first step ({first:g} edits/s)"
    return result


def describe(label: str, run: RunResult) -> str:
    if run.error and not run.result:
        return f"  {run.server:>16} {label}: ERROR {run.error}"
    lat = run.result.get("latency_ms", {})
    con = run.result.get("connect", {})
    parts = [f"  {run.server:>16} {label}:"]
    if run.delivery is not None:
        parts.append(f"delivery {100 * run.delivery:.2f}%")
        parts.append(
            "p50/p95/p99/max "
            + "/".join(_fmt(lat.get(k)) for k in ("p50", "p95", "p99", "max"))
            + " ms"
        )
    if run.load.writers_per_room == 0:
        parts.append(f"{_kb_per_conn(run)} KB/conn")
    parts.append(f"connect {con.get('ok')}/{run.load.connections} in {con.get('seconds')} s")
    parts.append(f"server CPU {run.server_cpu_pct}%, peak RSS {run.peak_rss_bytes / 2**20:.0f} MB")
    parts.append(f"generator CPU {run.generator_cpu_pct}%, other {run.other_cpu_pct}%")
    if run.result.get("loop_lag_ms", {}).get("p99") is not None:
        parts.append(f"generator loop lag p99 {run.result['loop_lag_ms']['p99']} ms")
    if run.error:
        parts.append(f"ERROR {run.error}")
    elif run.result.get("unexpected_closes"):
        parts.append(f"closed by server: {run.result['close_codes']}")
    return " ".join(parts)


def _kb_per_conn(run: RunResult) -> str:
    ok = run.result.get("connect", {}).get("ok")
    if not ok or not run.held_rss_bytes:
        return "-"
    return f"{(run.held_rss_bytes - run.baseline_rss_bytes) / ok / 1000:.1f}"


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    scenario: str
    label: str
    higher_is_better: bool
    pick: Any  # ScenarioResult -> float | None


def _lat(key: str) -> Any:
    def pick(s: ScenarioResult) -> float | None:
        run = s.main
        return run.result.get("latency_ms", {}).get(key) if run else None

    return pick


def _delivery(s: ScenarioResult) -> float | None:
    run = s.main
    return 100 * run.delivery if run and run.delivery is not None else None


def _server_cpu(s: ScenarioResult) -> float | None:
    return s.main.server_cpu_pct if s.main else None


def _gen_cpu(s: ScenarioResult) -> float | None:
    return s.main.generator_cpu_pct if s.main else None


def _gen_lag(s: ScenarioResult) -> float | None:
    return s.main.result.get("loop_lag_ms", {}).get("p99") if s.main else None


def _other_cpu(s: ScenarioResult) -> float | None:
    return s.main.other_cpu_pct if s.main else None


def _peak_rss_mb(s: ScenarioResult) -> float | None:
    return s.main.peak_rss_bytes / 2**20 if s.main and s.main.peak_rss_bytes else None


def _kb(s: ScenarioResult) -> float | None:
    run = s.main
    ok: int | None = run.result.get("connect", {}).get("ok") if run else None
    if not run or not ok or not run.held_rss_bytes:
        return None
    return (run.held_rss_bytes - run.baseline_rss_bytes) / ok / 1000


def _connect_rate(s: ScenarioResult) -> float | None:
    run = s.main
    con = run.result.get("connect", {}) if run else {}
    return con["ok"] / con["seconds"] if con.get("seconds") else None


def _connect_p99(s: ScenarioResult) -> float | None:
    return s.main.result.get("connect", {}).get("p99_ms") if s.main else None


def _sustained(s: ScenarioResult) -> float | None:
    return s.sustained_edits_per_s


METRICS = [
    Metric("many-rooms", "delivery %", True, _delivery),
    Metric("many-rooms", "p50 ms", False, _lat("p50")),
    Metric("many-rooms", "p95 ms", False, _lat("p95")),
    Metric("many-rooms", "p99 ms", False, _lat("p99")),
    Metric("many-rooms", "max ms", False, _lat("max")),
    Metric("many-rooms", "server CPU %", False, _server_cpu),
    Metric("many-rooms", "peak RSS MB", False, _peak_rss_mb),
    Metric("many-rooms", "connect p99 ms", False, _connect_p99),
    Metric("many-rooms", "generator CPU %", False, _gen_cpu),
    Metric("many-rooms", "generator loop lag p99 ms", False, _gen_lag),
    Metric("many-rooms", "other CPU % (noise)", False, _other_cpu),
    Metric("hot-room", "delivery %", True, _delivery),
    Metric("hot-room", "p50 ms", False, _lat("p50")),
    Metric("hot-room", "p95 ms", False, _lat("p95")),
    Metric("hot-room", "p99 ms", False, _lat("p99")),
    Metric("hot-room", "max ms", False, _lat("max")),
    Metric("hot-room", "server CPU %", False, _server_cpu),
    Metric("hot-room", "peak RSS MB", False, _peak_rss_mb),
    Metric("hot-room", "generator CPU %", False, _gen_cpu),
    Metric("hot-room", "generator loop lag p99 ms", False, _gen_lag),
    Metric("hot-room", "other CPU % (noise)", False, _other_cpu),
    Metric("idle", "KB per connection", False, _kb),
    Metric("idle", "connects/s", True, _connect_rate),
    Metric("idle", "connect p99 ms", False, _connect_p99),
    Metric("idle", "peak RSS MB", False, _peak_rss_mb),
    Metric("idle", "server CPU % (connecting)", False, _server_cpu),
    Metric("idle", "generator CPU % (connecting)", False, _gen_cpu),
    Metric("saturate", "sustained edits/s", True, _sustained),
    Metric("saturate", "p99 ms at that rate", False, _lat("p99")),
    Metric("saturate", "server CPU % at that rate", False, _server_cpu),
    Metric("saturate", "generator CPU % at that rate", False, _gen_cpu),
    Metric("saturate", "generator loop lag p99 ms at that rate", False, _gen_lag),
    Metric("saturate", "other CPU % at that rate (noise)", False, _other_cpu),
]


def _cell(m: Metric, value: float | None, result: ScenarioResult | None) -> str:
    if value is None and m.pick is _sustained and result is not None and result.runs:
        return f"< {result.runs[0].load.offered_edits_per_s:g}"  # failed the first step
    return _fmt(value)


def table(results: list[ScenarioResult]) -> str:
    """One markdown table: a column per server, then ysync ÷ each peer."""
    servers = list(dict.fromkeys(r.server for r in results))
    by_key = {(r.scenario, r.server): r for r in results}
    peers = [s for s in servers if s != YSYNC.name] if YSYNC.name in servers else []
    head = ["scenario", "metric", *servers, *(f"ysync ÷ {p}" for p in peers)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in METRICS:
        if not any((m.scenario, s) in by_key for s in servers):
            continue
        values = {
            s: m.pick(by_key[m.scenario, s]) if (m.scenario, s) in by_key else None for s in servers
        }
        cells = [m.scenario, f"{m.label} ({'↑' if m.higher_is_better else '↓'})"]
        cells += [_cell(m, values[s], by_key.get((m.scenario, s))) for s in servers]
        for p in peers:
            mine, theirs = values[YSYNC.name], values[p]
            ratio = mine / theirs if mine is not None and theirs else None
            cells.append("-" if ratio is None else f"{ratio:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(results: list[ScenarioResult]) -> list[str]:
    out = []
    for r in results:
        if r.note:
            out.append(f"{r.server} {r.scenario}: {r.note}")
        for run in r.runs:
            if run.error:
                out.append(f"{r.server} {r.scenario}: {run.error}")
            con = run.result.get("connect", {})
            if con.get("failed"):
                out.append(
                    f"{r.server} {r.scenario}: {con['failed']} of {run.load.connections}"
                    " clients failed to connect"
                )
            if run.result.get("unexpected_closes"):
                out.append(
                    f"{r.server} {r.scenario}: the server closed"
                    f" {run.result['unexpected_closes']} clients {run.result['close_codes']}"
                )
            if run.generator_bound and r.scenario != "idle":
                out.append(
                    f"{r.server} {r.scenario}: generator CPU {run.generator_cpu_pct}%"
                    " (the generator, not the server, may be the limit)"
                )
    return list(dict.fromkeys(out))


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    try:
        node = subprocess.run(
            [node_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, NodeError, subprocess.SubprocessError):
        node = "?"
    return {
        "cpu": f"{cpu} x {os.cpu_count()}",
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
    }


def report_markdown(
    results: list[ScenarioResult], info: dict[str, Any], versions: dict[str, str]
) -> str:
    lines = [
        f"Measured {info['date']} on {info['machine']['cpu']}, {info['machine']['memory']},"
        f" Linux {info['machine']['kernel']}, Python {info['machine']['python']},"
        f" Node {info['machine']['node']}; {info['pinning']}.",
        "",
        "Servers: " + ", ".join(f"{name} {v}" for name, v in versions.items()) + ".",
        "",
        f"Command: `{info['command']}`",
        "",
        table(results),
    ]
    extra = notes(results)
    if extra:
        lines += ["", "Notes from this run:", ""] + [f"- {n}" for n in extra]
    return "\n".join(lines) + "\n"


MARK_START = "<!-- bench:results:start -->"
MARK_END = "<!-- bench:results:end -->"


def write_docs(path: Path, markdown: str) -> None:
    """Replace the text between the result markers in `path` (append them if missing)."""
    text = path.read_text() if path.exists() else ""
    block = f"{MARK_START}\n{markdown}{MARK_END}"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


# -- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ysync.loadtest.bench",
        description="Benchmark ysync (and with --compare its peers) under the issue-8 scenarios.",
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, "all"],
        help="scenario to run (repeatable; default all)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="also run hocuspocus, y-websocket and pycrdt-websocket",
    )
    p.add_argument(
        "--dialect",
        choices=("y-websocket", "hocuspocus"),
        help="the protocol every client speaks (default: each server's own); hocuspocus "
        "runs the servers that speak it, ysync and hocuspocus",
    )
    p.add_argument(
        "--server",
        action="append",
        choices=sorted(SERVERS),
        help="server to run (repeatable; default ysync, or all with --compare)",
    )
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply room and client counts (default 1)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke size: --scale 0.02, 2 s windows, 2 saturate steps",
    )
    p.add_argument(
        "--server-cpu", type=int, default=0, help="CPU for the server (taskset; default 0)"
    )
    p.add_argument("--load-cpu", type=int, default=1, help="CPU for the load generator (default 1)")
    p.add_argument(
        "--ysync-rev",
        metavar="REV",
        help="benchmark ysync as committed at REV (e.g. HEAD) instead of the working tree",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument(
        "--saturate-steps",
        type=int,
        default=len(SATURATE_RATES),
        help="at most this many saturate steps",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each run, wait up to this many seconds for the machine to be idle",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy each Python server during each measured window; stacks and summaries to DIR",
    )
    p.add_argument("--json", type=Path, help="write every run's raw results here")
    p.add_argument(
        "--write-docs",
        type=Path,
        help="put the table in this markdown file (between its result markers)",
    )
    p.add_argument(
        "--log-dir", type=Path, help="server and generator logs (default $TMPDIR/ysync-bench)"
    )
    return p


async def _main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    scenarios = [
        s for s in SCENARIOS if not args.scenario or s in args.scenario or "all" in args.scenario
    ]
    names = args.server or (
        [YSYNC.name] + [p.name for p in PEERS] if args.compare else [YSYNC.name]
    )
    specs = [SERVERS[n] for n in names]
    if args.dialect:
        specs = [replace(s, protocol=args.dialect) for s in specs if args.dialect in s.dialects]
    if args.ysync_rev:
        specs = [ysync_at(args.ysync_rev) if s.name == YSYNC.name else s for s in specs]
    opts = Options(
        scale=0.02 if args.quick and args.scale == 1.0 else args.scale,
        quick=args.quick,
        server_cpu=None if args.no_pin else args.server_cpu,
        load_cpu=None if args.no_pin else args.load_cpu,
        max_saturate_steps=2 if args.quick else args.saturate_steps,
        saturate_refine=not args.quick,
        quiet_wait=args.quiet_wait,
        profile_dir=args.profile,
        **({"log_dir": args.log_dir} if args.log_dir else {}),
    )
    if opts.load_cpu is not None:  # keep this process off the server's CPU as well
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {opts.load_cpu})
    ensure_node_modules(JS_DIR)
    for spec in specs:
        spec.prepare()
    versions = {spec.name: spec.version() for spec in specs}
    print("servers: " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
    results: list[ScenarioResult] = []
    for name in scenarios:
        load = scenario_load(name, opts)
        print(f"{name}: {load.connections} connections in {load.rooms} rooms", flush=True)
        for spec in specs:
            results.append(
                await run_scenario(name, spec, opts, lambda line: print(line, flush=True))
            )
    pinning = (
        f"servers pinned to CPU {opts.server_cpu}, load generator to CPU {opts.load_cpu} (taskset)"
        if opts.server_cpu is not None
        else "no CPU pinning"
    )
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "pinning": pinning,
        "command": "python -m ysync.loadtest.bench " + " ".join(argv),
    }
    markdown = report_markdown(results, info, versions)
    print()
    print(markdown)
    if args.json:
        raw = {"info": info, "versions": versions, "results": [_jsonable(r) for r in results]}
        args.json.write_text(json.dumps(raw, indent=1, default=str) + "\n")
    if args.write_docs:
        write_docs(args.write_docs, markdown)
    return 0


def _jsonable(r: ScenarioResult) -> dict[str, Any]:
    return {
        "scenario": r.scenario,
        "server": r.server,
        "sustained_edits_per_s": r.sustained_edits_per_s,
        "note": r.note,
        "runs": [
            {
                **asdict(run),
                "delivery": run.delivery,
                "ok": run.ok(),
            }
            for run in r.runs
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.scale <= 0 or not math.isfinite(args.scale):
        _parser().error("--scale must be a positive number")
    try:
        return asyncio.run(_main(args, argv))
    except NodeError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
