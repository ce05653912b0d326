"""Room lifecycle rows in SQL (SQLite, PostgreSQL, the memory store): tombstones (a
deleted room's name and until when no client may recreate it, `--tombstone-days`) and
seed claims (the one node that applies a new room's initial content, `ysync.server.seeding`).

Operations are driven by each engine's `transact`, as in `ysync.persistence.comment_sql`.
"""

from __future__ import annotations

from ysync.persistence.comment_sql import Operation, Query, Transact

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE ysync_tombstones (
        room TEXT PRIMARY KEY,
        deleted_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE ysync_seeded (
        room TEXT PRIMARY KEY,
        seeded_at DOUBLE PRECISION NOT NULL
    )""",
)


def put(room: str, deleted_at: float, until: float) -> Operation[None]:
    yield Query("DELETE FROM ysync_tombstones WHERE room = ?", (room,))
    yield Query(
        "INSERT INTO ysync_tombstones (room, deleted_at, expires_at) VALUES (?, ?, ?)",
        (room, deleted_at, until),
    )


def until(room: str) -> Operation[float | None]:
    rows = yield Query("SELECT expires_at FROM ysync_tombstones WHERE room = ?", (room,))
    return float(rows[0][0]) if rows else None


def clear(room: str) -> Operation[None]:
    yield Query("DELETE FROM ysync_tombstones WHERE room = ?", (room,))


def claim_seed(room: str, at: float) -> Operation[bool]:
    """True for exactly one caller per room, ever (until `clear_seed`)."""
    rows = yield Query(
        "INSERT INTO ysync_seeded (room, seeded_at) VALUES (?, ?) "
        "ON CONFLICT (room) DO NOTHING RETURNING room",
        (room, at),
    )
    return bool(rows)


def clear_seed(room: str) -> Operation[None]:
    yield Query("DELETE FROM ysync_seeded WHERE room = ?", (room,))


class SqlTombstones:
    """The tombstones and seed claims of one store."""

    def __init__(self, transact: Transact) -> None:
        self._transact = transact

    async def put(self, room: str, deleted_at: float, until_time: float) -> None:
        await self._transact(put(room, deleted_at, until_time), True)

    async def until(self, room: str) -> float | None:
        result: float | None = await self._transact(until(room), False)
        return result

    async def clear(self, room: str) -> None:
        await self._transact(clear(room), True)

    async def claim_seed(self, room: str, at: float) -> bool:
        result: bool = await self._transact(claim_seed(room, at), True)
        return result

    async def clear_seed(self, room: str) -> None:
        await self._transact(clear_seed(room), True)
