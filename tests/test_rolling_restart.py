"""A rolling restart under load loses nothing: two nodes with a real redis-server and
one SQLite store, real JS clients (yjs + y-websocket) on both editing the whole time,
each node drained with SIGTERM and started again on its port in turn."""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from ysync.clients import connect
from ysync.persistence.urls import open_store
from ysync.server.drain import RESTART

from support import aio
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess

RESTART_REASON = RESTART.reason

ROOM = "rolling/doc"
CLEAN_EXIT = (0, -signal.SIGTERM)
EDIT_INTERVAL = 0.02
EDITS_BETWEEN = 25  # per editor, before, between and after the restarts: > 200 in all


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=120)


class Editor:
    """One JS client setting unique keys in the room's map, connected or not."""

    def __init__(self, client: JSClient, tag: str) -> None:
        self.client = client
        self.tag = tag
        self.written: list[str] = []

    async def run(self, stop: asyncio.Event, limit: int = 5000) -> None:
        for n in range(limit):
            if stop.is_set():
                return
            key = f"{self.tag}-{n}"
            await self.client.call("map_set", name="m", key=key, value=n)
            self.written.append(key)
            await asyncio.sleep(EDIT_INTERVAL)


async def restart(node: YsyncProcess, editors: list[Editor]) -> float:
    """SIGTERM `node`, wait for its exit, start it again on its port; wait until
    its clients (whose providers reconnect by themselves) are synced again."""
    started = time.monotonic()
    code = await asyncio.to_thread(node.stop, signal.SIGTERM, 15.0)
    assert code in CLEAN_EXIT, f"exit {code}: {node.log()}"
    for editor in editors:
        close = (await editor.client.call("wait_close"))["close"]
        assert (close["code"], close["reason"]) == (1012, RESTART_REASON), close
    await asyncio.to_thread(node.start)
    for editor in editors:
        await editor.client.call("wait_synced", timeout_ms=15_000)
    return time.monotonic() - started


async def more_edits(editors: list[Editor], n: int) -> None:
    """Until every editor has written `n` more keys (a count, not a sleep: under load
    a JS client's round trips are slow)."""
    targets = [(e, len(e.written) + n) for e in editors]
    await aio.wait_until(lambda: all(len(e.written) >= t for e, t in targets), 60)


async def stored_keys(store_url: str) -> set[str]:
    store = await open_store(store_url)
    try:
        updates = await store.load(ROOM)
    finally:
        await store.close()
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return set(doc.get("m", type=Map).keys())


@pytest.mark.slow
def test_rolling_restart_of_two_nodes_under_load_loses_no_edit(
    tmp_path: Path, js_clients_dir: Path
) -> None:
    store = f"sqlite:///{tmp_path}/shared.db"
    with RedisProcess() as redis:
        nodes = [
            YsyncProcess(
                "--redis-url",
                redis.url,
                "--drain-seconds",
                "1",
                "--shutdown-timeout",
                "10",
                store=store,
                log_path=tmp_path / f"node-{name}.log",
            )
            for name in "ab"
        ]

        async def scenario() -> set[str]:
            async with AsyncExitStack() as stack:
                editors: dict[int, list[Editor]] = {0: [], 1: []}
                for i, node in enumerate(nodes):
                    for j in range(2):
                        client = await stack.enter_async_context(JSClient.start(js_clients_dir))
                        await client.call("connect", url=node.ws_url, room=ROOM)
                        await client.call("wait_synced", timeout_ms=10_000)
                        editors[i].append(Editor(client, f"{'ab'[i]}{j}"))
                everyone = editors[0] + editors[1]
                stop = asyncio.Event()
                streams = [asyncio.create_task(e.run(stop)) for e in everyone]
                try:
                    await more_edits(everyone, EDITS_BETWEEN)
                    for i, node in enumerate(nodes):
                        took = await restart(node, editors[i])
                        print(f"node {'ab'[i]} drained, restarted, clients back in {took:.2f} s")
                        await more_edits(everyone, EDITS_BETWEEN)
                finally:
                    stop.set()
                    await asyncio.gather(*streams)
                written = {key for e in everyone for key in e.written}
                assert len(written) > 200, len(written)
                for editor in everyone:  # every client ends up with every edit
                    await editor.client.call(
                        "wait_for", name="m", kind="map", length=len(written), timeout_ms=15_000
                    )
                for node in nodes:  # and so does a newcomer on either node
                    async with connect(node.ws_url, ROOM) as reader:
                        await reader.synced()
                        assert set(reader.doc.get("m", type=Map).keys()) == written
                return written

        try:
            for node in nodes:
                node.start()
            written = run(scenario())
            for node in nodes:
                assert node.stop() in CLEAN_EXIT
        finally:
            for node in nodes:
                node.stop()
        missing = written - run(stored_keys(store))
        assert not missing, (
            f"{len(missing)} of {len(written)} edits not stored: {sorted(missing)[:5]}"
        )
        print(f"{len(written)} edits by 4 clients across two rolling restarts, all stored")
