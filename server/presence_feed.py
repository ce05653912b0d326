"""Presence events on the room's event feed: `presence.joined`, `presence.left`,
`presence.updated` (`ysync.presence.events`).

Each node follows who is in each room it holds, from every awareness change it
sees (its own clients' and, over the bus, the other nodes'), by verified user
id. A user appearing is `presence.joined`; a user whose last state went away is
`presence.left` only after `--presence-leave-debounce` seconds without coming
back, so a reload (or a move to another node) is neither a leave nor a join.
Only the node where the change happened publishes a join (the hub carries it
to the other nodes), so each event happens once; a leave is claimed in Redis
by whichever node that saw it fires first, so the users of a node that died
leave too. `presence.updated` carries a
user's latest client fields; the hub coalesces it per user (the latest state
wins) and this side publishes it at most `--presence-feed-rate` times a second
per user, so cursor moves do not each cross the bus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ysync.presence.events import Event, EventHub
from ysync.presence.roster import split_state
from ysync.rooms.codec import AwarenessEntry
from ysync.rooms.room import Origin, Room, Source


class _RoomUsers:
    __slots__ = ("clients", "leaving", "present")

    def __init__(self) -> None:
        self.clients: dict[int, str] = {}  # client id -> its verified user id
        self.present: set[str] = set()  # users the feed considers in the room
        self.leaving: dict[str, asyncio.TimerHandle] = {}  # users gone, not yet announced

    def count(self, user_id: str) -> int:
        return sum(1 for u in self.clients.values() if u == user_id)


class PresenceFeed:
    """Turns awareness changes into presence events (see the module doc)."""

    def __init__(
        self,
        hub: EventHub,
        *,
        leave_debounce: float,
        rate: float,
        claim: Callable[[str, str], Awaitable[bool | None]] | None = None,
    ) -> None:
        self.hub = hub
        # In a cluster, who tells a leave: every node that saw it asks `claim(room,
        # user)` and the one that gets True publishes (None: cannot tell, so the
        # node where it happened does). A dead node's users leave this way too.
        self.claim = claim
        self._claims: set[asyncio.Task[None]] = set()
        self.leave_debounce = leave_debounce
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._rooms: dict[str, _RoomUsers] = {}
        self._last_update: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], str] = {}  # throttled states, latest wins
        self._last_state: dict[tuple[str, str], dict[str, Any]] = {}
        self._flush: asyncio.TimerHandle | None = None

    def on_awareness(self, room: Room, entries: list[AwarenessEntry], origin: Origin) -> None:
        users = self._rooms.get(room.name)
        if users is None:
            users = self._rooms[room.name] = _RoomUsers()
        local = origin is not Source.BUS
        for entry in entries:
            if entry.removed:
                user_id = users.clients.pop(entry.client_id, None)
                if user_id is not None and users.count(user_id) == 0:
                    self._schedule_leave(room.name, users, user_id, local)
                continue
            known = users.clients.get(entry.client_id)
            if known is not None:
                if local:
                    self._update(room.name, known, entry.state)
                continue
            parsed = split_state(entry.state)
            if parsed is None:
                continue
            verified, state = parsed
            known = users.clients[entry.client_id] = verified["userId"]
            if self._arrive(room.name, users, known, {**verified, "state": state}, local):
                self._last_state[(room.name, known)] = state
            elif local:
                self._update(room.name, known, entry.state)

    def forget(self, room: str) -> None:
        """The room unloaded here: its users' leaves are the other nodes' to tell."""
        users = self._rooms.pop(room, None)
        if users is not None:
            for timer in users.leaving.values():
                timer.cancel()
        for table in (self._last_update, self._pending, self._last_state):
            for key in [key for key in table if key[0] == room]:
                del table[key]

    def _arrive(
        self, room: str, users: _RoomUsers, user_id: str, data: dict[str, Any], local: bool
    ) -> bool:
        """A client id of `user_id` appeared; True when that is the user joining."""
        timer = users.leaving.pop(user_id, None)
        if timer is not None:
            timer.cancel()  # back within the debounce: no leave, no join
        if user_id in users.present:
            return False
        users.present.add(user_id)
        if local:
            self.hub.publish(Event("presence.joined", room, data))
        return True

    def _schedule_leave(self, room: str, users: _RoomUsers, user_id: str, local: bool) -> None:
        if user_id not in users.present or user_id in users.leaving:
            return
        loop = asyncio.get_running_loop()
        users.leaving[user_id] = loop.call_later(
            self.leave_debounce, self._leave, room, users, user_id, local
        )

    def _leave(self, room: str, users: _RoomUsers, user_id: str, local: bool) -> None:
        users.leaving.pop(user_id, None)
        if users.count(user_id) or user_id not in users.present:
            return
        users.present.discard(user_id)
        for table in (self._last_update, self._pending, self._last_state):
            table.pop((room, user_id), None)
        if self.claim is None:
            if local:
                self.hub.publish(Event("presence.left", room, {"userId": user_id}))
            return
        task = asyncio.get_running_loop().create_task(
            self._claim_leave(self.claim(room, user_id), room, user_id, local)
        )
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    async def _claim_leave(
        self, claim: Awaitable[bool | None], room: str, user_id: str, local: bool
    ) -> None:
        won = await claim
        if won or (won is None and local):
            self.hub.publish(Event("presence.left", room, {"userId": user_id}))

    def _update(self, room: str, user_id: str, text: str) -> None:
        """A user's state changed (`text`: as stored). Cheap per cursor move: the
        JSON is read only when an event goes out, at most `rate` times a second."""
        if self.hub.bus.alone and not self.hub.subscribers(room):
            return  # one node and nobody following the room: nobody to tell
        key = (room, user_id)
        now = time.monotonic()
        if now - self._last_update.get(key, -1e9) >= self.interval:
            self._last_update[key] = now
            self._publish_update(key, text)
            return
        self._pending[key] = text
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.interval, self._flush_pending)

    def _publish_update(self, key: tuple[str, str], text: str) -> None:
        parsed = split_state(text)
        if parsed is None or self._last_state.get(key) == parsed[1]:
            return  # a renewal: nothing changed
        room, user_id = key
        self._last_state[key] = state = parsed[1]
        self.hub.publish(
            Event(
                "presence.updated",
                room,
                {"userId": user_id, "state": state},
                coalesce=f"presence:{user_id}",
            )
        )

    def _flush_pending(self) -> None:
        self._flush = None
        pending, self._pending = self._pending, {}
        now = time.monotonic()
        for key, text in pending.items():
            self._last_update[key] = now
            self._publish_update(key, text)
