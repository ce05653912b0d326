"""In-memory store: for tests and throwaway runs. Everything is lost on exit."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from functools import partial
from typing import TypeVar

from pycrdt import merge_updates

from ysync.persistence import activity_sql, comment_sql, tombstone_sql, version_sql, webhook_sql
from ysync.persistence.comment_sql import Operation, SqlComments
from ysync.rooms.protocols import RoomInfo

T = TypeVar("T")


class MemoryStore:
    """A `Store` kept in a dict. Loses everything when the process exits."""

    durable = False

    def __init__(self) -> None:
        self._rooms: dict[str, list[bytes]] = {}
        self._changed: dict[str, float] = {}
        self._db: sqlite3.Connection | None = None
        #: Comments, in an in-memory SQLite database: the same SQL as the durable stores.
        self.comments = SqlComments(self._transact)
        self.versions = version_sql.SqlVersions(self._transact)
        self.tombstones = tombstone_sql.SqlTombstones(self._transact)
        self.webhooks = webhook_sql.SqlWebhooks(self._transact)
        self.activity = activity_sql.SqlActivity(self._transact)

    async def _transact(self, operation: Operation[T], write: bool) -> T:
        if self._db is None:
            # In memory, nothing waits on a disk: running on the event loop is fine.
            self._db = sqlite3.connect(":memory:", isolation_level=None)
            for statement in (
                *comment_sql.MIGRATION,
                *version_sql.MIGRATION,
                *tombstone_sql.MIGRATION,
                *webhook_sql.MIGRATION,
                *activity_sql.MIGRATION,
            ):
                self._db.execute(statement)
        db = self._db
        db.execute("BEGIN")
        try:
            result = comment_sql.drive(operation, partial(comment_sql.run_sqlite, db))
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
        return result

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
        if self._db is not None:
            self._db.close()
            self._db = None
