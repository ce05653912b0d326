"""Persistence benchmark: what durable storage costs, per store. Not a test: it prints figures.

    python -m ysync.loadtest.bench_persistence [--store postgresql://...] [--scale 1.0]

Per store (SQLite in a temporary directory always; PostgreSQL when `--store
postgresql://...` is given or one answers at 127.0.0.1:5432) it reports:

1. Appends/s sustained through `GroupCommit` with the default 50 ms flush
   window, driven directly with a stream of small Yjs updates (a typist per
   room, 100 rooms): the most it commits when offered more than it can take,
   and the append→commit latency at a steady 5,000 appends/s.
2. The latency persistence adds to the broadcast path: client→client fan-out
   over real `ysync serve` processes, one with `--store memory://` and one per
   durable store, driven at the same time (20 rooms x 3 clients each, rooms
   of all servers interleaved, so the machine's noise hits them alike; no GC
   pauses in the measuring process), each edit timed from the sender's edit
   to its arrival at the two others; p50/p99 and the p99 difference to
   memory (target: < 1 ms).
3. Load time of a room of 100,000 updates (ten authors typing, deleting and
   setting keys; a ~1 MB document) before and after compaction: read from the
   store and apply as the server does (target after compaction: < 50 ms).
4. Bytes on disk per byte of document, before and after compaction.

A PostgreSQL URL is used as an admin URL: the benchmark creates its own
database there and drops it at the end (if it may not, it uses the URL's
database with room names of its own, and skips the disk figure).
`--scale 0.01` runs everything tiny (a smoke test). Every loop is bounded in
count and time; servers listen on 127.0.0.1 only and are always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pycrdt import Doc, Map, MapEvent, Text

from ysync.clients import Session, connect
from ysync.clients.events import map_changes
from ysync.loadtest.servers import free_port, terminate
from ysync.persistence.group_commit import GroupCommit
from ysync.persistence.urls import OpenedStore, open_store
from ysync.rooms import codec
from ysync.rooms.room import Room

FLUSH_WINDOW = 0.05  # the server's default
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
WORDS = ["lorem ", "ipsum ", "dolor ", "sit ", "amet, ", "consectetur ", "adipiscing ", "elit. "]


# -- workloads ------------------------------------------------------------------------


def typing_stream(rng: random.Random, count: int, author: int = 0) -> list[bytes]:
    """`count` updates of one author: words typed at a cursor that jumps now and
    then, some backspacing, now and then a key set (each edit one update)."""
    doc: Doc[Any] = Doc()
    text, meta = doc.get("text", type=Text), doc.get("meta", type=Map)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    length = cursor = 0
    for i in range(count):
        r = rng.random()
        if r < 0.05:
            cursor = rng.randrange(length + 1)
        if r < 0.10 and cursor > 5:
            n = rng.randint(1, 5)
            del text[cursor - n : cursor]
            cursor, length = cursor - n, length - n
        elif r < 0.11:
            meta[f"author-{author}"] = {"cursor": cursor, "edit": i}
        else:
            word = rng.choice(WORDS)
            text.insert(cursor, word)
            cursor, length = cursor + len(word), length + len(word)
    return updates


def long_history(rng: random.Random, count: int, authors: int = 10) -> list[bytes]:
    """One room's log: `authors` typists' streams interleaved, `count` updates."""
    streams = [typing_stream(rng, count // authors, a) for a in range(authors)]
    return [update for turn in zip(*streams, strict=True) for update in turn]


def state_vector(doc: Doc[Any]) -> dict[int, int]:
    """The doc's state vector decoded (client -> clock): its encoding's order varies."""
    return codec.decode_state_vector(doc.get_state())


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- stores ------------------------------------------------------------------------------


@dataclass
class StoreUnderTest:
    label: str  # "sqlite" / "postgresql"
    url: str
    sqlite_path: Path | None = None
    own_database: bool = False  # we created it: disk figures and VACUUM are ours to take
    notes: list[str] = field(default_factory=list)


async def _pg(url: str, sql: str, *args: Any) -> Any:
    import asyncpg  # only for PostgreSQL

    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def postgres_under_test(admin_url: str) -> AsyncIterator[StoreUnderTest]:
    """A database of our own on the server at `admin_url`, dropped afterwards."""
    name = f"ysync_bench_{uuid.uuid4().hex[:10]}"
    try:
        await _pg(admin_url, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no right to create databases: use the given one
        store = StoreUnderTest("postgresql", admin_url)
        store.notes.append(f"could not create a database ({exc}); disk figures skipped")
        yield store
        return
    try:
        url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
        yield StoreUnderTest("postgresql", url, own_database=True)
    finally:
        await _pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def postgres_reachable(url: str) -> bool:
    try:
        await asyncio.wait_for(_pg(url, "SELECT 1"), timeout=2)
    except Exception:
        return False
    return True


async def disk_bytes(store: StoreUnderTest) -> int | None:
    """What the store occupies on disk now (SQLite: checkpointed file; PostgreSQL:
    the ysync tables with indexes and TOAST)."""
    if store.sqlite_path is not None:

        def checkpointed_size() -> int:
            path = store.sqlite_path
            assert path is not None
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            wal = path.with_name(path.name + "-wal")
            return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

        return await asyncio.to_thread(checkpointed_size)
    if not store.own_database:
        return None
    size = await _pg(
        store.url,
        "SELECT pg_total_relation_size('ysync_updates') + pg_total_relation_size('ysync_snapshots')",
    )
    return int(size)


async def reclaim(store: StoreUnderTest) -> None:
    """Give freed space back (VACUUM), so the size after compaction is the live size."""
    if store.sqlite_path is not None:

        def vacuum() -> None:
            with contextlib.closing(sqlite3.connect(store.sqlite_path)) as conn:  # type: ignore[arg-type]
                conn.execute("VACUUM")

        await asyncio.to_thread(vacuum)
    elif store.own_database:
        await _pg(store.url, "VACUUM FULL ysync_updates")
        await _pg(store.url, "VACUUM FULL ysync_snapshots")


# -- 1. appends through GroupCommit ----------------------------------------------------


class TimedStore:
    """Forwards to a store and times each update from `GroupCommit.append` to its
    commit (GroupCommit commits in append order, whole batches)."""

    def __init__(self, inner: OpenedStore) -> None:
        self.inner = inner
        self.appended_at: deque[float] = deque()
        self.latencies: list[float] = []
        self.committed = 0
        self.batches = 0

    async def append(self, batch: Sequence[tuple[str, bytes]]) -> None:
        await self.inner.append(batch)
        now = time.perf_counter()
        self.committed += len(batch)
        self.batches += 1
        for _ in range(len(batch)):
            self.latencies.append(now - self.appended_at.popleft())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class AppendResult:
    max_rate: float
    mean_batch: float
    max_p99_ms: float
    steady_p50_ms: float
    steady_p99_ms: float


@dataclass
class AppendRun:
    committed: int  # updates committed within the run's time
    seconds: float
    batches: int
    latencies: list[float]  # append→commit, seconds, every update of the run


async def drive_group_commit(
    store: OpenedStore, streams: list[list[bytes]], seconds: float, rate: float | None
) -> AppendRun:
    """Feed `GroupCommit` (default compaction threshold included) round-robin
    from per-room streams for `seconds`: at `rate` appends/s, or (None) as fast
    as it commits, keeping the backlog at about a quarter second of commits."""
    timed = TimedStore(store)
    log = GroupCommit(timed, FLUSH_WINDOW)
    committer = asyncio.create_task(log.run())
    rooms = [f"bench-append-{uuid.uuid4().hex[:6]}-{r}" for r in range(len(streams))]
    cursor = [0] * len(streams)
    sent = 0

    def offer(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            r = sent % len(streams)
            stream = streams[r]
            update = stream[cursor[r] % len(stream)]
            cursor[r] += 1
            timed.appended_at.append(time.perf_counter())
            log.append(rooms[r], update)
            sent += 1

    started = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - started) < seconds:
            if rate is not None:
                offer(int(elapsed * rate) - sent)
                await asyncio.sleep(0.001)
            elif sent - timed.committed < max(5_000, 0.25 * timed.committed / max(elapsed, 0.1)):
                offer(500)
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        committed = timed.committed
        async with asyncio.timeout(120):
            await log.flush()
            # Background compactions (every 1,000 updates of a room, the default) too.
            await asyncio.gather(*getattr(log, "_background", ()))
    finally:
        committer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committer
        for room in rooms:
            await store.delete(room)
    return AppendRun(committed, elapsed, max(timed.batches, 1), timed.latencies)


async def bench_appends(url: str, rng: random.Random, scale: float) -> AppendResult:
    streams = [typing_stream(rng, max(20, int(1000 * scale)), a) for a in range(100)]
    seconds = max(0.3, 3.0 * scale)
    store = await open_store(url)
    try:
        fast = await drive_group_commit(store, streams, seconds, None)
        steady = await drive_group_commit(store, streams, seconds, 5000.0)
    finally:
        await store.close()
    return AppendResult(
        max_rate=fast.committed / fast.seconds,
        mean_batch=len(fast.latencies) / fast.batches,
        max_p99_ms=percentile(fast.latencies, 0.99) * 1000,
        steady_p50_ms=percentile(steady.latencies, 0.5) * 1000,
        steady_p99_ms=percentile(steady.latencies, 0.99) * 1000,
    )


# -- 2. fan-out latency over a real server ---------------------------------------------


@contextlib.contextmanager
def ysync_server(store: str, log_path: Path) -> Iterator[str]:
    """`python -m ysync serve --store <store>` on a free port; yields its ws:// URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "ysync", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--store", store, "--log-level", "warning", "--log-format", "json",
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"ysync exited at start: {_tail(log_path)}")
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/readyz", timeout=1
                    ) as response:
                        if response.status == 200:
                            break
                except (OSError, urllib.error.HTTPError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ysync did not become ready: {_tail(log_path)}")
                time.sleep(0.05)
            yield f"ws://127.0.0.1:{port}"
        finally:
            terminate(proc)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


class Arrivals:
    """When each numbered edit reached one client."""

    def __init__(self, session: Session) -> None:
        self.times: dict[int, float] = {}
        self._map = session.doc.get("m", type=Map)  # keep both: pycrdt drops the
        self._subscription = self._map.observe(self._seen)  # callback with them

    def _seen(self, event: MapEvent) -> None:
        now = time.perf_counter()
        for change in map_changes(event).values():  # one key per sender: no conflicting writes
            seq = change.get("newValue")
            if isinstance(seq, int | float):
                self.times.setdefault(int(seq), now)


async def fan_out_together(
    urls: dict[str, str], rooms: int, edits: int, period: float
) -> dict[str, tuple[list[float], int]]:
    """`rooms` rooms x 3 clients on each server of `urls` (label -> ws URL), all
    at once, so a noisy moment on the machine hits every server alike. In each
    room the clients take turns editing every `period` s; the rooms of all
    servers are staggered over the period, alternating servers. Returns per
    label the sender→receiver latencies (ms) and how many arrivals were due."""
    slots = [(label, r) for r in range(rooms) for label in urls]
    sent: dict[tuple[str, int, int], float] = {}
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[tuple[str, int], list[tuple[Session, Arrivals]]] = {}
        for label, r in slots:
            room = []
            for _ in range(3):
                session = await stack.enter_async_context(connect(urls[label], f"fanout-{r}"))
                await session.synced()
                room.append((session, Arrivals(session)))
            clients[(label, r)] = room

        async def edit_room(k: int, label: str, r: int) -> None:
            await asyncio.sleep(period * k / len(slots))
            next_at = time.perf_counter()
            for i in range(1, edits + 1):
                session, _ = clients[(label, r)][i % 3]
                sent[(label, r, i)] = time.perf_counter()
                session.doc.get("m", type=Map)[f"seq-{i % 3}"] = i
                next_at += period
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        # No collector pauses in this process while timing: they would land on
        # every server's figures alike and hide the differences.
        gc.collect()
        gc.disable()
        try:
            async with asyncio.timeout(60 + 2 * edits * period):
                await asyncio.gather(*(edit_room(k, *slot) for k, slot in enumerate(slots)))
                await asyncio.sleep(0.5)  # the last edits arrive
        finally:
            gc.enable()
    results: dict[str, tuple[list[float], int]] = {label: ([], 0) for label in urls}
    for (label, r), room in clients.items():
        latencies, due = results[label]
        for c, (_, arrivals) in enumerate(room):
            for i, at in arrivals.times.items():
                if i % 3 != c and (label, r, i) in sent:
                    latencies.append((at - sent[(label, r, i)]) * 1000)
        results[label] = (latencies, due + 2 * edits)
    return results


@dataclass
class FanOutResult:
    samples: list[float] = field(default_factory=list)
    expected: int = 0

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)


