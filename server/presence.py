"""Who is in which room, cluster-wide: `PresenceExtension`.

Every node knows the awareness states of the rooms it holds (its own clients'
and, over the bus, the other nodes'), and notes when each client id was first
seen and last active (awareness change or document edit). For a room it does
not hold, it asks Redis: every node publishes its own clients of each room as
one key per (room, node) that expires after `--node-ttl` (renewed every third
of it, rewritten within `PUBLISH_SECONDS` of a change), indexed by a sorted set
per room and one per user, scored by expiry. A SIGKILLed node's entries are
gone at that expiry, without anyone cleaning up. Without Redis a node answers
for itself, which is the whole cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from ysync.presence.roster import ClientPresence, users
from ysync.rooms.awareness import RemoteNode
from ysync.rooms.codec import AwarenessEntry
from ysync.rooms.extensions import Background, Extension
from ysync.rooms.room import Origin, Room, Source
from ysync.server.agent_presence import Agents
from ysync.server.presence_feed import PresenceFeed

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.presence")

PUBLISH_SECONDS = 0.25  # a change reaches Redis within this (the API promises 1 s)
# Every node that saw a leave fires within the bus latency of the others: a claim
# outlives them all, and expires before that user's next leave can be due.
LEFT_CLAIM_MS = 2000


def _room_key(room: str, node: str) -> str:
    return "ysync:presence:{" + room + "}:" + node


def _room_index(room: str) -> str:
    return "ysync:presence-nodes:{" + room + "}"


def _user_index(user_id: str) -> str:
    return "ysync:presence-user:{" + user_id + "}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PresenceExtension(Extension):
    """Presence of every room for the presence API (see the module doc)."""

    def __init__(
        self,
        *,
        redis_url: str,
        node_ttl: float,
        idle_after: float,
        leave_debounce: float = 3.0,
        feed_rate: float = 10.0,
    ) -> None:
        self.redis_url = redis_url
        self.leave_debounce = leave_debounce
        self.feed_rate = feed_rate
        self.feed: PresenceFeed | None = None  # set by on_start
        self.node_ttl = node_ttl
        self.idle_after = idle_after
        self._node: Node | None = None
        self._redis: redis.Redis | None = None
        # room -> client id -> [since, last active (Unix times), hash of its state]
        self._times: dict[str, dict[int, list[float]]] = {}
        self._dirty: set[str] = set()
        self._published: dict[str, set[str]] = {}  # room -> users we indexed for it
        self._warned = False
        self.agents: Agents | None = None  # set by on_start

    @property
    def name(self) -> str:
        return "presence"

    async def on_start(self, node: Any) -> None:
        self._node = node
        self.agents = Agents(node.registry)
        self.feed = PresenceFeed(
            node.events,
            leave_debounce=self.leave_debounce,
            rate=self.feed_rate,
            claim=self._claim_leave if self.redis_url else None,
        )
        node.events.snapshots.append(self._snapshot)
        if self.redis_url:
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_connect_timeout=2, socket_timeout=5
            )

    # -- what this node sees -------------------------------------------------------------

    def on_awareness(self, room: Room, entries: list[AwarenessEntry], origin: Origin) -> None:
        now = time.time()
        times = self._times.get(room.name)
        if times is None:
            times = self._times[room.name] = {}
        for entry in entries:
            if entry.removed:
                times.pop(entry.client_id, None)
                continue
            seen = times.get(entry.client_id)
            if seen is None:
                times[entry.client_id] = [now, now, hash(entry.state)]
            elif seen[2] != hash(entry.state):  # a renewal (same state) is not activity
                seen[1] = now
                seen[2] = hash(entry.state)
        if origin is not Source.BUS:
            self._dirty.add(room.name)
        if self.feed is not None:
            self.feed.on_awareness(room, entries, origin)

    def on_change(self, room: Room, update: bytes, origin: Origin) -> None:
        if isinstance(origin, Source):
            return
        times = self._times.get(room.name)
        if not times:
            return
        now = time.time()
        for client_id in room.awareness.owned_by(origin):
            seen = times.get(client_id)
            if seen is not None:
                seen[1] = now

    async def on_unload(self, room: Room) -> None:
        self._times.pop(room.name, None)
        if self.feed is not None:
            self.feed.forget(room.name)
        self._dirty.add(room.name)

    def clients(
        self, room: Room, *, local_only: bool = False, dead: frozenset[str] = frozenset()
    ) -> list[ClientPresence]:
        """The room's present client ids (this node's own only, with `local_only`;
        without those of the `dead` nodes)."""
        now = time.time()
        times = self._times.get(room.name, {})
        entries = room.awareness.local_states() if local_only else room.awareness.states()
        result = []
        for entry in entries:
            if dead:
                owner = room.awareness.owner_of(entry.client_id)
                if isinstance(owner, RemoteNode) and owner.node_id in dead:
                    continue
            since, active, _ = times.get(entry.client_id, (now, now, 0))
            result.append(ClientPresence(entry.client_id, entry.state, since, active))
        return result

    async def _claim_leave(self, room: str, user_id: str) -> bool | None:
        """True for the one node that announces `user_id` leaving `room` (None: no Redis)."""
        if self._redis is None:
            return None
        key = "ysync:presence-left:{" + room + "}:" + user_id
        try:
            return bool(await self._redis.set(key, b"1", nx=True, px=LEFT_CLAIM_MS))
        except (RedisError, OSError):
            return None

    def _snapshot(self, room: str) -> dict[str, Any]:
        """What a feed `reset` carries: the users of the room, as this node sees it."""
        loaded = self._node.registry.rooms.get(room) if self._node is not None else None
        if loaded is None or loaded.closed:
            return {}
        return {
            "presence": users(self.clients(loaded), now=time.time(), idle_after=self.idle_after)
        }

    # -- answering -------------------------------------------------------------------------

    async def room_users(self, room: str) -> list[dict[str, Any]]:
        """The users in `room` now, from wherever they are connected."""
        return (await self.rooms_users([room]))[room]

    async def rooms_users(self, rooms: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """`room_users` for several rooms, with two Redis round trips for all of them."""
        node = self._node
        clients: dict[str, list[ClientPresence]] = {}
        remote, held = [], []
        for room in rooms:
            loaded = node.registry.rooms.get(room) if node is not None else None
            if loaded is not None and not loaded.closed:
                held.append(loaded)
            else:
                remote.append(room)
        # The other nodes' states arrive over the bus; a node that died is noticed
        # by the replicator within a liveness round: ask its heartbeat now.
        others = {n for room in held for n in room.awareness.remote_nodes()}
        dead = frozenset(others - await node.bus.alive(others)) if node and others else frozenset()
        for loaded in held:
            clients[loaded.name] = self.clients(loaded, dead=dead)
        clients.update(await self._published_clients(remote))
        now = time.time()
        return {
            room: users(clients.get(room, []), now=now, idle_after=self.idle_after)
            for room in rooms
        }

    async def user_rooms(self, user_id: str) -> list[str]:
        """The rooms `user_id` is in now (any node)."""
        rooms = {
            name
            for name, room in self._loaded_rooms()
            if any(u["userId"] == user_id for u in users(self.clients(room), now=0, idle_after=0))
        }
        if self._redis is not None:
            now_ms = int(time.time() * 1000)
            with contextlib.suppress(RedisError, OSError):
                members = await self._redis.zrangebyscore(_user_index(user_id), now_ms, "+inf")
                rooms.update(_text(m).partition("\n")[2] for m in members)
        return sorted(rooms)

    def _loaded_rooms(self) -> list[tuple[str, Room]]:
        if self._node is None:
            return []
        return [(n, r) for n, r in self._node.registry.rooms.items() if not r.closed]

    async def _published_clients(self, rooms: list[str]) -> dict[str, list[ClientPresence]]:
        """What the nodes published for `rooms`: the nodes per room, then their keys."""
        if self._redis is None or not rooms:
            return {}
        now_ms = int(time.time() * 1000)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for room in rooms:
                pipe.zrangebyscore(_room_index(room), now_ms, "+inf")
            keys = [
                (room, _room_key(room, _text(node)))
                for room, nodes in zip(rooms, await pipe.execute(), strict=True)
                for node in nodes
            ]
            values = await self._redis.mget([key for _, key in keys]) if keys else []
        except (RedisError, OSError) as exc:
            log.warning("presence: redis unavailable (%s): answering for this node only", exc)
            return {}
        found: dict[str, list[ClientPresence]] = {}
        for (room, _), value in zip(keys, values, strict=True):
            if value is None:
                continue  # expired between the two reads
            with contextlib.suppress(orjson.JSONDecodeError):
                for item in orjson.loads(value):
                    client = ClientPresence.from_json(item)
                    if client is not None:
                        found.setdefault(room, []).append(client)
        return found

    # -- publishing --------------------------------------------------------------------------

    def background(self) -> Sequence[Background]:
        tasks: list[Background] = [("presence agents", self._run_agents)]
        if self.redis_url:
            tasks.append(("presence", self.run))
        return tasks

    async def _run_agents(self) -> None:
        if self.agents is not None:
            await self.agents.run()

    async def run(self) -> None:
        """Forever: publish changed rooms within PUBLISH_SECONDS, every room each ttl/3."""
        next_full = 0.0
        try:
            while True:
                await asyncio.sleep(PUBLISH_SECONDS)
                names = set(self._dirty)
                self._dirty.clear()
                if time.monotonic() >= next_full:
                    next_full = time.monotonic() + self.node_ttl / 3
                    names.update(n for n, room in self._loaded_rooms() if len(room.awareness))
                if names:
                    await self._publish(names)
        finally:
            await self.close()

    async def _publish(self, names: set[str]) -> None:
        node, client = self._node, self._redis
        if node is None or client is None:
            return
        me = node.replicator.node_id
        ttl_ms = int(self.node_ttl * 1000)
        expiry = int(time.time() * 1000) + ttl_ms
        pipe = client.pipeline(transaction=False)
        for name in names:
            room = node.registry.rooms.get(name)
            clients = self.clients(room, local_only=True) if room and not room.closed else []
            present = {u["userId"] for u in users(clients, now=0, idle_after=0)}
            for gone in self._published.get(name, set()) - present:
                pipe.zrem(_user_index(gone), me + "\n" + name)
            if clients:
                body = orjson.dumps([c.to_json() for c in clients])
                pipe.set(_room_key(name, me), body, px=ttl_ms)
                pipe.zadd(_room_index(name), {me: expiry})
                pipe.pexpire(_room_index(name), ttl_ms * 2)
                for user_id in present:
                    pipe.zadd(_user_index(user_id), {me + "\n" + name: expiry})
                    pipe.pexpire(_user_index(user_id), ttl_ms * 2)
                self._published[name] = present
            else:
                pipe.delete(_room_key(name, me))
                pipe.zrem(_room_index(name), me)
                self._published.pop(name, None)
        try:
            await pipe.execute()
            self._warned = False
        except (RedisError, OSError) as exc:
            self._dirty.update(names)  # retried next round
            if not self._warned:
                self._warned = True
                log.warning("presence: could not publish to redis (%s); retrying", exc)

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()


def presence_of(node: Node) -> PresenceExtension:
    """The node's presence extension."""
    for extension in node.extensions.all:
        if isinstance(extension, PresenceExtension):
            return extension
    raise RuntimeError("this node runs without presence")
