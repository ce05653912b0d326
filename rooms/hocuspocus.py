"""Sans-I/O codec for the Hocuspocus dialect (@hocuspocus/provider and server, v3 and v4).

Every frame is `varString(address) varUint(type) payload`, where the address is
the document's name (a v4 provider with `sessionAwareness` sends
`name + "\\0" + sessionId`; replies go back to the whole address). Ping and
Pong are one byte with no address (v4). The sync (0), awareness (1) and
query-awareness (3) payloads are y-websocket messages byte for byte, so they
decode to the same typed messages as `ysync.rooms.codec` and a room serves
both dialects with one message object per broadcast.

A frame is read in two steps, as the Hocuspocus server does: `read_address`
(enough to route it, or to queue it until its document's auth is decided),
then `decode_body`. Both raise only `ProtocolError`. `encode_body` is the part
after the address, the same for every recipient of a broadcast;
`encode(address, message)` is the whole frame.

Types sent by the server only (token request, permission denied,
authenticated, sync status) decode too, so clients and tests can read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ysync.rooms import codec
from ysync.rooms.lib0 import ProtocolError, Reader, var_string, var_uint
from ysync.rooms.vocabulary import HocuspocusType

SESSION_SEPARATOR = "\0"  # v4 sessionAwareness: "<document>\0<session id>"
READ_WRITE = "read-write"
READ_ONLY = "readonly"

# Auth message subtypes (@hocuspocus/common auth.ts).
AUTH_TOKEN = 0  # client: its token; server: "send me your token" (no payload)
AUTH_PERMISSION_DENIED = 1
AUTH_AUTHENTICATED = 2

PING = bytes((HocuspocusType.PING,))
PONG = bytes((HocuspocusType.PONG,))


@dataclass(frozen=True, slots=True)
class AuthToken:
    """A client's token for the document, and its provider's version (v4 sends it)."""

    token: str
    provider_version: str | None = None


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """The server asks the provider for its (fresh) token."""


@dataclass(frozen=True, slots=True)
class PermissionDenied:
    reason: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    read_only: bool

    @property
    def scope(self) -> str:
        return READ_ONLY if self.read_only else READ_WRITE


@dataclass(frozen=True, slots=True)
class Stateless:
    payload: str


@dataclass(frozen=True, slots=True)
class BroadcastStateless:
    payload: str


@dataclass(frozen=True, slots=True)
class Close:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SyncStatus:
    applied: bool


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class SyncReply:
    """A sync message sent as type 4: answered like type 0, but with no SyncStep1 back."""

    message: codec.SyncStep1 | codec.SyncStep2 | codec.SyncUpdate


@dataclass(frozen=True, slots=True)
class Unknown:
    """A type this server has no handler for (the Hocuspocus server logs and ignores it)."""

    type: int


Message = (
    codec.Message
    | AuthToken
    | TokenRequest
    | PermissionDenied
    | Authenticated
    | Stateless
    | BroadcastStateless
    | Close
    | SyncStatus
    | Ping
    | Pong
    | SyncReply
    | Unknown
)

_Y_WEBSOCKET = (HocuspocusType.SYNC, HocuspocusType.AWARENESS, HocuspocusType.QUERY_AWARENESS)
# Messages whose body is their y-websocket encoding.
_SHARED = (
    codec.SyncStep1,
    codec.SyncStep2,
    codec.SyncUpdate,
    codec.AwarenessUpdate,
    codec.QueryAwareness,
)


def document_name(address: str) -> str:
    """The document an address is about (a v4 address may carry a session id)."""
    return address.partition(SESSION_SEPARATOR)[0]


def read_address(frame: bytes) -> tuple[str, int]:
    """The frame's address and the offset of its type; `ProtocolError` if truncated."""
    reader = Reader(frame)
    address = reader.var_string("document address")
    if reader.left == 0:
        reader.fail("truncated message type")
    return address, reader.pos


