"""WebSocket transport: the thin I/O shell around a `Room`, as a plain ASGI app.

Per connection, under ysync's own protocol (`ysync serve`): the ASGI coroutine
admits the client and joins it to its room, then attaches callbacks and ends;
frames reach the room from the protocol's `data_received`, and broadcasts are
written straight to the connection. Under any other ASGI server: the coroutine
reads frames for the connection's life, and a sender task drains the peer's
bounded queue. Either way broadcasts never apply backpressure: a client that
falls behind is cut off with 4508 (slow consumer) instead of slowing the room
or growing memory without bound.

Before a connection may see a byte of its room it passes, in order: the room
name check, the per-address throttle, the Origin list, authentication (waiting
for a y-websocket auth message when the URL carries no token), and the node's
and the room's capacity. A refusal accepts the WebSocket, then closes it with a
code (the JS provider sees close codes, not HTTP statuses). Afterwards every
frame is checked against the message size and the connection's rate budget,
and the connection is closed with 4401 when its token expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qsl

from ysync.rooms import codec
from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity, Refused
from ysync.rooms.protocols import Peer, StoreError
from ysync.rooms.registry import RoomRegistry
from ysync.server import audit
from ysync.server.auth import Authenticator
from ysync.server.limits import (
    CLOSE_FORBIDDEN,
    CLOSE_OVER_CAPACITY,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_LARGE,
    AddressThrottle,
    ConnectionRate,
    Limits,
)
from ysync.server.metrics import Metrics, TransportStats, message_type
from ysync.server.ws_frames import BINARY, frame_header

log = logging.getLogger("ysync.transport")

CLOSE_NORMAL = 1000
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_MALFORMED = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_SLOW_CONSUMER = 4508

# Closes recorded in the audit log, by the action they are recorded as.
_AUDITED = {
    CLOSE_UNAUTHORIZED: "auth_failed",
    CLOSE_FORBIDDEN: "access_denied",
    CLOSE_TOO_LARGE: "limit_exceeded",
    CLOSE_RATE_LIMITED: "limit_exceeded",
    CLOSE_OVER_CAPACITY: "limit_exceeded",
}

_MAX_ROOM_NAME = 512
_KEEPALIVE_SLICE = 100  # peers visited at once by the keep-alive sweep
_ABORT_AFTER = 15.0  # seconds a closing connection may take before it is dropped


def _close_reason(reason: str) -> str:
    # A close frame's reason is at most 123 bytes of UTF-8.
    return reason.encode("utf-8")[:123].decode("utf-8", "ignore")


def direct_transport(scope: dict[str, Any]) -> Any:
    """The connection to write frames to directly, when the server offers one.

    A server-to-client WebSocket frame is unmasked, so the bytes of one
    broadcast are the same for every recipient: encoding them once and writing
    them straight to each connection skips the ASGI send path and its per-frame
    task wake-up, which was most of the broadcast cost. ysync's own protocol
    (`ysync.server.ws_protocol`, used by `ysync serve`) offers itself as the
    `ysync.websocket` extension; under any other server, frames go through the
    ASGI queue.
    """
    return scope.get("extensions", {}).get("ysync.websocket")


_last_payload = b""
_last_frame = b"\x82\x00"


def binary_frame(payload: bytes) -> bytes:
    """An unmasked, final, binary WebSocket frame (RFC 6455 5.2) holding `payload`.

    A broadcast sends the same payload object to every peer in a row: the last
    encoding is kept and reused (compared by identity, and kept alive by the
    reference here, so the identity cannot be recycled)."""
    global _last_payload, _last_frame
    if payload is _last_payload:
        return _last_frame
    _last_payload, _last_frame = payload, frame_header(BINARY, len(payload)) + payload
    return _last_frame


_NO_QUEUE: deque[bytes] = deque()


_dirty: list[WebSocketPeer] = []  # direct peers with frames gathered this turn


def _flush_at_end_of_turn(peer: WebSocketPeer) -> None:
    # A busy turn applies many updates, often several for the same peer: writing
    # them together at the end of the turn costs one syscall instead of one each.
    _dirty.append(peer)
    if len(_dirty) == 1:
        asyncio.get_running_loop().call_soon(_flush_dirty)


def _flush_dirty() -> None:
    peers = _dirty[:]
    _dirty.clear()
    for peer in peers:
        peer.flush()


class WebSocketPeer:
    """One connected client.

    Frames go straight to the transport when `direct_transport` allows it
    (bounded by the transport's write buffer), else through a bounded queue
    drained by `run_sender` with ASGI sends. Either way a client that stops
    reading is cut off (4508) rather than slowing the room or growing memory.
    """

    __slots__ = (
        "_asgi_send",
        "_closing",
        "_keepalive",
        "_max_bytes",
        "_max_frames",
        "_pending",
        "_pending_bytes",
        "_queue",
        "_queued_bytes",
        "_sent_recently",
        "_transport",
        "_waiter",
        "aborted",
        "client",
        "connected_at",
        "connection_id",
        "edit_denied",
        "identity",
        "room",
        "stats",
        "task",
    )

    def __init__(
        self,
        asgi_send: Any,
        *,
        connection_id: int,
        identity: Identity,
        max_frames: int,
        max_bytes: int,
        keepalive: float,
        stats: TransportStats,
        transport: Any = None,
    ) -> None:
        self._asgi_send = asgi_send
        self._transport = transport
        self._pending: list[bytes] | None = None  # direct frames not yet written this turn
        self._pending_bytes = 0
        self._sent_recently = False
        # Direct peers share one empty, never-filled deque: memory per connection counts.
        self._queue: deque[bytes] = deque() if transport is None else _NO_QUEUE
        self._queued_bytes = 0
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._keepalive = keepalive
        self._waiter: asyncio.Future[None] | None = None
        self._closing: tuple[int, str] | None = None
        self.aborted = False
        self.connection_id = connection_id
        self.identity = identity
        self.stats = stats
        self.room: str | None = None
        self.client: str | None = None
        self.connected_at = time.time()  # Unix time, for the admin API
        self.edit_denied = False  # recorded in the audit log once per connection
        self.task: asyncio.Task[Any] | None = None  # the connection's receive loop

    @property
    def closing(self) -> bool:
        return self._closing is not None

    @property
    def queued(self) -> tuple[int, int]:
        """Frames and bytes waiting to be sent (direct: the transport's buffer)."""
        if self._transport is not None:
            return 0, self._transport.get_write_buffer_size() + self._pending_bytes
        return len(self._queue), self._queued_bytes

    @property
    def direct(self) -> bool:
        """True when frames are written straight to the transport (see `direct_transport`)."""
        return self._transport is not None

    def send(self, frame: bytes) -> None:
        if self._closing is not None:
            return
        transport = self._transport
        if transport is not None:
            if transport.is_closing():
                return
            buffered = transport.get_write_buffer_size() + self._pending_bytes
            if buffered + len(frame) > self._max_bytes:
                log.warning("slow consumer cut off", extra={"conn": self.connection_id})
                self.close(CLOSE_SLOW_CONSUMER, "slow consumer: send buffer full")
                return
            wire = binary_frame(frame)
            if self._pending is None:
                self._pending = [wire]
                _flush_at_end_of_turn(self)
            else:
                self._pending.append(wire)
            self._pending_bytes += len(wire)
            self._sent_recently = True
            self.stats.sent_frames += 1
            self.stats.sent_bytes += len(frame)
            return
        if (
            len(self._queue) >= self._max_frames
            or self._queued_bytes + len(frame) > self._max_bytes
        ):
            log.warning("slow consumer cut off", extra={"conn": self.connection_id})
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer: send queue full")
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._wake()

    def close(self, code: int, reason: str) -> None:
        if self._closing is not None:
            return
        self.stats.closes[code] = self.stats.closes.get(code, 0) + 1
        action = _AUDITED.get(code)
        if action is not None:
            audit.record(
                action,
                subject=self.identity.user_id,
                room=self.room,
                client=self.client,
                reason=reason,
                code=code,
            )
        self._closing = (code, _close_reason(reason))
        self.flush()
        if self._transport is not None:
            # Behind whatever is buffered; the connection drops the client if it
            # does not answer in time (one that stopped reading never does).
            self._transport.send_close(*self._closing)
            return
        self._queue.clear()
        self._queued_bytes = 0
        self._wake()
        # A client that stopped reading never lets the close frame out: drop it.
        asyncio.get_running_loop().call_later(_ABORT_AFTER, self._abort)

    async def run_sender(self) -> None:
        """Send queued frames until closed; ends quietly when the client is gone.
        (Not used by direct peers: they write in `send` and `close`.)"""
        loop = asyncio.get_running_loop()
        queue = self._queue
        try:
            while True:
                if not queue and self._closing is None:
                    await self._wait_for_frames(loop)
                if self._closing is not None:
                    code, reason = self._closing
                    await self._asgi_send(
                        {"type": "websocket.close", "code": code, "reason": reason}
                    )
                    return
                frame = queue.popleft()
                self._queued_bytes -= len(frame)
                await self._asgi_send({"type": "websocket.send", "bytes": frame})
                self.stats.sent_frames += 1
                self.stats.sent_bytes += len(frame)
        except OSError:  # uvicorn's ClientDisconnected: the receive loop sees it too
            return

    async def _wait_for_frames(self, loop: asyncio.AbstractEventLoop) -> None:
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._keepalive, self._wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if not self._queue and self._closing is None:
            # Nothing to send for a while: the JS provider reconnects after
            # 30 s without a message, and WebSocket pings do not count.
            self._queue.append(codec.EMPTY_AWARENESS)
            self._queued_bytes += len(codec.EMPTY_AWARENESS)

    def flush(self) -> None:
        """Write the frames gathered this event-loop turn, in one call (direct peers)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._pending_bytes = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if len(pending) == 1:
                transport.write(pending[0])
            else:
                transport.writelines(pending)

    def keep_alive(self) -> None:
        """Send a no-op if nothing was sent since the last call, and let the
        connection ping the client (direct peers)."""
        if not self._sent_recently:
            self.send(codec.EMPTY_AWARENESS)
        self._sent_recently = False
        if self._transport is not None:
            self._transport.heartbeat()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.aborted = True
            self.task.cancel()


class _Connection:
    """A joined client as its frames see it: checks each against the limits and
    hands it to the room; `closed` undoes the join, once."""

    __slots__ = ("endpoint", "expiry", "peer", "rate", "room")

    def __init__(
        self,
        endpoint: WebSocketEndpoint,
        room: Any,
        peer: WebSocketPeer,
        expiry: asyncio.TimerHandle | None,
    ) -> None:
        self.endpoint = endpoint
        self.room = room
        self.peer = peer
        self.expiry = expiry
        limits = endpoint.limits
        self.rate = (
            ConnectionRate(limits, time.monotonic())
            if limits.rate_messages or limits.rate_bytes
            else None
        )

    def receive(self, frame: bytes | str) -> None:
        peer, endpoint = self.peer, self.endpoint
        if peer.closing:
            return  # draining until the client acknowledges our close
        if isinstance(frame, str):
            peer.close(CLOSE_MALFORMED, "text frames are not part of the y-websocket protocol")
            return
        limits = endpoint.limits
        if len(frame) > limits.max_message_bytes:
            peer.close(CLOSE_TOO_LARGE, limits.message_refusal(len(frame)) or "too large")
            return
        if self.rate is not None:
            exceeded = self.rate.exceeded(len(frame), time.monotonic())
            if exceeded is not None:
                peer.close(CLOSE_RATE_LIMITED, exceeded)
                return
        stats = endpoint.stats
        kind = message_type(frame)
        stats.received[kind] += 1
        stats.received_bytes[kind] += len(frame)
        started = time.perf_counter()
        room = self.room
        try:
            room.receive(peer, frame)
        except codec.ProtocolError as exc:
            log.info(
                "malformed message: %s",
                exc.reason,
                extra={"room": room.name, "conn": peer.connection_id},
            )
            peer.close(CLOSE_MALFORMED, f"malformed message: {exc.reason}")
        except Exception:
            log.exception(
                "error handling a message",
                extra={"room": room.name, "conn": peer.connection_id},
            )
            peer.close(CLOSE_INTERNAL_ERROR, "internal error")
        metrics = endpoint.metrics
        if metrics is not None:
            metrics.handling.observe(time.perf_counter() - started)

    def closed(self) -> None:
        endpoint, peer = self.endpoint, self.peer
        if self.expiry is not None:
            self.expiry.cancel()
        endpoint.connections -= 1
        self.room.leave(peer)
        endpoint.registry.release(self.room.name)
        endpoint.direct_peers.discard(peer)


class WebSocketEndpoint:
    """ASGI app for `ws://host:port/<prefix><room>`; the room comes from the route."""

    def __init__(
        self,
        registry: RoomRegistry,
        hooks: Hooks,
        *,
        send_queue_frames: int,
        send_queue_bytes: int,
        keepalive: float = 20.0,
        authenticator: Authenticator | None = None,
        limits: Limits | None = None,
        auth_timeout: float = 10.0,
        token_expiry_grace: float = 0.0,
    ) -> None:
        self.registry = registry
        self.hooks = hooks
        self.send_queue_frames = send_queue_frames
        self.send_queue_bytes = send_queue_bytes
        self.keepalive = keepalive
        # Default: the hooks' authenticate (anyone edits unless they override it).
        self.authenticator = authenticator or Authenticator(hooks, "hooks")
        self.limits = limits if limits is not None else Limits()
        self.auth_timeout = auth_timeout
        self.token_expiry_grace = token_expiry_grace
        self.throttle = AddressThrottle(
            self.limits.ip_connections_per_minute, self.limits.ip_ban_seconds
        )
        self.connections = 0
        # Set by `close_all` (shutdown): the close every connection gets, new ones included.
        self.closing_all: tuple[int, str] | None = None
        self.stats = TransportStats()  # plain counters, folded into metrics each second
        self.direct_peers: set[WebSocketPeer] = set()
        self.metrics: Metrics | None = None
        self._next_id = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        room_name: str = scope["path_params"]["room"]
        request = _request(scope, room_name)
        refusal = _check_room_name(room_name) or self._admission_refusal(scope, request)
        identity = Identity()
        accepted = False
        if refusal is None and self.authenticator.accepts_auth_message and request.token is None:
            # The token may come as the first frame: accept and wait for it,
            # sending nothing of the room meanwhile.
            await send({"type": "websocket.accept"})
            accepted = True
            waited = await self._read_auth_message(receive, request)
            if waited is None:
                return  # the client went away
            request, refusal = waited
        if refusal is None:
            try:
                identity = await self.authenticator.authenticate(request)
            except Refused as exc:
                refusal = (exc.code, exc.reason)
        if refusal is None:
            refusal = self._identity_refusal(identity) or self._node_capacity_refusal(room_name)
        # Accept, then close with a code: the JS provider sees close codes, not HTTP
        # statuses, and does not retry 44xx. Nothing of the room is sent.
        if not accepted:
            await send({"type": "websocket.accept"})
        if refusal is not None:
            code, reason = refusal
            action = _AUDITED.get(code)
            if action is None:
                log.info("connection refused: %s", reason, extra={"room": room_name})
            else:
                audit.record(
                    action,
                    subject=identity.user_id,
                    room=room_name,
                    client=request.client,
                    reason=reason,
                    code=code,
                )
            await send({"type": "websocket.close", "code": code, "reason": _close_reason(reason)})
            return
        try:
            room = await self.registry.acquire(room_name)
        except StoreError as exc:
            log.error("room could not be loaded: %s", exc, extra={"room": room_name})
            await send(
                {
                    "type": "websocket.close",
                    "code": CLOSE_TRY_AGAIN_LATER,
                    "reason": "document storage unavailable, retry later",
                }
            )
            return
        limits = self.limits
        if limits.max_clients_per_room and len(room.peers) >= limits.max_clients_per_room:
            self.registry.release(room_name)
            reason = (
                f"room full: {limits.max_clients_per_room} clients (max_clients_per_room), "
                "retry later"
            )
            audit.record(
                "limit_exceeded",
                subject=identity.user_id,
                room=room_name,
                client=request.client,
                reason=reason,
                code=CLOSE_OVER_CAPACITY,
            )
            await send({"type": "websocket.close", "code": CLOSE_OVER_CAPACITY, "reason": reason})
            return
        room.max_document_bytes = limits.max_document_bytes
        room.on_edit_refused = self._edit_refused
        self._next_id += 1
        native = direct_transport(scope)
        peer = WebSocketPeer(
            send,
            connection_id=self._next_id,
            identity=identity,
            max_frames=self.send_queue_frames,
            max_bytes=self.send_queue_bytes,
            keepalive=self.keepalive,
            stats=self.stats,
            transport=native,
        )
        peer.room = room_name
        peer.client = request.client
        # A direct peer needs no task of its own: `keep_alive` covers its silences.
        sender = None if peer.direct else asyncio.create_task(peer.run_sender())
        if peer.direct:
            self.direct_peers.add(peer)
        connection = _Connection(self, room, peer, self._schedule_expiry(peer))
        self.connections += 1
        audit.record(
            "connect",
            subject=identity.user_id,
            room=room_name,
            client=request.client,
            role=identity.role.value,
            read_only=not identity.can_edit,
        )
        attached = False
        try:
            room.join(peer, read_only=not identity.can_edit)
            if self.closing_all is not None:
                # Admitted while `close_all` ran (e.g. its room was loading).
                peer.close(*self.closing_all)
            if native is not None:
                # ysync's own protocol hands each frame over as it arrives: no task,
                # queue or coroutine stays behind for the connection's life.
                native.attach(connection.receive, connection.closed)
                attached = True
                return
            peer.task = asyncio.current_task()
            await self._receive_loop(receive, connection)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not peer.aborted or current is None:
                raise
            current.uncancel()  # we dropped a client that stopped reading
        finally:
            if not attached:
                connection.closed()
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def keep_alive(self) -> None:
        """Forever: send a no-op to each direct peer that was sent nothing lately,
        and let its connection check that the client is still there.

        The JS provider reconnects after 30 s without a message (WebSocket
        pings do not count); visiting every peer each keepalive/2 bounds a
        silence to about `keepalive` seconds with no timer per connection. The
        visit is spread over that time in slices of about 100 peers: thousands
        of writes at once would stall every room for tens of milliseconds."""
        interval = self.keepalive / 2
        while True:
            peers = list(self.direct_peers)
            slices = max(1, min(len(peers) // _KEEPALIVE_SLICE, int(interval * 10)))
            for index in range(slices):
                await asyncio.sleep(interval / slices)
                for peer in peers[index::slices]:
                    peer.keep_alive()

    async def _receive_loop(self, receive: Any, connection: _Connection) -> None:
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

    def close_all(self, code: int, reason: str) -> int:
        """Close every connection, and every one admitted from now on, with `code`.
        Returns how many were open. Frames they send meanwhile are not applied."""
        self.closing_all = (code, reason)
        closed = 0
        for room in list(self.registry.rooms.values()):
            for peer in list(room.peers):
                peer.close(code, reason)
                closed += 1
        return closed

    async def wait_closed(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every connection to end; True if they did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self.connections

    # -- admission -----------------------------------------------------------------------

    def _admission_refusal(
        self, scope: dict[str, Any], request: ConnectionRequest
    ) -> tuple[int, str] | None:
        client = scope.get("client")
        refusal = self.throttle.admit(client[0] if client else None)
        if refusal is not None:
            return CLOSE_RATE_LIMITED, refusal
        refusal = self.limits.origin_refusal(request.headers)
        if refusal is not None:
            return CLOSE_FORBIDDEN, refusal
        return None

    async def _read_auth_message(
        self, receive: Any, request: ConnectionRequest
    ) -> tuple[ConnectionRequest, tuple[int, str] | None] | None:
        """Wait for the first frame; it must be an auth message carrying the token.
        None: the client disconnected."""
        missing = (
            CLOSE_UNAUTHORIZED,
            "token missing: send ?token=, Authorization: Bearer, or an auth message first",
        )
        try:
            async with asyncio.timeout(self.auth_timeout):
                message = await receive()
        except TimeoutError:
            return request, missing
        if message["type"] == "websocket.disconnect":
            return None
        frame = message.get("bytes")
        try:
            decoded = codec.decode(frame) if frame is not None else None
        except codec.ProtocolError:
            decoded = None
        if not isinstance(decoded, codec.Auth) or decoded.kind != 0 or not decoded.reason:
            return request, missing
        return dataclasses.replace(request, auth_message=decoded.reason), None

    def _identity_refusal(self, identity: Identity) -> tuple[int, str] | None:
        expires_at = identity.expires_at
        if expires_at is not None and expires_at + self.token_expiry_grace <= time.time():
            return CLOSE_UNAUTHORIZED, "token expired"
        return None

    def _node_capacity_refusal(self, room_name: str) -> tuple[int, str] | None:
        # Rooms being loaded right now are not counted: concurrent first joins of
        # different rooms can overshoot by the number in flight.
        rooms = self.registry.rooms
        limit = self.limits.max_rooms
        if limit and room_name not in rooms and len(rooms) >= limit:
            return CLOSE_OVER_CAPACITY, f"node full: {limit} rooms open (max_rooms), retry later"
        return None

    def _schedule_expiry(self, peer: WebSocketPeer) -> asyncio.TimerHandle | None:
        """One timer per connection (no polling): close with 4401 when the token expires."""
        expires_at = peer.identity.expires_at
        if expires_at is None:
            return None
        delay = expires_at + self.token_expiry_grace - time.time()
        return asyncio.get_running_loop().call_later(
            max(delay, 0.0),
            peer.close,
            CLOSE_UNAUTHORIZED,
            "token expired: reconnect with a fresh token",
        )

    def _edit_refused(self, peer: Peer) -> None:
        if isinstance(peer, WebSocketPeer) and not peer.edit_denied:
            peer.edit_denied = True
            audit.record(
                "edit_denied",
                subject=peer.identity.user_id,
                room=peer.room,
                client=peer.client,
                role=peer.identity.role.value,
                reason="document edits not allowed for this role",
            )


def _check_room_name(name: str) -> tuple[int, str] | None:
    if not name:
        return CLOSE_MALFORMED, "room name missing: connect to ws://host:port/<room>"
    if len(name) > _MAX_ROOM_NAME:
        return CLOSE_MALFORMED, f"room name longer than {_MAX_ROOM_NAME} characters"
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        return CLOSE_MALFORMED, "room name contains control characters"
    return None


def _request(scope: dict[str, Any], room: str) -> ConnectionRequest:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    client = scope.get("client")
    return ConnectionRequest(
        room=room,
        query=query,
        headers=headers,
        client=f"{client[0]}:{client[1]}" if client else None,
    )
