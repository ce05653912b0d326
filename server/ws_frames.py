"""WebSocket frames from a client, sans I/O (RFC 6455 section 5).

`FrameReader.feed(data)` takes bytes as they arrive and returns the complete
messages and control frames in them; anything the RFC forbids raises
`FrameError` with the close code and reason to answer with. Only what a
server reads is here: client frames are always masked, no extension is ever
negotiated (so the RSV bits are always 0), and fragments are joined into one
message bounded by `max_size` before any of it is buffered.
"""

from __future__ import annotations

from websockets.frames import apply_mask  # type: ignore[attr-defined]  # C speedup if built

from ysync.rooms.vocabulary import CloseCode, may_be_sent

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)

CLOSE_PROTOCOL_ERROR = CloseCode.PROTOCOL_ERROR
CLOSE_INVALID_DATA = CloseCode.INVALID_DATA
CLOSE_TOO_LARGE = CloseCode.MESSAGE_TOO_BIG


class FrameError(Exception):
    """The client broke RFC 6455 (or the size limit): close with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked, final server frame carrying `length` bytes."""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame's payload (1005: none given)."""
    if not payload:
        return CloseCode.NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not may_be_sent(code):
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None
    return code, reason


class FrameReader:
    """Turns a client's byte stream into `(opcode, payload)` pairs: whole TEXT or
    BINARY messages (payload bytes; text is not decoded here), and CLOSE, PING
    and PONG frames."""

    __slots__ = ("_buffer", "_fragments", "_fragments_size", "_message_opcode", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = b""
        self._fragments: list[bytes] | None = None  # a fragmented message so far
        self._fragments_size = 0
        self._message_opcode = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        out: list[tuple[int, bytes]] = []
        position, end = 0, len(buffer)
        while end - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            if first & 0x70:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension agreed)")
            if not second & 0x80:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            length = second & 0x7F
            header = 6
            if length == 126:
                header = 8
                if end - position < header:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
            elif length == 127:
                header = 14
                if end - position < header:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
            opcode = first & 0x0F
            self._check(opcode, bool(first & 0x80), length)
            if end - position < header + length:
                break
            mask = buffer[position + header - 4 : position + header]
            start = position + header
            payload = apply_mask(buffer[start : start + length], mask) if length else b""
            position = start + length
            message = self._frame(opcode, bool(first & 0x80), payload)
            if message is not None:
                out.append(message)
        self._buffer = buffer[position:] if position < end else b""
        return out

    def _check(self, opcode: int, final: bool, length: int) -> None:
        """Refuse a frame from its header alone, before buffering its payload."""
        if opcode in _CONTROL:
            if not final or length > 125:
                raise FrameError(
                    CLOSE_PROTOCOL_ERROR, "control frames must be final and ≤ 125 bytes"
                )
            return
        if opcode in _DATA:
            if self._fragments is not None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "new message before the last one ended")
            size = length
        elif opcode == CONTINUATION:
            if self._fragments is None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation frame with no message")
            size = self._fragments_size + length
        else:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if size > self.max_size:
            raise FrameError(CLOSE_TOO_LARGE, f"message larger than {self.max_size} bytes")

    def _frame(self, opcode: int, final: bool, payload: bytes) -> tuple[int, bytes] | None:
        if opcode in _CONTROL:
            return opcode, payload
        if opcode != CONTINUATION:
            if final:
                return opcode, payload
            self._message_opcode = opcode
            self._fragments = [payload]
            self._fragments_size = len(payload)
            return None
        assert self._fragments is not None  # _check refused a stray continuation
        self._fragments.append(payload)
        self._fragments_size += len(payload)
        if not final:
            return None
        message = b"".join(self._fragments)
        self._fragments = None
        self._fragments_size = 0
        return self._message_opcode, message
