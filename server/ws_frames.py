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


MAX_FRAGMENTS = 4096  # fragments of one message (browsers never fragment; libraries use >= 4 KiB)
MAX_CONTROL_RUN = 256  # control frames in a row with no data frame between them


class FrameReader:
    """Turns a client's byte stream into `(opcode, payload)` pairs: whole TEXT or
    BINARY messages (payload bytes; text is not decoded here), and CLOSE, PING
    and PONG frames.

    Bytes that do not complete a frame wait in one bytearray that grows in
    place (amortised O(1) per read, however many reads a large frame takes);
    fragments are unmasked into one bytearray as they come (no object per
    fragment), at most MAX_FRAGMENTS of them per message. Past MAX_CONTROL_RUN
    control frames with no data frame between them the client is refused: a
    ping costs a pong, and an empty control frame costs nothing to send.

    `discard = True` (a close handshake under way) drops data frames' payloads
    as they arrive, buffering none of them: only control frames are returned."""

    __slots__ = (
        "_buffer",
        "_control_run",
        "_fragment_count",
        "_fragments",
        "_message_opcode",
        "_skip",
        "discard",
        "max_size",
        "too_large",
    )

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        # The close code and reason of a message over max_size (callers may name their limit).
        self.too_large: tuple[int, str] | None = None
        self.discard = False
        self._buffer = bytearray()
        self._fragments: bytearray | None = None  # a fragmented message so far
        self._fragment_count = 0
        self._message_opcode = 0
        self._control_run = 0
        self._skip = 0  # payload bytes still to drop (discard mode)

    @property
    def buffered(self) -> int:
        """Bytes held: a partial frame, and a fragmented message so far."""
        return len(self._buffer) + (len(self._fragments) if self._fragments is not None else 0)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer: bytes | bytearray
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        if self._buffer:
            self._buffer += data
            buffer = self._buffer
        else:
            buffer = data
        out: list[tuple[int, bytes]] = []
        position = self._frames(buffer, out)
        if buffer is self._buffer:
            del self._buffer[:position]
        elif position < len(buffer):
            self._buffer = bytearray(memoryview(buffer)[position:])
        return out

    def _frames(self, buffer: bytes | bytearray, out: list[tuple[int, bytes]]) -> int:
        """Read every complete frame of `buffer` into `out`; where the rest starts."""
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
            final = bool(first & 0x80)
            self._check(opcode, final, length)
            if self.discard and opcode not in _CONTROL:
                if end - position < header:
                    break
                # Drop the payload as it comes, buffering none of it.
                available = min(length, end - position - header)
                self._skip = length - available
                position += header + available
                self._fragments = None
                continue
            if end - position < header + length:
                break
            start = position + header
            mask = buffer[start - 4 : start]
            position = start + length
            if opcode in _CONTROL:
                view = memoryview(buffer)[start:position]
                out.append((opcode, apply_mask(view, bytes(mask)) if length else b""))
                continue
            self._control_run = 0
            message = self._data(opcode, final, buffer, start, length, mask)
            if message is not None:
                out.append(message)
        return position

    def _check(self, opcode: int, final: bool, length: int) -> None:
        """Refuse a frame from its header alone, before buffering its payload."""
        if opcode in _CONTROL:
            if not final or length > 125:
                raise FrameError(
                    CLOSE_PROTOCOL_ERROR, "control frames must be final and ≤ 125 bytes"
                )
            self._control_run += 1
            if self._control_run > MAX_CONTROL_RUN:
                raise FrameError(
                    CloseCode.POLICY_VIOLATION,
                    f"more than {MAX_CONTROL_RUN} control frames without a message",
                )
            return
        if opcode in _DATA:
            if self._fragments is not None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "new message before the last one ended")
            size = length
        elif opcode == CONTINUATION:
            if self._fragments is None:
                if self.discard:
                    return
                raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation frame with no message")
            size = len(self._fragments) + length
            if self._fragment_count >= MAX_FRAGMENTS:
                raise FrameError(CLOSE_TOO_LARGE, f"message in more than {MAX_FRAGMENTS} fragments")
        else:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if size > self.max_size:
            code, reason = self.too_large or (
                CLOSE_TOO_LARGE,
                f"message larger than {self.max_size} bytes",
            )
            raise FrameError(code, reason)

    def _data(
        self,
        opcode: int,
        final: bool,
        buffer: bytes | bytearray,
        start: int,
        length: int,
        mask: bytes | bytearray,
    ) -> tuple[int, bytes] | None:
        view = memoryview(buffer)[start : start + length]
        payload = apply_mask(view, bytes(mask)) if length else b""
        if opcode != CONTINUATION:
            if final:
                return opcode, payload
            self._message_opcode = opcode
            self._fragments = bytearray(payload)
            self._fragment_count = 1
            return None
        fragments = self._fragments
        assert fragments is not None  # _check refused a stray continuation
        fragments += payload
        self._fragment_count += 1
        if not final:
            return None
        self._fragments = None
        self._fragment_count = 0
        return self._message_opcode, bytes(fragments)