# -- 3. and 4. load time and disk --------------------------------------------------------


@dataclass
class LoadResult:
    updates: int
    log_bytes: int
    doc_bytes: int
    load_before_ms: float
    read_before_ms: float
    compact_s: float
    load_after_ms: float
    read_after_ms: float
    disk_before: int | None
    disk_after: int | None
    log_entries_after: int


async def timed_load(store: OpenedStore, room: str, repeat: int) -> tuple[float, float, Doc[Any]]:
    """Median of `repeat` loads as the server does them: read, then apply into a Room."""
    totals, reads = [], []
    doc: Doc[Any] = Doc()
    for _ in range(repeat):
        started = time.perf_counter()
        updates = await store.load(room)
        read = time.perf_counter()
        loaded = Room(room)
        loaded.load(updates)
        done = time.perf_counter()
        totals.append(done - started)
        reads.append(read - started)
        doc = loaded.doc
        loaded.close()
    return statistics.median(totals) * 1000, statistics.median(reads) * 1000, doc


async def bench_load(target: StoreUnderTest, history: list[bytes]) -> LoadResult:
    room = f"bench-load-{uuid.uuid4().hex[:6]}"
    store = await open_store(target.url)
    try:
        for start in range(0, len(history), 5000):
            await store.append([(room, u) for u in history[start : start + 5000]])
        disk_before = await disk_bytes(target)
        before, read_before, doc = await timed_load(store, room, 3)
        doc_bytes = len(doc.get_update())
        started = time.perf_counter()
        await store.compact(room)
        compact_s = time.perf_counter() - started
        (info,) = [r for r in await store.list_rooms() if r.name == room]
        after, read_after, compacted = await timed_load(store, room, 7)
        if state_vector(compacted) != state_vector(doc) or str(
            compacted.get("text", type=Text)
        ) != str(doc.get("text", type=Text)):
            raise RuntimeError("the compacted room differs from the original")
        await reclaim(target)
        disk_after = await disk_bytes(target)
        await store.delete(room)
    finally:
        await store.close()
    return LoadResult(
        updates=len(history),
        log_bytes=sum(map(len, history)),
        doc_bytes=doc_bytes,
        load_before_ms=before,
        read_before_ms=read_before,
        compact_s=compact_s,
        load_after_ms=after,
        read_after_ms=read_after,
        disk_before=disk_before,
        disk_after=disk_after,
        log_entries_after=info.updates,
    )


