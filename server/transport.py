"""The WebSocket endpoint: admit → acquire the room → join → attach, as a plain ASGI app.

Per connection, under ysync's own protocol (`ysync serve`): the ASGI coroutine
admits the client (`ysync.server.admission`), loads its room, joins it, then
attaches the connection's callbacks to the socket and ends: frames reach the
room from the protocol's `data_received`, and broadcasts are written straight
to the socket (`DirectSender`). Under any other ASGI server the coroutine reads
frames for the connection's life and a task drains a bounded queue
(`QueuedSender`). Either way a client that falls behind is cut off (4508)
rather than slowing the room or growing memory.

A refusal accepts the WebSocket, then closes it with a code (the JS provider
sees close codes, not HTTP statuses) and nothing of the room is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

from starlette.types import Receive, Scope, Send

from ysync.rooms import codec
from ysync.rooms.extensions import Extensions
from ysync.rooms.hooks import ConnectionRequest, Identity
from ysync.rooms.protocols import StoreError
from ysync.rooms.registry import RoomDamaged, RoomRegistry
from ysync.rooms.vocabulary import CloseCode, Refusal
from ysync.server.admission import Admission, request_from_scope
from ysync.server.auth import MAX_TOKEN_BYTES
from ysync.server.connection import ClientConnection, RoomSession
from ysync.server.metrics import TransportStats
from ysync.server.senders import Broadcaster, DirectSender, QueuedSender, Sender, Socket

log = logging.getLogger("ysync.transport")

STORE_UNAVAILABLE = Refusal(CloseCode.TRY_AGAIN_LATER, "document storage unavailable, retry later")
ROOM_DAMAGED = Refusal(
    CloseCode.TRY_AGAIN_LATER, "room unavailable: its stored document is refused (ysync repair)"
)
TOKEN_MISSING = Refusal(
    CloseCode.UNAUTHORIZED,
    "token missing: send ?token=, Authorization: Bearer, or an auth message first",
)
_KEEPALIVE_SLICE = 100  # connections visited at once by the keep-alive sweep
# Until a connection is admitted, ysync's protocol holds at most this much of
# what it sends (room for an auth message with a 16 KiB token), then stops reading.
PRE_AUTH_BUFFER_BYTES = 2 * MAX_TOKEN_BYTES


def direct_socket(scope: Scope) -> Socket | None:
    """The connection to write frames to directly, when the server offers one.

    ysync's own protocol (`ysync.server.ws_protocol`, used by `ysync serve`)
    offers itself as the `ysync.websocket` extension; under any other server,
    frames go through the ASGI queue."""
    socket: Socket | None = scope.get("extensions", {}).get("ysync.websocket")
    return socket


class WebSocketEndpoint:
    """ASGI app for `ws://host:port/<prefix><room>`; the room comes from the route."""

    def __init__(
        self,
        registry: RoomRegistry,
        extensions: Extensions,
        *,
        send_queue_frames: int,
        send_queue_bytes: int,
        keepalive: float = 20.0,
        auth_timeout: float = 10.0,
        token_expiry_grace: float = 0.0,
        max_rooms: int = 0,
        max_clients_per_room: int = 0,
        send_buffer_node_bytes: int = 0,
        awareness_tick: float = 0.0,
        max_awareness_entries: int = 0,
        max_connections_per_user: int = 0,
        max_rooms_per_user: int = 0,
    ) -> None:
        self.registry = registry
        self.extensions = extensions
        self.admission = Admission(
            extensions,
            registry,
            max_rooms=max_rooms,
            max_clients_per_room=max_clients_per_room,
            token_expiry_grace=token_expiry_grace,
            max_connections_per_user=max_connections_per_user,
            max_rooms_per_user=max_rooms_per_user,
        )
        self.send_queue_frames = send_queue_frames
        self.send_queue_bytes = send_queue_bytes
        self.keepalive = keepalive
        self.auth_timeout = auth_timeout
        self.token_expiry_grace = token_expiry_grace
        self.max_awareness_entries = max_awareness_entries  # read per awareness message; 0: all
        self.connections = 0
        # Set by `close_all` (shutdown): the close every connection gets, new ones included.
        self.closing_all: Refusal | None = None
        self.stats = TransportStats()  # plain counters, folded into metrics each second
        self.broadcaster = Broadcaster(
            node_bytes=send_buffer_node_bytes, awareness_tick=awareness_tick
        )
        self.direct_connections: set[ClientConnection] = set()
        self._next_id = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        socket = direct_socket(scope)
        if socket is not None:
            socket.limit_until_attached(PRE_AUTH_BUFFER_BYTES)
        request = request_from_scope(scope, scope["path_params"]["room"])
        accepted = False
        refusal = await self.admission.screen(request)
        if refusal is None and request.token is None and self.admission.waits_for_auth_message:
            # The token may come as the first frame: accept and wait for it,
            # sending nothing of the room meanwhile.
            await send({"type": "websocket.accept"})
            accepted = True
            waited = await self._read_auth_message(receive, request)
            if waited is None:
                return  # the client went away
            request, refusal = waited
        admitted: Identity | Refusal = refusal or await self.admission.admit(request)
        if not accepted:
            await send({"type": "websocket.accept"})
        if isinstance(admitted, Refusal):
            await self.refuse(send, request, None, admitted)
            return
        await self._serve(scope, receive, send, request, admitted)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: ConnectionRequest,
        identity: Identity,
    ) -> None:
        refusal = self.admission.quota.refusal(identity, request.room)
        if refusal is not None:  # before the room is loaded: a quota bounds loads too
            await self.refuse(send, request, identity, refusal)
            return
        try:
            room = await self.registry.acquire(request.room)
        except StoreError as exc:
            log.error("room could not be loaded: %s", exc, extra={"room": request.room})
            damaged = isinstance(exc, RoomDamaged)
            await self.refuse(
                send, request, identity, ROOM_DAMAGED if damaged else STORE_UNAVAILABLE
            )
            return
        refusal = self.admission.room_full(room)
        if refusal is not None:
            self.registry.release(room.name)
            await self.refuse(send, request, identity, refusal)
            return
        connection = self._connection(scope, send, request, identity)
        self.connections += 1
        self.broadcaster.awareness.attach(room)
        session = connection.join(room, self.broadcaster.ywebsocket)
        self.admission.quota.add(session, identity, room.name)
        self.extensions.joined(room, session, request)
        if self.closing_all is not None:
            connection.close(self.closing_all)  # admitted while `close_all` ran
        if not self.attach(scope, connection):
            await self.run_queued(receive, connection)

    def _connection(
        self, scope: Scope, send: Send, request: ConnectionRequest, identity: Identity
    ) -> ClientConnection:
        sender = self.sender(scope, send, codec.EMPTY_AWARENESS)
        gate = self.extensions.message_gate(request, identity)
        return ClientConnection(self, self.next_id(), request, identity, sender, gate)

    def sender(self, scope: Scope, send: Send, keepalive_frame: bytes) -> Sender:
        """How frames reach this client: straight to the socket under ysync's own
        protocol, else through a bounded queue (which sends `keepalive_frame` when idle)."""
        socket = direct_socket(scope)
        if socket is not None:
            return DirectSender(
                socket, self.broadcaster, max_bytes=self.send_queue_bytes, stats=self.stats
            )
        return QueuedSender(
            send,
            max_frames=self.send_queue_frames,
            max_bytes=self.send_queue_bytes,
            keepalive=self.keepalive,
            keepalive_frame=keepalive_frame,
            stats=self.stats,
            cache=self.broadcaster.ywebsocket,
            budget=self.broadcaster.budget,
        )

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def attach(self, scope: Scope, connection: ClientConnection) -> bool:
        """Hand a direct connection's frames to it from now on; False: not direct
        (the caller runs `run_queued` instead)."""
        socket = direct_socket(scope)
        if socket is None:
            return False
        # ysync's own protocol hands each frame over as it arrives: no task,
        # queue or coroutine stays behind for the connection's life.
        self.direct_connections.add(connection)
        socket.attach(connection.receive, connection.closed)
        return True

    async def run_queued(self, receive: Receive, connection: ClientConnection) -> None:
        """Under another ASGI server: read the connection's frames until it ends,
        while a task drains its send queue."""
        sender = connection.sender
        assert isinstance(sender, QueuedSender)
        sender.on_abort = connection.abort
        sending = asyncio.create_task(sender.run())
        connection.task = asyncio.current_task()
        try:
            await self._receive_loop(receive, connection)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not connection.aborted or current is None:
                raise
            current.uncancel()  # we dropped a client that stopped reading
        finally:
            connection.closed()
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending

    async def _receive_loop(self, receive: Receive, connection: ClientConnection) -> None:
        handled = 0
        while True:
            handled += 1
            if not handled & 15:
                # receive() returns buffered frames without suspending: yield now
                # and then, so a burst from one client does not run ahead of
                # every other connection's frames.
                await asyncio.sleep(0)
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("bytes")
            connection.receive(frame if frame is not None else message.get("text", ""))

    def leave(self, connection: ClientConnection, session: RoomSession) -> None:
        """A connection's socket is gone (called once, by the connection)."""
        self.disconnected(connection)
        self.leave_room(session)

    def disconnected(self, connection: ClientConnection) -> None:
        """A connection's socket is gone: it no longer counts."""
        self.connections -= 1
        self.direct_connections.discard(connection)

    def leave_room(self, session: RoomSession) -> None:
        """A session ends: out of its room (its awareness states removed), room released."""
        self.admission.quota.remove(session)
        room = session.room
        room.leave(session)
        self.extensions.left(room, session)
        self.registry.release(room.name)

    async def refuse(
        self, send: Send, request: ConnectionRequest, identity: Identity | None, refusal: Refusal
    ) -> None:
        if refusal.audit_action is None:
            log.info("connection refused: %s", refusal.reason, extra={"room": request.room})
        self.stats.closes[refusal.code] = self.stats.closes.get(refusal.code, 0) + 1
        self.extensions.refused(request, identity, refusal)
        await send(
            {"type": "websocket.close", "code": int(refusal.code), "reason": refusal.close_reason}
        )

    async def _read_auth_message(
        self, receive: Receive, request: ConnectionRequest
    ) -> tuple[ConnectionRequest, Refusal | None] | None:
        """Wait for the first frame; it must be an auth message carrying the token.
        None: the client disconnected."""
        try:
            async with asyncio.timeout(self.auth_timeout):
                message = await receive()
        except TimeoutError:
            return request, TOKEN_MISSING
        if message["type"] == "websocket.disconnect":
            return None
        frame = message.get("bytes")
        try:
            decoded = codec.decode(frame) if frame is not None else None
        except codec.ProtocolError:
            decoded = None
        if not isinstance(decoded, codec.Auth) or decoded.kind != 0 or not decoded.reason:
            return request, TOKEN_MISSING
        return dataclasses.replace(request, auth_message=decoded.reason), None

    # -- the whole endpoint -------------------------------------------------------------

    async def keep_alive(self) -> None:
        """Forever: send a no-op to each direct connection that was sent nothing
        lately, and let its socket check that the client is still there.

        The JS provider reconnects after 30 s without a message (WebSocket
        pings do not count); visiting every connection each keepalive/2 bounds
        a silence to about `keepalive` seconds with no timer per connection.
        The visit is spread over that time in slices of about 100 connections:
        thousands of writes at once would stall every room for tens of ms."""
        interval = self.keepalive / 2
        while True:
            connections = list(self.direct_connections)
            slices = max(1, min(len(connections) // _KEEPALIVE_SLICE, int(interval * 10)))
            for index in range(slices):
                await asyncio.sleep(interval / slices)
                for connection in connections[index::slices]:
                    connection.keep_alive()

    def close_all(self, refusal: Refusal) -> int:
        """Close every connection, and every one admitted from now on, with `refusal`.
        Returns how many were open. Frames they send meanwhile are not applied."""
        self.closing_all = refusal
        closed = 0
        for room in list(self.registry.rooms.values()):
            for peer in list(room.peers):
                peer.close(refusal)
                closed += 1
        return closed

    async def wait_closed(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every connection to end; True if they did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self.connections

    def sessions(self, room_name: str) -> list[RoomSession]:
        """The connections in a loaded room (for the admin API), oldest first."""
        room = self.registry.rooms.get(room_name)
        peers = [] if room is None else list(room.peers)
        sessions = [peer for peer in peers if isinstance(peer, RoomSession)]
        return sorted(sessions, key=lambda session: session.connection.id)
