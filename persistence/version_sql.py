"""Versions in SQL, written once for SQLite, PostgreSQL and the memory store.

Operations are sans-I/O generators driven by each engine's `transact`, as in
`ysync.persistence.comment_sql` (same `Query`, same `?` placeholders). A
version's content is its full encoded state (BYTEA: a blob in both engines).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, TypeVar

from ysync.persistence.comment_sql import Operation, Query, Transact
from ysync.presence.versions import KINDS, Version, VersionPage, decode_cursor, encode_cursor

T = TypeVar("T")

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE ysync_versions (
        room TEXT NOT NULL,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        author TEXT,
        kind TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        state_vector BYTEA NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (room, id)
    )""",
    "CREATE INDEX ysync_versions_created ON ysync_versions (room, created_at, id)",
)
ROOM_TABLES = ("ysync_versions",)
ARCHIVE_VERSION = 1
_COLUMNS = "room, id, name, description, author, kind, created_at, state_vector, data"


def _version(row: Any) -> Version:
    room, vid, name, description, author, kind, created_at, vector, data = row
    return Version(
        room, vid, name, description, author, kind, float(created_at), bytes(vector), bytes(data)
    )


def create(version: Version) -> Operation[None]:
    yield Query(
        f"INSERT INTO ysync_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            version.room,
            version.id,
            version.name,
            version.description,
            version.author,
            version.kind,
            version.created_at,
            version.state_vector,
            version.data,
        ),
    )


def get(room: str, version_id: str) -> Operation[Version | None]:
    rows = yield Query(
        f"SELECT {_COLUMNS} FROM ysync_versions WHERE room = ? AND id = ?", (room, version_id)
    )
    return _version(rows[0]) if rows else None


def latest(room: str) -> Operation[Version | None]:
    rows = yield Query(
        f"SELECT {_COLUMNS} FROM ysync_versions WHERE room = ? ORDER BY created_at DESC, id DESC LIMIT 1",
        (room,),
    )
    return _version(rows[0]) if rows else None


def page(room: str, cursor: str | None, limit: int) -> Operation[VersionPage]:
    """Newest first; `cursor` continues after the last version of the previous page."""
    if cursor is None:
        rows = yield Query(
            f"SELECT {_COLUMNS} FROM ysync_versions WHERE room = ? "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (room, limit + 1),
        )
    else:
        at, vid = decode_cursor(cursor)
        rows = yield Query(
            f"SELECT {_COLUMNS} FROM ysync_versions WHERE room = ? "
            "AND (created_at < ? OR (created_at = ? AND id < ?)) "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (room, at, at, vid, limit + 1),
        )
    versions = [_version(row) for row in rows[:limit]]
    more = len(rows) > limit
    last = versions[-1] if versions else None
    return VersionPage(versions, encode_cursor(last.created_at, last.id) if more and last else None)


def prune(room: str, keep: int, older_than: float | None) -> Operation[int]:
    """Delete automatic versions past the newest `keep` (0: no count limit) or
    created before `older_than`; named ones stay. Returns how many went."""
    rows = yield Query(
        "SELECT id, created_at FROM ysync_versions WHERE room = ? AND kind <> 'named' "
        "ORDER BY created_at DESC, id DESC",
        (room,),
    )
    doomed = [
        vid
        for position, (vid, created_at) in enumerate(rows)
        if (keep and position >= keep) or (older_than is not None and created_at < older_than)
    ]
    if doomed:
        yield Query(
            "DELETE FROM ysync_versions WHERE room = ? AND id = ?",
            [(room, vid) for vid in doomed],
            many=True,
        )
    return len(doomed)


def delete(room: str, version_id: str) -> Operation[bool]:
    found = yield Query(
        "SELECT id FROM ysync_versions WHERE room = ? AND id = ?", (room, version_id)
    )
    yield Query("DELETE FROM ysync_versions WHERE room = ? AND id = ?", (room, version_id))
    return bool(found)


def delete_room(room: str) -> Operation[None]:
    for table in ROOM_TABLES:
        yield Query(f"DELETE FROM {table} WHERE room = ?", (room,))


def export_room(room: str) -> Operation[dict[str, Any]]:
    rows = yield Query(
        f"SELECT {_COLUMNS} FROM ysync_versions WHERE room = ? ORDER BY created_at, id", (room,)
    )
    versions = []
    for row in rows:
        version = _version(row)
        summary = version.summary()
        versions.append({**summary, "data": base64.b64encode(version.data).decode()})
    return {"version": ARCHIVE_VERSION, "versions": versions}


def import_room(room: str, data: Mapping[str, Any]) -> Operation[None]:
    """Restore an `export_room` archive into `room` (ValueError if it is not one)."""
    if data.get("version") != ARCHIVE_VERSION or not isinstance(data.get("versions"), list):
        raise ValueError(f"versions archive: expected version {ARCHIVE_VERSION} with versions")
    for item in data["versions"]:
        try:
            version = Version(
                room,
                str(item["id"]),
                str(item["name"]),
                str(item["description"]),
                None if item["author"] is None else str(item["author"]),
                item["kind"] if item["kind"] in KINDS else "named",
                float(item["created_at"]),
                base64.b64decode(item["state_vector"], validate=True),
                base64.b64decode(item["data"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"versions archive: a version is malformed: {exc}") from None
        yield from create(version)


class SqlVersions:
    """The versions of every room in one store (see the module doc)."""

    def __init__(self, transact: Transact) -> None:
        self._transact = transact

    async def _run(self, operation: Operation[T], write: bool) -> T:
        result: T = await self._transact(operation, write)
        return result

    async def create(self, version: Version) -> None:
        await self._run(create(version), True)

    async def get(self, room: str, version_id: str) -> Version | None:
        return await self._run(get(room, version_id), False)

    async def latest(self, room: str) -> Version | None:
        return await self._run(latest(room), False)

    async def page(self, room: str, cursor: str | None, limit: int) -> VersionPage:
        return await self._run(page(room, cursor, limit), False)

    async def prune(self, room: str, keep: int, older_than: float | None) -> int:
        return await self._run(prune(room, keep, older_than), True)

    async def delete(self, room: str, version_id: str) -> bool:
        return await self._run(delete(room, version_id), True)

    async def delete_room(self, room: str) -> None:
        await self._run(delete_room(room), True)

    async def export_room(self, room: str) -> dict[str, Any]:
        return await self._run(export_room(room), False)

    async def import_room(self, room: str, data: Mapping[str, Any]) -> None:
        await self._run(import_room(room, data), True)
