"""The fault suite: does the store end up with every accepted edit? (issue 14)

    python -m ysync.loadtest.chaos [--store postgres|sqlite] [--redis single|cluster]
        [--node-kills 20] [--rooms 20] [--writers 3] [--rate 4] [--compact-after 1000]
        [--faults KIND,...] [--seed N] [--keep-logs DIR] [--quick]

Starts a throwaway redis-server (or Redis Cluster), a throwaway PostgreSQL (or
one SQLite file),
3 `ysync serve` nodes and real y-websocket writer processes
(loadtest/chaos_js/writer.mjs) that log every edit synchronously. A seeded
schedule of faults runs until `--node-kills` node SIGKILLs happened: node
SIGKILL + restart, writer + its node SIGKILL, SIGSTOP/SIGCONT, Redis kill +
restart, SIGTERM rolling restarts. Then it stops the writers (each syncs
first), compares every room across the nodes, stops the nodes, reloads every
room from the store and counts:

- lost: due edits missing from the store. An edit is due if its writer
  survived (it synced with a node at the end), or, for a SIGKILLed writer,
  if it was sent while synced at least `DUE_MARGIN` before the kill and its
  node was not paused meanwhile;
- divergent: rooms whose document differs between nodes;
- stranded: updates left pending after the reload (a dependency missing);
- duplicated: edits that appear more than once;
- node crashes: nodes that exited without being killed (checked before
  every fault and at the end; started again);
- log errors: error lines in the nodes' logs (reported, not failed on:
  killing Redis or the store makes nodes log errors on purpose).

Prints one summary line last; exits 1 on any lost, divergent or stranded
edit, node crash, or writer that could not sync.
`--quick` is the ~1 minute smoke the test suite runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc

from ysync.clients import connect
from ysync.loadtest.chaos_services import Node, Postgres, Redis, RedisCluster
from ysync.loadtest.node import ensure_node_modules, node_binary
from ysync.persistence.urls import open_store
from ysync.rooms.room import Room

WRITER_DIR = Path(__file__).parent / "chaos_js"
FLUSH_WINDOW = 0.05
DUE_MARGIN = FLUSH_WINDOW + 0.25  # seconds between a killed writer's edit and the kill
FAULTS = {"node_kill": 4, "writer_node_kill": 2, "pause": 2, "redis_kill": 1, "rolling": 1}


class ClusterFaults:
    """A Redis Cluster as the schedule sees Redis: `kill` SIGKILLs the master
    of a room's slot (its replica takes over), `start` brings it back as a replica."""

    def __init__(self, cluster: RedisCluster, rooms: list[str], rng: random.Random) -> None:
        self.cluster, self.rooms, self.rng = cluster, rooms, rng

    @property
    def url(self) -> str:
        return self.cluster.url

    def kill(self) -> None:
        self.cluster.kill_master_of("ysync:{" + self.rng.choice(self.rooms) + "}")

    def start(self) -> None:
        self.cluster.restart_dead()


@dataclass
class Writer:
    name: str
    room: str
    log: Path
    proc: subprocess.Popen[bytes]
    killed_at: float | None = None  # ms since epoch

    def current_url(self) -> str | None:
        url = None
        for entry in read_log(self.log):
            if entry["ev"] in ("switch", "edit"):
                url = entry["url"]
        return url


