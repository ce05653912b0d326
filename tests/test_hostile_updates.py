"""Updates built to crash yrs, or to hold memory and CPU in its pending queue, against
a real `ysync serve` process: each is refused, the process lives, other rooms work.

On a server without `ysync.rooms.structure` the deep ones kill the process
(SIGSEGV: yrs overflows its native stack); see tests/fuzz/poison.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.clients import room_url
from ysync.persistence.urls import open_store
from ysync.rooms import codec
from ysync.rooms.lib0 import var_string, var_uint

from fuzz.poison import deep_any, deep_maps, deep_maps_delete
from support import aio
from support.servers import YsyncProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    log = tmp_path_factory.mktemp("hostile") / "ysync.log"
    with YsyncProcess("--max-document-bytes", "600000", log_path=log) as process:
        yield process


async def _open(server: YsyncProcess, room: str) -> ClientConnection:
    ws = await ws_connect(room_url(server.ws_url, room), proxy=None, max_size=None)
    await ws.recv()  # the server's SyncStep1
    return ws


async def _closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    try:
        async with asyncio.timeout(15):
            while True:
                await ws.recv()
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason


async def _refused(server: YsyncProcess, room: str, *updates: bytes) -> tuple[int | None, str]:
    ws = await ws_connect(room_url(server.ws_url, room), proxy=None, max_size=None)
    try:
        for update in updates:
            await ws.send(codec.encode_update(update))
    except ConnectionClosed:
        pass
    code, reason = await _closed_with(ws)
    return code, reason or ""


async def _room_works(server: YsyncProcess, room: str) -> str:
    """An edit from one connection reaches a newcomer (in its SyncStep2)."""
    doc = Doc()
    doc.get("t", type=Text).insert(0, "still here")
    writer = await _open(server, room)
    await writer.send(codec.encode_update(doc.get_update()))
    await writer.send(codec.encode_sync_step1(b"\x00"))  # answered after the edit is applied
    async with asyncio.timeout(10):
        while not isinstance(codec.decode(await writer.recv()), codec.SyncStep2):
            pass
    reader = await _open(server, room)
    await reader.send(codec.encode_sync_step1(b"\x00"))
    async with asyncio.timeout(10):
        while True:
            message = codec.decode(await reader.recv())
            if isinstance(message, codec.SyncStep2):
                break
    await writer.close()
    await reader.close()
    got = Doc()
    got.apply_update(message.update)
    return str(got.get("t", type=Text))


def _alive(server: YsyncProcess) -> None:
    assert server.proc is not None and server.proc.poll() is None, server.log()[-2000:]


def test_any_nested_40000_deep_is_refused_and_the_node_lives(server: YsyncProcess) -> None:
    code, reason = aio.run(_refused(server, "deep-any", deep_any(40_000)))
    assert code == 4400 and "nests deeper than 256" in reason, reason
    _alive(server)
    assert aio.run(_room_works(server, "bystander-any")) == "still here"


def test_maps_nested_60000_deep_are_refused_so_no_delete_can_crash(server: YsyncProcess) -> None:
    code, reason = aio.run(_refused(server, "deep-maps", deep_maps(60_000), deep_maps_delete()))
    assert code == 4400 and "shared types nest deeper than 256" in reason, reason
    _alive(server)
    assert aio.run(_room_works(server, "bystander-maps")) == "still here"


def test_nesting_built_up_over_many_updates_is_refused_at_the_limit(server: YsyncProcess) -> None:
    doc = Doc()
    level = doc.get("m", type=Map)
    updates = []
    for _ in range(300):  # one map deeper per update
        before = doc.get_state()
        child: Map[object] = Map()
        level["k"] = child
        level = child
        updates.append(doc.get_update(before))
    code, reason = aio.run(_refused(server, "deep-steps", *updates))
    assert code == 4400 and "shared types nest deeper than 256" in reason, reason
    _alive(server)


def _gapped(client: int, clock: int, text: str) -> bytes:
    """A string item at `clock` of `client` in root text "t": it waits for clocks below."""
    item = b"\x04" + var_uint(1) + var_string("t") + var_string(text)
    return b"\x01\x01" + var_uint(client) + var_uint(clock) + item + b"\x00"


def test_gapped_updates_count_toward_the_document_limit(server: YsyncProcess) -> None:
    # Structs behind a clock gap add nothing to the document until a 1-struct
    # update fills the gap: on main, 4 x 160 KB of them grew a 600 KB-limited
    # document to 640 KB. They are counted while they wait.
    size = 160_000

    async def scenario() -> tuple[int | None, str]:
        ws = await _open(server, "gaps")
        try:
            for i in range(4):
                await ws.send(codec.encode_update(_gapped(5, 1 + i * size, "x" * size)))
            await ws.send(codec.encode_update(_gapped(5, 0, "y")))
        except ConnectionClosed:
            pass
        code, reason = await _closed_with(ws)
        return code, reason or ""

    code, reason = aio.run(scenario())
    assert code == 4413 and "max_document_bytes" in reason, reason
    _alive(server)
    assert aio.run(_room_works(server, "bystander-gaps")) == "still here"


def test_a_stored_poison_pill_is_refused_at_load_and_repaired(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/ysync.db"
    good = Doc()
    good.get("t", type=Text).insert(0, "kept")

    async def seed() -> None:
        opened = await open_store(store)
        # What a node without the structure check stored: the poison and its delete.
        await opened.append([("poisoned", good.get_update()), ("poisoned", deep_maps(60_000))])
        await opened.append([("poisoned", deep_maps_delete())])
        await opened.close()

    aio.run(seed())
    with YsyncProcess(store=store) as node:
        code, reason = aio.run(_refused(node, "poisoned"))
        assert code == 1013 and "ysync repair" in reason, reason
        _alive(node)
        assert aio.run(_room_works(node, "healthy")) == "still here"
        metrics = aio.run(_metrics(node))
        assert "ysync_rooms_damaged_total 1.0" in metrics
    repaired = subprocess.run(
        [
            sys.executable,
            "-m",
            "ysync",
            "repair",
            "poisoned",
            "--store",
            store,
            "--backup",
            str(tmp_path / "poisoned.bak"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert repaired.returncode == 0, repaired.stderr
    assert "structs replaced" in repaired.stdout
    assert (tmp_path / "poisoned.bak").stat().st_size > 500_000  # the originals
    with YsyncProcess(store=store) as node:
        assert aio.run(_sync_text(node, "poisoned")) == "kept"
        _alive(node)


async def _metrics(node: YsyncProcess) -> str:
    import httpx

    async with asyncio.timeout(10):
        while True:
            async with httpx.AsyncClient() as http:
                text = (await http.get(node.http_url + "/metrics")).text
            if "ysync_rooms_damaged_total 1.0" in text:
                return text
            await asyncio.sleep(0.2)


async def _sync_text(node: YsyncProcess, room: str) -> str:
    ws = await _open(node, room)
    await ws.send(codec.encode_sync_step1(b"\x00"))
    async with asyncio.timeout(10):
        while True:
            message = codec.decode(await ws.recv())
            if isinstance(message, codec.SyncStep2):
                break
    await ws.close()
    doc = Doc()
    doc.apply_update(message.update)
    return str(doc.get("t", type=Text))


def test_a_state_vector_bomb_is_refused(server: YsyncProcess) -> None:
    # 2,000,000 entries in one SyncStep1: on main 2.4 s of CPU per message, decoded
    # entry by entry in Python. Refused from its count; well-formed ones are checked in C.
    bomb = var_uint(2_000_000) + b"\x01\x01" * 2_000_000

    async def scenario() -> tuple[int | None, str]:
        ws = await ws_connect(room_url(server.ws_url, "sv-bomb"), proxy=None, max_size=None)
        await ws.send(codec.encode_sync_step1(bomb))
        code, reason = await _closed_with(ws)
        return code, reason or ""

    code, reason = aio.run(scenario())
    assert code == 4400 and "over 100000" in reason, reason
    _alive(server)
