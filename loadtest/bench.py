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

Scenarios (issue 21):

- ``cursors``: 20 rooms x 50 users, each moving its cursor (an awareness state with its
  send time) at 30 Hz, plus 1 writer per room at 2 edits/s: cursor latency at the probes,
  the share of moves whose latest state reached every probe within 100 ms, frames and bytes
  out per second.
- ``cursors-saturate``: that shape with the cursor rate stepped up until cursor p99 > 16 ms
  (or < 99.9 % of moves delivered); reports the highest cursor moves/s that met both.
- ``durable``, ``durable-saturate``: many-rooms and saturate with each server's usual store in
  a fresh directory per run (ysync SQLite, y-websocket y-leveldb, Hocuspocus SQLite), plus
  ysync's commit latency (its flush window + the group commit's p99, from /metrics).
  ``--postgres URL`` adds ``durable-postgres`` (ysync on PostgreSQL, a fresh database).
- ``cold-start``: 1,000 rooms of ~100 KB each written and stored, the server stopped and
  started again on the same store, then 5,000 clients (5 per room) connect at once: time
  until every client is synced, peak RSS, errors.
- ``big-doc``: one room seeded with 100,000 canvas elements (a Y.Map of Y.Maps, ~10 MB):
  time for a new client to sync, server RSS for the loaded document, and edit latency for
  20 writers against the same load on an empty room.
- ``idle-10k``: 10,000 idle connections in 2,000 rooms: memory per connection, connect rate,
  and the server's CPU while they only keep alive.