@dataclass
class Run:
    args: argparse.Namespace
    rng: random.Random
    nodes: list[Node]
    redis: Redis | ClusterFaults
    log_dir: Path
    writers: list[Writer] = field(default_factory=list)
    pauses: list[tuple[str, float, float]] = field(default_factory=list)  # url, from, to (ms)
    counts: Counter[str] = field(default_factory=Counter)
    serial: int = 0

    def start_writer(self, room: str) -> None:
        self.serial += 1
        name = f"w{self.serial}"
        log = self.log_dir / f"{name}.jsonl"
        urls = [node.url for node in self.nodes]
        command = [node_binary(), str(WRITER_DIR / "writer.mjs"), str(log), room, name]
        command += [str(self.args.rate), *urls]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.writers.append(Writer(name, room, log, proc))

    # -- faults -------------------------------------------------------------------

    def pause_briefly(self, low: float, high: float) -> None:
        time.sleep(self.rng.uniform(low, high))

    def node_kill(self) -> None:
        node = self.rng.choice(self.nodes)
        node.kill()
        self.counts["node kills"] += 1
        self.pause_briefly(0.3, 1.5)
        node.start()

    def writer_node_kill(self) -> None:
        alive = [w for w in self.writers if w.killed_at is None]
        writer = self.rng.choice(alive)
        url = writer.current_url()
        node = next((n for n in self.nodes if n.url == url), self.rng.choice(self.nodes))
        writer.proc.kill()
        node.kill()
        writer.killed_at = time.time() * 1000
        writer.proc.wait()
        self.counts["node kills"] += 1
        self.counts["writer kills"] += 1
        self.start_writer(writer.room)
        self.pause_briefly(0.3, 1.5)
        node.start()

    def pause(self) -> None:
        node = self.rng.choice(self.nodes)
        started = time.time() * 1000
        node.send(signal.SIGSTOP)
        self.pause_briefly(0.5, 2.5)
        node.send(signal.SIGCONT)
        self.pauses.append((node.url, started, time.time() * 1000))
        self.counts["pauses"] += 1

    def redis_kill(self) -> None:
        self.redis.kill()
        self.pause_briefly(0.5, 2.5)
        self.redis.start()
        self.counts["redis kills"] += 1

    def rolling(self) -> None:
        for node in self.nodes:
            node.stop()
            node.start()
        self.counts["rolling restarts"] += 1

    def restart_crashed(self) -> None:
        """A node that ended by itself is a finding: count it, start it again."""
        for node in self.nodes:
            if node.crashed():
                self.counts["node crashes"] += 1
                node.start()

    def run_schedule(self) -> None:
        chosen = {kind: FAULTS[kind] for kind in self.args.faults.split(",")}
        kinds, weights = zip(*chosen.items(), strict=True)
        deadline = time.monotonic() + self.args.max_seconds
        if self.args.quick and len(chosen) == len(FAULTS):  # every kind once, kills last
            plan = ["pause", "redis_kill", "rolling", "writer_node_kill", "node_kill", "node_kill"]
            plan += ["node_kill"]
        else:
            plan = []
        while self.counts["node kills"] < self.args.node_kills and time.monotonic() < deadline:
            kind = plan.pop(0) if plan else self.rng.choices(kinds, weights)[0]
            self.restart_crashed()
            getattr(self, kind)()
            self.pause_briefly(0.5, 2.0)


