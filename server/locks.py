"""Element locks for a node: `LocksExtension` (`ysync.presence.locks` has the rules).

Three ways in: the REST API (`ysync.server.locks_api`), and a browser's own
awareness state — a connection lists the elements it wants under
`"ysyncLocks": [...]`; the server acquires what it can, renews the lease while
the connection lives, and releases what it drops from the list or when it
closes. One way out: a server-owned awareness state (client id
`SERVER_CLIENT_ID`, `{"ysync": {"locks": {elementId: {userId, name, since,
expiresAt, fence, clientId?}}}}`) that every client of the room sees with no
extra code, and `lock.acquired` / `lock.released` / `lock.expired` on the feed.

Each node renders that state from the backend for the rooms it holds (not
relayed over the bus: each node polls the rooms' lock versions, so a change
on any node shows on all within POLL_SECONDS). Its clock is the wall clock in
milliseconds, so a client moving between nodes keeps accepting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError

from ysync.presence.events import Event
from ysync.presence.locks import LEASE_SECONDS, Lock, awareness_state, requested
from ysync.rooms.awareness import SERVER_CLIENT_ID
from ysync.rooms.codec import AwarenessEntry
from ysync.rooms.extensions import Background, Extension
from ysync.rooms.protocols import Peer
from ysync.rooms.room import Origin, Room, Source
from ysync.server.lock_backend import LockBackend, MemoryLocks, RedisLocks

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.locks")

POLL_SECONDS = 0.5
RENEW_STATE_SECONDS = 10.0  # inside the 30 s awareness timeout


class _LocksOwner:
    """The owner of every room's server-owned lock state on this node."""


LOCKS_OWNER = _LocksOwner()


