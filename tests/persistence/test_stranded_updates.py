"""A room loaded with updates whose dependency never reached the store (issue 14):
it says so once in the log, in /metrics and in `ysync status`, asks its clients
for what it lacks, and heals (and stores the dependency) when one still has it."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text

from ysync.clients import connect
from ysync.persistence.urls import open_store
from ysync.rooms.room import Room

from support.aio import run, wait_until
from support.servers import YsyncProcess


def stranded_history() -> tuple[Doc[Any], bytes]:
    """A writer's document holding x then y, and y alone (it depends on x)."""
    doc: Doc[Any] = Doc()
    text = doc.get("t", type=Text)
    text.insert(0, "x")
    before = doc.get_state()
    text.insert(1, "y")
    return doc, doc.get_update(before)


def rooms_api(server: YsyncProcess) -> dict[str, Any]:
    with urllib.request.urlopen(server.http_url + "/api/rooms", timeout=5) as response:
        body: dict[str, Any] = json.load(response)
    return body


def pending_metric(server: YsyncProcess) -> float | None:
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^ysync_rooms_pending_updates ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


async def wait_for_pending_metric(server: YsyncProcess, value: float) -> None:
    async with asyncio.timeout(10):  # the metrics refresh every second
        while await asyncio.to_thread(pending_metric, server) != value:
            await asyncio.sleep(0.2)


def test_a_room_loaded_with_stranded_updates_reports_them_and_heals_from_a_client(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    writer, y_alone = stranded_history()

    async def seed() -> None:
        store = await open_store(url)
        await store.append([("room", y_alone)])  # x never made it
        await store.close()

    run(seed())
    log = tmp_path / "log"
    with YsyncProcess(store=url, log_path=log) as server:

        async def scenario() -> None:
            async with connect(server.ws_url, "room") as reader:
                await reader.synced()
                await wait_for_pending_metric(server, 1)
                (room,) = (await asyncio.to_thread(rooms_api, server))["rooms"]
                assert room["pending_updates"] == 1
                # A client that still holds x connects: the server's SyncStep1 makes it upload x.
                async with connect(server.ws_url, "room", doc=writer) as holder:
                    await holder.synced()
                    await wait_until(lambda: str(reader.doc.get("t", type=Text)) == "xy", 10)
                await wait_for_pending_metric(server, 0)

        run(scenario())
    warnings = [line for line in log.read_text().splitlines() if "dependencies are missing" in line]
    assert len(warnings) == 1

    async def reload() -> Room:
        store = await open_store(url)
        room = Room("room")
        room.load(await store.load("room"))
        await store.close()
        return room

    healed = run(reload())
    assert str(healed.doc.get("t", type=Text)) == "xy" and not healed.pending
