"""Durability end to end: real `ysync serve` processes on real SQLite and PostgreSQL
stores, killed, restarted, sharing a store, and living through store outages.

The contract under test (../shared/DESIGN.md, "Durability contract"): an update
accepted from a client is committed within the flush window; SIGTERM commits
everything before the process exits; during a store outage the server keeps
serving, retries, and past its backlog bound refuses edits (4503), never drops them.

Random moments (kills, SIGTERMs) come from a seeded generator; the seed is
printed, and `YSYNC_TEST_SEED=<seed>` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pycrdt import Doc, Map, MapEvent, Text

from ysync.clients import Session, connect
from ysync.clients.backoff import Backoff
from ysync.clients.session import StatusEvent
from ysync.persistence.urls import open_store
from ysync.rooms import codec

from support.aio import run
from support.servers import YsyncProcess, readiness, wait_readiness

T = TypeVar("T")

FLUSH_WINDOW = 0.05
# Sent (or seen accepted) longer ago than this before a kill: must be stored.
MARGIN = FLUSH_WINDOW + 0.1
CLEAN_EXIT = (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean shutdown


def seeded(test: str) -> tuple[random.Random, int]:
    seed = int(os.environ.get("YSYNC_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{test}: seed {seed} (replay with YSYNC_TEST_SEED={seed})")
    return random.Random(seed), seed


def server_on(store: str, log: Path, *args: str) -> YsyncProcess:
    # Rate limits off: these clients send far faster than people type, on purpose.
    common = ("--flush-window", str(FLUSH_WINDOW), "--rate-messages", "0")
    return YsyncProcess(*common, *args, store=store, log_path=log)


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until `predicate` holds; generous timeouts (20 s) cost nothing when it does,
    and the suite runs on a loaded 2-core machine."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def state_vector(doc: Doc) -> dict[int, int]:
    """The doc's state vector decoded (client -> clock): its encoding's order varies."""
    return codec.decode_state_vector(doc.get_state())


def keys(doc: Doc) -> set[str]:
    return set(doc.get("map", type=Map).keys())


async def stored_doc(store_url: str, room: str) -> Doc:
    """The room as the store holds it, loaded the way the server loads it."""
    store = await open_store(store_url)
    try:
        updates = await store.load(room)
    finally:
        await store.close()
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc


async def served_keys(server: YsyncProcess, rooms: Iterable[str]) -> dict[str, set[str]]:
    """Each room's map keys as a new client of `server` sees them."""
    found = {}
    for room in rooms:
        async with connect(server.ws_url, room) as session:
            await session.synced()
            found[room] = keys(session.doc)
    return found


class Writer:
    """Sets unique keys (`<prefix>-<n>`) in a room's map at a steady pace and
    notes when each one was on the socket."""

    def __init__(self, session: Session, prefix: str) -> None:
        self.session = session
        self.prefix = prefix
        self.sent: dict[str, float] = {}
        self._next = 0

    async def run(
        self, interval: float, stop: asyncio.Event, limit: int = 100_000, *, offline: bool = False
    ) -> None:
        """Write up to `limit` more keys, until `stop` is set or (unless `offline`)
        the connection closes."""
        entries = self.session.doc.get("map", type=Map)
        for _ in range(limit):
            if stop.is_set() or (self.session.close_code is not None and not offline):
                return
            key = f"{self.prefix}-{self._next}"
            self._next += 1
            entries[key] = self._next
            # The session's sender task queued the frame; two turns of the loop
            # let it write the frame to the socket before we note the time.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            self.sent[key] = time.monotonic()
            await asyncio.sleep(interval)