class LocksExtension(Extension):
    """Locks of every room this node serves (see the module doc)."""

    def __init__(self, *, redis_url: str) -> None:
        self.backend: LockBackend = RedisLocks(redis_url) if redis_url else MemoryLocks()
        self._node: Node | None = None
        self._versions: dict[str, int] = {}  # room -> the lock version last rendered
        self._shown: dict[str, tuple[int, str]] = {}  # room -> (clock, state) applied
        self._held: dict[Peer, dict[str, Lock]] = {}  # WebSocket holders' locks
        self._room_of: dict[Peer, str] = {}
        self._wanted: dict[Peer, frozenset[str]] = {}  # what each connection last asked for
        self._serial: dict[Peer, asyncio.Lock] = {}  # one change at a time per connection
        # Connections that asked for elements someone else holds: (room, client id).
        self._waiting: dict[Peer, tuple[Room, int | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.conflicts = 0
        self.refused = 0

    @property
    def name(self) -> str:
        return "locks"

    async def on_start(self, node: Any) -> None:
        self._node = node

    # -- changes, from the API or a connection -----------------------------------------------

    async def acquire(self, room: str, lock: Lock, ttl: float) -> tuple[bool, Lock]:
        won, holder = await self.backend.acquire(room, lock, ttl)
        if won:
            self._announce("lock.acquired", room, holder)
        else:
            self.conflicts += 1
        await self.refresh(room)
        return won, holder

    async def release(self, room: str, element: str, fence: int | None) -> Lock | None:
        released = await self.backend.release(room, element, fence)
        if released is not None:
            self._announce("lock.released", room, released)
            await self.refresh(room)
        return released

    @property
    def shown_locks(self) -> int:
        """Locks currently shown in the rooms loaded here (for metrics)."""
        return sum(state.count('"fence":') for _, state in self._shown.values())

    def _announce(self, kind: str, room: str, lock: Lock) -> None:
        if self._node is not None:
            self._node.events.publish(Event(kind, room, lock.public()))

    # -- WebSocket requests in the awareness state -------------------------------------------

    def on_awareness(self, room: Room, entries: list[AwarenessEntry], origin: Origin) -> None:
        if isinstance(origin, Source):
            return
        for entry in entries:
            if entry.client_id == SERVER_CLIENT_ID:
                continue
            if entry.removed or '"ysyncLocks"' not in entry.state:
                wanted: set[str] | None = set() if origin in self._wanted else None
            else:
                wanted = requested(orjson.loads(entry.state))
            if wanted is not None and self._wanted.get(origin) != frozenset(wanted):
                self._wanted[origin] = frozenset(wanted)
                self._spawn(self._follow(room, origin, entry.client_id, wanted))

    def on_leave(self, room: Room, peer: Peer) -> None:
        self._waiting.pop(peer, None)
        if peer in self._wanted:
            self._spawn(self._follow(room, peer, None, set()))

    async def _follow(
        self, room: Room, peer: Peer, client_id: int | None, wanted: set[str]
    ) -> None:
        serial = self._serial.setdefault(peer, asyncio.Lock())
        async with serial:
            await self._follow_now(room, peer, client_id, wanted)
            if wanted - set(self._held.get(peer, {})):
                self._waiting[peer] = (room, client_id)  # retried when one frees
            else:
                self._waiting.pop(peer, None)
            if not wanted:
                self._wanted.pop(peer, None)
                self._serial.pop(peer, None)

    async def _follow_now(
        self, room: Room, peer: Peer, client_id: int | None, wanted: set[str]
    ) -> None:
        """Make what `peer` holds in `room` what it asks for (what it can get)."""
        held = self._held.setdefault(peer, {})
        self._room_of[peer] = room.name
        for element in [e for e in held if e not in wanted]:
            lock = held.pop(element)
            await self.release(room.name, element, lock.fence)
        identity = peer.identity
        new = [e for e in wanted if e not in held]
        if new and not identity.can_edit:
            self.refused += len(new)  # viewers and commenters may not lock: nothing shown
            new = []
        for element in new:
            user = identity.user_id or "anonymous"
            lock = Lock(
                element,
                user,
                identity.name or user,
                time.time(),
                0.0,
                0,
                f"conn/{id(peer)}",
                client_id,
            )
            won, holder = await self.acquire(room.name, lock, LEASE_SECONDS)
            if won:
                held[element] = holder
        if not held:
            self._held.pop(peer, None)
            self._room_of.pop(peer, None)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Any) -> None:
        try:
            await work
        except (RedisError, OSError) as exc:
            log.warning("locks: backend unavailable (%s)", exc)

    # -- what clients see ---------------------------------------------------------------------

    async def refresh(self, room: str) -> None:
        """Render the room's locks into its server-owned awareness state (if loaded here)."""
        node = self._node
        loaded = node.registry.rooms.get(room) if node is not None else None
        if loaded is None or loaded.closed:
            return
        locks = await self.backend.locks(room)
        state = orjson.dumps(awareness_state(locks)).decode() if locks else "null"
        self._show(loaded, state)
        taken = {lock.element for lock in locks}
        for peer, (where, client_id) in list(self._waiting.items()):
            wanted = self._wanted.get(peer, frozenset())
            if where is loaded and peer in loaded.peers and wanted - taken:
                self._waiting.pop(peer, None)
                self._spawn(self._follow(loaded, peer, client_id, set(wanted)))

    def _show(self, room: Room, state: str, *, renew: bool = False) -> None:
        clock, shown = self._shown.get(room.name, (0, "null"))
        if state == shown and not renew:
            return
        if state == "null" and shown == "null":
            return
        clock = max(int(time.time() * 1000), clock + 1)
        self._shown[room.name] = (clock, state)
        if state == "null":
            self._shown.pop(room.name, None)
        entry = AwarenessEntry(SERVER_CLIENT_ID, clock, state)
        room.apply_awareness((entry,), Source.BUS, time.monotonic(), owner=LOCKS_OWNER)

    async def on_load_document(self, room: Room) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.refresh(room.name)

    async def on_unload(self, room: Room) -> None:
        self._shown.pop(room.name, None)
        self._versions.pop(room.name, None)

    # -- background ---------------------------------------------------------------------------

    def background(self) -> Sequence[Background]:
        return (("locks", self.run),)

    async def run(self) -> None:
        """Forever: follow other nodes' changes, expire leases, renew ours and the state."""
        last_renewal = time.monotonic()
        try:
            while True:
                await asyncio.sleep(POLL_SECONDS)
                try:
                    await self._poll()
                    if time.monotonic() - last_renewal >= LEASE_SECONDS / 3:
                        last_renewal = time.monotonic()
                        await self._renew()
                except (RedisError, OSError) as exc:
                    log.warning("locks: backend unavailable (%s)", exc)
        finally:
            await self.backend.close()

    async def _poll(self) -> None:
        node = self._node
        if node is None:
            return
        names = [name for name, room in node.registry.rooms.items() if not room.closed]
        for name in names:
            for lock in await self.backend.expire(name) if name in self._shown else []:
                self._announce("lock.expired", name, lock)
        for name, version in zip(names, await self.backend.versions(names), strict=True):
            if self._versions.get(name) != version:
                self._versions[name] = version
                await self.refresh(name)

    async def _renew(self) -> None:
        for peer, held in list(self._held.items()):
            name = self._room_of.get(peer)
            for element, lock in list(held.items()):
                renewed = name is not None and await self.backend.renew(
                    name, element, lock.fence, LEASE_SECONDS
                )
                if not renewed:
                    held.pop(element, None)  # lost it (force-released): the state shows that
        node = self._node
        if node is not None:
            for name, (_, state) in list(self._shown.items()):
                room = node.registry.rooms.get(name)
                if room is not None and not room.closed:
                    self._show(room, state, renew=True)


def locks_of(node: Node) -> LocksExtension:
    """The node's locks extension."""
    for extension in node.extensions.all:
        if isinstance(extension, LocksExtension):
            return extension
    raise RuntimeError("this node runs without locks")
