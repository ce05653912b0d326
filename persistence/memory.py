"""In-memory store: for tests and throwaway runs. Everything is lost on exit."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pycrdt import merge_updates

from ysync.rooms.protocols import RoomInfo


class MemoryStore:
    """A `Store` kept in a dict. Loses everything when the process exits."""

    durable = False

    def __init__(self) -> None:
        self._rooms: dict[str, list[bytes]] = {}
        self._changed: dict[str, float] = {}

    def describe(self) -> str:
        return "memory (NOT durable: everything is lost when the process exits)"

    def health(self) -> str | None:
        return None

    async def load(self, room: str) -> list[bytes]:
        return list(self._rooms.get(room, ()))

    async def append(self, batch: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        for room, update in batch:
            self._rooms.setdefault(room, []).append(update)
            self._changed[room] = now

    async def compact(self, room: str) -> None:
        updates = self._rooms.get(room)
        if updates and len(updates) > 1:
            self._rooms[room] = [merge_updates(*updates)]
            self._changed[room] = time.time()

    async def delete(self, room: str) -> None:
        self._rooms.pop(room, None)
        self._changed.pop(room, None)

    async def list_rooms(self) -> list[RoomInfo]:
        return [
            RoomInfo(
                name=name,
                size_bytes=sum(map(len, updates)),
                updates=len(updates),
                last_change=self._changed[name],
            )
            for name, updates in self._rooms.items()
        ]

    async def close(self) -> None:
        self._rooms.clear()