class Witness:
    """A second client of a room: notes when each key reached it, that is, when
    the server had accepted (applied and queued for storage) that update."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: dict[str, float] = {}
        # Keep the Map and the subscription: pycrdt drops the callback with them.
        self._map = session.doc.get("map", type=Map)
        self._subscription = self._map.observe(self._on_change)

    def _on_change(self, event: MapEvent) -> None:
        now = time.monotonic()
        for key in event.keys:
            self.seen.setdefault(key, now)


async def writers_in(
    stack: AsyncExitStack, server: YsyncProcess, room: str, n: int, tag: str = ""
) -> list[Writer]:
    """`n` writers on `room`; a lost connection ends their session (no reconnect)."""
    found = []
    for i in range(n):
        session = await stack.enter_async_context(connect(server.ws_url, room, reconnect=False))
        await session.synced()
        found.append(Writer(session, f"{room}/{tag}w{i}"))
    return found


def sent_before(writers: Iterable[Writer], moment: float) -> set[str]:
    return {key for w in writers for key, sent in w.sent.items() if sent < moment}


# -- 1. crash ---------------------------------------------------------------------


async def edit_until_killed(
    server: YsyncProcess, rooms: list[str], due: int
) -> tuple[dict[str, list[Writer]], float]:
    """Two clients per room stream edits; SIGKILL the server once every room has
    `due` edits sent more than MARGIN ago (a count, not a clock: under load the
    writers may take seconds to get going)."""
    async with AsyncExitStack() as stack:
        writers = {room: await writers_in(stack, server, room, 2) for room in rooms}
        stop = asyncio.Event()
        streams = [asyncio.create_task(w.run(0.003, stop)) for ws in writers.values() for w in ws]

        def enough_due() -> bool:
            moment = time.monotonic() - MARGIN
            return all(len(sent_before(ws, moment)) >= due for ws in writers.values())

        await until(enough_due, 60, f"{due} edits sent in each room")
        killed_at = time.monotonic()
        server.kill()
        stop.set()
        await asyncio.gather(*streams)
    return writers, killed_at


@pytest.mark.slow
def test_sigkill_loses_nothing_sent_a_flush_window_before_it(
    store_url: str, tmp_path: Path
) -> None:
    rng, seed = seeded("crash")
    server = server_on(store_url, tmp_path / "ysync.log").start()
    try:
        for attempt in range(3):
            # A random count puts the kill at a random point of the flush cycle.
            kill_due = rng.randint(60, 400)
            rooms = [f"crash-{attempt}-a", f"crash-{attempt}-b"]
            writers, killed_at = run(edit_until_killed(server, rooms, kill_due), timeout=120)
            server.start()
            stored = run(served_keys(server, rooms))
            for room in rooms:
                due = sent_before(writers[room], killed_at - MARGIN)
                sent = sent_before(writers[room], float("inf"))
                assert len(due) > 20, f"too few edits before the kill to mean anything: {len(due)}"
                missing = due - stored[room]
                assert not missing, (
                    f"seed {seed}, attempt {attempt}, killed at {kill_due} due: "
                    f"{len(missing)} of {len(due)} updates sent > {MARGIN * 1000:.0f} ms "
                    f"before SIGKILL are lost, e.g. {sorted(missing)[:5]}"
                )
                print(
                    f"attempt {attempt}, {room}: killed at {kill_due} due; {len(sent)} sent, "
                    f"{len(due)} due, {len(stored[room] & sent)} stored"
                )
    finally:
        server.stop()


# -- 2. restart -------------------------------------------------------------------


def test_everything_written_is_served_after_clients_leave_and_the_server_restarts(
    store_url: str, tmp_path: Path
) -> None:
    server = server_on(store_url, tmp_path / "ysync.log").start()
    try:

        async def write() -> tuple[str, dict[str, Any]]:
            async with connect(server.ws_url, "notes") as a, connect(server.ws_url, "notes") as b:
                await a.synced()
                await b.synced()
                text_a, text_b = a.doc.get("text", type=Text), b.doc.get("text", type=Text)
                text_a.insert(0, "Hello from a. ")
                for n in range(50):
                    b.doc.get("map", type=Map)[f"b-{n}"] = {"n": n, "who": "b"}
                await until(lambda: str(text_b).startswith("Hello"), 20, "a's text at b")
                text_b.insert(len(text_b), "And from b.")
                del text_a[0:6]  # deletions must survive too
                await until(
                    lambda: str(text_a) == str(text_b) and keys(a.doc) == keys(b.doc),
                    20,
                    "a and b to converge",
                )
                return str(text_a), b.doc.get("map", type=Map).to_py()

        async def read() -> tuple[str, dict[str, Any]]:
            async with connect(server.ws_url, "notes") as c:
                await c.synced()
                return str(c.doc.get("text", type=Text)), c.doc.get("map", type=Map).to_py()

        written = run(write())
        assert written[0] == "from a. And from b." and len(written[1]) == 50
        assert server.stop() in CLEAN_EXIT
        assert "all accepted updates committed" in server.log()
        server.start()
        assert run(read()) == written
    finally:
        server.stop()


def test_sigterm_while_a_client_edits_stores_everything_it_sent_before(
    store_url: str, tmp_path: Path
) -> None:
    rng, seed = seeded("sigterm")
    server = server_on(store_url, tmp_path / "ysync.log").start()
    try:

        async def edit_through_sigterm() -> tuple[Writer, float, int | None]:
            async with AsyncExitStack() as stack:
                (writer,) = await writers_in(stack, server, "busy", 1)
                stop = asyncio.Event()
                stream = asyncio.create_task(writer.run(0.002, stop))
                # After a random number of edits, not seconds: under load the writer
                # may take seconds to get going.
                wanted = rng.randint(60, 250)
                await until(lambda: len(writer.sent) >= wanted, 60, f"{wanted} edits sent")
                terminated_at = time.monotonic()
                assert server.proc is not None
                server.proc.send_signal(signal.SIGTERM)
                await writer.session.closed(timeout=15)
                stop.set()
                await stream
                return writer, terminated_at, writer.session.close_code

        writer, terminated_at, code = run(edit_through_sigterm())
        assert code in (1001, 1012), f"closed with {code}: clients must reconnect"
        assert server.stop() in CLEAN_EXIT
        server.start()
        stored = run(served_keys(server, ["busy"]))["busy"]
        due = sent_before([writer], terminated_at)
        assert len(due) > 20
        missing = due - stored
        assert not missing, (
            f"seed {seed}: {len(missing)} of {len(due)} updates sent before SIGTERM are lost, "
            f"e.g. {sorted(missing)[:5]}"
        )
    finally:
        server.stop()


# -- 3. compaction ----------------------------------------------------------------


async def same_state_served(
    server: YsyncProcess, room: str, state: dict[int, int], timeout: float
) -> Doc:
    """Poll with new clients until the server's copy of `room` has `state`."""
    deadline = time.monotonic() + timeout
    while True:
        async with connect(server.ws_url, room) as probe:
            await probe.synced()
            if state_vector(probe.doc) == state:
                return probe.doc
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not catch up with the client in {timeout} s")
        await asyncio.sleep(0.1)


