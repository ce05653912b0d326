"""Raw WebSocket bytes for hostile clients: a handshake and client frames."""

from __future__ import annotations

import asyncio
import base64
import os


def client_frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    """A client frame masked with a zero key (legal, and the payload stays as is)."""
    first = (0x80 if final else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def handshake(path: str) -> bytes:
    """The upgrade request for `ws://127.0.0.1/<path>`."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def read_server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: its first byte (FIN and opcode) and its payload."""
    first, second = await reader.readexactly(2)
    n = second & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return first, await reader.readexactly(n)
