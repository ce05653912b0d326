"""The per-room event feed: one hub per node, typed events, bounded subscribers, resume.

Features publish `Event`s (presence joins and leaves, lock changes, comments,
versions, document changes) to the node's `EventHub`. The hub delivers each to
the room's local subscribers (SSE, the SDK, the inspector) and sends it over
the bus to the other nodes' hubs, which deliver it to theirs; locally
published events also go to the hub's sinks (e.g. the webhook outbox), so
each event reaches a sink once, on the node where it happened.

Subscribers never slow anyone down: each has a bounded queue and is cut off
(`Subscription.closed`) when it falls that far behind. Events that carry a
`coalesce` key (e.g. the latest cursor of one user) replace the one still
queued with the same key, and are handed out at most `rate` per second per
subscriber: the latest state wins. Each delivered event has an id
(`<node>-<n>`); a subscriber that comes back with the last id it saw gets what
it missed from a bounded replay buffer, or a `reset` with the room's current
snapshot when the id is from another node or too old.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ysync.rooms.protocols import Bus, Envelope
from ysync.rooms.vocabulary import EnvelopeKind

log = logging.getLogger("ysync.events")

RESET = "reset"  # the event type that carries a snapshot instead of what was missed


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a room, as subscribers and webhooks see it."""

    type: str  # e.g. "presence.joined", "lock.acquired", "comment.created"
    room: str
    data: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)  # Unix time it happened
    # Events with the same key supersede each other: only the latest is worth sending.
    coalesce: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "type": self.type,
                "room": self.room,
                "data": self.data,
                "at": self.at,
                "c": self.coalesce,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Event:
        """Raise ValueError for anything that is not an encoded event."""
        try:
            fields = orjson.loads(raw)
            event = cls(fields["type"], fields["room"], fields["data"], fields["at"], fields["c"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not an event: {exc}") from exc
        if not (isinstance(event.type, str) and isinstance(event.room, str)):
            raise ValueError("event fields have the wrong types")
        return event


@dataclass(frozen=True, slots=True)
class Delivered:
    """An event as a subscriber gets it, with the id to resume after."""

    id: str
    event: Event


Snapshot = Callable[[str], Mapping[str, Any]]
"""The current state of a room (e.g. who is present, the locks), for `reset` events."""


class _Slot:
    """One queued event; a newer one with the same coalesce key replaces it in place."""

    __slots__ = ("item",)

    def __init__(self, item: Delivered) -> None:
        self.item = item


class Subscription:
    """A subscriber's bounded queue. Iterate it (`async for delivered in subscription`);
    it ends when the subscriber is cut off or `close()`d; `close()` it when done."""

    def __init__(self, hub: EventHub, room: str, *, limit: int, rate: float) -> None:
        self.hub = hub
        self.room = room
        self.limit = limit
        self.rate = rate  # coalescable events handed out per second (0: no limit)
        self.closed: str | None = None  # why it ended
        self.coalesced = 0  # events replaced by a newer one before they were sent
        self._queue: deque[_Slot] = deque()
        self._by_key: dict[str, _Slot] = {}
        self._wakeup = asyncio.Event()
        self._next_coalescable = 0.0  # monotonic time the next coalescable may go

    def put(self, item: Delivered) -> None:
        """Queue an event; never blocks. Cuts the subscriber off when it is full."""
        if self.closed is not None:
            return
        key = item.event.coalesce
        if key is not None:
            slot = self._by_key.get(key)
            if slot is not None:
                slot.item = item  # the latest state wins
                self.coalesced += 1
                self.hub.coalesced += 1
                return
        if len(self._queue) >= self.limit:
            self.close(f"too slow: {self.limit} events waiting")
            self.hub.cut_off += 1
            return
        slot = _Slot(item)
        self._queue.append(slot)
        if key is not None:
            self._by_key[key] = slot
        self._wakeup.set()

    def close(self, reason: str = "closed") -> None:
        if self.closed is None:
            self.closed = reason
            self.hub._remove(self)
            self._wakeup.set()

    def __aiter__(self) -> AsyncIterator[Delivered]:
        return self._items()

    async def _items(self) -> AsyncIterator[Delivered]:
        # Whoever subscribed closes the subscription (breaking out of a loop over it
        # does not: it may be iterated again).
        while True:
            while not self._queue and self.closed is None:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.closed is not None:
                return
            slot = self._queue[0]
            key = slot.item.event.coalesce
            if key is not None and self.rate:
                await self._pace()
                if self.closed is not None:
                    return
            self._queue.popleft()
            if key is not None and self._by_key.get(key) is slot:
                del self._by_key[key]
            yield slot.item

    async def _pace(self) -> None:
        # At most `rate` coalescable events a second; meanwhile newer ones replace it.
        now = time.monotonic()
        if now < self._next_coalescable:
            await asyncio.sleep(self._next_coalescable - now)
        self._next_coalescable = max(now, self._next_coalescable) + 1.0 / self.rate


class _RoomFeed:
    """A room's subscribers on this node and its replay buffer."""

    __slots__ = ("idle_since", "replay", "subscribers")

    def __init__(self, replay: int) -> None:
        self.subscribers: set[Subscription] = set()
        self.replay: deque[Delivered] = deque(maxlen=replay)
        self.idle_since: float | None = None  # monotonic time the last subscriber left


class EventHub:
    """The node's event feed (see the module doc). `await close()` at shutdown."""

    def __init__(
        self,
        bus: Bus,
        *,
        queue_limit: int = 1000,
        replay: int = 256,
        rate: float = 10.0,
        keep_replay: float = 60.0,
    ) -> None:
        self.bus = bus
        self.node_id = bus.node_id
        self.queue_limit = queue_limit
        self.replay_size = replay
        self.rate = rate
        self.keep_replay = keep_replay  # seconds a room's replay stays after its last subscriber
        self.sinks: list[Callable[[Event], None]] = []  # locally published events only
        self.snapshots: list[Snapshot] = []
        self.published = 0
        self.coalesced = 0
        self.cut_off = 0
        self._feeds: dict[str, _RoomFeed] = {}
        self._numbers = itertools.count(1)

    # -- publishing -----------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """An event that happened on this node: to local subscribers, sinks and other nodes."""
        self.published += 1
        self._deliver(event)
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:
                log.exception("event sink failed", extra={"room": event.room})
        if not self.bus.alone:
            self.bus.publish(
                Envelope(self.node_id, 0, topic(event.room), EnvelopeKind.EVENT, event.to_json())
            )

    def _on_envelope(self, envelope: Envelope) -> None:
        if envelope.node == self.node_id or envelope.kind is not EnvelopeKind.EVENT:
            return
        try:
            event = Event.from_json(envelope.payload)
        except ValueError as exc:
            log.warning("bad event from node %s dropped: %s", envelope.node, exc)
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        feed = self._feeds.get(event.room)
        if feed is None:
            return  # nobody here follows the room
        item = Delivered(f"{self.node_id}-{next(self._numbers)}", event)
        feed.replay.append(item)
        for subscription in list(feed.subscribers):
            subscription.put(item)

    # -- subscribing ----------------------------------------------------------------------

    async def subscribe(self, room: str, last_event_id: str | None = None) -> Subscription:
        """Follow `room` from now on; with `last_event_id`, first what came after it
        (or a `reset` event with the room's snapshot when that cannot be told)."""
        feed = self._feeds.get(room)
        if feed is None:
            feed = self._feeds[room] = _RoomFeed(self.replay_size)
            await self.bus.subscribe(topic(room), self._on_envelope)
        feed.idle_since = None
        subscription = Subscription(self, room, limit=self.queue_limit, rate=self.rate)
        if last_event_id is not None:
            missed = _after(feed.replay, last_event_id)
            if missed is None:
                subscription.put(self._reset(room))
            else:
                for item in missed:
                    subscription.put(item)
        feed.subscribers.add(subscription)
        return subscription

    def _reset(self, room: str) -> Delivered:
        snapshot: dict[str, Any] = {}
        for provider in self.snapshots:
            try:
                snapshot.update(provider(room))
            except Exception:
                log.exception("event snapshot failed", extra={"room": room})
        return Delivered(f"{self.node_id}-{next(self._numbers)}", Event(RESET, room, snapshot))

    def _remove(self, subscription: Subscription) -> None:
        feed = self._feeds.get(subscription.room)
        if feed is not None:
            feed.subscribers.discard(subscription)
            if not feed.subscribers:
                feed.idle_since = time.monotonic()

    def subscribers(self, room: str | None = None) -> int:
        feeds = self._feeds.values() if room is None else [self._feeds.get(room)]
        return sum(len(feed.subscribers) for feed in feeds if feed is not None)

    # -- background -----------------------------------------------------------------------

    async def sweep(self, interval: float = 5.0) -> None:
        """Forever: drop the replay buffers of rooms nobody followed for `keep_replay`."""
        while True:
            await asyncio.sleep(interval)
            await self.drop_idle(time.monotonic())

    async def drop_idle(self, now: float) -> None:
        for room, feed in list(self._feeds.items()):
            if feed.idle_since is not None and now - feed.idle_since >= self.keep_replay:
                del self._feeds[room]
                with contextlib.suppress(Exception):
                    await self.bus.unsubscribe(topic(room))

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            for subscription in list(feed.subscribers):
                subscription.close("server shutting down")
        for room in list(self._feeds):
            with contextlib.suppress(Exception):
                await self.bus.unsubscribe(topic(room))
        self._feeds.clear()


def topic(room: str) -> str:
    """The bus topic of a room's events. Room names never hold control characters
    (admission refuses them), so this never collides with a room's own topic."""
    return "\x1fevents\x1f" + room


def _after(replay: deque[Delivered], last_event_id: str) -> list[Delivered] | None:
    """The events after `last_event_id` in `replay`; None if it is not there."""
    for index, item in enumerate(replay):
        if item.id == last_event_id:
            return list(itertools.islice(replay, index + 1, None))
    return None
