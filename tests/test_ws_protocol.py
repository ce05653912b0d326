"""ysync's own WebSocket protocol (what `ysync serve` runs), over raw sockets.

The JS provider and the Python clients exercise the happy path everywhere else;
here are the handshake refusals, the RFC 6455 corners and the close handshake.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from pycrdt import Doc, Map

from tests.test_ws_frames import client_frame
from ysync.rooms import codec
from ysync.server.ws_frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT
from ysync.server.ws_protocol import YsyncWebSocketProtocol, _handshake_refusal, accept_key

from support.aio import run
from support.servers import YsyncProcess


@pytest.fixture(scope="module")
def server() -> Iterator[YsyncProcess]:
    with YsyncProcess("--max-message-bytes", "4096") as process:
        yield process


def handshake(room: str = "room", **overrides: str) -> bytes:
    headers = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **overrides,
    }
    lines = [f"GET /{room} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items() if v)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    assert not second & 0x80, "server frames are never masked"
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


async def read_until(reader: asyncio.StreamReader, opcode: int) -> bytes:
    async with asyncio.timeout(5):
        while True:
            got, payload = await read_frame(reader)
            if got == opcode:
                return payload


async def open_ws(
    server: YsyncProcess, room: str = "room"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(handshake(room, **{"Sec-WebSocket-Key": key}))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-accept: " + accept_key(key.encode()) + b"\r\n" in head
    return reader, writer


async def hung_up(reader: asyncio.StreamReader) -> None:
    """The server closed the TCP connection (after a protocol error it does not
    wait for the client's close answer, so that answer may meet a reset)."""
    with contextlib.suppress(ConnectionResetError):
        assert await reader.read() == b""


async def http_refusal(server: YsyncProcess, request: bytes) -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    async with asyncio.timeout(5):
        response = await reader.read()  # the server answers, then hangs up
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_handshake_is_answered_with_the_rfc_6455_accept_key(server: YsyncProcess) -> None:
    async def scenario() -> None:
        reader, writer = await open_ws(server)
        writer.write(client_frame(BINARY, codec.encode_sync_step1(b"\x00")))
        async with asyncio.timeout(5):
            while (await read_until(reader, BINARY))[:2] != b"\x00\x01":
                pass  # the server's own SyncStep1 comes first; then its SyncStep2
        writer.close()

    run(scenario())


@pytest.mark.parametrize(
    ("overrides", "status", "words"),
    [
        ({"Sec-WebSocket-Version": "8"}, 426, "version 13"),
        ({"Sec-WebSocket-Key": ""}, 400, "Sec-WebSocket-Key"),
        ({"Sec-WebSocket-Key": "c2hvcnQ="}, 400, "Sec-WebSocket-Key"),
    ],
)
def test_a_bad_handshake_gets_an_http_error_with_a_json_body(
    server: YsyncProcess, overrides: dict[str, str], status: int, words: str
) -> None:
    code, body = run(http_refusal(server, handshake(**overrides)))
    assert code == status and words in body["error"]


@pytest.mark.parametrize(
    ("upgrade", "connection", "refused"),
    [
        (b"websocket", b"Upgrade", None),
        (b"WebSocket", b"keep-alive, Upgrade", None),  # tokens, case-insensitive
        (b"h2c, websocket", b"upgrade", None),
        (b"notwebsocket", b"Upgrade", "Upgrade: websocket"),
        (b"websocket2", b"Upgrade", "Upgrade: websocket"),
        (b"websocket", b"keep-alive", "Connection: Upgrade"),
        (b"websocket", b"", "Connection: Upgrade"),
        (b"websocket", b"upgraded", "Connection: Upgrade"),
    ],
)
def test_upgrade_and_connection_are_read_as_token_lists(
    upgrade: bytes, connection: bytes, refused: str | None
) -> None:
    headers = {
        b"upgrade": upgrade,
        b"connection": connection,
        b"sec-websocket-version": b"13",
        b"sec-websocket-key": base64.b64encode(os.urandom(16)),
    }
    answer = _handshake_refusal(headers)
    if refused is None:
        assert answer is None
    else:
        assert answer is not None and answer.startswith(b"HTTP/1.1 400 ")
        assert refused.encode() in answer


def test_ping_is_answered_and_a_fragmented_message_is_joined(server: YsyncProcess) -> None:
    async def scenario() -> None:
        reader, writer = await open_ws(server, "fragments")
        writer.write(client_frame(PING, b"hi"))
        assert await read_until(reader, PONG) == b"hi"
        doc = Doc()
        doc["m"] = Map()
        doc["m"]["k"] = "x" * 200
        update = codec.encode_update(doc.get_update())
        half = len(update) // 2
        writer.write(client_frame(BINARY, update[:half], final=False))
        writer.write(client_frame(PING, b"between"))
        writer.write(client_frame(CONTINUATION, update[half:]))
        assert await read_until(reader, PONG) == b"between"
        writer.close()
        # The joined update reached the room: a new client syncs it.
        reader2, writer2 = await open_ws(server, "fragments")
        writer2.write(client_frame(BINARY, codec.encode_sync_step1(b"\x00")))
        async with asyncio.timeout(5):
            while True:
                payload = await read_until(reader2, BINARY)
                if payload[:2] == b"\x00\x01" and len(payload) > 4:
                    break
        writer2.close()

    run(scenario())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (bytes((0x82, 0x01)) + b"x", 1002),  # unmasked
        (client_frame(0x3, b"x"), 1002),  # unknown opcode
        (client_frame(BINARY, b"x" * 9000), 1009),  # over the protocol's bound (2 x 4096)
        (client_frame(BINARY, b"x" * 5000), 4413),  # over --max-message-bytes
        (client_frame(TEXT, b"hello"), 4400),  # not y-websocket
        (client_frame(TEXT, b"\xff\xfe"), 1007),  # not UTF-8
    ],
)
def test_a_broken_frame_closes_only_that_connection_with_a_code(
    server: YsyncProcess, frame: bytes, code: int
) -> None:
    async def scenario() -> None:
        bystander_reader, bystander = await open_ws(server, "shared")
        reader, writer = await open_ws(server, "shared")
        writer.write(frame)
        close = await read_until(reader, CLOSE)
        assert int.from_bytes(close[:2], "big") == code
        writer.write(client_frame(CLOSE, close[:2]))  # a client answers the close
        async with asyncio.timeout(5):
            await hung_up(reader)
        writer.close()
        bystander.write(client_frame(PING, b"still here"))
        assert await read_until(bystander_reader, PONG) == b"still here"
        bystander.close()

    run(scenario())


