"""Redis pub/sub bus: fan-out of room changes between ysync nodes.

One channel per room, `ysync:{<room>}`: the braces are a Redis Cluster hash
tag, so a room's channel maps to one slot and the same names work with
sharded pub/sub (SSUBSCRIBE/SPUBLISH) on a cluster. Each envelope is msgpack
`{node, seq, room, kind, payload, target}`.

Pub/sub is fire-and-forget; this module only moves envelopes (`Replicator`
repairs losses). While Redis is unreachable, publishes queue up to a bound
(older ones are dropped: sequence gaps make receivers resync), the node keeps
serving its own clients, and after reconnecting it resubscribes every room and
calls `on_reconnect` so every open room resyncs with its peers.

Liveness: each node refreshes the key `ysync:node:<id>` with a TTL; `alive()`
checks those keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack
import redis.asyncio as redis
from redis.exceptions import RedisError

from ysync.rooms.backoff import Backoff
from ysync.rooms.protocols import Envelope, EnvelopeHandler
from ysync.rooms.vocabulary import EnvelopeKind

log = logging.getLogger("ysync.redis")

_MAX_QUEUED = 10_000  # envelopes kept while Redis is unreachable
_BATCH = 256  # publishes sent per pipeline round trip


def channel(room: str) -> str:
    return "ysync:{" + room + "}"


def _node_key(node: str) -> str:
    return f"ysync:node:{node}"


def encode(envelope: Envelope) -> bytes:
    packed: bytes = msgpack.packb(
        {
            "node": envelope.node,
            "seq": envelope.seq,
            "room": envelope.room,
            "kind": envelope.kind.value,
            "payload": envelope.payload,
            "target": envelope.target,
        }
    )
    return packed


def decode(data: bytes) -> Envelope:
    """Raise ValueError for anything that is not a well-formed envelope."""
    try:
        fields = msgpack.unpackb(data)
        envelope = Envelope(
            node=fields["node"],
            seq=fields["seq"],
            room=fields["room"],
            kind=EnvelopeKind(fields["kind"]),
            payload=fields["payload"],
            target=fields.get("target", ""),
        )
    except Exception as exc:
        raise ValueError(f"not a ysync envelope: {exc}") from exc
    if not (
        isinstance(envelope.node, str)
        and isinstance(envelope.seq, int)
        and isinstance(envelope.room, str)
        and isinstance(envelope.payload, bytes)
        and isinstance(envelope.target, str)
    ):
        raise ValueError("envelope fields have the wrong types")
    return envelope


class RedisBus:
    """A `Bus` over Redis pub/sub. Run `run()` in a task; `close()` at shutdown."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        heartbeat_ttl: float = 15.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.heartbeat_ttl = heartbeat_ttl
        self.retry = Backoff(initial=0.1, max_delay=max_backoff)
        self.connected = False
        self.reconnects = 0
        self.dropped = 0  # envelopes dropped because the queue was full
        self.on_reconnect: Callable[[], None] = lambda: None
        self._handlers: dict[str, EnvelopeHandler] = {}  # channel -> handler
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wakeup = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._client: redis.Redis | None = None
        self._pubsub: Any = None

    @property
    def alone(self) -> bool:
        return False  # other nodes may join at any time

    def describe(self) -> str:
        where = self.url.rpartition("@")[2]  # never log a password
        return f"Redis pub/sub at {where} (node {self.node_id})"

    def health(self) -> str | None:
        if self.connected:
            return None
        return "redis: disconnected, reconnecting (serving local clients only)"

    # -- Bus protocol -------------------------------------------------------------------

    async def subscribe(self, room: str, handler: EnvelopeHandler) -> None:
        name = channel(room)
        self._handlers[name] = handler
        if self.connected:
            with contextlib.suppress(RedisError, OSError):  # resubscribed on reconnect
                await self._pubsub.subscribe(name)

    async def unsubscribe(self, room: str) -> None:
        name = channel(room)
        self._handlers.pop(name, None)
        if self.connected:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(name)

    def publish(self, envelope: Envelope) -> None:
        if len(self._queue) >= _MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((channel(envelope.room), encode(envelope)))
        self._wakeup.set()

    async def peers_holding(self, room: str) -> int:
        if not self.connected or self._client is None:
            return 0
        try:
            counts = await self._client.pubsub_numsub(channel(room))
        except (RedisError, OSError):
            return 0
        subscribers = int(counts[0][1]) if counts else 0
        return max(subscribers - 1, 0)  # minus our own subscription

    async def alive(self, nodes: set[str]) -> set[str]:
        if not nodes or not self.connected or self._client is None:
            return set(nodes)  # can't tell: assume alive rather than drop presence
        ordered = sorted(nodes)
        try:
            found = await self._client.exists(*[_node_key(n) for n in ordered])
            if found == len(ordered):
                return set(ordered)
            pipe = self._client.pipeline(transaction=False)
            for node in ordered:
                pipe.exists(_node_key(node))
            results = await pipe.execute()
        except (RedisError, OSError):
            return set(nodes)
        return {node for node, exists in zip(ordered, results, strict=True) if exists}

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._flush_queue()
                await self._client.delete(_node_key(self.node_id))
        await self._disconnect()

    # -- connection lifecycle -----------------------------------------------------------

    async def connect(self) -> None:
        """Connect, subscribe every known room, start the heartbeat key."""
        client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        await client.ping()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        if self._handlers:
            await pubsub.subscribe(*self._handlers)
        else:
            await pubsub.subscribe(channel(""))  # keeps get_message() valid with no rooms
        self._client, self._pubsub = client, pubsub
        await self._beat()
        self.connected = True

    async def run(self) -> None:
        """Forever: keep connected, deliver incoming envelopes, publish queued ones."""
        attempt = 0
        while True:
            try:
                if not self.connected:
                    await self.connect()
                    if self.reconnects:
                        log.warning("Redis reconnected; resyncing open rooms")
                        self.on_reconnect()
                    attempt = 0
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._read_loop())
                    tasks.create_task(self._publish_loop())
                    tasks.create_task(self._heartbeat_loop())
            except* (RedisError, OSError) as group:
                if self.connected:
                    log.error("Redis connection lost: %s", group.exceptions[0])
                else:
                    log.error("Redis unreachable: %s", group.exceptions[0])
                self.connected = False
                self.reconnects += 1
                await self._disconnect()
                # With jitter, so nodes don't all reconnect at the same instant.
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1

    async def _disconnect(self) -> None:
        self.connected = False
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()

    async def _read_loop(self) -> None:
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        """Hand one pub/sub message to its room's handler (a bad one is logged, dropped)."""
        name = message["channel"].decode("utf-8", "replace")
        handler = self._handlers.get(name)
        if handler is None:
            return
        try:
            envelope = decode(message["data"])
        except ValueError as exc:
            log.warning("dropping a bad message on %s: %s", name, exc)
            return
        try:
            handler(envelope)
        except Exception:
            log.exception("bus handler failed", extra={"room": envelope.room})

    async def _publish_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush_queue()

    async def _flush_queue(self) -> None:
        # One flusher at a time: close() and the publish loop may both flush.
        async with self._flushing:
            while self._queue and self._client is not None:
                batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
                try:
                    pipe = self._client.pipeline(transaction=False)
                    for name, data in batch:
                        pipe.publish(name, data)
                    await pipe.execute()
                except BaseException:
                    self._queue.extendleft(reversed(batch))  # retried after reconnect
                    raise

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_ttl / 3)
            await self._beat()

    async def _beat(self) -> None:
        if self._client is not None:
            await self._client.set(_node_key(self.node_id), b"1", px=int(self.heartbeat_ttl * 1000))
