"""Errors the SDK raises, and what each server close code means for a client.

Close codes follow the y-websocket convention (see the README's table): codes
4400-4499 are permanent refusals ("reconnecting can't fix this"), every other
code is transient and the session reconnects with backoff. 4401 is the one
permanent code a client can fix itself: with a token provider, the session
fetches a fresh token and reconnects.

    ClientError                  anything the SDK raises
    ├── CloseError               the server closed (or refused) the connection: .code, .reason
    │   ├── MalformedMessageError    4400
    │   ├── AuthenticationError      4401 (HTTP 401): token missing, invalid or expired
    │   ├── ForbiddenError           4403 (HTTP 403): no access to this room
    │   ├── TooLargeError            4413: message or document over the server's limit
    │   ├── RefusedError             any other 44xx
    │   └── ConnectionLostError      a transient close, surfaced only when not reconnecting
    ├── ConnectError             no connection could be opened (network, handshake, token provider)
    ├── ReadOnlyError            a local edit on a session the server made read-only
    └── SessionClosedError       the session was closed by the application
"""

from __future__ import annotations

from ysync.rooms.vocabulary import CloseCode
from ysync.rooms.vocabulary import is_permanent as is_permanent

CLOSE_NORMAL = CloseCode.NORMAL
CLOSE_GOING_AWAY = CloseCode.GOING_AWAY
CLOSE_ABNORMAL = CloseCode.ABNORMAL  # no close frame: the TCP connection dropped
CLOSE_INTERNAL_ERROR = CloseCode.INTERNAL_ERROR
CLOSE_SERVICE_RESTART = CloseCode.SERVICE_RESTART
CLOSE_TRY_AGAIN_LATER = CloseCode.TRY_AGAIN_LATER
CLOSE_MALFORMED = CloseCode.MALFORMED
CLOSE_UNAUTHORIZED = CloseCode.UNAUTHORIZED
CLOSE_FORBIDDEN = CloseCode.FORBIDDEN
CLOSE_TOO_LARGE = CloseCode.TOO_LARGE
CLOSE_SLOW_CONSUMER = CloseCode.SLOW_CONSUMER
CLOSE_RATE_LIMITED = CloseCode.RATE_LIMITED
CLOSE_OVER_CAPACITY = CloseCode.OVER_CAPACITY

# Transient codes after which the server asks for a slower retry: the session
# starts its backoff a few steps in instead of retrying at once.
SLOW_DOWN_CODES = frozenset(code for code in CloseCode if code.slow_down)


class ClientError(Exception):
    """Base class of every error the SDK raises."""


class CloseError(ClientError):
    """The server closed the connection, or refused it, with `code` and `reason`."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed by the server with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason

    @property
    def terminal(self) -> bool:
        """True for 4400-4499: reconnecting with the same credentials can't fix it."""
        return is_permanent(self.code)


class MalformedMessageError(CloseError):
    """4400: the server could not parse something we sent (the reason says what)."""


class AuthenticationError(CloseError):
    """4401 (or HTTP 401): the token is missing, invalid or expired.

    With a `token_provider`, the session fetches a new token and reconnects;
    it gives up with this error only when fresh tokens keep being refused."""


class ForbiddenError(CloseError):
    """4403 (or HTTP 403): this identity has no access to the room."""


class TooLargeError(CloseError):
    """4413: a message or the document went over the server's size limit."""


class RefusedError(CloseError):
    """Any other permanent refusal (4400-4499)."""


class ConnectionLostError(CloseError):
    """A transient close (e.g. 1012 restart, 4508 slow consumer, 4529 rate limited),
    surfaced only when the session does not reconnect or has used up its attempts."""


class ConnectError(ClientError):
    """No connection could be opened: network error, failed WebSocket handshake,
    or the token provider raised. Surfaced when the session stops retrying."""


class ReadOnlyError(ClientError):
    """A local edit on a session the server made read-only (it sent permission-denied).

    The edit stays in the local document only: it is never sent, and this
    session's document has diverged from the server's by that edit."""


class SessionClosedError(ClientError):
    """The session was closed by the application; it no longer syncs."""


_HTTP_REFUSAL_BASE = 4000  # an HTTP 4xx refusal of the handshake counts as close code 44xx
_BY_CODE: dict[int, type[CloseError]] = {
    CLOSE_MALFORMED: MalformedMessageError,
    CLOSE_UNAUTHORIZED: AuthenticationError,
    CLOSE_FORBIDDEN: ForbiddenError,
    CLOSE_TOO_LARGE: TooLargeError,
}


def close_error(code: int, reason: str = "") -> CloseError:
    """The typed error for a close code (a `ConnectionLostError` for transient codes)."""
    if not is_permanent(code):
        return ConnectionLostError(code, reason)
    return _BY_CODE.get(code, RefusedError)(code, reason)


def handshake_error(status: int, body: str = "") -> ClientError:
    """The typed error for an HTTP status refusing the WebSocket upgrade.

    An HTTP 4xx refusal is treated as close code 4000 + status (401 → 4401,
    403 → 4403, 404 → 4404: wrong URL or path prefix), so it is permanent;
    429 and 5xx are transient (`ConnectError`: the session retries)."""
    reason = f"HTTP {status}" + (f": {body.strip()[:200]}" if body.strip() else "")
    if 400 <= status < 500 and status != 429:
        return close_error(_HTTP_REFUSAL_BASE + status, reason)
    return ConnectError(f"WebSocket handshake refused: {reason}")