- ``cluster``: two nodes of the server and a redis-server (all on the server's CPU), writers
  on node A, probes and the rest on node B: cross-node latency and delivery.

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
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ysync.loadtest import profile as profiling
from ysync.loadtest.bench_persistence import postgres_under_test
from ysync.loadtest.node import JS_DIR, NodeError, ensure_node_modules, node_binary
from ysync.loadtest.procs import ProcessTree, RssSampler, Sample, machine_busy_seconds
from ysync.loadtest.servers import (
    PEERS,
    SERVERS,
    YSYNC,
    RunningServer,
    ServerSpec,
    cluster_nodes,
    die_with_parent,
    durable,
    pinned,
    start_redis,
    start_server,
    ysync_at,
)

SCENARIOS = (
    "many-rooms",
    "hot-room",
    "idle",
    "saturate",
    "cursors",
    "cursors-saturate",
    "durable",
    "durable-saturate",
    "durable-postgres",
    "cold-start",
    "big-doc",
    "idle-10k",
    "cluster",
)
LADDERS = ("saturate", "cursors-saturate", "durable-saturate")
STORED = ("durable", "durable-saturate", "durable-postgres")  # a fresh store for every run
CURSOR_P99_MS = 16.0
# Cursor moves per second per user in cursors-saturate.
CURSOR_RATES = (1, 2, 5, 10, 20, 30, 45, 60, 90)
FLUSH_WINDOW_MS = 50.0  # ysync's default group-commit window
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
    cursor_rate: float = 0.0  # awareness moves per second per client
    all_at_once: bool = False
    seed_bytes: int = 0
    seed_elements: int = 0
    seed_only: bool = False
    seed_settle: float = 2.0
    joins_after_seed: int = 0
    synced_bytes: int = 0  # a reader is synced once it received this many bytes too

    @property
    def connections(self) -> int:
        return self.rooms * self.clients_per_room

    @property
    def offered_edits_per_s(self) -> float:
        return self.rooms * self.writers_per_room * self.rate

    @property
    def offered_moves_per_s(self) -> float:
        return self.connections * self.cursor_rate

    def deadline(self) -> float:
        """A hard bound on the generator's run, seconds."""
        connect = 60 + self.connections / 20
        seeding = 120 + self.seed_settle if self.seed_bytes or self.seed_elements else 0
        return connect + seeding + self.hold + self.warmup + self.duration + self.drain + 30


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
    postgres: str | None = None  # durable-postgres: an admin URL (a database per run is made)
    window: float | None = None  # seconds of each measurement window (default 15; quick 2)


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
    if opts.window is not None:
        timing = {"warmup": min(3.0, opts.window / 2), "duration": opts.window, "drain": 5.0}
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
    return _issue21_load(name, opts, timing)


def _issue21_load(name: str, opts: Options, timing: dict[str, Any]) -> Load:
    s = opts.scale
    if name in ("cursors", "cursors-saturate"):
        # The room stays at canvas size (50 users) when scaled: its fan-out is the point.
        users = 5 if opts.quick else 50
        return Load(max(2, round(20 * s)), users, 1, 2, rate=2.0, cursor_rate=30.0, **timing)
    if name in STORED:
        return scenario_load("many-rooms", opts)
    if name == "cold-start":
        rooms = max(2, round(1000 * s))
        return Load(
            rooms,
            5,
            seed_bytes=10_000 if opts.quick else 100_000,
            all_at_once=True,
            connect_concurrency=rooms * 5,
            connect_timeout=120.0,
            seed_settle=5.0,  # Hocuspocus stores 2 s after the last change
        )
    if name == "big-doc":
        # One room: its size is the point, so --scale leaves it alone (--quick does not).
        elements = 2_000 if opts.quick else 100_000
        return Load(1, 22, 20, 2, rate=2.0, seed_elements=elements, joins_after_seed=3, **timing)
    if name == "idle-10k":
        return Load(max(20, round(2000 * s)), 5, hold=1.0 if opts.quick else 10.0)
    if name == "cluster":
        return Load(max(2, round(1000 * s)), 5, 1, 1, rate=2.0, **timing)
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
    seeded_rss_bytes: int = 0  # big-doc: once the document is in
    hold_cpu_pct: float | None = None  # idle-10k: while the connections only keep alive
    commit_p99_ms: float | None = None  # ysync durable: flush window + group-commit p99
    startup_s: float | None = None  # cold-start: from exec until the server listens
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
    def cursors(self) -> dict[str, Any]:
        return self.result.get("cursors") or {}

    @property
    def cursor_delivery(self) -> float | None:
        expected = self.cursors.get("expected", 0)
        return self.cursors["delivered"] / expected if expected else None

    @property
    def cursor_p99_ms(self) -> float | None:
        p99: float | None = self.cursors.get("latency_ms", {}).get("p99")
        return p99

    def cursors_ok(self) -> bool:
        """Met the cursors-saturate criteria (cursor p99 and delivery)."""
        connect = self.result.get("connect", {})
        return (
            self.error is None
            and connect.get("failed", 1) == 0
            and self.cursor_delivery is not None
            and self.cursor_delivery >= SATURATE_DELIVERY
            and self.cursor_p99_ms is not None
            and self.cursor_p99_ms <= CURSOR_P99_MS
        )

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


class Trees(ProcessTree):
    """Several process trees measured as one (a cluster's nodes)."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(pids[0])
        self.trees = [ProcessTree(pid) for pid in pids]

    def sample(self) -> Sample:
        samples = [t.sample() for t in self.trees]
        return Sample(sum(x.cpu_seconds for x in samples), sum(x.rss_bytes for x in samples))


@contextlib.asynccontextmanager
async def _launch(
    spec: ServerSpec, opts: Options, cluster: bool
) -> AsyncIterator[list[RunningServer]]:
    """`spec` started once, or (cluster) as two nodes over a fresh redis-server."""
    log = opts.log_dir / f"{spec.name}.log"
    if not cluster:
        async with start_server(spec, cpu=opts.server_cpu, log_path=log) as server:
            yield [server]
        return
    async with (
        start_redis(cpu=opts.server_cpu, log_path=opts.log_dir / "redis.log") as port,
        _scratch_dir() as directory,
    ):
        node = cluster_nodes(spec, port, directory)
        if node is None:
            raise RuntimeError(f"{spec.name} has no cluster mode here")
        async with (
            start_server(node, cpu=opts.server_cpu, log_path=log) as a,
            start_server(node, cpu=opts.server_cpu, log_path=log) as b,
        ):
            yield [a, b]


async def run_load(
    spec: ServerSpec,
    load: Load,
    opts: Options,
    tag: str,
    *,
    cluster: bool = False,
    rooms_of: str | None = None,
) -> RunResult:
    """Start `spec` fresh, run the generator with `load` against it, measure, stop it.

    `rooms_of`: use the rooms of the run tagged so (cold start: the rooms it filled)."""
    run = RunResult(spec.name, load)
    opts.log_dir.mkdir(parents=True, exist_ok=True)
    if opts.quiet_wait > 0:
        await wait_for_quiet(opts.quiet_wait)
    config = {
        **{k: v for k, v in asdict(load).items()},
        "protocol": spec.protocol,
        "room_prefix": f"bench-{rooms_of or tag}",
        "deadline": load.deadline(),
    }
    try:
        launched = time.monotonic()
        async with _launch(spec, opts, cluster) as servers:
            run.startup_s = round(time.monotonic() - launched, 3)
            config["url"] = servers[0].url
            if cluster:
                config["url_b"] = servers[1].url
            # A cluster's redis-server is not counted: only the nodes' CPU and memory.
            tree = Trees([s.process.pid for s in servers])
            await asyncio.sleep(0.5)  # let start-up work settle before the baseline
            run.baseline_rss_bytes = tree.sample().rss_bytes
            async with RssSampler(tree) as rss:
                profile = None
                if opts.profile_dir is not None and spec.python:
                    opts.profile_dir.mkdir(parents=True, exist_ok=True)
                    profile = (servers[0].process.pid, opts.profile_dir / f"{tag}.txt")
                await _drive(run, config, tree, opts, profile)
            run.peak_rss_bytes = rss.peak
            if spec.name == YSYNC.name:
                run.commit_p99_ms = await _commit_p99_ms(servers[0].port)
            for server in servers:
                if server.process.returncode is not None:
                    run.error = f"server exited with code {server.process.returncode}"
    except (OSError, RuntimeError, TimeoutError, NodeError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    return run


async def _commit_p99_ms(port: int) -> float | None:
    """ysync's flush window plus the p99 of its group commits (a histogram bucket's bound),
    from /metrics: an update waits at most the window, then one commit. None: no commits."""
    try:
        text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return None
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith("ysync_store_flush_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((math.inf if le == "+Inf" else float(le), float(line.split()[-1])))
    total = max((count for _, count in buckets), default=0.0)
    if total <= 0:
        return None
    bound = next(b for b, count in sorted(buckets) if count >= 0.99 * total)
    return FLUSH_WINDOW_MS + 1000 * bound if math.isfinite(bound) else None


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


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
                if event in ("connected", "measure_start", "measure_end", "hold_start", "hold_end"):
                    window[event] = _snapshot(tree, gen_tree)
                if event == "seeded":
                    run.seeded_rss_bytes = tree.sample().rss_bytes
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
    _window_cpu(run, window, launched)
    if not run.result and run.error is None:
        run.error = f"load generator exited with code {gen.returncode} without a result"


def _window_cpu(run: RunResult, window: dict[str, Any], launched: Any) -> None:
    """Server, generator and everyone else's CPU over the measured window (idle: connecting)."""
    if "hold_start" in window and "hold_end" in window:
        (s0, _, _, t0), (s1, _, _, t1) = window["hold_start"], window["hold_end"]
        run.hold_cpu_pct = _cpu_pct(s0.cpu_seconds, s1.cpu_seconds, t1 - t0)
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


