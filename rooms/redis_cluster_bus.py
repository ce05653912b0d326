"""The Redis bus on a Redis Cluster: sharded pub/sub (SSUBSCRIBE / SPUBLISH).

Chosen by the URL: `redis+cluster://[user:password@]host:port[,host:port...]`
(some nodes of the cluster: the client finds the others, and reconnects
through whichever listed node answers; `rediss+cluster://` for TLS). A
room's channel `ysync:{<room>}` is hash-tagged, so it lives in one slot: its
messages go through the master of
that slot only instead of being broadcast to every node of the cluster, as
classic PUBLISH is. redis-py's cluster client follows slot moves and
failovers (its `ClusterPubSub` resubscribes a shard channel on the new
owner); a master that dies loses what was in flight, which the sequence
numbers and anti-entropy repair as for any reconnect.

Everything else (queueing while disconnected, heartbeats, reconnect) is
`RedisBus`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import redis.asyncio as redis
import redis.asyncio.cluster as redis_cluster
from redis.exceptions import RedisError

from ysync.rooms.redis_bus import _BATCH, RedisBus, _node_key, channel

SCHEMES = ("redis+cluster", "rediss+cluster")
_POLL = 0.005  # seconds each master's pub/sub connection is waited on per round
_CALL_TIMEOUT = 5.0  # seconds for a (re)subscription before starting over


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def _client(url: str) -> redis_cluster.RedisCluster:
    """A cluster client for `url`: its first host as the URL, the others as
    further start-up nodes."""
    scheme, _, rest = url.partition("://")
    credentials, _, hosts = rest.rpartition("@")
    first, *others = hosts.split(",")
    plain = scheme.lower().replace("+cluster", "") + "://"
    plain += (credentials + "@" if credentials else "") + first
    startup = []
    for other in others:
        host, _, port = other.partition("/")[0].rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"Redis Cluster URL: {other!r} is not host:port"
                " (expected redis+cluster://host:port[,host:port...])"
            )
        startup.append(redis_cluster.ClusterNode(host, int(port)))
    return redis_cluster.RedisCluster.from_url(
        plain, startup_nodes=startup, socket_connect_timeout=2, socket_timeout=5
    )


class RedisClusterBus(RedisBus):
    """A `Bus` over Redis Cluster sharded pub/sub; see the module doc."""

    _cluster: redis_cluster.RedisCluster | None = None
    _broken = False  # a call hung or failed: reconnect

    def describe(self) -> str:
        where = self.url.rpartition("@")[2]
        return f"Redis Cluster sharded pub/sub via {where} (node {self.node_id})"

    async def subscribe(self, room: str, handler: Any) -> None:
        name = channel(room)
        self._handlers[name] = handler
        if self.connected:
            try:
                async with asyncio.timeout(_CALL_TIMEOUT):
                    await self._pubsub.ssubscribe(name)
            except (RedisError, OSError):  # TimeoutError too
                # Seen hanging right after a failover: start over with a fresh client
                # (it resubscribes every room, and every room resyncs).
                self._reconnect_soon()

    async def unsubscribe(self, room: str) -> None:
        name = channel(room)
        self._handlers.pop(name, None)
        if self.connected:
            with contextlib.suppress(RedisError, OSError):
                async with asyncio.timeout(_CALL_TIMEOUT):
                    await self._pubsub.sunsubscribe(name)

    async def peers_holding(self, room: str) -> int:
        client = self._cluster
        if not self.connected or client is None:
            return 0
        name = channel(room)
        try:
            owner = client.get_node_from_key(name)
            counts = await client.pubsub_shardnumsub(name, target_nodes=owner)
        except (RedisError, OSError):
            return 0
        subscribers = int(counts[0][1]) if counts else 0
        return max(subscribers - 1, 0)  # minus our own subscription

    async def alive(self, nodes: set[str]) -> set[str]:
        client = self._client
        if not nodes or not self.connected or client is None:
            return set(nodes)  # can't tell: assume alive rather than drop presence
        ordered = sorted(nodes)
        try:  # one key per call: the keys live in different slots
            found = await asyncio.gather(*(client.exists(_node_key(n)) for n in ordered))
        except (RedisError, OSError):
            return set(nodes)
        return {node for node, exists in zip(ordered, found, strict=True) if exists}

    async def connect(self) -> None:
        client = _client(self.url)
        try:
            # Bounded: during a failover redis-py can wait on a dead master for long.
            async with asyncio.timeout(_CALL_TIMEOUT * 2):
                await client.initialize()
                pubsub = client.pubsub()
                for name in list(self._handlers) or [channel("")]:
                    await pubsub.ssubscribe(name)
        except BaseException:
            with contextlib.suppress(Exception):
                await client.aclose()
            raise
        self._cluster, self._pubsub = client, pubsub
        # RedisBus calls only set, delete and aclose on it: same API on a cluster.
        self._client = cast(redis.Redis, client)
        await self._beat()
        self.connected = True

    def _reconnect_soon(self) -> None:
        """Make the read loop fail, so `run()` reconnects (see RedisBus.run)."""
        self._broken = True

    async def _disconnect(self) -> None:
        self._broken = False
        self._cluster = None
        await super()._disconnect()

    async def _read_loop(self) -> None:
        while True:
            if self._broken:
                raise OSError("a Redis Cluster call timed out; reconnecting")
            # redis-py polls one master's connection after the other, each for up to
            # `timeout`: a short one, or a message waits behind idle masters.
            try:
                message = await self._pubsub.get_sharded_message(
                    ignore_subscribe_messages=True, timeout=_POLL
                )
            except RuntimeError as exc:
                # redis-py after a failover: "pubsub connection not set". Seen
                # killing the whole node when it escaped: reconnect instead.
                raise OSError(f"Redis Cluster pub/sub connection lost: {exc}") from exc
            if message is None or message.get("type") != "smessage":
                # It returns at once when nothing is subscribed: never spin.
                await asyncio.sleep(_POLL if message is None else 0)
                continue
            self._deliver(message)

    async def _flush_queue(self) -> None:
        async with self._flushing:
            while self._queue and self._client is not None:
                client = self._client
                batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
                by_channel: dict[str, list[bytes]] = {}
                for name, data in batch:
                    by_channel.setdefault(name, []).append(data)
                try:
                    # Rooms in parallel (their channels live on different masters),
                    # each room's messages in order.
                    await asyncio.gather(
                        *(_publish_in_order(client, n, items) for n, items in by_channel.items())
                    )
                except BaseException:
                    self._queue.extendleft(reversed(batch))  # retried after reconnect
                    raise


async def _publish_in_order(client: Any, name: str, items: list[bytes]) -> None:
    for data in items:
        await client.spublish(name, data)