# -- report -----------------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(out)


def _ratio(disk: int | None, doc: int) -> str:
    return f"{disk / doc:.2f}" if disk is not None else "n/a"


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ysync-bench-persistence-") as tmp:
        return await run_benchmark(args, Path(tmp))


async def run_benchmark(args: argparse.Namespace, work: Path) -> int:
    rng = random.Random(args.seed)
    scale = args.scale
    sqlite_path = work / "bench.db"
    stores: list[StoreUnderTest] = [
        StoreUnderTest("sqlite", f"sqlite:///{sqlite_path}", sqlite_path=sqlite_path)
    ]
    postgres_urls = [u for u in args.store if u.split(":", 1)[0] in ("postgresql", "postgres")]
    skipped = ""
    if not postgres_urls and not args.no_autodetect:
        if await postgres_reachable(LOCAL_POSTGRES):
            postgres_urls = [LOCAL_POSTGRES]
        else:
            skipped = (
                f"postgresql: skipped (no --store postgresql://... given, none at {LOCAL_POSTGRES})"
            )
    for url in args.store:
        if url.startswith("sqlite:") or url.startswith("memory"):
            print(f"note: --store {url} ignored: SQLite always runs in a temporary directory")

    print(
        f"ysync persistence benchmark  scale {scale:g}  seed {args.seed}  "
        f"python {platform.python_version()}  pycrdt {importlib.metadata.version('pycrdt')}  "
        f"SQLite {sqlite3.sqlite_version}  {os.cpu_count()} CPUs"
    )
    print(f"machine load average at start: {_load()} (other processes skew latencies)")
    if skipped:
        print(skipped)
    history_size = max(1000, int(100_000 * scale))
    history = long_history(rng, history_size) if "load" in args.parts else []

    async with contextlib.AsyncExitStack() as stack:
        for url in postgres_urls:
            stores.append(await stack.enter_async_context(postgres_under_test(url)))
        tables: dict[int, str] = {}  # printed at the end, in the order of their numbers
        # Room load first: its disk figures need a store nothing else wrote to yet.
        if "load" in args.parts:
            loads = {s.label: await bench_load(s, history) for s in stores}
            tables[3], tables[4] = load_table(loads), disk_table(loads)
        if "appends" in args.parts:
            appends = {s.label: await bench_appends(s.url, rng, scale) for s in stores}
            tables[1] = appends_table(appends)
        if "fanout" in args.parts:
            tables[2] = await bench_fan_out(stores, scale, args.rounds, work)
    for _, text in sorted(tables.items()):
        print()
        print(text)
    print(f"\nmachine load average at the end: {_load()}")
    for store in stores:
        for note in store.notes:
            print(f"note ({store.label}): {note}")
    return 0