# -- scenarios ------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    scenario: str
    server: str
    runs: list[RunResult]
    sustained_edits_per_s: float | None = None  # ladders: edits/s (cursors-saturate: moves/s)
    note: str = ""

    @property
    def main(self) -> RunResult | None:
        """The run the table reports (a ladder: the last step that met the criteria)."""
        if self.scenario not in LADDERS:
            return self.runs[0] if self.runs else None
        passed = [r for r in self.runs if _ladder(self.scenario).ok(r)]
        return max(passed, key=lambda r: _ladder(self.scenario).offered(r.load)) if passed else None


Runner = Callable[[ServerSpec, Load, Options, str], Awaitable[RunResult]]


@dataclass(frozen=True)
class Ladder:
    """A load stepped up until it fails its criteria: which knob, what counts."""

    rates: tuple[float, ...]
    knob: str  # the Load field stepped
    ok: Callable[[RunResult], bool]
    offered: Callable[[Load], float]
    unit: str

    def at(self, load: Load, rate: float) -> Load:
        """`load` at this step's rate."""
        if self.knob == "cursor_rate":
            return replace(load, cursor_rate=rate)
        return replace(load, rate=rate)


def _ladder(name: str) -> Ladder:
    if name == "cursors-saturate":
        return Ladder(
            CURSOR_RATES,
            "cursor_rate",
            RunResult.cursors_ok,
            lambda load: load.offered_moves_per_s,
            "moves/s",
        )
    return Ladder(
        SATURATE_RATES, "rate", RunResult.ok, lambda load: load.offered_edits_per_s, "edits/s"
    )


