"""How frames leave the server: written straight to the connection, or through a bounded queue.

Broadcasts never apply backpressure (websockets' `topics/broadcast.rst`):
every connection has a bounded buffer, and one that falls behind is cut off
with 4508 (slow consumer) instead of slowing the room or growing memory.

- `DirectSender`: under ysync's own WebSocket protocol (`ysync serve`). Frames
  go straight to the connection; a connection's frames of one event-loop turn
  are written together at the end of the turn (one syscall instead of one each).
- `QueuedSender`: under any other ASGI server. A bounded queue drained by a
  task with ASGI sends.
- `FrameCache`: one broadcast is one message object; its encoding, and its
  WebSocket frame, are made once for all recipients.
- `Broadcaster`: owned by the endpoint (never module state, so apps in one
  process never share it): the frame cache, the end-of-turn writes, the
  node-wide bound on buffered output (`OutputBudget`) and the awareness
  batches (`AwarenessBatches`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from starlette.types import Send

from ysync.rooms import codec
from ysync.rooms.vocabulary import CloseCode, Refusal
from ysync.server.awareness_batches import AwarenessBatches
from ysync.server.metrics import TransportStats
from ysync.server.output_budget import REFRESH_EVERY, SMALL_HOLD, OutputBudget
from ysync.server.ws_frames import BINARY, frame_header

log = logging.getLogger("ysync.transport")

ABORT_AFTER = 15.0  # seconds a closing queued connection may take before it is dropped
_SLOW = "slow consumer: send buffer full"
_NODE_FULL = Refusal(CloseCode.SLOW_CONSUMER, "slow consumer: the node's send buffers are full")


class Socket(Protocol):
    """What a direct sender writes to: ysync's WebSocket protocol
    (`ysync.server.ws_protocol.YsyncWebSocketProtocol`), as the connection's transport."""

    def write(self, data: bytes) -> None: ...

    def writelines(self, data: list[bytes]) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...

    def send_close(self, code: int, reason: str) -> None: ...

    def heartbeat(self) -> None: ...

    def limit_until_attached(self, max_buffered: int) -> None: ...

    def attach(
        self, on_message: Callable[[bytes | str], None], on_close: Callable[[], None]
    ) -> None: ...


class Owner(Protocol):
    """Who a sender reports a slow consumer to: its connection, which closes itself."""

    def close(self, refusal: Refusal) -> None: ...


class FrameCache:
    """Encodes a message once however many connections it goes to.

    A broadcast hands the same message object to every recipient in a row, so
    the last one is kept and compared by identity (the reference kept here
    means the identity cannot be recycled). Server frames are unmasked, so the
    WebSocket frame is the same bytes for every recipient too."""

    __slots__ = ("_encode", "last", "last_frame", "last_payload")

    def __init__(self, encode: Callable[[codec.Message], bytes]) -> None:
        self._encode = encode
        # The last message, its encoding and its frame: senders read these first (the
        # hit is the common case: a broadcast to N peers misses once).
        self.last: object = None
        self.last_payload = b""
        self.last_frame = b""

    def payload(self, message: codec.Message) -> bytes:
        """The message encoded (what an ASGI send carries)."""
        if message is not self.last:
            self.last, self.last_payload, self.last_frame = message, self._encode(message), b""
        return self.last_payload

    def frame(self, message: codec.Message) -> bytes:
        """The message as one unmasked, final, binary WebSocket frame (RFC 6455 5.2)."""
        payload = self.payload(message)
        if not self.last_frame:
            self.last_frame = binary_frame(payload)
        return self.last_frame


def binary_frame(payload: bytes) -> bytes:
    return frame_header(BINARY, len(payload)) + payload


