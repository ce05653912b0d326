"""The rooms loaded on this node: load once, wire to the store and the extensions, unload after a grace.

The only async part of the room layer besides replication. Call
`acquire(name)` when a client joins (concurrent callers share one load),
`release(name)` when it leaves, and run `sweep_awareness()` in the app's task
group. Every room change goes to the group commit and to the extensions'
`on_change`/`on_awareness` hooks.

Every node holding a room stores every change that reaches its document,
whichever node accepted it (from a client, over the bus, in a catch-up
reply): the accepting node may die inside its flush window, after other nodes
applied the change and before it committed it, and then its clients see that
the survivors already have it and never send it again. Storing it twice is
harmless (Yjs updates are idempotent, compaction merges them) and cheap (the
group commit merges a room's updates of one window into one row). Updates the
document cannot integrate yet are stored as they came (rooms/pending.py).

On top of that, anti-entropy against the store (`check_store`): the room's
document is compared with what the store holds, by state vector, and what
the store lacks is written. Replication asks for it when a peer node is
gone, after a gap repair and after a Redis reconnect; `audit_store()` does
it for every loaded room, spread over its interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine

from pycrdt import get_update

from ysync.rooms import codec
from ysync.rooms.extensions import Extensions
from ysync.rooms.protocols import Store, StoreError, UpdateLog
from ysync.rooms.room import Origin, Room, RoomConfig, Source

log = logging.getLogger("ysync.registry")


class RoomDamaged(StoreError):
    """The room's stored updates hold one this node refuses to apply (e.g. nesting
    that would crash yrs): the room is not loaded until `ysync repair` fixes it."""


class RoomRegistry:
    def __init__(
        self,
        store: Store,
        update_log: UpdateLog,
        extensions: Extensions | None = None,
        *,
        config: RoomConfig | None = None,
        unload_grace: float = 10.0,
    ) -> None:
        self.store = store
        self.update_log = update_log
        self.extensions = extensions or Extensions()
        self.config = config or RoomConfig()
        self.unload_grace = unload_grace
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Task[Room]] = {}
        self._unload_timers: dict[str, asyncio.TimerHandle] = {}
        self._unloading: set[asyncio.Task[None]] = set()
        self._store_checks: dict[str, asyncio.Task[None]] = {}
        self.store_repairs = 0  # times the store lacked part of a loaded room (metrics, tests)
        self.damaged_loads = 0  # loads refused because a stored update was refused

    async def acquire(self, name: str) -> Room:
        """The loaded room `name`, loading it first if needed (once, however
        many clients join at the same moment). Raises `StoreError` if the store
        cannot load it."""
        room = self.rooms.get(name)
        if room is None:
            task = self._loading.get(name)
            if task is None:
                task = asyncio.create_task(self._load(name), name=f"load {name}")
                self._loading[name] = task
                task.add_done_callback(lambda t: self._loading.pop(name, None))
            # shield: one client giving up must not cancel the load for the others.
            room = await asyncio.shield(task)
        timer = self._unload_timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        return room

    def release(self, name: str) -> None:
        """A client left `name`; unload the room after the grace if nobody is left."""
        room = self.rooms.get(name)
        if room is None or not room.is_empty or name in self._unload_timers:
            return
        loop = asyncio.get_running_loop()
        self._unload_timers[name] = loop.call_later(self.unload_grace, self._start_unload, name)

    @property
    def loading(self) -> list[str]:
        """Names of the rooms being loaded right now."""
        return list(self._loading)

    def unload_in(self, name: str) -> float | None:
        """Seconds until the idle room `name` unloads; None if it is not waiting to."""
        timer = self._unload_timers.get(name)
        if timer is None:
            return None
        return max(0.0, timer.when() - asyncio.get_running_loop().time())

    async def close(self) -> None:
        """Unload every room (committing all their updates). Call at shutdown."""
        self.extensions.shutdown()
        for timer in self._unload_timers.values():
            timer.cancel()
        self._unload_timers.clear()
        for check in list(self._store_checks.values()):
            check.cancel()
        await asyncio.gather(*(self._unload(name, force=True) for name in list(self.rooms)))
        if self._unloading:
            await asyncio.gather(*self._unloading)

    async def sweep_awareness(self, interval: float = 3.0) -> None:
        """Forever: expire awareness states not renewed within the timeout."""
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for room in list(self.rooms.values()):
                room.expire_awareness(now)

    async def drop(self, name: str) -> None:
        """Unload room `name` now, whoever is in it, committing its queued updates
        (a deleted room: its clients were closed first)."""
        timer = self._unload_timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        await self._unload(name, force=True)

    async def audit_store(self, interval: float = 60.0) -> None:
        """Forever: `check_store` every loaded room once per `interval`, spread out."""
        while True:
            names = list(self.rooms)
            pause = interval / max(len(names), 1)
            for name in names:
                await asyncio.sleep(pause)
                await self._checked(name)
            if not names:
                await asyncio.sleep(interval)

    def check_store_soon(self, name: str) -> None:
        """Run `check_store(name)` in the background (once at a time per room)."""
        if name in self._store_checks or name not in self.rooms:
            return
        task = asyncio.create_task(self._checked(name), name=f"store check {name}")
        self._store_checks[name] = task
        task.add_done_callback(lambda t: self._store_checks.pop(name, None))

    async def _checked(self, name: str) -> None:
        try:
            await self.check_store(name)
        except Exception:  # e.g. a store outage: the next check tries again
            log.warning("store check failed", exc_info=True, extra={"room": name})

    async def check_store(self, name: str) -> bool:
        """Queue for the store whatever the loaded room `name` holds and the
        store lacks; True if it lacked anything. Loads the room's stored updates
        (one read), so it is for repairs and slow audits, never per edit.
        Encodes the whole document once. Raises `StoreError` if the store
        cannot answer."""
        room = self.rooms.get(name)
        if room is None:
            return False
        # What the document holds now, compared once it is committed: edits
        # arriving meanwhile are on their way to the store, not lacking.
        held = room.doc.get_update()
        await self.update_log.settled()
        stored = Room(name)  # pure and throwaway: only its document is used
        with contextlib.suppress(codec.ProtocolError):  # a corrupt stored update
            stored.load(await self.store.load(name))
        # (Pending updates are not compared: they were stored as they came.)
        lacking = get_update(held, stored.doc.get_state())
        if stored.contains(lacking) or room.closed:
            return False
        self.store_repairs += 1
        log.warning(
            "the store lacked part of this room's document: writing it (%d bytes)",
            len(lacking),
            extra={"room": name},
        )
        self.update_log.append(name, lacking)
        return True

    # -- internals -------------------------------------------------------------------

    async def _load(self, name: str) -> Room:
        # Updates of a previous incarnation of this room may still be queued.
        await self.update_log.flush()
        updates = await self.store.load(name)
        room = Room(name, self.config, write_refusal=self.update_log.refusal)
        try:
            room.load(updates)
        except codec.ProtocolError as exc:
            # Serving what loaded would hide the rest and let clients build on a
            # partial document; applying the rest could crash the process.
            room.close()
            self.damaged_loads += 1
            log.error(
                "room not loaded: a stored update is refused (%s); run `ysync repair %s`",
                exc.reason,
                name,
                extra={"room": name},
            )
            raise RoomDamaged(f"stored update refused: {exc.reason}") from None
        if room.pending:
            log.warning(
                "room loaded with %d stored updates whose dependencies are missing;"
                " asking the other nodes and the clients for them",
                len(room.pending),
                extra={"room": name},
            )
        room.update_listeners.append(self._on_update)
        room.pending_listeners.append(self._on_pending)
        room.awareness_listeners.append(self.extensions.awareness)
        # E.g. replication: edits other nodes accepted but have not committed yet.
        await self.extensions.load_document(room)
        self.rooms[name] = room
        log.debug("room loaded", extra={"room": name, "updates": len(updates)})
        return room

    def _start_unload(self, name: str) -> None:
        self._unload_timers.pop(name, None)
        room = self.rooms.get(name)
        if room is not None and room.is_empty:
            self._track(self._unload(name))

    def _track(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(coro)
        self._unloading.add(task)
        task.add_done_callback(self._unloading.discard)

    async def _unload(self, name: str, *, force: bool = False) -> None:
        # Popped before the first await: a client joining from now on loads a
        # fresh room, whose load first waits for this room's updates to be flushed.
        room = self.rooms.get(name)
        if room is None or not (room.is_empty or force):
            return  # someone joined between the timer and this task
        del self.rooms[name]
        room.close()
        try:
            await self.update_log.flush()
        except Exception:
            log.exception("error while flushing an unloading room", extra={"room": name})
        await self.extensions.store(room)
        await self.extensions.unload(room)
        log.debug("room unloaded", extra={"room": name})

    def _on_update(self, room: Room, update: bytes, origin: Origin) -> None:
        if origin is Source.STORE:
            return
        self.update_log.append(room.name, update)  # every holder: see the module doc
        self.extensions.change(room, update, origin)

    def _on_pending(self, room: Room, update: bytes, origin: Origin) -> None:
        if origin is not Source.STORE:
            self.update_log.append(room.name, update)

    def pending_updates(self) -> dict[str, int]:
        """Loaded rooms holding updates they cannot integrate yet, and how many."""
        return {name: len(room.pending) for name, room in self.rooms.items() if room.pending}
