"""Request heads against a real `ysync serve`: deadlines, size, concurrent-head caps, and
parser errors as JSON (server/http_head.py). On main, idle and slow-header sockets were
kept forever, heads of any size were held, and parser errors were 400 text/plain."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

import pytest

from support import aio
from support.servers import YsyncProcess


@pytest.fixture(scope="module")
def server() -> Iterator[YsyncProcess]:
    flags = ("--header-timeout", "2", "--max-handshakes-per-ip", "6", "--max-handshakes", "100")
    with YsyncProcess(*flags) as process:
        yield process


async def _shut(writer: asyncio.StreamWriter) -> None:
    """Drop our end now (nothing left unsent) and wait until the transport is gone."""
    writer.transport.abort()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Status and JSON body of the response; then the server must hang up."""
    async with asyncio.timeout(10):
        raw = await reader.read(-1)  # until EOF: the server closes
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), raw
    return int(head.split(b" ")[1]), json.loads(body)


async def _connect(server: YsyncProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


def test_a_socket_that_sends_nothing_is_closed_after_the_header_timeout(
    server: YsyncProcess,
) -> None:
    async def scenario() -> tuple[int, dict[str, str]]:
        reader, writer = await _connect(server)
        try:
            return await _response(reader)
        finally:
            await _shut(writer)

    status, body = aio.run(scenario())
    assert status == 408 and body["code"] == "header_timeout", body


def test_slow_headers_are_closed_at_the_deadline(server: YsyncProcess) -> None:
    async def scenario() -> tuple[int, dict[str, str]]:
        reader, writer = await _connect(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for i in range(60):  # a header line every 0.1 s, never the end of the head
            writer.write(f"X-Slow-{i}: y\r\n".encode())
            try:
                first = await asyncio.wait_for(reader.readexactly(1), 0.1)
                break  # the server answered
            except TimeoutError:
                continue
        else:
            raise AssertionError("slow headers were never cut off")
        async with asyncio.timeout(10):
            raw = first + await reader.read(-1)
        await _shut(writer)
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), json.loads(body)

    status, body = aio.run(scenario())
    assert status == 408 and "header_timeout" in body["error"], body


def test_a_head_over_max_header_bytes_gets_431(server: YsyncProcess) -> None:
    async def scenario() -> tuple[int, dict[str, str]]:
        reader, writer = await _connect(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        try:
            return await _response(reader)
        finally:
            await _shut(writer)

    status, body = aio.run(scenario())
    assert status == 431 and body["code"] == "headers_too_large", body


def test_a_parser_error_is_answered_in_json(server: YsyncProcess) -> None:
    async def scenario() -> tuple[int, dict[str, str]]:
        reader, writer = await _connect(server)
        writer.write(b"\x00\x01 NOT-HTTP\r\n\r\n")
        try:
            return await _response(reader)
        finally:
            await _shut(writer)

    status, body = aio.run(scenario())
    assert status == 400 and body["code"] == "bad_request", body


def test_slow_heads_of_one_address_make_room_but_a_burst_is_let_in(server: YsyncProcess) -> None:
    async def scenario() -> tuple[int, dict[str, str], int]:
        slow = [await _connect(server) for _ in range(6)]  # the address's cap
        await asyncio.sleep(1.3)  # older than BURST_GRACE: slow heads now
        burst = [await _connect(server) for _ in range(3)]  # over the cap, fresh
        # The oldest slow head was closed to make room (408); the newcomers are in.
        status, body = await _response(slow[0][0])
        r, w = burst[-1]
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(10):
            ok = int((await r.read(-1)).split(b" ")[1])
        for _, writer in slow + burst:
            await _shut(writer)
        return status, body, ok

    status, body, ok = aio.run(scenario())
    assert status == 408 and "max_handshakes_per_ip" in body["error"], body
    assert ok == 200


def test_connections_in_their_head_are_capped_in_all() -> None:
    async def scenario(node: YsyncProcess) -> tuple[int, dict[str, str]]:
        idle = [await _connect(node) for _ in range(4)]
        await asyncio.sleep(0.2)  # all fresh: none may be evicted, so the newcomer is refused
        reader, writer = await _connect(node)
        try:
            return await _response(reader)
        finally:
            await _shut(writer)
            for _, w in idle:
                await _shut(w)

    with YsyncProcess("--max-handshakes", "4", "--max-handshakes-per-ip", "0") as node:
        status, body = aio.run(scenario(node))
    assert status == 503 and "max_handshakes" in body["error"], body
