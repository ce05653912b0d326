"""Sockets that try to hold a node's memory or CPU, against a real `ysync serve --auth jwt`:
each is cut off early and holds little, and an authenticated bystander keeps working.

Memory is read from the server's /proc status (VmRSS): on main, each of these
attacks held tens of MiB (a 32 MiB frame before authentication; 109 MiB of empty
continuation frames in 10 s).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_ws_frames import client_frame
from tests.test_ws_protocol import handshake, read_frame, read_until
from ysync.rooms import codec
from ysync.server.ws_frames import BINARY, CLOSE, CONTINUATION, PING

from support import aio
from support import authtokens as tk
from support.servers import YsyncProcess

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    log = tmp_path_factory.mktemp("sockets") / "ysync.log"
    with YsyncProcess(*tk.JWT_FLAGS, log_path=log) as process:
        yield process


async def _shut(writer: asyncio.StreamWriter) -> None:
    """Drop our end now (nothing left unsent) and wait until the transport is gone."""
    writer.transport.abort()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def rss(server: YsyncProcess) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _open(
    server: YsyncProcess, path: str = "room"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(handshake(path, **{"Sec-WebSocket-Key": key}))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


async def _close_code(reader: asyncio.StreamReader) -> tuple[int, str]:
    payload = await read_until(reader, CLOSE)
    return int.from_bytes(payload[:2], "big"), payload[2:].decode()


async def _send_quietly(writer: asyncio.StreamWriter, data: bytes) -> None:
    try:
        writer.write(data)
        async with asyncio.timeout(5):
            await writer.drain()
    except (ConnectionError, TimeoutError):
        pass  # the server hung up, or stopped reading: both are the point


def _alive(server: YsyncProcess) -> None:
    assert server.proc is not None and server.proc.poll() is None


def test_an_unauthenticated_socket_holds_only_a_few_kib(server: YsyncProcess) -> None:
    async def scenario() -> tuple[int, str]:
        reader, writer = await _open(server)
        # An 8 MiB frame instead of an auth message: the server reads ~32 KiB of it,
        # stops reading (the rest waits in our socket), and refuses at the auth timeout.
        frame = client_frame(BINARY, b"x" * (8 * MIB))
        writer.write(frame)
        code = await _close_code(reader)
        await _shut(writer)
        return code

    before = rss(server)
    code, reason = aio.run(scenario())
    assert code == 4401 and "token missing" in reason, reason
    assert rss(server) - before < 4 * MIB
    _alive(server)


def test_after_a_refusal_nothing_more_is_kept(server: YsyncProcess) -> None:
    async def scenario() -> tuple[int, str]:
        reader, writer = await _open(server)
        writer.write(client_frame(BINARY, b"\x02\x00\x05hello"))  # an auth message, bad token
        code = await _close_code(reader)
        # Keep sending one 30 MiB frame (and never answer the close): on main it was
        # buffered until the 15 s close timeout; now none of it is kept.
        writer.write(client_frame(BINARY, b"y" * (30 * MIB))[:14])
        for _ in range(16):
            await _send_quietly(writer, b"y" * MIB)
        await _shut(writer)
        return code

    before = rss(server)
    code, _reason = aio.run(scenario())
    assert code == 4401
    assert rss(server) - before < 4 * MIB
    _alive(server)


def test_empty_continuation_frames_are_bounded(server: YsyncProcess) -> None:
    async def scenario() -> tuple[int, str]:
        reader, writer = await _open(server, f"room?token={tk.token()}")
        writer.write(client_frame(BINARY, b"", final=False))
        await _send_quietly(writer, client_frame(CONTINUATION, b"", final=False) * 100_000)
        code = await _close_code(reader)
        await _shut(writer)
        return code

    code, reason = aio.run(scenario())
    assert code == 1009 and "fragments" in reason, reason
    _alive(server)


def test_a_ping_flood_is_cut_off(server: YsyncProcess) -> None:
    async def scenario() -> tuple[int, str]:
        reader, writer = await _open(server, f"room?token={tk.token()}")
        await _send_quietly(writer, client_frame(PING, b"p") * 10_000)
        code = await _close_code(reader)
        await _shut(writer)
        return code

    code, reason = aio.run(scenario())
    assert code == 1008 and "control frames" in reason, reason
    _alive(server)


def test_one_user_may_hold_only_so_many_rooms_and_connections(tmp_path: Path) -> None:
    flags = (*tk.JWT_FLAGS, "--max-rooms-per-user", "2", "--max-connections-per-user", "3")

    async def outcome(node: YsyncProcess, path: str, held: list[Any]) -> tuple[int, str] | str:
        """ "open" once the room answers our SyncStep1, else the close code and reason."""
        reader, writer = await _open(node, path)
        held.append(writer)
        writer.write(client_frame(BINARY, codec.encode_sync_step1(b"\x00")))
        async with asyncio.timeout(10):
            while True:
                opcode, payload = await read_frame(reader)
                if opcode == CLOSE:
                    return int.from_bytes(payload[:2], "big"), payload[2:].decode()
                if payload[:2] == b"\x00\x01":
                    return "open"

    async def scenario(node: YsyncProcess) -> list[tuple[int, str] | str]:
        grant = tk.token(sub="glob", rooms={"*": "viewer"})
        other = tk.token(sub="someone-else", rooms={"*": "viewer"})
        held: list[Any] = []
        got = []
        for room in ("r1", "r2", "r3", "r1", "r1"):  # r3: a third room; r1 x2: 4th, 5th socket
            got.append(await outcome(node, f"{room}?token={grant}", held))
        got.append(await outcome(node, f"r9?token={other}", held))  # another user: unaffected
        for w in held:
            await _shut(w)
        return got

    with YsyncProcess(*flags, log_path=tmp_path / "log") as node:
        got = aio.run(scenario(node))
    assert got[:2] == ["open", "open"], got
    assert isinstance(got[2], tuple) and got[2][0] == 4503 and "max_rooms_per_user" in got[2][1]
    assert got[3] == "open"  # a room the user already has open
    assert isinstance(got[4], tuple) and "max_connections_per_user" in got[4][1], got
    assert got[5] == "open"
