"""Client-side awareness (presence): our own state plus everyone else's.

Semantics of y-protocols/awareness.js: each client id has a clock; an entry is
applied only when its clock is newer; a `null` state means "removed". We are
the authority on our own state, and we drop other clients' states when the
connection closes (we no longer hear about them) or when they are not renewed
for `OUTDATED_TIMEOUT` seconds (servers that relay instead of tracking
presence never send removals for clients that vanished).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ysync.rooms import codec

log = logging.getLogger("ysync.clients")

OUTDATED_TIMEOUT = 30.0  # as y-protocols: clients renew every 15 s


@dataclass(frozen=True, slots=True)
class AwarenessChange:
    """What one awareness update changed; `local` is True for our own state."""

    added: tuple[int, ...]
    updated: tuple[int, ...]
    removed: tuple[int, ...]
    local: bool = False


AwarenessCallback = Callable[[AwarenessChange], None]


class _Raw(str):
    """A remote state kept as the JSON text it arrived as; decoded when read."""

    __slots__ = ()


class AwarenessStates(Mapping[int, Any]):
    """client id → state of every present client (a read-only mapping).

    Other clients' states are kept as their JSON text and decoded on each
    read: a process running hundreds of sessions in one room holds N² states,
    and most are never read. Each read returns a fresh object, so changing it
    changes nothing here."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[int, Any] = {}

    def __getitem__(self, client_id: int) -> Any:
        value = self._data[client_id]
        return json.loads(value) if type(value) is _Raw else value

    def __iter__(self) -> Iterator[int]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._data

    def __repr__(self) -> str:
        return f"AwarenessStates({dict(self.items())!r})"


class ClientAwareness:
    """Who is present in the room, and our own presence state.

    `states` maps client id → state (decoded JSON) for every present client,
    ours included (`client_id`); see `AwarenessStates`. Set ours with `set_local_state`; watch others
    with `observe` or wait on a condition with `wait_for`.
    """

    def __init__(self, client_id: int, send: Callable[[bytes], None]) -> None:
        self.client_id = client_id
        self.states = AwarenessStates()
        self._states = self.states._data  # client id -> our state, or others' JSON text
        self._clocks: dict[int, int] = {}
        self._updated_at: dict[int, float] = {}
        self._send = send
        self._changed = asyncio.Event()
        self._observers: list[AwarenessCallback] = []

    @property
    def local_state(self) -> Any:
        """Our current state, or None when we are not present."""
        return self._states.get(self.client_id)

    def set_local_state(self, state: Any) -> None:
        """Publish our state (any JSON value; None removes us). Sent at once if
        connected; otherwise announced when the session (re)connects."""
        previous = self._states.get(self.client_id)
        clock = self._clocks.get(self.client_id, 0) + 1
        self._clocks[self.client_id] = clock
        if state is None:
            self._states.pop(self.client_id, None)
        else:
            self._states[self.client_id] = state
        entry = codec.AwarenessEntry(self.client_id, clock, json.dumps(state))
        self._send(codec.encode_awareness([entry]))
        me = (self.client_id,)
        if previous is None and state is not None:
            self._emit(AwarenessChange(me, (), (), local=True))
        elif previous is not None and state is None:
            self._emit(AwarenessChange((), (), me, local=True))
        elif state is not None and state != previous:
            self._emit(AwarenessChange((), me, (), local=True))  # renewals are not reported

    def observe(self, callback: AwarenessCallback) -> Callable[[], None]:
        """Call `callback(change)` after every change; returns a function that unsubscribes.

        Renewals (same state, newer clock) are not reported. Keep callbacks
        fast and non-blocking; an exception in one is logged and ignored."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    async def wait_for(
        self, predicate: Callable[[Mapping[int, Any]], bool], timeout: float
    ) -> None:
        """Wait until `predicate(states)` holds; raise TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while not predicate(self.states):
                self._changed.clear()
                await self._changed.wait()

    # -- called by the session ------------------------------------------------------

    def announce(self) -> None:
        """A new connection opened: re-send our state at a newer clock (the
        server removed it when the previous connection closed)."""
        if self.local_state is not None:
            self.set_local_state(self.local_state)

    def removal_frame(self) -> bytes | None:
        """The frame that removes us, for a clean close (None if we are not present)."""
        if self.local_state is None:
            return None
        clock = self._clocks.get(self.client_id, 0) + 1
        self._clocks[self.client_id] = clock
        del self._states[self.client_id]
        self._emit(AwarenessChange((), (), (self.client_id,), local=True))
        return codec.encode_awareness([codec.AwarenessEntry(self.client_id, clock, "null")])

    def apply(self, entries: tuple[codec.AwarenessEntry, ...], now: float | None = None) -> None:
        """Apply an awareness update from the server."""
        now = time.monotonic() if now is None else now
        added: list[int] = []
        updated: list[int] = []
        removed: list[int] = []
        for entry in entries:
            if entry.client_id == self.client_id:
                # We are the authority on our own state. Told we were removed
                # (e.g. after a reconnect), re-announce at a newer clock.
                own_clock = self._clocks.get(self.client_id, 0)
                if entry.removed and entry.clock >= own_clock and self.local_state is not None:
                    self._clocks[self.client_id] = entry.clock
                    self.set_local_state(self.local_state)
                continue
            if entry.clock < self._clocks.get(entry.client_id, 0):
                continue
            self._clocks[entry.client_id] = entry.clock
            self._updated_at[entry.client_id] = now
            current = self._states.get(entry.client_id)
            if entry.removed:
                if current is not None:
                    del self._states[entry.client_id]
                    removed.append(entry.client_id)
                continue
            if current is None:
                added.append(entry.client_id)
            elif current != entry.state:  # the same text again is a renewal
                updated.append(entry.client_id)
            self._states[entry.client_id] = _Raw(entry.state)
        if added or updated or removed:
            self._emit(AwarenessChange(tuple(added), tuple(updated), tuple(removed)))
        self._changed.set()

    def drop_outdated(self, now: float | None = None) -> None:
        """Forget other clients' states not renewed within `OUTDATED_TIMEOUT`."""
        now = time.monotonic() if now is None else now
        stale = [
            cid
            for cid in self._states
            if cid != self.client_id and now - self._updated_at.get(cid, now) >= OUTDATED_TIMEOUT
        ]
        self._forget(stale)

    def drop_remote(self) -> None:
        """The connection closed: we no longer know who else is present. Their
        clocks are forgotten too, so the server's states are accepted as new
        on the next connection."""
        self._forget([cid for cid in self._states if cid != self.client_id])
        self._clocks = {self.client_id: self._clocks.get(self.client_id, 0)}
        self._updated_at.clear()

    def _forget(self, client_ids: list[int]) -> None:
        for cid in client_ids:
            del self._states[cid]
            self._updated_at.pop(cid, None)
        if client_ids:
            self._emit(AwarenessChange((), (), tuple(client_ids)))
            self._changed.set()

    def _emit(self, change: AwarenessChange) -> None:
        self._changed.set()
        for callback in list(self._observers):
            try:
                callback(change)
            except Exception:
                log.exception("awareness observer failed")
