"""Collaboration activity in SQL, once for SQLite, PostgreSQL and the memory store.

One row per finished session (a connection's stay in a room): who, which node,
when it connected and disconnected, how many updates and bytes it sent. Rows
are written when the session ends and pruned after the retention period.
Operations are sans-I/O generators driven by each engine's `transact`, as in
`ysync.persistence.comment_sql` (same `Query`, placeholders and drivers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from ysync.persistence.comment_sql import Operation, Query, Transact

T = TypeVar("T")

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE ysync_sessions (
        room TEXT NOT NULL,
        user_id TEXT,
        node TEXT NOT NULL,
        connected_at DOUBLE PRECISION NOT NULL,
        disconnected_at DOUBLE PRECISION NOT NULL,
        updates INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    )""",
    "CREATE INDEX ysync_sessions_room ON ysync_sessions (room, connected_at)",
    "CREATE INDEX ysync_sessions_time ON ysync_sessions (connected_at)",
    "CREATE INDEX ysync_sessions_end ON ysync_sessions (disconnected_at)",
    # One row per accepted update: its author (NULL: the server or an API edit).
    # Kept apart from the update log, which compaction merges away.
    """CREATE TABLE ysync_update_authors (
        room TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        user_id TEXT,
        bytes INTEGER NOT NULL
    )""",
    "CREATE INDEX ysync_update_authors_room ON ysync_update_authors (room, at)",
    "CREATE INDEX ysync_update_authors_time ON ysync_update_authors (at)",
)

MAX_ROWS = 10_000  # sessions one query returns: a report, not an export


@dataclass(frozen=True, slots=True)
class SessionRow:
    room: str
    user_id: str | None
    node: str
    connected_at: float
    disconnected_at: float
    updates: int
    bytes: int


_COLUMNS = "room, user_id, node, connected_at, disconnected_at, updates, bytes"


def _record(sessions: Sequence[SessionRow], authors: Sequence[AuthorRow]) -> Operation[None]:
    if sessions:
        args = [
            (r.room, r.user_id, r.node, r.connected_at, r.disconnected_at, r.updates, r.bytes)
            for r in sessions
        ]
        yield Query(
            f"INSERT INTO ysync_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", args, many=True
        )
    if authors:
        yield Query(
            "INSERT INTO ysync_update_authors (room, at, user_id, bytes) VALUES (?, ?, ?, ?)",
            [(r.room, r.at, r.user_id, r.bytes) for r in authors],
            many=True,
        )


def _sessions(room: str | None, since: float, until: float) -> Operation[list[SessionRow]]:
    # Sessions that overlap [since, until].
    where = "disconnected_at >= ? AND connected_at <= ?"
    args: list[object] = [since, until]
    if room is not None:
        where = "room = ? AND " + where
        args.insert(0, room)
    rows = yield Query(
        f"SELECT {_COLUMNS} FROM ysync_sessions WHERE {where} "
        f"ORDER BY connected_at LIMIT {MAX_ROWS}",
        args,
    )
    return [
        SessionRow(str(r[0]), r[1], str(r[2]), float(r[3]), float(r[4]), int(r[5]), int(r[6]))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class AuthorRow:
    room: str
    at: float
    user_id: str | None
    bytes: int


def _authors(room: str, since: float, until: float) -> Operation[list[tuple[str | None, int, int]]]:
    rows = yield Query(
        "SELECT user_id, COUNT(*), SUM(bytes) FROM ysync_update_authors "
        "WHERE room = ? AND at >= ? AND at <= ? GROUP BY user_id",
        (room, since, until),
    )
    return [(r[0], int(r[1]), int(r[2] or 0)) for r in rows]


def _prune(before: float) -> Operation[None]:
    yield Query("DELETE FROM ysync_sessions WHERE disconnected_at < ?", (before,))
    yield Query("DELETE FROM ysync_update_authors WHERE at < ?", (before,))


class SqlActivity:
    """Activity rows over an engine's `transact`."""

    def __init__(self, transact: Transact) -> None:
        self._transact = transact

    async def record(
        self, sessions: Sequence[SessionRow], authors: Sequence[AuthorRow] = ()
    ) -> None:
        """Finished sessions and update authors, in one transaction."""
        if sessions or authors:
            await self._transact(_record(sessions, authors), True)

    async def sessions(self, room: str | None, since: float, until: float) -> list[SessionRow]:
        result: list[SessionRow] = await self._transact(_sessions(room, since, until), False)
        return result

    async def authors(
        self, room: str, since: float, until: float
    ) -> list[tuple[str | None, int, int]]:
        """(user id or None, updates, bytes) per author of the room's updates in the period."""
        result: list[tuple[str | None, int, int]] = await self._transact(
            _authors(room, since, until), False
        )
        return result

    async def prune(self, before: float) -> None:
        await self._transact(_prune(before), True)
