"""Sans-I/O codec for the y-websocket protocol (y-protocols sync.js and awareness.js).

Bytes in → one typed message out (`decode`), and typed data → bytes (`encode_*`).
Nothing here does I/O. Every length and varint read is checked against the data
actually present, and anything malformed raises `ProtocolError`: that is the
only exception `decode` and `decode_awareness` raise.

A frame is `varUint(type)` followed by the payload; one message per frame
(the JS provider reads only the first message of a frame, so we never batch).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

# Message types (y-websocket) and sync subtypes (y-protocols/sync.js).
MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2
AUTH_PERMISSION_DENIED = 0

# lib0 varUints are JavaScript numbers: at most 2**53 - 1, i.e. 8 bytes of 7 bits.
_MAX_VARUINT_BYTES = 8
_MAX_SAFE_INTEGER = 2**53 - 1


class ProtocolError(ValueError):
    """A frame that is not a valid y-websocket message. `reason` says what is wrong."""

    close_code = 4400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state: str  # the JSON text exactly as sent; "null" means "removed"

    @property
    def removed(self) -> bool:
        return self.state == "null"


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    entries: tuple[AwarenessEntry, ...]


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


@dataclass(frozen=True, slots=True)
class Auth:
    kind: int
    reason: str


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness | Auth


class _Reader:
    """A cursor over bytes that refuses to read past the end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> NoReturn:
        raise ProtocolError(f"{what} at byte {self.pos}")

    def var_uint(self, what: str) -> int:
        data, pos = self.data, self.pos
        value = 0
        shift = 0
        for i in range(_MAX_VARUINT_BYTES):
            if pos + i >= len(data):
                self.fail(f"truncated {what}")
            byte = data[pos + i]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos + i + 1
                if value > _MAX_SAFE_INTEGER:
                    self.fail(f"{what} larger than 2**53")
                return value
            shift += 7
        self.fail(f"{what} varint longer than {_MAX_VARUINT_BYTES} bytes")

    def var_bytes(self, what: str) -> bytes:
        length = self.var_uint(f"{what} length")
        end = self.pos + length
        if end > len(self.data):
            self.fail(f"{what} length {length} exceeds the {len(self.data) - self.pos} bytes left")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self, what: str) -> str:
        raw = self.var_bytes(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8")

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            self.fail(f"{len(self.data) - self.pos} unexpected trailing bytes after {what}")


def decode(frame: bytes) -> Message:
    """Decode one frame into one message, or raise `ProtocolError`."""
    reader = _Reader(frame)
    kind = reader.var_uint("message type")
    message: Message
    if kind == MESSAGE_SYNC:
        subtype = reader.var_uint("sync message type")
        payload = reader.var_bytes("sync payload")
        if subtype == SYNC_STEP1:
            check_state_vector(payload)
            message = SyncStep1(payload)
        elif subtype == SYNC_STEP2:
            message = SyncStep2(payload)
        elif subtype == SYNC_UPDATE:
            message = SyncUpdate(payload)
        else:
            raise ProtocolError(f"unknown sync message type {subtype}")
        reader.end("sync message")
    elif kind == MESSAGE_AWARENESS:
        message = decode_awareness(reader.var_bytes("awareness payload"))
        reader.end("awareness message")
    elif kind == MESSAGE_QUERY_AWARENESS:
        message = QueryAwareness()
        reader.end("query-awareness message")
    elif kind == MESSAGE_AUTH:
        auth_kind = reader.var_uint("auth message type")
        message = Auth(auth_kind, reader.var_string("auth reason"))
        reader.end("auth message")
    else:
        raise ProtocolError(f"unknown message type {kind}")
    return message


def check_state_vector(data: bytes) -> None:
    """Raise `ProtocolError` unless `data` is a well-formed Yjs state vector."""
    decode_state_vector(data)


def decode_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector as {client id: clock}; raise `ProtocolError` if malformed."""
    reader = _Reader(data)
    count = reader.var_uint("state vector size")
    if count > len(data):  # each entry takes at least two bytes
        reader.fail(f"state vector claims {count} entries")
    clocks = {}
    for _ in range(count):
        client = reader.var_uint("state vector client id")
        clocks[client] = reader.var_uint("state vector clock")
    reader.end("state vector")
    return clocks


def decode_awareness(payload: bytes) -> AwarenessUpdate:
    """Decode an awareness update, checking each state is JSON a browser can parse."""
    reader = _Reader(payload)
    count = reader.var_uint("awareness entry count")
    if count > len(payload):  # each entry takes at least three bytes
        reader.fail(f"awareness update claims {count} entries")
    entries = []
    for _ in range(count):
        client_id = reader.var_uint("awareness client id")
        clock = reader.var_uint("awareness clock")
        state = reader.var_string("awareness state")
        if state != "null" and _check_json(state, reader) is None:
            state = "null"  # e.g. " null ": JSON.parse gives null, so clients see a removal
        entries.append(AwarenessEntry(client_id, clock, state))
    reader.end("awareness update")
    return AwarenessUpdate(tuple(entries))


def _reject_constant(name: str) -> NoReturn:
    # Python's json accepts NaN/Infinity; JSON.parse in the browser does not.
    raise ValueError(f"{name} is not JSON")


def _check_json(text: str, reader: _Reader) -> object:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        reader.fail("awareness state is not valid JSON")


# -- encoding -----------------------------------------------------------------


def var_uint(value: int) -> bytes:
    """lib0 varUint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def _sync_frame(subtype: int, payload: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, subtype)) + var_uint(len(payload)) + payload


def encode_sync_step1(state_vector: bytes) -> bytes:
    return _sync_frame(SYNC_STEP1, state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return _sync_frame(SYNC_STEP2, update)


def encode_update(update: bytes) -> bytes:
    return _sync_frame(SYNC_UPDATE, update)


def encode_awareness_payload(entries: Sequence[AwarenessEntry]) -> bytes:
    """An awareness update (what `decode_awareness` reads), without the frame header."""
    payload = bytearray(var_uint(len(entries)))
    for entry in entries:
        payload += var_uint(entry.client_id)
        payload += var_uint(entry.clock)
        payload += var_bytes(entry.state.encode("utf-8"))
    return bytes(payload)


def encode_awareness(entries: Sequence[AwarenessEntry]) -> bytes:
    return bytes((MESSAGE_AWARENESS,)) + var_bytes(encode_awareness_payload(entries))


def encode_query_awareness() -> bytes:
    return bytes((MESSAGE_QUERY_AWARENESS,))


def encode_permission_denied(reason: str) -> bytes:
    """The y-websocket auth message that makes the JS provider emit 'permission-denied'."""
    return bytes((MESSAGE_AUTH, AUTH_PERMISSION_DENIED)) + var_bytes(reason.encode("utf-8"))


EMPTY_AWARENESS = encode_awareness(())
"""A valid no-op message: keeps an idle client's 30 s silence timer from firing."""