def supports(name: str, spec: ServerSpec) -> bool:
    """Whether `spec` can run scenario `name` as its users run it here."""
    if name in (*STORED, "cold-start"):
        return durable(spec, Path()) is not None and (
            name != "durable-postgres" or spec.name == YSYNC.name
        )
    if name == "cluster":
        return cluster_nodes(spec, 0, Path()) is not None
    return True


def _runner(name: str) -> Runner:
    """How one run of scenario `name` starts its server (fresh store, cluster, plain)."""

    async def stored(spec: ServerSpec, load: Load, opts: Options, tag: str) -> RunResult:
        async with _fresh_store(spec, opts, postgres=name == "durable-postgres") as s:
            return await run_load(s, load, opts, tag)

    async def cluster(spec: ServerSpec, load: Load, opts: Options, tag: str) -> RunResult:
        return await run_load(spec, load, opts, tag, cluster=True)

    if name in STORED:
        return stored
    if name == "cluster":
        return cluster
    return run_load


@contextlib.asynccontextmanager
async def _scratch_dir() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ysync-bench-store-") as directory:
        yield Path(directory)


@contextlib.asynccontextmanager
async def _fresh_store(
    spec: ServerSpec, opts: Options, *, postgres: bool
) -> AsyncIterator[ServerSpec]:
    """`spec` with its usual store, empty: a new directory (or PostgreSQL database)."""
    with tempfile.TemporaryDirectory(prefix="ysync-bench-store-") as directory:
        if not postgres:
            stored = durable(spec, Path(directory))
            assert stored is not None
            yield stored
            return
        if opts.postgres is None:
            raise RuntimeError("durable-postgres needs --postgres URL")
        async with postgres_under_test(opts.postgres) as database:
            stored = durable(spec, Path(directory), store=database.url)
            assert stored is not None
            yield stored


async def run_scenario(name: str, spec: ServerSpec, opts: Options, log: Any) -> ScenarioResult:
    load = scenario_load(name, opts)
    if name in LADDERS:
        return await run_ladder(name, spec, load, opts, log)
    if name == "cold-start":
        runs = [await run_cold_start(spec, load, opts, f"{name}-{spec.name}")]
    elif name == "big-doc":
        # The same load on an empty room: what the document's size adds to each edit.
        big = await run_load(spec, load, opts, f"{name}-{spec.name}")
        log(describe(name, big))
        small = replace(load, seed_elements=0, joins_after_seed=0)
        runs = [big, await run_load(spec, small, opts, f"{name}-small-{spec.name}")]
        log(describe("big-doc (empty room)", runs[1]))
        return ScenarioResult(name, spec.name, runs)
    else:
        runs = [await _runner(name)(spec, load, opts, f"{name}-{spec.name}")]
    log(describe(name, runs[0]))
    return ScenarioResult(name, spec.name, runs)


async def run_ladder(
    name: str, spec: ServerSpec, load: Load, opts: Options, log: Any
) -> ScenarioResult:
    """Step the load up until a step fails; one more step halfway sharpens the figure."""
    ladder, run_one = _ladder(name), _runner(name)
    result = ScenarioResult(name, spec.name, [])

    async def step(rate: float, label: str) -> RunResult:
        stepped = ladder.at(load, rate)
        run = await run_one(spec, stepped, opts, f"{name}-{label}-{spec.name}")
        result.runs.append(run)
        log(describe(f"{name} @ {ladder.offered(stepped):g} {ladder.unit}", run))
        return run

    passed = failed = None
    for i, rate in enumerate(ladder.rates[: opts.max_saturate_steps]):
        run = await step(rate, str(i))
        if not ladder.ok(run):
            failed = rate
            break
        passed = rate
        result.sustained_edits_per_s = ladder.offered(run.load)
        if run.generator_bound:
            result.note = "load generator saturated: the server may sustain more"
            break
    else:
        if result.sustained_edits_per_s is not None:
            result.note = "met the criteria at every step tried"
    if opts.saturate_refine and passed is not None and failed is not None:
        middle = round((passed + failed) / 2, 3)
        run = await step(middle, "refine")
        if ladder.ok(run):
            result.sustained_edits_per_s = ladder.offered(run.load)
    if result.sustained_edits_per_s is None:
        first = ladder.offered(ladder.at(load, ladder.rates[0]))
        result.note = f"failed the first step ({first:g} {ladder.unit})"
    return result