def decode_body(frame: bytes, offset: int, *, max_awareness_entries: int = 0) -> Message:
    """The message after the address (`read_address` gave `offset`); `ProtocolError` if bad.
    `max_awareness_entries`: as for `codec.decode`."""
    reader = Reader(frame)
    reader.pos = offset
    kind = reader.var_uint("message type")
    if kind in _Y_WEBSOCKET:
        # The same bytes as a y-websocket message (types 0, 1, 3 are the same there).
        return codec.decode(frame[offset:], max_awareness_entries=max_awareness_entries)
    if kind == HocuspocusType.SYNC_REPLY:
        sync = codec.decode(bytes((HocuspocusType.SYNC,)) + frame[reader.pos :])
        if not isinstance(sync, codec.SyncStep1 | codec.SyncStep2 | codec.SyncUpdate):
            raise ProtocolError("sync reply is not a sync message")  # pragma: no cover
        return SyncReply(sync)
    message: Message
    if kind == HocuspocusType.AUTH:
        message = _decode_auth(reader)
    elif kind in (HocuspocusType.STATELESS, HocuspocusType.BROADCAST_STATELESS):
        payload = reader.var_string("stateless payload")
        message = (
            Stateless(payload) if kind == HocuspocusType.STATELESS else BroadcastStateless(payload)
        )
    elif kind == HocuspocusType.CLOSE:
        # The provider sends no reason; the server sends one.
        message = Close(reader.var_string("close reason") if reader.left else "")
    elif kind == HocuspocusType.SYNC_STATUS:
        status = reader.var_uint("sync status")
        if status > 1:
            reader.fail(f"sync status {status} is neither 0 nor 1")
        message = SyncStatus(status == 1)
    else:
        return Unknown(kind)  # its payload is not ours to judge
    reader.end(f"{HocuspocusType(kind).name.lower()} message")
    return message


def _decode_auth(reader: Reader) -> Message:
    subtype = reader.var_uint("auth message type")
    if subtype == AUTH_TOKEN:
        if not reader.left:
            return TokenRequest()  # from the server: "send your token"
        token = reader.var_string("auth token")
        version = reader.var_string("provider version") if reader.left else None
        return AuthToken(token, version)
    if subtype == AUTH_PERMISSION_DENIED:
        return PermissionDenied(reader.var_string("permission denied reason"))
    if subtype == AUTH_AUTHENTICATED:
        scope = reader.var_string("authorized scope")
        if scope not in (READ_WRITE, READ_ONLY):
            reader.fail(f"unknown authorized scope {scope!r}")
        return Authenticated(scope == READ_ONLY)
    reader.fail(f"unknown auth message type {subtype}")


def decode(frame: bytes) -> tuple[str | None, Message]:
    """A whole frame: (address, message); the address is None for Ping and Pong."""
    if frame == PING:
        return None, Ping()
    if frame == PONG:
        return None, Pong()
    address, offset = read_address(frame)
    return address, decode_body(frame, offset)


# -- encoding -----------------------------------------------------------------------


def _typed(kind: HocuspocusType, payload: bytes = b"") -> bytes:
    return bytes((kind,)) + payload


def encode_body(message: Message) -> bytes:
    """A message without its address: what every recipient of a broadcast shares."""
    if isinstance(message, _SHARED):
        return codec.encode(message)
    if isinstance(message, SyncStatus):
        return _typed(HocuspocusType.SYNC_STATUS, var_uint(int(message.applied)))
    if isinstance(message, Stateless):
        return _typed(HocuspocusType.STATELESS, var_string(message.payload))
    if isinstance(message, BroadcastStateless):
        return _typed(HocuspocusType.BROADCAST_STATELESS, var_string(message.payload))
    if isinstance(message, Close):
        return _typed(HocuspocusType.CLOSE, var_string(message.reason))
    if isinstance(message, Authenticated):
        return _typed(HocuspocusType.AUTH, var_uint(AUTH_AUTHENTICATED) + var_string(message.scope))
    if isinstance(message, PermissionDenied):
        payload = var_uint(AUTH_PERMISSION_DENIED) + var_string(message.reason)
        return _typed(HocuspocusType.AUTH, payload)
    if isinstance(message, TokenRequest):
        return _typed(HocuspocusType.AUTH, var_uint(AUTH_TOKEN))
    if isinstance(message, AuthToken):
        payload = var_uint(AUTH_TOKEN) + var_string(message.token)
        if message.provider_version is not None:
            payload += var_string(message.provider_version)
        return _typed(HocuspocusType.AUTH, payload)
    if isinstance(message, SyncReply):
        return _typed(HocuspocusType.SYNC_REPLY, codec.encode(message.message)[1:])
    if isinstance(message, Unknown):
        return var_uint(message.type)
    raise ValueError(f"{type(message).__name__} has no Hocuspocus encoding")


def encode(address: str | None, message: Message) -> bytes:
    """The whole frame (what `decode` reads back); Ping and Pong have no address."""
    if isinstance(message, Ping):
        return PING
    if isinstance(message, Pong):
        return PONG
    if address is None:
        raise ValueError(f"{type(message).__name__} needs a document address")
    return var_string(address) + encode_body(message)
