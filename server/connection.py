"""A client's WebSocket (`ClientConnection`) and its place in a room (`RoomSession`).

The connection owns what belongs to the socket: who the client is, the
per-frame gates (message size, rate), the token-expiry timer, the keep-alive,
the sender and the close. Each room it is in is a `RoomSession`, the `Peer` the
room sees: it turns the room's typed messages into the wire protocol's frames
through the endpoint's frame cache (one encoding per broadcast). A
y-websocket connection holds one session (the room is the URL path); a
protocol that multiplexes documents over one socket holds several.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ysync.rooms import codec
from ysync.rooms.extensions import MessageGate
from ysync.rooms.hooks import ConnectionRequest, Identity
from ysync.rooms.room import Room
from ysync.rooms.vocabulary import CloseCode, Refusal, peek_type
from ysync.server.senders import DirectSender, FrameCache, Sender, binary_frame

if TYPE_CHECKING:
    from ysync.server.transport import WebSocketEndpoint

log = logging.getLogger("ysync.transport")

TEXT_FRAME = Refusal(CloseCode.MALFORMED, "text frames are not part of the y-websocket protocol")
INTERNAL_ERROR = Refusal(CloseCode.INTERNAL_ERROR, "internal error")
TOKEN_EXPIRED = Refusal(CloseCode.UNAUTHORIZED, "token expired: reconnect with a fresh token")
# A valid no-op message: keeps an idle client's 30 s silence timer from firing.
KEEPALIVE_FRAME = binary_frame(codec.EMPTY_AWARENESS)


class RoomSession:
    """One client in one room: the `Peer` the room sends typed messages to."""

    __slots__ = ("connection", "edit_denied", "room", "send")

    def __init__(self, connection: ClientConnection, room: Room, cache: FrameCache) -> None:
        self.connection = connection
        self.room = room
        # `send(message)`: the sender's own (one Python call per recipient of a broadcast),
        # with this session's wire encoding (`cache`: one encoding per broadcast).
        sender = connection.sender
        self.send: Callable[[codec.Message], None] = (
            sender.send if cache is sender.cache else partial(sender.send, cache=cache)
        )
        self.edit_denied = False  # an edit refused: told (and audited) once per session

    @property
    def identity(self) -> Identity:
        return self.connection.identity

    @property
    def client(self) -> str | None:
        return self.connection.client

    def close(self, refusal: Refusal) -> None:
        self.connection.close(refusal)

    def __repr__(self) -> str:
        return f"<RoomSession {self.room.name!r} conn {self.connection.id}>"


class ClientConnection:
    """One client's WebSocket, admitted, speaking y-websocket to one room."""

    # Every byte per connection counts (thousands of idle connections per node):
    # the request is not kept, only the client's address.
    __slots__ = (
        "_closed",
        "aborted",
        "client",
        "connected_at",
        "endpoint",
        "expiry",
        "gate",
        "id",
        "identity",
        "sender",
        "session",
        "task",
    )

    def __init__(
        self,
        endpoint: WebSocketEndpoint,
        connection_id: int,
        request: ConnectionRequest,
        identity: Identity,
        sender: Sender,
        gate: MessageGate | None,
    ) -> None:
        self.endpoint = endpoint
        self.id = connection_id
        self.client = request.client
        self.identity = identity
        self.sender = sender
        self.gate = gate
        self.connected_at = time.time()  # Unix time, for the admin API
        self.session: RoomSession | None = None
        self.expiry: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None  # the ASGI receive loop (queued senders)
        self.aborted = False
        self._closed = False
        sender.owner = self

    @property
    def closing(self) -> bool:
        return self.sender.closing

    def join(self, room: Room, cache: FrameCache) -> RoomSession:
        """Enter `room`: the room sends its SyncStep1 and the present awareness states."""
        session = self.session = RoomSession(self, room, cache)
        room.join(session, read_only=not self.identity.can_edit)
        self._schedule_expiry()
        return session

    # -- frames from the client ----------------------------------------------------------

    def screen(self, frame: bytes | str) -> bytes | None:
        """The frame if it may be handled: not while closing, not text, through the
        per-frame gates (size, rate); None when it was refused or must be ignored."""
        if self.sender.closing:
            return None  # draining until the client acknowledges our close
        if isinstance(frame, str):
            self.close(TEXT_FRAME)
            return None
        gate = self.gate
        if gate is not None:
            refusal = gate(frame)
            if refusal is not None:
                self.close(refusal)
                return None
        return frame

    def receive(self, frame: bytes | str) -> None:
        """One frame from the client: through the gates, decoded, to the room."""
        screened = self.screen(frame)
        if screened is None:
            return
        frame = screened
        endpoint = self.endpoint
        stats = endpoint.stats
        kind = peek_type(frame)
        stats.received[kind] += 1
        stats.received_bytes[kind] += len(frame)
        started = time.perf_counter()
        session = self.session
        if session is None:
            return
        try:
            message = codec.decode(frame, max_awareness_entries=endpoint.max_awareness_entries)
            refusal = session.room.receive(session, message)
        except codec.ProtocolError as exc:
            log.info(
                "malformed message: %s",
                exc.reason,
                extra={"room": session.room.name, "conn": self.id},
            )
            self.close(codec.malformed(exc))
        except Exception:
            log.exception(
                "error handling a message", extra={"room": session.room.name, "conn": self.id}
            )
            self.close(INTERNAL_ERROR)
        else:
            if refusal is not None and not session.edit_denied:
                session.edit_denied = True
                endpoint.extensions.edit_refused(session.room, session, refusal)
        stats.observe_handling(time.perf_counter() - started)

    # -- closing -------------------------------------------------------------------------

    def close(self, refusal: Refusal) -> None:
        """Close the WebSocket with `refusal` (once; frames received meanwhile are ignored)."""
        if self.sender.closing:
            return
        stats = self.endpoint.stats
        stats.closes[refusal.code] = stats.closes.get(refusal.code, 0) + 1
        room = self.session.room.name if self.session is not None else ""
        request = ConnectionRequest(room, client=self.client)
        self.endpoint.extensions.refused(request, self.identity, refusal)
        self.sender.close(refusal)

    def closed(self) -> None:
        """The WebSocket is gone: leave the room, once."""
        if self._closed:
            return
        self._closed = True
        if self.expiry is not None:
            self.expiry.cancel()
        session = self.session
        if session is not None:
            self.endpoint.leave(self, session)

    def abort(self) -> None:
        """Drop a queued connection that never let our close frame out."""
        if self.task is not None and not self.task.done():
            self.aborted = True
            self.task.cancel()

    def keep_alive(self) -> None:
        """Called every keepalive/2 seconds for direct connections (see the endpoint)."""
        sender = self.sender
        if isinstance(sender, DirectSender):
            sender.keep_alive(KEEPALIVE_FRAME)

    def _schedule_expiry(self) -> None:
        """One timer per connection (no polling): close with 4401 when the token expires."""
        expires_at = self.identity.expires_at
        if expires_at is None:
            return
        delay = expires_at + self.endpoint.token_expiry_grace - time.time()
        self.expiry = asyncio.get_running_loop().call_later(
            max(delay, 0.0), self.close, TOKEN_EXPIRED
        )
