"""ysync's protocol vocabulary: close codes, refusals, message types, envelope kinds, audit actions.

Pure data, imported by rooms, server and clients alike, so each code has one
name and one value everywhere. No close-code literal appears outside this module.

Close codes follow the y-websocket 3.x provider's rule: it never reconnects
after a code in 4400-4499 ("reconnecting can't fix this") and reconnects with
backoff after any other, so permanent refusals use 44xx and transient ones do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """Every WebSocket close code ysync sends or a client acts on."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002  # RFC 6455 broken (unmasked frame, bad opcode, ...)
    NO_STATUS = 1005  # a close frame without a code (never sent)
    ABNORMAL = 1006  # no close frame at all: the TCP connection dropped (never sent)
    INVALID_DATA = 1007  # a text frame that is not UTF-8
    POLICY_VIOLATION = 1008  # a flood of control frames
    MESSAGE_TOO_BIG = 1009  # a WebSocket frame past the protocol's own bound
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # draining: reconnect (elsewhere, or here once restarted)
    TRY_AGAIN_LATER = 1013  # the room's document could not be loaded from the store
    MALFORMED = 4400  # a message that is not valid y-websocket; the reason says what
    UNAUTHORIZED = 4401  # token missing, invalid or expired: fetch a new token, reconnect
    FORBIDDEN = 4403  # no grant for this room, or a browser Origin not allowed
    ROOM_DELETED = 4410  # the room was deleted (and is tombstoned): do not reconnect
    TOO_LARGE = 4413  # a message or the document over its size limit
    OVER_CAPACITY = 4503  # room or node full, or the store backlog full: retry with backoff
    SLOW_CONSUMER = 4508  # its send buffer filled: it may reconnect at once
    RATE_LIMITED = 4529  # too many messages, bytes or connection attempts: back off
    # Hocuspocus dialect only (its @hocuspocus/common CloseEvents; its provider
    # reconnects after any code, so these are what it expects, not 44xx rules):
    RESET_CONNECTION = 4205  # past a bound of frames queued before a document's auth
    CONNECTION_TIMEOUT = 4408  # no document authenticated in time

    @property
    def permanent(self) -> bool:
        """True for 4400-4499: the JS provider does not reconnect, nor does the SDK
        (except 4401 with a token provider)."""
        return is_permanent(self)

    @property
    def slow_down(self) -> bool:
        """A transient code after which a client should not retry at once."""
        return self in (CloseCode.RATE_LIMITED, CloseCode.OVER_CAPACITY, CloseCode.TRY_AGAIN_LATER)


_CODES = frozenset(CloseCode)


def may_be_sent(code: int) -> bool:
    """Whether a peer may put `code` in a close frame: RFC 6455 7.4 and IANA's
    registry (1012-1014); 1004-1006 and 1015 are reserved, 3000-4999 are for apps."""
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def is_permanent(code: int) -> bool:
    """Whether a close code (ours or anyone's) means "reconnecting can't fix this"."""
    return 4400 <= code <= 4499


# The HTTP status a refusal answers with when it is made on the HTTP API.
_HTTP_STATUS: dict[int, int] = {
    CloseCode.MALFORMED: 400,
    CloseCode.UNAUTHORIZED: 401,
    CloseCode.FORBIDDEN: 403,
    CloseCode.ROOM_DELETED: 410,
    CloseCode.TOO_LARGE: 413,
    CloseCode.RATE_LIMITED: 429,
    CloseCode.OVER_CAPACITY: 503,
    CloseCode.TRY_AGAIN_LATER: 503,
    CloseCode.SERVICE_RESTART: 503,
}


class AuditAction(StrEnum):
    """What the audit log records (see `ysync.server.audit`)."""

    CONNECT = "connect"
    AUTH_FAILED = "auth_failed"
    ACCESS_DENIED = "access_denied"
    EDIT_DENIED = "edit_denied"
    LIMIT_EXCEEDED = "limit_exceeded"


# The audit action a refusal is recorded as; refusals not listed are not audited.
_AUDITED: dict[int, AuditAction] = {
    CloseCode.UNAUTHORIZED: AuditAction.AUTH_FAILED,
    CloseCode.FORBIDDEN: AuditAction.ACCESS_DENIED,
    CloseCode.TOO_LARGE: AuditAction.LIMIT_EXCEEDED,
    CloseCode.RATE_LIMITED: AuditAction.LIMIT_EXCEEDED,
    CloseCode.OVER_CAPACITY: AuditAction.LIMIT_EXCEEDED,
}

