"""Graceful drain (server/drain.py): the sequence in-process, then real `ysync serve`
processes on SIGTERM, with one worker and with two, and past the deadline.

Readiness during a store outage is covered by
tests/persistence/test_durability.py::test_a_postgres_outage_is_reported_and_every_update_is_stored_after_it
(a real PostgreSQL stopped under a running node: /readyz 503 naming the store, 200 again after).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pycrdt import Map

from ysync.clients import connect
from ysync.rooms.vocabulary import Refusal
from ysync.server import settings as settings_module
from ysync.server.drain import RESTART, Drain

from support.aio import run
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess, readiness, wait_readiness

RESTART_REASON = RESTART.reason

CLEAN_EXIT = (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean shutdown


async def wait_exit(server: YsyncProcess, timeout: float) -> int:
    assert server.proc is not None
    return await asyncio.to_thread(server.proc.wait, timeout)


# -- the sequence, in-process -------------------------------------------------------------


class FakeEndpoint:
    def __init__(self, events: list[tuple[str, float]]) -> None:
        self.events = events
        self.connections = 2
        self.closed_with: Refusal | None = None

    def close_all(self, refusal: Refusal) -> int:
        self.events.append(("close", time.monotonic()))
        self.closed_with = refusal
        return self.connections

    async def wait_closed(self, timeout: float) -> bool:
        self.connections = 0
        return True


class FakeLog:
    def __init__(self, events: list[tuple[str, float]], *, stuck: bool = False) -> None:
        self.events = events
        self.stuck = stuck
        self.pending_bytes = 100

    async def flush(self) -> None:
        if self.stuck:
            await asyncio.sleep(3600)  # a store that never answers
        self.events.append(("flush", time.monotonic()))
        self.pending_bytes = 0


def fake_node(*, stuck: bool = False) -> tuple[Any, list[tuple[str, float]]]:
    events: list[tuple[str, float]] = []
    node = SimpleNamespace(
        draining=False, endpoint=FakeEndpoint(events), update_log=FakeLog(events, stuck=stuck)
    )
    return node, events


def test_drain_waits_then_closes_with_1012_then_commits() -> None:
    async def scenario() -> None:
        node, events = fake_node()
        drain = Drain(node, drain_seconds=0.3, shutdown_timeout=5)
        started = time.monotonic()
        task = asyncio.create_task(drain.run())
        await asyncio.sleep(0.05)
        assert node.draining and events == []  # not ready at once; clients still served
        await task
        assert [name for name, _ in events] == ["close", "flush"]
        assert events[0][1] - started >= 0.3
        assert node.endpoint.closed_with == RESTART and RESTART.code == 1012
        assert node.update_log.pending_bytes == 0

    run(scenario())


def test_a_second_sigint_skips_the_wait_and_repeated_sigterms_do_not() -> None:
    async def scenario(second: int) -> float:
        node, events = fake_node()
        drain = Drain(node, drain_seconds=1.0, shutdown_timeout=5)
        handed: list[int] = []
        drain._hand_on = handed.append  # type: ignore[method-assign]  # no real signal here
        started = time.monotonic()
        drain.signalled(signal.SIGTERM)
        await asyncio.sleep(0.1)
        drain.signalled(second)
        async with asyncio.timeout(3):
            while not handed:
                await asyncio.sleep(0.01)
        drain.cancel_watchdog()
        assert handed == [signal.SIGTERM]  # the first signal goes on to the server
        return events[0][1] - started

    assert run(scenario(signal.SIGINT)) < 0.5
    assert run(scenario(signal.SIGTERM)) >= 1.0


def test_past_the_deadline_the_process_exits_with_status_1() -> None:
    async def scenario() -> None:
        node, _ = fake_node(stuck=True)
        exited = threading.Event()
        codes: list[int] = []

        def hard_exit(code: int) -> None:
            codes.append(code)
            exited.set()

        drain = Drain(node, drain_seconds=0.1, shutdown_timeout=0.5, hard_exit=hard_exit)
        started = time.monotonic()
        task = asyncio.create_task(drain.run(signal.SIGTERM))
        assert await asyncio.to_thread(exited.wait, 5)
        assert 0.5 <= time.monotonic() - started < 1.5
        assert codes == [1]
        task.cancel()

    run(scenario())


def test_drain_settings_are_checked() -> None:
    parser = argparse.ArgumentParser()
    settings_module.add_arguments(parser)

    def parse(*argv: str) -> Any:
        return settings_module.from_arguments(parser.parse_args(list(argv)), {})

    assert (parse().drain_seconds, parse().shutdown_timeout) == (0.0, 25.0)
    with pytest.raises(ValueError, match="shutdown_timeout must be greater than drain_seconds"):
        parse("--drain-seconds", "30")
    with pytest.raises(ValueError, match="drain_seconds must not be negative"):
        parse("--drain-seconds", "-1")


# -- real processes -------------------------------------------------------------------------


def test_sigterm_drains_real_js_clients_then_exits_within_the_deadline(
    tmp_path: Path, js_clients_dir: Path
) -> None:
    store = f"sqlite:///{tmp_path}/drain.db"
    # The checks below run during the drain; a `ysync status` process alone takes
    # 1.5 s to start on a loaded machine, so the drain is 4 s, not 2.
    drain = 4.0
    server = YsyncProcess(
        *("--drain-seconds", str(drain), "--shutdown-timeout", "10"),
        store=store,
        log_path=tmp_path / "log",
    ).start()

    async def scenario() -> None:
        async with JSClient.start(js_clients_dir) as a, JSClient.start(js_clients_dir) as b:
            for client in (a, b):
                await client.call("connect", url=server.ws_url, room="drain/room")
                await client.call("wait_synced")
            await a.call("map_set", name="m", key="before", value=1)
            await b.call("wait_for", name="m", kind="map", equals={"before": 1})

            assert server.proc is not None
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            problems = await wait_readiness(server, 503, timeout=1.5)
            assert any("draining" in problem for problem in problems), problems
            status = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "ysync", "status", "--url", server.http_url],
                capture_output=True,
                text=True,
                timeout=20,
            )
            assert status.returncode == 1 and "NOT READY: draining" in status.stdout
            # Still serving the clients it has: the load balancer is moving new ones away.
            await a.call("map_set", name="m", key="during", value=2)
            await b.call("wait_for", name="m", kind="map", equals={"before": 1, "during": 2})
            # ...while a new connection is told to go elsewhere.
            async with connect(server.ws_url, "drain/room", reconnect=False) as late:
                await late.closed(timeout=5)
                assert (late.close_code, late.close_reason) == (1012, RESTART_REASON)

            for client in (a, b):
                close = (await client.call("wait_close", timeout_ms=10_000))["close"]
                assert (close["code"], close["reason"]) == (1012, RESTART_REASON)
            assert time.monotonic() - signalled >= drain - 0.1
            code = await wait_exit(server, 10 - (time.monotonic() - signalled))
            assert code in CLEAN_EXIT
            elapsed = time.monotonic() - signalled
            print(f"closed after the {drain:g} s drain, exited {elapsed:.2f} s after SIGTERM")

            # Edits made while it drained are committed; the providers come back on their own.
            server.stop()
            server.start()
            for client in (a, b):
                await client.call("wait_synced", timeout_ms=10_000)
            async with connect(server.ws_url, "drain/room") as reader:
                await reader.synced()
                assert reader.doc.get("m", type=Map).to_py() == {"before": 1, "during": 2}

    try:
        run(scenario())
        assert "drained in" in server.log()
    finally:
        server.stop()


def test_sigterm_drains_every_worker(tmp_path: Path) -> None:
    with RedisProcess() as redis:
        server = YsyncProcess(
            "--workers",
            "2",
            "--redis-url",
            redis.url,
            "--drain-seconds",
            "1.5",
            "--shutdown-timeout",
            "8",
            store=f"sqlite:///{tmp_path}/workers.db",
            log_path=tmp_path / "log",
        ).start()

        async def scenario() -> None:
            sessions = [
                await connect(server.ws_url, f"w/{i}", reconnect=False).__aenter__()
                for i in range(8)
            ]
            try:
                for session in sessions:
                    await session.synced()
                # Both workers started (the fixture only waited for one to answer /readyz).
                deadline = time.monotonic() + 15
                while server.log().count('"authentication: off"') < 2:
                    assert time.monotonic() < deadline, server.log()
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)
                assert server.proc is not None
                signalled = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                await wait_readiness(server, 503, timeout=1.5)
                # Whichever worker answers, it is draining.
                for _ in range(6):
                    code, problems = await asyncio.to_thread(readiness, server)
                    assert code == 503 and any("draining" in p for p in problems), problems
                for session in sessions:
                    await session.closed(timeout=8)
                    assert (session.close_code, session.close_reason) == (1012, RESTART_REASON)
                assert time.monotonic() - signalled >= 1.4
                code = await wait_exit(server, 8 - (time.monotonic() - signalled))
                assert code == 0  # uvicorn's supervisor exits 0 once its workers have
            finally:
                for session in sessions:
                    await session.close()

        try:
            run(scenario())
            assert server.log().count("drained in") == 2, server.log()
        finally:
            server.stop()


def test_a_stuck_store_cannot_hold_the_exit_past_the_deadline(
    tmp_path: Path, js_clients_dir: Path
) -> None:
    """The store is locked by another process: the flush never completes, so the
    node exits with status 1 at --shutdown-timeout. The client that sent the
    uncommitted edit still holds it and re-sends it to the restarted node."""
    path = tmp_path / "stuck.db"
    server = YsyncProcess(
        "--shutdown-timeout",
        "3",
        "--flush-window",
        "0.02",
        store=f"sqlite:///{path}",
        log_path=tmp_path / "log",
    ).start()

    async def scenario() -> None:
        async with JSClient.start(js_clients_dir) as js:
            await js.call("connect", url=server.ws_url, room="stuck")
            await js.call("wait_synced")
            await js.call("map_set", name="m", key="committed", value=1)
            await asyncio.sleep(0.3)
            lock = sqlite3.connect(path, isolation_level=None)
            try:
                lock.execute("BEGIN EXCLUSIVE")  # every write now waits
                await js.call("map_set", name="m", key="held", value=2)
                await asyncio.sleep(0.3)
                assert server.proc is not None
                signalled = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                code = await wait_exit(server, 15)
                elapsed = time.monotonic() - signalled
                assert code == 1, code
                # At the deadline, not before; the store never answers, so without the
                # deadline there would be no exit at all (the bound is loose: loaded CI).
                assert 2.9 <= elapsed < 12, elapsed
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            server.stop()
            assert "shutdown deadline (3.0 s) passed" in server.log()
            server.start()
            await js.call("wait_synced", timeout_ms=10_000)
            async with connect(server.ws_url, "stuck") as reader:
                await reader.synced()
                await asyncio.wait_for(_until_keys(reader, {"committed", "held"}), 5)

    try:
        run(scenario())
    finally:
        server.stop()


async def _until_keys(session: Any, keys: set[str]) -> None:
    while set(session.doc.get("m", type=Map).keys()) != keys:
        await asyncio.sleep(0.02)