def read_log(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open() as lines:
        for line in lines:
            with contextlib.suppress(ValueError):  # a line cut by a SIGKILL
                yield json.loads(line)


def due_edits(run: Run) -> dict[str, set[str]]:
    """Per room, the edits that must be in the store (see the module doc)."""
    due: dict[str, set[str]] = {}
    for writer in run.writers:
        wanted = due.setdefault(writer.room, set())
        for entry in read_log(writer.log):
            if entry["ev"] != "edit":
                continue
            if writer.killed_at is None:
                wanted.add(entry["id"])
            elif entry["synced"] and entry["t"] <= writer.killed_at - DUE_MARGIN * 1000:
                paused = any(
                    url == entry["url"] and start <= writer.killed_at and end >= entry["t"]
                    for url, start, end in run.pauses
                )
                if not paused:
                    wanted.add(entry["id"])
    return due


async def divergent_rooms(nodes: list[Node], rooms: list[str], timeout: float = 20) -> int:
    """Rooms whose document is not byte-identical on every node (after settling)."""
    count = 0
    for room in rooms:
        async with contextlib.AsyncExitStack() as stack:
            sessions = [await stack.enter_async_context(connect(n.url, room)) for n in nodes]
            for session in sessions:
                await session.synced()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if len({canonical(s.doc) for s in sessions}) == 1:
                    break
                await asyncio.sleep(0.2)
            else:
                count += 1
    return count


def canonical(doc: Doc[Any]) -> bytes:
    copy: Doc[Any] = Doc()
    copy.apply_update(doc.get_update())
    return copy.get_update()


async def reload_rooms(store_url: str, rooms: list[str]) -> dict[str, tuple[list[str], int]]:
    """Each room's edits and pending-update count, as a fresh load from the store sees them."""
    store = await open_store(store_url)
    try:
        result = {}
        for name in rooms:
            room = Room(name)
            room.load(await store.load(name))
            edits = [str(item) for item in room.doc.get("edits", type=Array).to_py() or []]
            result[name] = (edits, len(room.pending))
        return result
    finally:
        await store.close()


def log_errors(nodes: list[Node]) -> int:
    errors = 0
    for node in nodes:
        for line in node.log_path.read_text(errors="replace").splitlines():
            errors += '"level": "error"' in line or '"level":"error"' in line
    return errors


def kill_writers(run: Run) -> None:
    for writer in run.writers:
        if writer.proc.poll() is None:
            writer.proc.kill()


def stop_writers(run: Run) -> int:
    """SIGTERM every live writer (each syncs, then exits); how many failed to sync."""
    alive = [w for w in run.writers if w.killed_at is None]
    for writer in alive:
        writer.proc.send_signal(signal.SIGTERM)
    unsynced = 0
    for writer in alive:
        try:
            unsynced += writer.proc.wait(45) != 0
        except subprocess.TimeoutExpired:
            writer.proc.kill()
            unsynced += 1
    return unsynced


def count(run: Run, store_url: str, rooms: list[str], unsynced: int) -> tuple[str, bool]:
    divergent = asyncio.run(divergent_rooms(run.nodes, rooms))
    for node in run.nodes:
        node.stop()
    stored = asyncio.run(reload_rooms(store_url, rooms))
    due = due_edits(run)
    lost = sum(len(due.get(room, set()) - set(edits)) for room, (edits, _) in stored.items())
    duplicated = sum(
        sum(n - 1 for n in Counter(edits).values() if n > 1) for edits, _ in stored.values()
    )
    stranded = sum(pending for _, pending in stored.values())
    edits = sum(len(edits) for edits, _ in stored.values())
    crashes = run.counts["node crashes"]
    ok = lost == 0 and divergent == 0 and stranded == 0 and unsynced == 0 and crashes == 0
    faults = ", ".join(f"{n} {kind}" for kind, n in sorted(run.counts.items()))
    summary = (
        f"chaos {'OK' if ok else 'FAILED'}: store={run.args.store} redis={run.args.redis} "
        f"seed={run.args.seed} "
        f"compact_after={run.args.compact_after} rooms={len(rooms)} faults=({faults}) "
        f"stored_edits={edits} due={sum(map(len, due.values()))} lost={lost} "
        f"divergent={divergent} stranded={stranded} duplicated={duplicated} "
        f"unsynced_writers={unsynced} log_errors={log_errors(run.nodes)}"
    )
    return summary, ok


def node_args(args: argparse.Namespace, store_url: str, redis: Redis | ClusterFaults) -> list[str]:
    return [
        "--store", store_url, "--redis-url", redis.url, "--log-format", "json",
        "--flush-window", str(FLUSH_WINDOW), "--node-ttl", "3", "--anti-entropy-interval", "1",
        "--unload-grace", "2", "--rate-messages", "0", "--drain-seconds", "0.5",
        "--compact-after-updates", str(args.compact_after), "--store-audit-interval", "5",
    ]  # fmt: skip


def chaos(args: argparse.Namespace) -> bool:
    ensure_node_modules(WRITER_DIR)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="ysync-chaos-") as tmp, contextlib.ExitStack() as stack:
        log_dir = Path(args.keep_logs or tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        rooms = [f"chaos-{i}" for i in range(args.rooms)]
        redis: Redis | ClusterFaults
        if args.redis == "cluster":
            cluster = RedisCluster().start()
            stack.callback(cluster.stop)
            redis = ClusterFaults(cluster, rooms, rng)
        else:
            redis = Redis()
            redis.start()
            stack.callback(redis.kill)
        if args.store == "postgres":
            postgres = Postgres()
            postgres.start()
            stack.callback(postgres.stop)
            store_url = postgres.url
        else:
            store_url = f"sqlite:///{log_dir / 'chaos.db'}"
        nodes = [Node(i, node_args(args, store_url, redis), log_dir) for i in range(3)]
        for node in nodes:
            node.start()
            stack.callback(node.stop)
        run = Run(args, rng, nodes, redis, log_dir)
        stack.callback(kill_writers, run)
        for room in rooms:
            for _ in range(args.writers):
                run.start_writer(room)
        time.sleep(2.0)  # writers connect and start editing
        run.run_schedule()
        run.restart_crashed()
        time.sleep(3.0)  # last restarts settle; writers reconnect
        unsynced = stop_writers(run)
        summary, ok = count(run, store_url, rooms, unsynced)
        print(summary, flush=True)
        if not ok and not args.keep_logs:
            print(f"(logs discarded; rerun with --seed {args.seed} --keep-logs DIR)")
        return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--redis",
        choices=("single", "cluster"),
        default="single",
        help="one redis-server, or a Redis Cluster of 3 masters + 3 replicas [single]",
    )
    parser.add_argument("--node-kills", type=int, default=20, help="node SIGKILLs to cause [20]")
    parser.add_argument("--max-seconds", type=float, default=900, help="schedule cap [900]")
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--writers", type=int, default=3, help="writers per room [3]")
    parser.add_argument("--rate", type=float, default=4.0, help="edits/s per writer [4]")
    parser.add_argument("--compact-after", type=int, default=1000, help="--compact-after-updates")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"which faults to schedule [{','.join(FAULTS)}]"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--keep-logs", default="", help="directory for node and writer logs (and the SQLite file)"
    )
    parser.add_argument("--quick", action="store_true", help="~1 minute smoke (the test suite's)")
    args = parser.parse_args(argv)
    unknown = set(args.faults.split(",")) - set(FAULTS)
    if unknown or not any(kind in args.faults for kind in ("node_kill", "writer_node_kill")):
        parser.error(f"--faults: {sorted(unknown)} unknown, or no node kill among them")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    if args.quick:
        args.rooms, args.writers, args.node_kills = min(args.rooms, 3), 3, 4
        args.rate = max(args.rate, 10.0)
    sys.exit(0 if chaos(args) else 1)


if __name__ == "__main__":
    main()
