"""Python SDK: join ysync (or any y-websocket) rooms as a first-class collaborator.

    from ysync.clients import connect

    async with connect("ws://127.0.0.1:1234", "team/notes", token_provider=get_token) as s:
        await s.synced()
        ...

`connect` → `Session` (document, presence, reconnects); errors in
`ysync.clients.errors`; the HTTP API in `ysync.clients.http`. Guide: docs/sdk.md.
"""

from ysync.clients.awareness import AwarenessChange, AwarenessStates, ClientAwareness
from ysync.clients.backoff import Backoff
from ysync.clients.errors import (
    AuthenticationError,
    ClientError,
    CloseError,
    ConnectError,
    ConnectionLostError,
    ForbiddenError,
    MalformedMessageError,
    ReadOnlyError,
    RefusedError,
    SessionClosedError,
    TooLargeError,
)
from ysync.clients.session import Session, Status, StatusEvent, connect, room_url

__all__ = [
    "AuthenticationError",
    "AwarenessChange",
    "AwarenessStates",
    "Backoff",
    "ClientAwareness",
    "ClientError",
    "CloseError",
    "ConnectError",
    "ConnectionLostError",
    "ForbiddenError",
    "MalformedMessageError",
    "ReadOnlyError",
    "RefusedError",
    "Session",
    "SessionClosedError",
    "Status",
    "StatusEvent",
    "TooLargeError",
    "connect",
    "room_url",
]