async def run_cold_start(spec: ServerSpec, load: Load, opts: Options, tag: str) -> RunResult:
    """Fill a fresh store (one writer per room, then the server stops as it would for a
    restart), start the server again on it, and connect every client at once."""
    seed = replace(
        load,
        clients_per_room=1,
        writers_per_room=1,
        all_at_once=False,
        seed_only=True,
        connect_concurrency=100,
    )
    async with _fresh_store(spec, opts, postgres=False) as stored:
        filled = await run_load(stored, seed, opts, f"{tag}-fill")
        if filled.error or filled.result.get("seeded_rooms") != load.rooms:
            filled.error = filled.error or f"seeded {filled.result.get('seeded_rooms')} rooms"
            return filled
        # Synced: the SyncStep2 and the room's content (some servers answer the handshake
        # before their store has loaded the room, and send the content after it).
        connect = replace(load, seed_bytes=0, synced_bytes=load.seed_bytes)
        return await run_load(stored, connect, opts, tag, rooms_of=f"{tag}-fill")


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


def _cursor_lat(key: str) -> Any:
    def pick(s: ScenarioResult) -> float | None:
        return s.main.cursors.get("latency_ms", {}).get(key) if s.main else None

    return pick


def _cursor_delivery(s: ScenarioResult) -> float | None:
    run = s.main
    return 100 * run.cursor_delivery if run and run.cursor_delivery is not None else None


def _cursor_on_time(s: ScenarioResult) -> float | None:
    cur = s.main.cursors if s.main else {}
    return 100 * cur["on_time"] / cur["expected"] if cur.get("expected") else None


def _per_window_s(key: str, scale: float = 1.0) -> Any:
    def pick(s: ScenarioResult) -> float | None:
        run = s.main
        value = run.result.get(key) if run else None
        return value / run.load.duration / scale if run and value is not None else None

    return pick


def _commit_p99(s: ScenarioResult) -> float | None:
    return s.main.commit_p99_ms if s.main else None


def _hold_cpu(s: ScenarioResult) -> float | None:
    return s.main.hold_cpu_pct if s.main else None


def _all_synced_s(s: ScenarioResult) -> float | None:
    run = s.main
    seconds = run.result.get("connect", {}).get("seconds") if run else None
    return seconds + (run.startup_s or 0) if run and seconds is not None else None


def _startup_s(s: ScenarioResult) -> float | None:
    return s.main.startup_s if s.main else None


def _errors(s: ScenarioResult) -> float | None:
    run = s.main
    if run is None:
        return None
    failed = run.result.get("connect", {}).get("failed", run.load.connections)
    return float(failed + run.result.get("unexpected_closes", 0) + (1 if run.error else 0))


