"""WebSocket transport: the thin I/O shell around a `Room`, as a plain ASGI app.

Per connection: this coroutine reads frames and hands them to the room, and
one sender task drains the peer's bounded queue. Broadcasts never apply
backpressure: a client whose queue fills is cut off with 4508 (slow consumer)
instead of slowing the room or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any
from urllib.parse import parse_qsl

from ysync.rooms import codec
from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity, Refused
from ysync.rooms.protocols import StoreError
from ysync.rooms.registry import RoomRegistry

log = logging.getLogger("ysync.transport")

CLOSE_NORMAL = 1000
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_MALFORMED = 4400
CLOSE_SLOW_CONSUMER = 4508

_MAX_ROOM_NAME = 512
_ABORT_AFTER = 15.0  # seconds a closing connection may take before it is dropped


def _close_reason(reason: str) -> str:
    # A close frame's reason is at most 123 bytes of UTF-8.
    return reason.encode("utf-8")[:123].decode("utf-8", "ignore")


class WebSocketPeer:
    """One connected client: a bounded queue of frames drained by `run_sender`."""

    __slots__ = (
        "_asgi_send",
        "_closing",
        "_keepalive",
        "_max_bytes",
        "_max_frames",
        "_queue",
        "_queued_bytes",
        "_waiter",
        "aborted",
        "connection_id",
        "identity",
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
    ) -> None:
        self._asgi_send = asgi_send
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._keepalive = keepalive
        self._waiter: asyncio.Future[None] | None = None
        self._closing: tuple[int, str] | None = None
        self.aborted = False
        self.connection_id = connection_id
        self.identity = identity
        self.task: asyncio.Task[Any] | None = None  # the connection's receive loop

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def send(self, frame: bytes) -> None:
        if self._closing is not None:
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
        self._closing = (code, _close_reason(reason))
        self._queue.clear()
        self._queued_bytes = 0
        self._wake()
        # A client that stopped reading never lets the close frame out: drop it.
        asyncio.get_running_loop().call_later(_ABORT_AFTER, self._abort)

    async def run_sender(self) -> None:
        """Send queued frames until closed; ends quietly when the client is gone."""
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

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.aborted = True
            self.task.cancel()


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
    ) -> None:
        self.registry = registry
        self.hooks = hooks
        self.send_queue_frames = send_queue_frames
        self.send_queue_bytes = send_queue_bytes
        self.keepalive = keepalive
        self.connections = 0
        self._next_id = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        room_name: str = scope["path_params"]["room"]
        refusal = _check_room_name(room_name)
        identity = Identity()
        if refusal is None:
            try:
                identity = await self.hooks.authenticate(_request(scope, room_name))
            except Refused as exc:
                refusal = (exc.code, exc.reason)
        # Accept, then close with a code: the JS provider sees close codes, not HTTP
        # statuses, and does not retry 44xx. Nothing of the room is sent.
        await send({"type": "websocket.accept"})
        if refusal is not None:
            code, reason = refusal
            log.info("connection refused: %s", reason, extra={"room": room_name})
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
        self._next_id += 1
        peer = WebSocketPeer(
            send,
            connection_id=self._next_id,
            identity=identity,
            max_frames=self.send_queue_frames,
            max_bytes=self.send_queue_bytes,
            keepalive=self.keepalive,
        )
        peer.task = asyncio.current_task()
        sender = asyncio.create_task(peer.run_sender())
        self.connections += 1
        try:
            room.join(peer, read_only=identity.read_only)
            await self._receive_loop(receive, room, peer)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not peer.aborted or current is None:
                raise
            current.uncancel()  # we dropped a client that stopped reading
        finally:
            self.connections -= 1
            room.leave(peer)
            self.registry.release(room_name)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _receive_loop(self, receive: Any, room: Any, peer: WebSocketPeer) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if peer.closing:
                continue  # draining until the client acknowledges our close
            frame = message.get("bytes")
            if frame is None:
                peer.close(CLOSE_MALFORMED, "text frames are not part of the y-websocket protocol")
                continue
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