_MAX_CLOSE_REASON = 123  # bytes of UTF-8 a close frame's reason may hold (RFC 6455 5.5)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why something was refused, in the one shape every refusal takes: from
    admission and the limits to the close frame, the audit log and the HTTP body."""

    code: int  # a CloseCode, or an application's own code (3000-4999)
    reason: str

    @property
    def close_reason(self) -> str:
        """The reason cut to what a close frame can carry (123 bytes of UTF-8)."""
        return self.reason.encode("utf-8")[:_MAX_CLOSE_REASON].decode("utf-8", "ignore")

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 400)

    @property
    def audit_action(self) -> AuditAction | None:
        """The audit action this refusal is recorded as (None: not audited)."""
        return _AUDITED.get(self.code)

    def as_json(self) -> dict[str, object]:
        """The HTTP API's error body: the reason, and the code's name (`forbidden`, ...)."""
        name = CloseCode(self.code).name.lower() if self.code in _CODES else str(self.code)
        return {"error": self.reason, "code": name}


class Refused(Exception):
    """Raised to refuse: from `Hooks.authenticate` or an extension's hook, with a
    `Refusal` or its code and reason. Use 4401 (bad or missing token: the app
    fetches a new one) or 4403 (no access to this room)."""

    def __init__(self, code: int | Refusal, reason: str = "") -> None:
        refusal = code if isinstance(code, Refusal) else Refusal(code, reason)
        super().__init__(refusal.reason)
        self.refusal = refusal

    @property
    def code(self) -> int:
        return self.refusal.code

    @property
    def reason(self) -> str:
        return self.refusal.reason


class MessageType(IntEnum):
    """The first varUint of every y-websocket message."""

    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class HocuspocusType(IntEnum):
    """The varUint after the document address in a Hocuspocus frame (its server's types.ts)."""

    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3
    SYNC_REPLY = 4  # a sync message that asks for no SyncStep1 back
    STATELESS = 5
    BROADCAST_STATELESS = 6  # server-internal: refused from clients
    CLOSE = 7
    SYNC_STATUS = 8
    PING = 9  # one byte, no address (v4)
    PONG = 10  # one byte, no address (v4)


class SyncType(IntEnum):
    """The second varUint of a sync message (y-protocols/sync.js)."""

    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


class FrameKind(IntEnum):
    """What a frame is, told from its first bytes without decoding (metrics labels)."""

    SYNC_STEP1 = 0
    SYNC_STEP2 = 1
    UPDATE = 2
    AWARENESS = 3
    QUERY_AWARENESS = 4
    AUTH = 5
    OTHER = 6

    @property
    def label(self) -> str:
        return self.name.lower()


_SYNC_KINDS = (FrameKind.SYNC_STEP1, FrameKind.SYNC_STEP2, FrameKind.UPDATE)
_KINDS: dict[int, FrameKind] = {
    MessageType.AWARENESS: FrameKind.AWARENESS,
    MessageType.QUERY_AWARENESS: FrameKind.QUERY_AWARENESS,
    MessageType.AUTH: FrameKind.AUTH,
}


def peek_type(frame: bytes) -> FrameKind:
    """The kind of a y-websocket frame from its first two bytes (it may still be malformed)."""
    if not frame:
        return FrameKind.OTHER
    kind = frame[0]
    if kind == MessageType.SYNC:
        return _SYNC_KINDS[frame[1]] if len(frame) > 1 and frame[1] < 3 else FrameKind.OTHER
    return _KINDS.get(kind, FrameKind.OTHER)


class EnvelopeKind(StrEnum):
    """What one message between nodes carries (`ysync.rooms.protocols.Envelope`)."""

    UPDATE = "update"
    AWARENESS = "awareness"
    SYNC_REQUEST = "sync-request"
    SYNC_REPLY = "sync-reply"
    HEADS = "heads"
    NODE_GONE = "node-gone"
    EVENT = "event"  # a room's event feed (ysync.presence.events), not the document
    STATELESS = "stateless"  # a Hocuspocus stateless message for a room's clients (best effort)

    @property
    def sequenced(self) -> bool:
        """Numbered per node and room, so a receiver can tell it missed one."""
        return self in (EnvelopeKind.UPDATE, EnvelopeKind.AWARENESS)