def _join_ms(s: ScenarioResult) -> float | None:
    joins = s.main.result.get("joins_ms") if s.main else None
    return sorted(joins)[len(joins) // 2] if joins else None


def _doc_mb(s: ScenarioResult) -> float | None:
    sizes = s.main.result.get("joins_sync_bytes") if s.main else None
    return max(sizes) / 2**20 if sizes else None


def _doc_rss_mb(s: ScenarioResult) -> float | None:
    run = s.main
    if not run or not run.seeded_rss_bytes:
        return None
    return (run.seeded_rss_bytes - run.baseline_rss_bytes) / 2**20


def _small_doc_p99(s: ScenarioResult) -> float | None:
    small = s.runs[1] if len(s.runs) > 1 else None
    return small.p99_ms if small else None


def _big_over_small(s: ScenarioResult) -> float | None:
    big, small = s.main.p99_ms if s.main else None, _small_doc_p99(s)
    return big / small if big is not None and small else None


def _standard(scenario: str) -> list[Metric]:
    """Delivery, latency, CPU and memory of an edit scenario."""
    return [
        Metric(scenario, "delivery %", True, _delivery),
        Metric(scenario, "p50 ms", False, _lat("p50")),
        Metric(scenario, "p99 ms", False, _lat("p99")),
        Metric(scenario, "max ms", False, _lat("max")),
        Metric(scenario, "server CPU %", False, _server_cpu),
        Metric(scenario, "peak RSS MB", False, _peak_rss_mb),
        Metric(scenario, "generator CPU %", False, _gen_cpu),
        Metric(scenario, "other CPU % (noise)", False, _other_cpu),
    ]


def _cursor_metrics(scenario: str) -> list[Metric]:
    return [
        Metric(scenario, "cursor p50 ms", False, _cursor_lat("p50")),
        Metric(scenario, "cursor p95 ms", False, _cursor_lat("p95")),
        Metric(scenario, "cursor p99 ms", False, _cursor_lat("p99")),
        Metric(scenario, "cursor max ms", False, _cursor_lat("max")),
        Metric(scenario, "moves delivered %", True, _cursor_delivery),
        Metric(scenario, "moves within 100 ms %", True, _cursor_on_time),
        Metric(scenario, "edit p99 ms", False, _lat("p99")),
        Metric(scenario, "frames out/s", False, _per_window_s("window_frames_in")),
        Metric(scenario, "MB out/s", False, _per_window_s("window_bytes_in", 2**20)),
        Metric(scenario, "server CPU %", False, _server_cpu),
        Metric(scenario, "peak RSS MB", False, _peak_rss_mb),
        Metric(scenario, "generator CPU %", False, _gen_cpu),
        Metric(scenario, "generator loop lag p99 ms", False, _gen_lag),
        Metric(scenario, "other CPU % (noise)", False, _other_cpu),
    ]


ISSUE_21_METRICS = [
    *_cursor_metrics("cursors"),
    Metric("cursors-saturate", "sustained cursor moves/s", True, _sustained),
    *_cursor_metrics("cursors-saturate"),
    *_standard("durable"),
    Metric("durable", "commit p99 ms (window + flush)", False, _commit_p99),
    Metric("durable-saturate", "sustained edits/s", True, _sustained),
    Metric("durable-saturate", "p99 ms at that rate", False, _lat("p99")),
    Metric("durable-saturate", "commit p99 ms at that rate", False, _commit_p99),
    Metric("durable-saturate", "server CPU % at that rate", False, _server_cpu),
    Metric("durable-saturate", "generator CPU % at that rate", False, _gen_cpu),
    *_standard("durable-postgres"),
    Metric("durable-postgres", "commit p99 ms (window + flush)", False, _commit_p99),
    Metric("cold-start", "all synced s (start + connect)", False, _all_synced_s),
    Metric("cold-start", "server start s", False, _startup_s),
    Metric("cold-start", "connect p99 ms", False, _connect_p99),
    Metric("cold-start", "peak RSS MB", False, _peak_rss_mb),
    Metric("cold-start", "errors", False, _errors),
    Metric("big-doc", "document MB", False, _doc_mb),
    Metric("big-doc", "join ms (median of 3)", False, _join_ms),
    Metric("big-doc", "RSS for the document MB", False, _doc_rss_mb),
    Metric("big-doc", "edit p99 ms", False, _lat("p99")),
    Metric("big-doc", "edit p99 ms, empty room", False, _small_doc_p99),
    Metric("big-doc", "edit p99 big ÷ empty", False, _big_over_small),
    Metric("big-doc", "delivery %", True, _delivery),
    Metric("idle-10k", "KB per connection", False, _kb),
    Metric("idle-10k", "connects/s", True, _connect_rate),
    Metric("idle-10k", "connect p99 ms", False, _connect_p99),
    Metric("idle-10k", "keep-alive server CPU %", False, _hold_cpu),
    Metric("idle-10k", "peak RSS MB", False, _peak_rss_mb),
    *_standard("cluster"),
]


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
    *ISSUE_21_METRICS,
]


def _cell(m: Metric, value: float | None, result: ScenarioResult | None) -> str:
    if value is None and m.pick is _sustained and result is not None and result.runs:
        first = _ladder(result.scenario).offered(result.runs[0].load)
        return f"< {first:g}"  # failed the first step
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
    p.add_argument(
        "--window",
        type=float,
        metavar="SECONDS",
        help="measurement window of each run (default 15 s; shorter on a busy machine)",
    )
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="durable-postgres: a PostgreSQL admin URL (a fresh database per run)",
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
    if not args.postgres and not (args.scenario and "durable-postgres" in args.scenario):
        scenarios = [s for s in scenarios if s != "durable-postgres"]
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
        postgres=args.postgres,
        window=args.window,
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
            if not supports(name, spec):
                print(f"  {spec.name:>16} {name}: not run (no such setup here)", flush=True)
                continue
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
