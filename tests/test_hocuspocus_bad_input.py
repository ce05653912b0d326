"""Hostile Hocuspocus sockets against a real ysync process: each handled as the
Hocuspocus server does (or with the documented close code), never a crash, never an
effect on another document or socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.clients import connect
from ysync.rooms import codec, hocuspocus
from ysync.rooms.lib0 import var_string

from support.aio import run
from support.servers import YsyncProcess

FLAGS = (
    *("--auth-timeout", "1", "--hocuspocus-max-documents", "5"),
    *("--hocuspocus-pending-messages", "10"),
)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    log = tmp_path_factory.mktemp("hocus") / "ysync.log"
    with YsyncProcess(*FLAGS, log_path=log) as server:
        yield server


@asynccontextmanager
async def socket(server: YsyncProcess) -> AsyncIterator[ClientConnection]:
    async with ws_connect(server.ws_url, proxy=None, max_size=None) as ws:
        yield ws


def frame(address: str, message: hocuspocus.Message) -> bytes:
    return hocuspocus.encode(address, message)


async def until(ws: ClientConnection, address: str, kind: type, timeout: float = 5) -> object:
    """The next message of `kind` for `address` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            assert isinstance(raw, bytes)
            got_address, message = hocuspocus.decode(raw)
            if got_address == address and isinstance(message, kind):
                return message


async def open_document(ws: ClientConnection, name: str) -> None:
    await ws.send(frame(name, hocuspocus.AuthToken("")))
    await ws.send(frame(name, codec.SyncStep1(b"\x00")))
    await until(ws, name, hocuspocus.Authenticated)
    await until(ws, name, codec.SyncStep2)


async def closed_with(ws: ClientConnection, timeout: float = 5) -> tuple[int | None, str | None]:
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)


def edit(text: str) -> bytes:
    doc = Doc()
    doc["t"] = Text(text)
    return doc.get_update()


async def still_works(ws: ClientConnection, name: str) -> None:
    await ws.send(frame(name, codec.SyncUpdate(edit("ok"))))
    status = await until(ws, name, hocuspocus.SyncStatus)
    assert status == hocuspocus.SyncStatus(applied=True)


def test_errors_in_one_document_close_it_alone(hostile_server: YsyncProcess) -> None:
    async def scenario() -> None:
        async with socket(hostile_server) as ws:
            for name in ("bad/a", "bad/b", "bad/c", "bad/d"):
                await open_document(ws, name)
            # BroadcastStateless from a client: that document is closed, with the reason.
            await ws.send(frame("bad/a", hocuspocus.BroadcastStateless("all")))
            closed = await until(ws, "bad/a", hocuspocus.Close)
            assert isinstance(closed, hocuspocus.Close) and "server-internal" in closed.reason
            # A truncated string in a message: the same.
            await ws.send(var_string("bad/b") + b"\x05\x09hi")
            closed = await until(ws, "bad/b", hocuspocus.Close)
            assert isinstance(closed, hocuspocus.Close) and "malformed" in closed.reason
            # An update the CRDT rejects: the same.
            await ws.send(frame("bad/c", codec.SyncUpdate(b"\x05\xff\xff")))
            await until(ws, "bad/c", hocuspocus.Close)
            # An unknown type is ignored (as Hocuspocus does).
            await ws.send(var_string("bad/d") + b"\x2a\x01\x02")
            await still_works(ws, "bad/d")
            # A closed document may be opened again on the same socket.
            await open_document(ws, "bad/a")
            await still_works(ws, "bad/a")

    run(scenario())


def test_a_document_past_the_limit_is_denied_and_unauthenticated_floods_reset(
    hostile_server: YsyncProcess,
) -> None:
    async def scenario() -> None:
        async with socket(hostile_server) as ws:
            for i in range(5):
                await open_document(ws, f"many/{i}")
            # Auth for one more: denied, and the socket with its documents carries on.
            await ws.send(frame("many/5", hocuspocus.AuthToken("")))
            denied = await until(ws, "many/5", hocuspocus.PermissionDenied)
            assert isinstance(denied, hocuspocus.PermissionDenied)
            assert "too many documents" in denied.reason
            await still_works(ws, "many/0")
            # Frames for yet another document without its auth: the socket is reset.
            await ws.send(frame("many/6", codec.SyncStep1(b"\x00")))
            code, reason = await closed_with(ws)
            assert code == 4205 and reason and "too many documents" in reason

        async with socket(hostile_server) as ws:
            await open_document(ws, "queue/open")
            # Frames queued for a document whose auth never comes, past the bound.
            for _ in range(11):
                await ws.send(frame("queue/waiting", codec.SyncStep1(b"\x00")))
            code, reason = await closed_with(ws)
            assert code == 4205 and reason and "auth was decided" in reason

    run(scenario())


def test_sockets_that_never_authenticate_or_send_garbage_are_closed(
    hostile_server: YsyncProcess,
) -> None:
    async def scenario() -> None:
        async with connect(hostile_server.ws_url, "calm/room") as bystander:
            await bystander.synced()
            async with socket(hostile_server) as ws:
                # Frames for a document never authenticated: no answer; 4408 at the deadline.
                await ws.send(frame("calm/room", codec.SyncUpdate(edit("sneaky"))))
                code, _ = await closed_with(ws, timeout=5)
                assert code == 4408
            async with socket(hostile_server) as ws:
                await ws.send(b"\x09\x01")  # an address of 9 bytes that are not there
                code, reason = await closed_with(ws)
                assert code == 4400 and reason and "document address" in reason
            async with socket(hostile_server) as ws:
                await ws.send(hocuspocus.PING)
                assert await ws.recv() == hocuspocus.PONG
            # The room never saw the unauthenticated edit, and still relays.
            assert str(bystander.doc.get("t", type=Text)) == ""
            async with socket(hostile_server) as ws:
                await open_document(ws, "calm/room")
                await ws.send(frame("calm/room", codec.SyncUpdate(edit("fine"))))
                await until(ws, "calm/room", hocuspocus.SyncStatus)
            async with asyncio.timeout(5):
                while str(bystander.doc.get("t", type=Text)) != "fine":
                    await asyncio.sleep(0.01)

    run(scenario())