async def bench_fan_out(stores: list[StoreUnderTest], scale: float, rounds: int, work: Path) -> str:
    """Memory and every durable store, driven at the same time (see
    `fan_out_together`), `rounds` times with fresh servers; returns the table."""
    rooms, edits, period = 20, max(6, int(300 * scale)), 0.06
    rounds = max(1, min(rounds, edits // 5))
    targets = {"memory": "memory://", **{s.label: s.url for s in stores}}
    results = {label: FanOutResult() for label in targets}
    for round_ in range(rounds):
        with contextlib.ExitStack() as servers:
            urls = {
                label: servers.enter_context(
                    ysync_server(url, work / f"ysync-{label}-{round_}.log")
                )
                for label, url in targets.items()
            }
            measured = await fan_out_together(urls, rooms, edits // rounds, period)
        for label, (samples, expected) in measured.items():
            results[label].samples += samples
            results[label].expected += expected
    base = results["memory"].p99
    return table(
        f"2. Fan-out latency client→client over ysync serve ({rooms} rooms x 3 clients, "
        f"{edits // rounds * rounds} edits per room, one per room every {period * 1000:.0f} ms; "
        f"all servers driven at once{f', {rounds} rounds' if rounds > 1 else ''})",
        ["store", "samples", "delivered", "p50", "p99", "max", "p99 added by persistence"],
        [
            [
                label,
                f"{len(r.samples):,}",
                f"{100 * len(r.samples) / max(r.expected, 1):.1f} %",
                f"{r.p50:.2f} ms",
                f"{r.p99:.2f} ms",
                f"{max(r.samples, default=float('nan')):.2f} ms",
                "(baseline)" if label == "memory" else f"{r.p99 - base:+.2f} ms",
            ]
            for label, r in results.items()
        ],
    )


def appends_table(appends: dict[str, AppendResult]) -> str:
    return table(
        f"1. Appends through GroupCommit (flush window {FLUSH_WINDOW * 1000:.0f} ms, "
        "100 rooms, one small Yjs update each)",
        [
            "store",
            "appends/s (max)",
            "batch (mean)",
            "commit p99 at max",
            "at 5,000/s: commit p50",
            "p99",
        ],
        [
            [
                label,
                f"{r.max_rate:,.0f}",
                f"{r.mean_batch:,.0f}",
                f"{r.max_p99_ms:,.0f} ms",
                f"{r.steady_p50_ms:.1f} ms",
                f"{r.steady_p99_ms:.1f} ms",
            ]
            for label, r in appends.items()
        ],
    )


def load_table(loads: dict[str, LoadResult]) -> str:
    any_load = next(iter(loads.values()))
    return table(
        f"3. Room load: {any_load.updates:,} updates ({any_load.log_bytes / 1e6:.2f} MB of log), "
        f"document {any_load.doc_bytes / 1e6:.2f} MB; read + apply as the server does (median)",
        ["store", "load before", "(read)", "compaction", "log left", "load after", "(read)"],
        [
            [
                label,
                f"{r.load_before_ms:,.0f} ms",
                f"{r.read_before_ms:,.0f} ms",
                f"{r.compact_s:.2f} s",
                f"{r.log_entries_after}",
                f"{r.load_after_ms:.1f} ms",
                f"{r.read_after_ms:.1f} ms",
            ]
            for label, r in loads.items()
        ],
    )


def disk_table(loads: dict[str, LoadResult]) -> str:
    return table(
        "4. Bytes on disk per byte of document (SQLite: file after a WAL checkpoint; "
        "PostgreSQL: tables + indexes + TOAST; after = compacted, then VACUUM)",
        ["store", "before compaction", "after compaction", "on disk before", "after"],
        [
            [
                label,
                _ratio(r.disk_before, r.doc_bytes),
                _ratio(r.disk_after, r.doc_bytes),
                f"{r.disk_before / 1e6:.2f} MB" if r.disk_before is not None else "n/a",
                f"{r.disk_after / 1e6:.2f} MB" if r.disk_after is not None else "n/a",
            ]
            for label, r in loads.items()
        ],
    )


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ysync.loadtest.bench_persistence",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="URL",
        help="a PostgreSQL admin URL to benchmark too (repeatable); SQLite always runs",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every size and duration (0.01: smoke test)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated workloads")
    parser.add_argument(
        "--no-autodetect",
        action="store_true",
        help=f"do not look for PostgreSQL at {LOCAL_POSTGRES}",
    )
    parser.add_argument(
        "--parts",
        default="load,appends,fanout",
        help="which parts to run, comma-separated: load (room load and disk), appends, fanout",
    )
    parser.add_argument("--rounds", type=int, default=1, help="fan-out rounds (fresh servers each)")
    args = parser.parse_args(argv)
    args.parts = set(args.parts.split(","))
    if not args.parts <= {"load", "appends", "fanout"}:
        parser.error("--parts takes load, appends and fanout")
    if not 0 < args.scale <= 10:
        parser.error("--scale must be in (0, 10]")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
