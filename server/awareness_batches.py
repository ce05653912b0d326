"""Awareness batched per room per short tick, for every room of the node.

Fifty people moving cursors at 30 Hz are 1,500 awareness changes a second in
one room; broadcast one by one, each goes to 49 others: 73,500 frames a second
for one canvas. Batched, a busy room sends every connection one frame per tick
carrying the latest state of every client that changed in it (one encoding
for the whole room), so the frames out no longer grow with the move rate.

A quiet room pays nothing: a change in a room that sent nothing during the
last tick goes out at once, and only what follows within the tick waits for
its end. So a lone mover sees no added delay, and nothing (a removal
included) waits more than one tick. Entries keep their clocks, so y-protocols
clients apply every state as before; a batch is sent to every peer but the
one whose changes it holds alone, as the unbatched broadcast would.
When the node's send buffers pass half their bound (`OutputBudget.shedding`)
the tick stretches, so the same changes go out in fewer, fuller frames.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ysync.rooms import codec
from ysync.rooms.protocols import Peer
from ysync.rooms.room import Room
from ysync.server.output_budget import OutputBudget

SHEDDING_STRETCH = 4  # ticks are this many times longer while the node's buffers are full


@dataclass(slots=True)
class _Batch:
    entries: dict[int, codec.AwarenessEntry]  # by client id: the latest entry of each
    exclude: Peer | None  # the only peer whose changes these are, if one


class AwarenessBatches:
    """One awareness broadcast per busy room per tick (0: broadcast every change)."""

    def __init__(self, tick: float, budget: OutputBudget | None = None) -> None:
        self.tick = tick
        self._budget = budget
        self._pending: dict[Room, _Batch] = {}
        self._busy: set[Room] = set()  # rooms that broadcast during the current tick
        self._timer: asyncio.TimerHandle | None = None

    def attach(self, room: Room) -> None:
        """Batch `room`'s awareness broadcasts from now on (once per room; no-op if off)."""
        if self.tick > 0 and room.awareness_outbox is None:
            room.awareness_outbox = self

    def add(self, room: Room, entries: list[codec.AwarenessEntry], exclude: Peer | None) -> None:
        """What `room` would broadcast now: sent at once if the room was quiet, else batched."""
        if room not in self._busy:
            self._busy.add(room)
            self._arm()
            room.send_awareness(entries, exclude=exclude)
            return
        batch = self._pending.get(room)
        if batch is None:
            self._pending[room] = _Batch({e.client_id: e for e in entries}, exclude)
            return
        for entry in entries:
            batch.entries[entry.client_id] = entry
        if batch.exclude is not exclude:
            batch.exclude = None  # changes of several peers: everyone gets them all

    def _arm(self) -> None:
        if self._timer is None:
            stretch = SHEDDING_STRETCH if self._budget and self._budget.shedding() else 1
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.tick * stretch, self._flush)

    def _flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, {}
        # A room that had more to send stays busy for the next tick; the others are quiet.
        self._busy = set(pending)
        for room, batch in pending.items():
            if not room.closed:
                room.send_awareness(list(batch.entries.values()), exclude=batch.exclude)
        if self._busy:
            self._arm()