def test_a_client_close_is_echoed_then_the_server_hangs_up(server: YsyncProcess) -> None:
    async def scenario() -> None:
        reader, writer = await open_ws(server)
        writer.write(client_frame(CLOSE, (1000).to_bytes(2, "big") + b"bye"))
        close = await read_until(reader, CLOSE)
        assert int.from_bytes(close[:2], "big") == 1000
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()

    run(scenario())


def test_a_client_that_vanishes_mid_handshake_harms_nothing(server: YsyncProcess) -> None:
    async def scenario() -> None:
        for cut in (10, len(handshake()) - 2):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(handshake()[:cut])
            await writer.drain()
            writer.close()
        reader, writer = await open_ws(server)
        writer.write(client_frame(PING, b"ok"))
        assert await read_until(reader, PONG) == b"ok"
        writer.close()

    run(scenario())


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str) -> None:
        return None

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


def test_heartbeat_pings_only_silent_clients_and_drops_those_that_stay_silent() -> None:
    config = SimpleNamespace(loaded=True, ws_max_size=1024)
    protocol = YsyncWebSocketProtocol(config, SimpleNamespace(connections=set()), {})
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.handshake_complete = True
    protocol.data_received(client_frame(PONG, b""))  # heard from: no ping needed
    protocol.heartbeat()
    assert transport.written == []
    protocol.heartbeat()  # silent since: pinged
    assert transport.written == [b"\x89\x00"]
    protocol.data_received(client_frame(PONG, b""))
    protocol.heartbeat()  # the pong counts as an answer
    assert not transport.aborted and len(transport.written) == 1
    protocol.heartbeat()  # silent again: pinged
    protocol.heartbeat()  # and no answer at all: dropped
    assert len(transport.written) == 2 and transport.aborted


def test_frames_sent_before_the_app_accepts_are_kept_for_after_it() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        received: list[dict[str, object]] = []

        async def app(scope: dict[str, object], receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "websocket.connect"
            await gate.wait()  # e.g. authentication taking its time
            await send({"type": "websocket.accept"})
            received.append(await receive())
            received.append(await receive())

        config = SimpleNamespace(
            loaded=True, ws_max_size=1024, asgi_version="3.0", root_path="", loaded_app=app
        )
        state = SimpleNamespace(connections=set(), tasks=set(), default_headers=[])
        protocol = YsyncWebSocketProtocol(config, state, {})
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.data_received(handshake("early"))
        await asyncio.sleep(0)
        update = codec.encode_sync_step1(b"\x00")
        frames = client_frame(BINARY, update) + client_frame(PING, b"p")
        protocol.data_received(frames[:3])  # a frame split across reads, before the accept
        protocol.data_received(frames[3:])
        assert transport.written == []  # nothing answered before the app accepts
        gate.set()
        await asyncio.sleep(0.01)
        assert transport.written[0].startswith(b"HTTP/1.1 101 ")
        assert transport.written[1:] == [b"\x8a\x01p"]  # the early ping's pong, after the 101
        assert received[0] == {"type": "websocket.receive", "bytes": update}
        protocol.connection_lost(None)
        await asyncio.sleep(0)
        assert received[1]["type"] == "websocket.disconnect"

    run(scenario())