def content(doc: Doc) -> tuple[str, dict[str, Any]]:
    return str(doc.get("text", type=Text)), doc.get("map", type=Map).to_py()


@pytest.mark.slow
def test_20000_updates_are_compacted_and_reload_identically(store_url: str, tmp_path: Path) -> None:
    count = 20_000
    server = server_on(store_url, tmp_path / "ysync.log", "--compact-after-updates", "500").start()
    try:

        async def write() -> Doc:
            async with connect(server.ws_url, "long") as writer:
                await writer.synced()
                text = writer.doc.get("text", type=Text)
                entries = writer.doc.get("map", type=Map)
                for n in range(count):  # one update each: typing, and a few keys overwritten
                    if n % 2:
                        text.insert(len(text), chr(ord("a") + n % 26))
                    else:
                        entries[f"key-{n % 50}"] = n
                    if n % 200 == 199:
                        await asyncio.sleep(0)  # let the session send this burst
                    if n % 1000 == 999:
                        del text[0:100]
                entries["last"] = "so a matching state vector means every update arrived"
                await same_state_served(server, "long", state_vector(writer.doc), timeout=30)
                return writer.doc

        written = run(write())
        time.sleep(0.5)  # the last compaction runs in the background
        assert server.stop() in CLEAN_EXIT

        async def stored() -> tuple[list[Any], Doc]:
            store = await open_store(store_url)
            try:
                rooms = await store.list_rooms()
            finally:
                await store.close()
            return rooms, await stored_doc(store_url, "long")

        rooms, from_store = run(stored())
        (info,) = rooms
        print(f"after {count} updates: {info}")
        assert info.updates < count // 10, f"not compacted: {info.updates} log entries left"
        assert state_vector(from_store) == state_vector(written)
        assert content(from_store) == content(written)

        server.start()
        served = run(same_state_served(server, "long", state_vector(written), timeout=20))
        assert content(served) == content(written)
    finally:
        server.stop()