class Broadcaster:
    """The endpoint's frame caches, end-of-turn writes, output bound and awareness batches.

    `node_bytes`: bytes buffered for all clients together (0: only each client's own
    bound); `awareness_tick`: seconds over which a busy room's awareness is batched
    (0: every change broadcast as it comes)."""

    def __init__(self, *, node_bytes: int = 0, awareness_tick: float = 0.0) -> None:
        self.ywebsocket = FrameCache(codec.encode)
        self.budget = OutputBudget(node_bytes)
        self.awareness = AwarenessBatches(awareness_tick, self.budget)
        self._dirty: list[DirectSender] = []  # senders with frames gathered this turn

    def flush_at_end_of_turn(self, sender: DirectSender) -> None:
        # A busy turn applies many updates, often several for the same connection:
        # writing them together at the end of the turn costs one syscall, not one each.
        self._dirty.append(sender)
        if len(self._dirty) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        senders, self._dirty = self._dirty, []
        for sender in senders:
            sender.flush()
        if self.budget.backlogged:
            self.budget.refresh(at_most_every=REFRESH_EVERY)


class DirectSender:
    """Writes frames (already framed: `FrameCache.frame`) straight to the connection,
    bounded by its write buffer."""

    __slots__ = (
        "_broadcaster",
        "_budget",
        "_max_bytes",
        "_pending",
        "_pending_bytes",
        "_sent_recently",
        "_socket",
        "cache",
        "closing",
        "owner",
        "stats",
    )

    direct = True

    def __init__(
        self, socket: Socket, broadcaster: Broadcaster, *, max_bytes: int, stats: TransportStats
    ) -> None:
        self._socket = socket
        self._broadcaster = broadcaster
        self._max_bytes = max_bytes
        self._pending: list[bytes] | None = None  # frames not yet written this turn
        self._pending_bytes = 0
        self._budget = broadcaster.budget
        self._sent_recently = False
        self.closing = False
        self.stats = stats
        self.owner: Owner = self
        self.cache = broadcaster.ywebsocket  # the wire encoding, unless `send` is given one

    @property
    def queued(self) -> tuple[int, int]:
        """Frames and bytes waiting to be sent (frames: 0, the kernel's buffer counts bytes)."""
        return 0, self._socket.get_write_buffer_size() + self._pending_bytes

    def send(self, message: codec.Message, cache: FrameCache | None = None) -> None:
        """Send a message, framed once per broadcast by `cache` (default: the sender's).
        Runs once per recipient of every broadcast: the cache hit inline."""
        if cache is None:
            cache = self.cache
        frame = cache.last_frame
        self.write(frame if message is cache.last and frame else cache.frame(message))

    def write(self, frame: bytes) -> None:
        """Send one whole WebSocket frame (a protocol with its own framing cache uses this)."""
        if self.closing or self._socket.is_closing():
            return
        buffered = self._socket.get_write_buffer_size() + self._pending_bytes
        size = len(frame)
        if buffered + size > self._max_bytes:
            log.warning("slow consumer cut off")
            self.owner.close(Refusal(CloseCode.SLOW_CONSUMER, _SLOW))
            return
        # A client holding little is never the node's problem (the hot path: one compare).
        if buffered + size > SMALL_HOLD and not self._budget.admits(self, buffered + size):
            log.warning("slow consumer cut off: node send budget full")
            self.owner.close(_NODE_FULL)
            return
        if self._pending is None:
            self._pending = [frame]
            self._broadcaster.flush_at_end_of_turn(self)
        else:
            self._pending.append(frame)
        self._pending_bytes += size
        self._sent_recently = True
        stats = self.stats
        stats.sent_frames += 1
        stats.sent_bytes += size

    def held(self) -> int:
        """Bytes waiting for this client: the socket's buffer and this turn's frames."""
        return self._socket.get_write_buffer_size() + self._pending_bytes

    def flush(self) -> None:
        """Write the frames gathered this event-loop turn, in one call."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._pending_bytes = 0
        socket = self._socket
        if not socket.is_closing():
            if len(pending) == 1:
                socket.write(pending[0])
            else:
                socket.writelines(pending)

    def close(self, refusal: Refusal) -> None:
        if self.closing:
            return
        self.closing = True
        self.flush()
        # Behind whatever is buffered; the connection drops the client if it does
        # not answer in time (one that stopped reading never does).
        self._socket.send_close(refusal.code, refusal.close_reason)

    def keep_alive(self, frame: bytes) -> None:
        """Send `frame` (a no-op message) if nothing was sent since the last call,
        and let the connection ping a silent client."""
        if not self._sent_recently:
            self.write(frame)
        self._sent_recently = False
        self._socket.heartbeat()


class QueuedSender:
    """A bounded queue of encoded messages, drained by `run()` with ASGI sends."""

    __slots__ = (
        "_budget",
        "_closing",
        "_keepalive",
        "_keepalive_frame",
        "_max_bytes",
        "_max_frames",
        "_queue",
        "_queued_bytes",
        "_send",
        "_waiter",
        "cache",
        "on_abort",
        "owner",
        "stats",
    )

    direct = False

    def __init__(
        self,
        send: Send,
        *,
        max_frames: int,
        max_bytes: int,
        keepalive: float,
        keepalive_frame: bytes,
        stats: TransportStats,
        cache: FrameCache,
        budget: OutputBudget | None = None,
    ) -> None:
        self._send = send
        self._budget = budget if budget is not None else OutputBudget()
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._keepalive = keepalive
        self._keepalive_frame = keepalive_frame
        self._waiter: asyncio.Future[None] | None = None
        self._closing: Refusal | None = None
        self.stats = stats
        self.owner: Owner = self
        self.on_abort: Callable[[], None] = lambda: None  # the client never let the close out
        self.cache = cache

    @property
    def closing(self) -> bool:
        return self._closing is not None

    @property
    def queued(self) -> tuple[int, int]:
        return len(self._queue), self._queued_bytes

    def send(self, message: codec.Message, cache: FrameCache | None = None) -> None:
        """Queue a message, encoded once per broadcast by `cache` (default: the sender's)."""
        if cache is None:
            cache = self.cache
        self.write(cache.last_payload if message is cache.last else cache.payload(message))

    def write(self, payload: bytes) -> None:
        """Queue one encoded message (a protocol with its own encoding cache uses this)."""
        if self._closing is not None:
            return
        size = len(payload)
        if len(self._queue) >= self._max_frames or self._queued_bytes + size > self._max_bytes:
            log.warning("slow consumer cut off")
            self.owner.close(Refusal(CloseCode.SLOW_CONSUMER, "slow consumer: send queue full"))
            return
        held = self._queued_bytes + size
        if held > SMALL_HOLD and not self._budget.admits(self, held):
            log.warning("slow consumer cut off: node send budget full")
            self.owner.close(_NODE_FULL)
            return
        self._queue.append(payload)
        self._queued_bytes += size
        self._wake()

    def held(self) -> int:
        """Bytes queued for this client."""
        return self._queued_bytes

    def close(self, refusal: Refusal) -> None:
        if self._closing is not None:
            return
        self._closing = refusal
        self._queue.clear()
        self._queued_bytes = 0
        self._wake()
        # A client that stopped reading never lets the close frame out: drop it.
        asyncio.get_running_loop().call_later(ABORT_AFTER, self.on_abort)

    async def run(self) -> None:
        """Send queued frames until closed; ends quietly when the client is gone."""
        loop = asyncio.get_running_loop()
        queue = self._queue
        try:
            while True:
                if not queue and self._closing is None:
                    await self._wait_for_frames(loop)
                if self._closing is not None:
                    refusal = self._closing
                    await self._send(
                        {
                            "type": "websocket.close",
                            "code": int(refusal.code),
                            "reason": refusal.close_reason,
                        }
                    )
                    return
                payload = queue.popleft()
                self._queued_bytes -= len(payload)
                await self._send({"type": "websocket.send", "bytes": payload})
                self.stats.sent_frames += 1
                self.stats.sent_bytes += len(payload)
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
            self._queue.append(self._keepalive_frame)
            self._queued_bytes += len(self._keepalive_frame)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


Sender = DirectSender | QueuedSender
