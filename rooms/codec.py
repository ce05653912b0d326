"""Sans-I/O codec for the y-websocket protocol (y-protocols sync.js and awareness.js).

Bytes in → one typed message out (`decode`), typed message → bytes (`encode`, and
`encode_*` for each kind). Nothing here does I/O. Every length and varint read is
checked against the data actually present, and anything malformed raises
`ProtocolError`: that is the only exception `decode` and `decode_awareness` raise
(`malformed(error)` is the 4400 refusal it earns).

A frame is `varUint(type)` followed by the payload; one message per frame
(the JS provider reads only the first message of a frame, so we never batch).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from ysync.rooms.lib0 import ProtocolError as ProtocolError
from ysync.rooms.lib0 import Reader
from ysync.rooms.lib0 import var_bytes as var_bytes
from ysync.rooms.lib0 import var_string as var_string
from ysync.rooms.lib0 import var_uint as var_uint
from ysync.rooms.vocabulary import CloseCode, MessageType, Refusal, SyncType

# Short names for the wire constants (the enums are the definitions).
MESSAGE_SYNC = MessageType.SYNC
MESSAGE_AWARENESS = MessageType.AWARENESS
MESSAGE_AUTH = MessageType.AUTH
MESSAGE_QUERY_AWARENESS = MessageType.QUERY_AWARENESS
SYNC_STEP1 = SyncType.STEP1
SYNC_STEP2 = SyncType.STEP2
SYNC_UPDATE = SyncType.UPDATE
AUTH_PERMISSION_DENIED = 0
EMPTY_UPDATE = b"\x00\x00"  # a Yjs update with no structs and no deletions


def malformed(error: ProtocolError) -> Refusal:
    """The refusal a malformed message gets: close 4400 naming what was wrong."""
    return Refusal(CloseCode.MALFORMED, f"malformed message: {error.reason}")


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
    truncated: int = 0  # entries past the decoder's bound, ignored unread


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


@dataclass(frozen=True, slots=True)
class Auth:
    """An auth message: from a client, kind 0 carries a token in `reason`; from
    the server, kind 0 is permission-denied with its reason."""

    kind: int
    reason: str


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness | Auth


def decode(frame: bytes, *, max_awareness_entries: int = 0) -> Message:
    """Decode one frame into one message, or raise `ProtocolError`.

    `max_awareness_entries` (0: no bound) caps the entries of an awareness
    update that are read (see `decode_awareness`)."""
    reader = Reader(frame)
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
        message = decode_awareness(reader.var_bytes("awareness payload"), max_awareness_entries)
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


# A state vector has one entry per client that ever edited the document; no real
# document comes near this, and each entry costs the server work per SyncStep1.
MAX_STATE_VECTOR_ENTRIES = 100_000
# A lib0 varUint below 2**53 has at most 7 continuation bytes, and an 8th byte < 16.
# Bytes mapped to c (continuation), s (small last byte), b (big last byte), so that
# both rules are substring searches (C speed, whatever the length).
_BYTE_CLASS = bytes(b"c"[0] if i >= 0x80 else b"s"[0] if i < 0x10 else b"b"[0] for i in range(256))
_CONTINUATION_BYTES = bytes(range(0x80, 0x100))


def check_state_vector(data: bytes) -> None:
    """Raise `ProtocolError` unless `data` is a well-formed Yjs state vector of at
    most MAX_STATE_VECTOR_ENTRIES entries. Checked in C (a regular expression),
    not entry by entry in Python: a client may send one with every SyncStep1."""
    reader = Reader(data)
    count = _state_vector_size(reader, len(data))
    rest = data[reader.pos :]
    classes = rest.translate(_BYTE_CLASS)
    if (
        classes.endswith(b"c")
        or b"cccccccc" in classes
        or b"cccccccb" in classes
        or len(rest.translate(None, _CONTINUATION_BYTES)) != 2 * count
    ):
        decode_state_vector(data)  # malformed: this names what (at most the cap's work)
        reader.fail("malformed state vector")


def _state_vector_size(reader: Reader, size: int) -> int:
    count = reader.var_uint("state vector size")
    if count > size:  # each entry takes at least two bytes
        reader.fail(f"state vector claims {count} entries")
    if count > MAX_STATE_VECTOR_ENTRIES:
        reader.fail(f"state vector of {count} entries, over {MAX_STATE_VECTOR_ENTRIES}")
    return count


def decode_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector as {client id: clock}; raise `ProtocolError` if malformed."""
    reader = Reader(data)
    count = _state_vector_size(reader, len(data))
    clocks = {}
    for _ in range(count):
        client = reader.var_uint("state vector client id")
        clocks[client] = reader.var_uint("state vector clock")
    reader.end("state vector")
    return clocks


def decode_awareness(payload: bytes, max_entries: int = 0) -> AwarenessUpdate:
    """Decode an awareness update, checking each state is JSON a browser can parse.

    Past `max_entries` (0: no bound) the rest is ignored unread: a client
    sends one entry of its own plus echoes of the others' (which the room
    already holds), so this bounds one message's work (each entry's JSON is
    parsed: ~10 µs) without refusing a client of a very large room."""
    reader = Reader(payload)
    count = reader.var_uint("awareness entry count")
    if count > len(payload):  # each entry takes at least three bytes
        reader.fail(f"awareness update claims {count} entries")
    truncated = 0
    if max_entries and count > max_entries:
        count, truncated = max_entries, count - max_entries
    entries = []
    for _ in range(count):
        client_id = reader.var_uint("awareness client id")
        clock = reader.var_uint("awareness clock")
        state = reader.var_string("awareness state")
        if state != "null" and _check_json(state, reader) is None:
            state = "null"  # e.g. " null ": JSON.parse gives null, so clients see a removal
        entries.append(AwarenessEntry(client_id, clock, state))
    if truncated:
        return AwarenessUpdate(tuple(entries), truncated)
    reader.end("awareness update")
    return AwarenessUpdate(tuple(entries))


def _reject_constant(name: str) -> NoReturn:
    # Python's json accepts NaN/Infinity; JSON.parse in the browser does not.
    raise ValueError(f"{name} is not JSON")


def _check_json(text: str, reader: Reader) -> object:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        reader.fail("awareness state is not valid JSON")


# -- encoding -----------------------------------------------------------------


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


def encode(message: Message) -> bytes:
    """The y-websocket frame of any message (what `decode` reads back)."""
    if isinstance(message, SyncUpdate):
        return encode_update(message.update)
    if isinstance(message, AwarenessUpdate):
        return encode_awareness(message.entries)
    if isinstance(message, SyncStep2):
        return encode_sync_step2(message.update)
    if isinstance(message, SyncStep1):
        return encode_sync_step1(message.state_vector)
    if isinstance(message, QueryAwareness):
        return encode_query_awareness()
    return bytes((MESSAGE_AUTH,)) + var_uint(message.kind) + var_string(message.reason)


def permission_denied(reason: str) -> Auth:
    """The message that makes the JS provider emit 'permission-denied'."""
    return Auth(AUTH_PERMISSION_DENIED, reason)


EMPTY_AWARENESS = encode_awareness(())
"""A valid no-op message: keeps an idle client's 30 s silence timer from firing."""