@pytest.mark.slow
def test_sigkill_while_compacting_loses_nothing_accepted(store_url: str, tmp_path: Path) -> None:
    rng, seed = seeded("kill during compaction")
    # A ~2 MB document compacted every 100 updates of a 2,000/s stream: each
    # compaction (read, merge, write ~2 MB) takes a good part of the 50 ms
    # between two, so kills land during compactions as often as not.
    server = server_on(store_url, tmp_path / "ysync.log", "--compact-after-updates", "100")
    preloaded = {f"preload-{n}" for n in range(4000)}
    server.start()
    try:

        async def preload() -> None:
            async with connect(server.ws_url, "big") as session:
                await session.synced()
                entries = session.doc.get("map", type=Map)
                for n, key in enumerate(sorted(preloaded)):
                    entries[key] = "x" * 500
                    if n % 100 == 99:
                        await asyncio.sleep(0)
                await same_state_served(server, "big", state_vector(session.doc), timeout=30)

        async def stream_until_killed(attempt: int, kill_due: int) -> tuple[Witness, float]:
            async with (
                connect(server.ws_url, "big", reconnect=False) as writer,
                connect(server.ws_url, "big", reconnect=False) as w,
            ):
                await writer.synced()
                await w.synced()
                witness = Witness(w)  # what it saw, the server had accepted
                entries = writer.doc.get("map", type=Map)
                for n in range(100_000):  # bursts of 20 updates every 10 ms
                    entries[f"{attempt}-{n}"] = n
                    if n % 20 == 19:
                        await asyncio.sleep(0.01)
                        # Kill once `kill_due` updates were accepted more than MARGIN
                        # ago: a count, not a clock (under load the stream starts slowly).
                        moment = time.monotonic() - MARGIN
                        if sum(seen < moment for seen in witness.seen.values()) >= kill_due:
                            break
                killed_at = time.monotonic()
                server.kill()
                return witness, killed_at

        async def log_length() -> int:
            opened = await open_store(store_url)
            try:
                (info,) = await opened.list_rooms()
            finally:
                await opened.close()
            return info.updates

        run(preload())
        streamed = 0
        for attempt in range(3):
            kill_due = rng.randint(150, 1200)
            witness, killed_at = run(stream_until_killed(attempt, kill_due), timeout=120)
            due = {key for key, seen in witness.seen.items() if seen < killed_at - MARGIN}
            assert len(due) > 100
            streamed += len(witness.seen)
            entries = run(log_length())
            server.start()
            stored = run(served_keys(server, ["big"]))["big"]
            missing = due - stored
            assert not missing, (
                f"seed {seed}, attempt {attempt}, killed at {kill_due} due: {len(missing)} "
                f"of {len(due)} accepted updates lost, e.g. {sorted(missing)[:5]}"
            )
            assert preloaded <= stored
            print(
                f"attempt {attempt}: killed at {kill_due} due; {len(witness.seen)} accepted, "
                f"{len(due)} due, {len(stored & set(witness.seen))} stored; log {entries} entries after "
                f"{len(preloaded) + streamed} updates"
            )
            assert entries < 1000, "compactions were not running"
    finally:
        server.stop()


# -- 4. two processes, one store --------------------------------------------------


@pytest.mark.slow
def test_two_servers_on_one_store_keep_the_union_of_their_edits(
    store_url: str, tmp_path: Path
) -> None:
    # Small compaction threshold: both processes compact the same room meanwhile.
    servers = [
        server_on(store_url, tmp_path / f"ysync-{i}.log", "--compact-after-updates", "100")
        for i in range(2)
    ]
    try:
        for server in servers:
            server.start()

        async def edit_at_once() -> tuple[set[str], list[str]]:
            async with AsyncExitStack() as stack:
                writers = [
                    w
                    for i, server in enumerate(servers)
                    for w in await writers_in(stack, server, "shared", 2, tag=f"s{i}")
                ]
                markers = []
                for i, w in enumerate(writers):
                    text = w.session.doc.get("text", type=Text)
                    for n in range(20):
                        markers.append(f"[{i}.{n}]")
                        text.insert(len(text), markers[-1])
                stop = asyncio.Event()
                await asyncio.gather(*(w.run(0.002, stop, limit=300) for w in writers))
            # Each session sent everything before closing: all of it was accepted.
            return sent_before(writers, float("inf")), markers

        written, markers = run(edit_at_once())
        assert len(written) == 4 * 300
        for server in servers:
            assert server.stop() in CLEAN_EXIT
        reloaded = run(stored_doc(store_url, "shared"))
        assert keys(reloaded) == written
        text = str(reloaded.get("text", type=Text))
        assert all(marker in text for marker in markers)
        assert len(text) == sum(map(len, markers))
    finally:
        for server in servers:
            server.stop()


# -- 5. store outage --------------------------------------------------------------


@pytest.mark.slow
def test_a_postgres_outage_is_reported_and_every_update_is_stored_after_it(
    stoppable_postgres: Any, tmp_path: Path
) -> None:
    server = server_on(stoppable_postgres.url, tmp_path / "ysync.log").start()
    try:

        async def edit_through_outage() -> set[str]:
            async with AsyncExitStack() as stack:
                writers = await writers_in(stack, server, "outage", 2)
                stop = asyncio.Event()
                streams = [asyncio.create_task(w.run(0.01, stop)) for w in writers]
                await asyncio.sleep(0.5)
                await asyncio.to_thread(stoppable_postgres.stop)
                problems = await wait_readiness(server, 503, timeout=10)
                assert any("store" in problem for problem in problems), problems
                # Still serving from memory: the clients keep seeing each other's edits.
                during = len(writers[0].sent)
                await until(
                    lambda: f"{writers[0].prefix}-{during + 5}" in keys(writers[1].session.doc),
                    20,
                    "edits to reach the other client during the outage",
                )
                await asyncio.sleep(2)
                assert (await asyncio.to_thread(readiness, server))[0] == 503
                await asyncio.to_thread(stoppable_postgres.start)
                await wait_readiness(server, 200, timeout=15)
                await asyncio.sleep(0.3)
                stop.set()
                await asyncio.gather(*streams)
                written = sent_before(writers, float("inf"))
                await until(
                    lambda: all(keys(w.session.doc) >= written for w in writers),
                    20,
                    "the clients to converge",
                )
                assert all(w.session.close_code is None for w in writers)
                return written

        written = run(edit_through_outage())
        assert server.stop() in CLEAN_EXIT
        assert "store write failed, retrying" in (tmp_path / "ysync.log").read_text()
        stored = keys(run(stored_doc(stoppable_postgres.url, "outage")))
        missing = written - stored
        assert not missing, f"{len(missing)} of {len(written)} lost, e.g. {sorted(missing)[:5]}"
    finally:
        server.stop()


@pytest.mark.slow
def test_past_the_backlog_bound_edits_are_refused_with_4503_never_dropped(
    stoppable_postgres: Any, tmp_path: Path
) -> None:
    server = server_on(
        stoppable_postgres.url, tmp_path / "ysync.log", "--max-pending-bytes", "2000"
    ).start()
    try:

        async def edit_until_refused() -> tuple[set[str], set[str]]:
            closes: list[StatusEvent] = []
            quick = Backoff(initial=0.05, max_delay=0.3)
            async with (
                connect(server.ws_url, "bounded") as w,
                # Reconnects on its own, as the JS provider does after 4503.
                connect(server.ws_url, "bounded", backoff=quick, on_status=closes.append) as s,
            ):
                await w.synced()
                await s.synced()
                witness, writer = Witness(w), Writer(s, "bounded")
                await writer.run(0.002, asyncio.Event(), limit=50)
                await asyncio.to_thread(stoppable_postgres.stop)
                # 2000 bytes of ~40-byte updates are full long before 2000 edits;
                # `run` ends when the server closes the connection.
                await writer.run(0.002, asyncio.Event(), limit=2000)
                refusals = [e for e in closes if e.code is not None]
                assert refusals, "the server never refused an edit"
                assert refusals[0].code == 4503, refusals[0]
                assert "storage unavailable" in refusals[0].reason, refusals[0]
                accepted = set(witness.seen)
                # Offline edits: the session keeps them in its document.
                await writer.run(0.002, asyncio.Event(), limit=20, offline=True)
                written = sent_before([writer], float("inf"))
                assert 50 < len(accepted) < len(written), "nothing was refused"
                await asyncio.sleep(0.5)  # reconnects meanwhile are refused too
                assert all(e.code in (None, 4503) for e in closes), closes
                await asyncio.to_thread(stoppable_postgres.start)
                await wait_readiness(server, 200, timeout=15)
                # Refused, never dropped: the next accepted connection uploads them.
                await until(lambda: set(witness.seen) >= written, 10, "the refused edits")
            return accepted, written

        accepted, written = run(edit_until_refused())
        assert server.stop() in CLEAN_EXIT
        stored = keys(run(stored_doc(stoppable_postgres.url, "bounded")))
        assert accepted <= stored, (
            f"accepted before the refusal but lost: {sorted(accepted - stored)[:5]}"
        )
        assert written <= stored
    finally:
        server.stop()
