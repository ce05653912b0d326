"""Comments in SQL, written once for SQLite and PostgreSQL (and the memory store).

Each `CommentStore` method is a sans-I/O *operation*: a generator that yields
the `Query`s it needs and is sent back their rows, so the same SQL and logic run
on SQLite's thread, on an asyncpg connection, and on the memory store's
in-memory SQLite; each engine only drives operations inside one transaction
(`SqlComments(transact)`). SQL uses `?` placeholders (PostgreSQL's `$n` are
made from them) and types both engines share; times are Unix seconds.

`MIGRATION` is the schema both engines' migration lists append (it is frozen
like every migration: a change is a new migration). Indexes serve the list
filters: creation order, resolved, updated since, mentions of a user, metadata
values.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import orjson

from ysync.presence.comment_store import Reaction, ThreadPage, ThreadQuery
from ysync.presence.comments import (
    Comment,
    Thread,
    merged_metadata,
    metadata_filter_value,
    new_id,
)
from ysync.presence.notifications import Following, Kind, Notification

T = TypeVar("T")

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE ysync_threads (
        room TEXT NOT NULL,
        id TEXT NOT NULL,
        anchor TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        resolved BOOLEAN NOT NULL,
        resolved_by TEXT,
        resolved_at DOUBLE PRECISION,
        PRIMARY KEY (room, id)
    )""",
    "CREATE INDEX ysync_threads_created ON ysync_threads (room, created_at, id)",
    "CREATE INDEX ysync_threads_resolved ON ysync_threads (room, resolved, created_at, id)",
    "CREATE INDEX ysync_threads_updated ON ysync_threads (room, updated_at)",
    """CREATE TABLE ysync_thread_metadata (
        room TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (room, thread_id, key)
    )""",
    "CREATE INDEX ysync_thread_metadata_value ON ysync_thread_metadata (room, key, value)",
    """CREATE TABLE ysync_comments (
        room TEXT NOT NULL,
        id TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        author TEXT NOT NULL,
        body TEXT,
        mentions TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        edited_at DOUBLE PRECISION,
        deleted_at DOUBLE PRECISION,
        PRIMARY KEY (room, id)
    )""",
    "CREATE INDEX ysync_comments_thread ON ysync_comments (room, thread_id, created_at)",
    """CREATE TABLE ysync_comment_mentions (
        room TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        comment_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (room, comment_id, user_id)
    )""",
    "CREATE INDEX ysync_comment_mentions_user ON ysync_comment_mentions (room, user_id, thread_id)",
    """CREATE TABLE ysync_reactions (
        room TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        comment_id TEXT NOT NULL,
        emoji TEXT NOT NULL,
        user_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (room, comment_id, emoji, user_id)
    )""",
    "CREATE INDEX ysync_reactions_thread ON ysync_reactions (room, thread_id)",
    """CREATE TABLE ysync_thread_followers (
        room TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        choice TEXT NOT NULL,
        PRIMARY KEY (room, thread_id, user_id)
    )""",
    """CREATE TABLE ysync_notifications (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        room TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        comment_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        read_at DOUBLE PRECISION
    )""",
    "CREATE INDEX ysync_notifications_user ON ysync_notifications (user_id, created_at)",
    "CREATE INDEX ysync_notifications_room ON ysync_notifications (room)",
    """CREATE TABLE ysync_room_readers (
        room TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (room, user_id)
    )""",
)

# Every table holding something of a room, for deletion (and the tests: none is left).
ROOM_TABLES = (
    "ysync_threads",
    "ysync_thread_metadata",
    "ysync_comments",
    "ysync_comment_mentions",
    "ysync_reactions",
    "ysync_thread_followers",
    "ysync_notifications",
    "ysync_room_readers",
)


@dataclass(frozen=True, slots=True)
class Query:
    """One statement; `many`: `args` is a list of rows (no result); `lock`: the rows
    read are locked until commit (PostgreSQL `FOR UPDATE`; SQLite's write
    transactions are serialized anyway)."""

    sql: str
    args: Sequence[Any] = ()
    many: bool = False
    lock: bool = False
    skip_locked: bool = False  # with `lock`: PostgreSQL skips rows another transaction locked


Rows = list[Sequence[Any]]
Operation = Generator[Query, Rows, T]
Transact = Callable[[Operation[Any], bool], Awaitable[Any]]
"""Runs an operation in one transaction (`write`: it changes something)."""


def drive(operation: Operation[T], run: Callable[[Query], Rows]) -> T:
    """Run `operation` with a synchronous `run` (SQLite)."""
    try:
        query = next(operation)
        while True:
            query = operation.send(run(query))
    except StopIteration as done:
        result: T = done.value
        return result


async def drive_async(operation: Operation[T], run: Callable[[Query], Awaitable[Rows]]) -> T:
    """Run `operation` with an asynchronous `run` (asyncpg)."""
    try:
        query = next(operation)
        while True:
            query = operation.send(await run(query))
    except StopIteration as done:
        result: T = done.value
        return result


def run_sqlite(connection: Any, query: Query) -> Rows:
    """One query on a `sqlite3.Connection`."""
    if query.many:
        connection.executemany(query.sql, query.args)
        return []
    rows: Rows = connection.execute(query.sql, query.args).fetchall()
    return rows


@lru_cache(maxsize=512)
def postgres_sql(sql: str, lock: bool, skip_locked: bool = False) -> str:
    """`?` placeholders as `$1, $2, ...` (no `?` appears in this module's SQL otherwise)."""
    numbers = iter(range(1, 10_000))
    text = re.sub(r"\?", lambda _: f"${next(numbers)}", sql)
    if not lock:
        return text
    return text + (" FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE")


# -- rows <-> the model ----------------------------------------------------------------------

_THREAD = (
    "room, id, anchor, metadata, created_by, created_at, updated_at, resolved, "
    "resolved_by, resolved_at"
)
_COMMENT = "id, thread_id, author, body, mentions, created_at, edited_at, deleted_at"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _comment(row: Sequence[Any], reactions: Mapping[str, tuple[str, ...]]) -> Comment:
    cid, thread_id, author, body, mentions, created_at, edited_at, deleted_at = row
    return Comment(
        cid,
        thread_id,
        author,
        None if body is None else orjson.loads(body),
        created_at,
        edited_at,
        deleted_at,
        reactions,
        tuple(orjson.loads(mentions)),
    )


def _loaded(room: str, rows: Rows) -> Operation[list[Thread]]:
    """The threads of `rows` (thread columns) with their comments and reactions."""
    if not rows:
        return []
    ids = [row[1] for row in rows]
    comments = yield Query(
        f"SELECT {_COMMENT} FROM ysync_comments WHERE room = ? AND thread_id IN ({_marks(ids)}) "
        "ORDER BY created_at, id",
        (room, *ids),
    )
    reaction_rows = yield Query(
        "SELECT comment_id, emoji, user_id FROM ysync_reactions "
        f"WHERE room = ? AND thread_id IN ({_marks(ids)}) ORDER BY created_at, user_id",
        (room, *ids),
    )
    reactions: dict[str, dict[str, list[str]]] = {}
    for comment_id, emoji, user in reaction_rows:
        reactions.setdefault(comment_id, {}).setdefault(emoji, []).append(user)
    by_thread: dict[str, list[Comment]] = {}
    for row in comments:
        mine = {emoji: tuple(users) for emoji, users in reactions.get(row[0], {}).items()}
        by_thread.setdefault(row[1], []).append(_comment(row, mine))
    threads = []
    for row in rows:
        (
            room_name,
            tid,
            anchor,
            metadata,
            created_by,
            created_at,
            updated_at,
            resolved,
            by,
            at,
        ) = row
        threads.append(
            Thread(
                tid,
                room_name,
                orjson.loads(anchor),
                orjson.loads(metadata),
                created_by,
                created_at,
                updated_at,
                bool(resolved),
                by,
                at,
                tuple(by_thread.get(tid, ())),
            )
        )
    return threads


def _one(room: str, thread_id: str, *, lock: bool = False) -> Operation[Thread | None]:
    rows = yield Query(
        f"SELECT {_THREAD} FROM ysync_threads WHERE room = ? AND id = ?",
        (room, thread_id),
        lock=lock,
    )
    threads = yield from _loaded(room, rows)
    return threads[0] if threads else None


def _touch(room: str, thread_id: str, at: float) -> Query:
    return Query(
        "UPDATE ysync_threads SET updated_at = ? WHERE room = ? AND id = ?",
        (float(at), room, thread_id),
    )


def _insert_comment(room: str, comment: Comment) -> Operation[None]:
    yield Query(
        f"INSERT INTO ysync_comments (room, {_COMMENT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            room,
            comment.id,
            comment.thread_id,
            comment.author,
            None if comment.body is None else _json(comment.body),
            _json(list(comment.mentions)),
            float(comment.created_at),
            comment.edited_at,
            comment.deleted_at,
        ),
    )
    yield from _mention_rows(room, comment)


def _mention_rows(room: str, comment: Comment) -> Operation[None]:
    if comment.mentions:
        yield Query(
            "INSERT INTO ysync_comment_mentions (room, thread_id, comment_id, user_id) "
            "VALUES (?, ?, ?, ?)",
            [(room, comment.thread_id, comment.id, user) for user in comment.mentions],
            many=True,
        )


def _metadata_rows(room: str, thread_id: str, metadata: Mapping[str, Any]) -> Operation[None]:
    yield Query(
        "DELETE FROM ysync_thread_metadata WHERE room = ? AND thread_id = ?", (room, thread_id)
    )
    if metadata:
        yield Query(
            "INSERT INTO ysync_thread_metadata (room, thread_id, key, value) VALUES (?, ?, ?, ?)",
            [(room, thread_id, k, metadata_filter_value(v)) for k, v in metadata.items()],
            many=True,
        )


# -- operations ------------------------------------------------------------------------------


def create_thread(thread: Thread) -> Operation[None]:
    yield Query(
        f"INSERT INTO ysync_threads ({_THREAD}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            thread.room,
            thread.id,
            _json(thread.anchor),
            _json(thread.metadata),
            thread.created_by,
            float(thread.created_at),
            float(thread.updated_at),
            thread.resolved,
            thread.resolved_by,
            thread.resolved_at,
        ),
    )
    yield from _metadata_rows(thread.room, thread.id, thread.metadata)
    for comment in thread.comments:
        yield from _insert_comment(thread.room, comment)


def list_threads(room: str, query: ThreadQuery) -> Operation[ThreadPage]:
    where = ["t.room = ?"]
    args: list[Any] = [room]
    if query.resolved is not None:
        where.append("t.resolved = ?")
        args.append(query.resolved)
    if query.since is not None:
        where.append("t.updated_at >= ?")
        args.append(float(query.since))
    if query.mentions is not None:
        where.append(
            "EXISTS (SELECT 1 FROM ysync_comment_mentions m WHERE m.room = t.room "
            "AND m.user_id = ? AND m.thread_id = t.id)"
        )
        args.append(query.mentions)
    for key, value in query.metadata.items():
        where.append(
            "EXISTS (SELECT 1 FROM ysync_thread_metadata d WHERE d.room = t.room "
            "AND d.key = ? AND d.value = ? AND d.thread_id = t.id)"
        )
        args += [key, value]
    if query.cursor is not None:
        created_at, thread_id = query.cursor
        where.append("(t.created_at < ? OR (t.created_at = ? AND t.id < ?))")
        args += [created_at, created_at, thread_id]
    columns = ", ".join(f"t.{column.strip()}" for column in _THREAD.split(","))
    rows = yield Query(
        f"SELECT {columns} FROM ysync_threads t WHERE {' AND '.join(where)} "
        "ORDER BY t.created_at DESC, t.id DESC LIMIT ?",
        (*args, query.limit + 1),
    )
    threads = yield from _loaded(room, rows[: query.limit])
    return ThreadPage(tuple(threads), more=len(rows) > query.limit)


def get_thread(room: str, thread_id: str) -> Operation[Thread | None]:
    return (yield from _one(room, thread_id))


def update_thread(
    room: str,
    thread_id: str,
    at: float,
    metadata: Mapping[str, Any] | None,
    resolved: tuple[bool, str] | None,
    max_metadata_bytes: int,
) -> Operation[Thread | None]:
    current = yield from _one(room, thread_id, lock=True)
    if current is None:
        return None
    if metadata is not None:
        merged = merged_metadata(current.metadata, metadata, max_bytes=max_metadata_bytes)
        yield Query(
            "UPDATE ysync_threads SET metadata = ? WHERE room = ? AND id = ?",
            (_json(merged), room, thread_id),
        )
        yield from _metadata_rows(room, thread_id, merged)
    if resolved is not None and resolved[0] != current.resolved:
        flag, by = resolved
        yield Query(
            "UPDATE ysync_threads SET resolved = ?, resolved_by = ?, resolved_at = ? "
            "WHERE room = ? AND id = ?",
            (flag, by if flag else None, float(at) if flag else None, room, thread_id),
        )
    yield _touch(room, thread_id, at)
    return (yield from _one(room, thread_id))


def delete_thread(room: str, thread_id: str) -> Operation[bool]:
    found = yield Query(
        "DELETE FROM ysync_threads WHERE room = ? AND id = ? RETURNING id", (room, thread_id)
    )
    for table in ROOM_TABLES[1:-1]:
        yield Query(f"DELETE FROM {table} WHERE room = ? AND thread_id = ?", (room, thread_id))
    return bool(found)


def add_comment(room: str, comment: Comment) -> Operation[Thread | None]:
    exists = yield Query(
        "SELECT id FROM ysync_threads WHERE room = ? AND id = ?",
        (room, comment.thread_id),
        lock=True,
    )
    if not exists:
        return None
    yield from _insert_comment(room, comment)
    yield _touch(room, comment.thread_id, comment.created_at)
    return (yield from _one(room, comment.thread_id))


def edit_comment(room: str, comment: Comment, deleted: bool) -> Operation[Thread | None]:
    at = comment.deleted_at if deleted else comment.edited_at
    changed = yield Query(
        "UPDATE ysync_comments SET body = ?, mentions = ?, edited_at = ?, deleted_at = ? "
        "WHERE room = ? AND id = ? AND thread_id = ? AND deleted_at IS NULL RETURNING id",
        (
            None if deleted or comment.body is None else _json(comment.body),
            _json([] if deleted else list(comment.mentions)),
            comment.edited_at,
            comment.deleted_at,
            room,
            comment.id,
            comment.thread_id,
        ),
    )
    if not changed:
        return None
    yield Query(
        "DELETE FROM ysync_comment_mentions WHERE room = ? AND comment_id = ?", (room, comment.id)
    )
    if deleted:
        yield Query(
            "DELETE FROM ysync_reactions WHERE room = ? AND comment_id = ?", (room, comment.id)
        )
    else:
        yield from _mention_rows(room, comment)
    yield _touch(room, comment.thread_id, at or 0.0)
    return (yield from _one(room, comment.thread_id))


def react(
    room: str, thread_id: str, comment_id: str, reaction: Reaction
) -> Operation[tuple[Thread, bool] | None]:
    alive = yield Query(
        "SELECT id FROM ysync_comments WHERE room = ? AND id = ? AND thread_id = ? "
        "AND deleted_at IS NULL",
        (room, comment_id, thread_id),
    )
    if not alive:
        return None
    if reaction.add:
        changed = yield Query(
            "INSERT INTO ysync_reactions (room, thread_id, comment_id, emoji, user_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room, comment_id, emoji, user_id) DO NOTHING "
            "RETURNING user_id",
            (room, thread_id, comment_id, reaction.emoji, reaction.user, float(reaction.at)),
        )
    else:
        changed = yield Query(
            "DELETE FROM ysync_reactions WHERE room = ? AND comment_id = ? AND emoji = ? "
            "AND user_id = ? RETURNING user_id",
            (room, comment_id, reaction.emoji, reaction.user),
        )
    if changed:
        yield _touch(room, thread_id, reaction.at)
    thread = yield from _one(room, thread_id)
    return None if thread is None else (thread, bool(changed))


def follow(room: str, thread_id: str, user: str, choice: Following) -> Operation[bool]:
    exists = yield Query(
        "SELECT id FROM ysync_threads WHERE room = ? AND id = ?", (room, thread_id)
    )
    if not exists:
        return False
    if choice is Following.DEFAULT:
        yield Query(
            "DELETE FROM ysync_thread_followers WHERE room = ? AND thread_id = ? AND user_id = ?",
            (room, thread_id, user),
        )
    else:
        yield Query(
            "INSERT INTO ysync_thread_followers (room, thread_id, user_id, choice) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (room, thread_id, user_id) "
            "DO UPDATE SET choice = excluded.choice",
            (room, thread_id, user, choice.value),
        )
    return True


def subscribers(room: str, thread_id: str) -> Operation[set[str]]:
    creator = yield Query(
        "SELECT created_by FROM ysync_threads WHERE room = ? AND id = ?", (room, thread_id)
    )
    authors = yield Query(
        "SELECT DISTINCT author FROM ysync_comments WHERE room = ? AND thread_id = ?",
        (room, thread_id),
    )
    choices = yield Query(
        "SELECT user_id, choice FROM ysync_thread_followers WHERE room = ? AND thread_id = ?",
        (room, thread_id),
    )
    users = {row[0] for row in creator} | {row[0] for row in authors}
    users |= {user for user, choice in choices if choice == Following.SUBSCRIBED}
    return users - {user for user, choice in choices if choice == Following.MUTED}


_NOTIFICATION = "id, user_id, room, thread_id, comment_id, kind, author, text, created_at, read_at"


def add_notifications(notifications: Sequence[Notification]) -> Operation[None]:
    if notifications:
        yield Query(
            f"INSERT INTO ysync_notifications ({_NOTIFICATION}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    n.id,
                    n.user_id,
                    n.room,
                    n.thread_id,
                    n.comment_id,
                    n.kind.value,
                    n.author,
                    n.text,
                    float(n.created_at),
                    n.read_at,
                )
                for n in notifications
            ],
            many=True,
        )


def list_notifications(user: str, limit: int) -> Operation[list[Notification]]:
    rows = yield Query(
        f"SELECT {_NOTIFICATION} FROM ysync_notifications WHERE user_id = ? "
        "ORDER BY (read_at IS NULL) DESC, created_at DESC LIMIT ?",
        (user, limit),
    )
    return [
        Notification(nid, user_id, room, thread_id, comment_id, Kind(kind), by, text, at, read)
        for nid, user_id, room, thread_id, comment_id, kind, by, text, at, read in rows
    ]


def mark_read(user: str, notification_id: str | None, at: float) -> Operation[int]:
    if notification_id is None:
        rows = yield Query(
            "UPDATE ysync_notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL "
            "RETURNING id",
            (float(at), user),
        )
    else:
        rows = yield Query(
            "UPDATE ysync_notifications SET read_at = coalesce(read_at, ?) "
            "WHERE user_id = ? AND id = ? RETURNING id",
            (float(at), user, notification_id),
        )
    return len(rows)


def record_reader(room: str, user: str, role: str, at: float) -> Operation[None]:
    yield Query(
        "INSERT INTO ysync_room_readers (room, user_id, role, seen_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (room, user_id) DO UPDATE SET role = excluded.role, seen_at = excluded.seen_at",
        (room, user, role, float(at)),
    )


def reader_role(room: str, user: str) -> Operation[str | None]:
    rows = yield Query(
        "SELECT role FROM ysync_room_readers WHERE room = ? AND user_id = ?", (room, user)
    )
    return str(rows[0][0]) if rows else None


def delete_room(room: str) -> Operation[None]:
    for table in ROOM_TABLES:
        yield Query(f"DELETE FROM {table} WHERE room = ?", (room,))


# -- archives --------------------------------------------------------------------------------

# What a room's archive holds, table by table: column -> kind ("?": may be null).
_ARCHIVED: dict[str, dict[str, str]] = {
    "ysync_threads": {
        "id": "text",
        "anchor": "json",
        "metadata": "json",
        "created_by": "text",
        "created_at": "real",
        "updated_at": "real",
        "resolved": "bool",
        "resolved_by": "text?",
        "resolved_at": "real?",
    },
    "ysync_comments": {
        "id": "text",
        "thread_id": "text",
        "author": "text",
        "body": "json?",
        "mentions": "json",
        "created_at": "real",
        "edited_at": "real?",
        "deleted_at": "real?",
    },
    "ysync_reactions": {
        "thread_id": "text",
        "comment_id": "text",
        "emoji": "text",
        "user_id": "text",
        "created_at": "real",
    },
    "ysync_thread_followers": {"thread_id": "text", "user_id": "text", "choice": "text"},
    "ysync_notifications": {
        "id": "text",
        "user_id": "text",
        "thread_id": "text",
        "comment_id": "text",
        "kind": "text",
        "author": "text",
        "text": "text",
        "created_at": "real",
        "read_at": "real?",
    },
}
ARCHIVE_VERSION = 1


def export_room(room: str) -> Operation[dict[str, Any]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, columns in _ARCHIVED.items():
        rows = yield Query(
            f"SELECT {', '.join(columns)} FROM {table} WHERE room = ? ORDER BY 1", (room,)
        )
        tables[table.removeprefix("ysync_")] = [
            {
                name: _exported(kind, value)
                for (name, kind), value in zip(columns.items(), row, strict=True)
            }
            for row in rows
        ]
    return {"version": ARCHIVE_VERSION, "tables": tables}


def _exported(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind.startswith("json"):
        return orjson.loads(value)
    return bool(value) if kind == "bool" else value


def import_room(room: str, data: Mapping[str, Any]) -> Operation[None]:
    """Restore an `export_room` archive into `room` (raise ValueError if it is not one)."""
    if data.get("version") != ARCHIVE_VERSION or not isinstance(data.get("tables"), dict):
        raise ValueError(f"comments archive: expected version {ARCHIVE_VERSION} with tables")
    for table, columns in _ARCHIVED.items():
        rows = [_imported(table, columns, row) for row in data["tables"].get(table[6:], ())]
        if table == "ysync_notifications":  # ids are global: the original room may still exist
            rows = [(new_id("nt"), *row[1:]) for row in rows]
        if rows:
            names = ", ".join(columns)
            yield Query(
                f"INSERT INTO {table} (room, {names}) VALUES (?, {_marks(list(columns))})",
                [(room, *row) for row in rows],
                many=True,
            )
    threads = yield Query("SELECT id, metadata FROM ysync_threads WHERE room = ?", (room,))
    for thread_id, metadata in threads:
        yield from _metadata_rows(room, thread_id, orjson.loads(metadata))
    comments = yield Query(f"SELECT {_COMMENT} FROM ysync_comments WHERE room = ?", (room,))
    for row in comments:
        yield from _mention_rows(room, _comment(row, {}))


_KINDS: dict[str, Callable[[Any], bool]] = {
    "text": lambda v: isinstance(v, str),
    "real": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "json": lambda v: True,
}


def _imported(table: str, columns: Mapping[str, str], row: Any) -> tuple[Any, ...]:
    if not isinstance(row, dict) or set(row) != set(columns):
        raise ValueError(f"comments archive: a row of {table} lacks or adds columns")
    values: list[Any] = []
    for name, kind in columns.items():
        value, base = row[name], kind.rstrip("?")
        if value is None and kind.endswith("?"):
            values.append(None)
            continue
        if value is None or not _KINDS[base](value):
            raise ValueError(f"comments archive: {table}.{name} must be {base}")
        values.append(_json(value) if base == "json" else float(value) if base == "real" else value)
    return tuple(values)


class SqlComments:
    """A `CommentStore` over an engine's `transact` (see the module doc)."""

    def __init__(self, transact: Transact) -> None:
        self._transact = transact

    async def _read(self, operation: Operation[T]) -> T:
        result: T = await self._transact(operation, False)
        return result

    async def _write(self, operation: Operation[T]) -> T:
        result: T = await self._transact(operation, True)
        return result

    async def create_thread(self, thread: Thread) -> None:
        await self._write(create_thread(thread))

    async def thread(self, room: str, thread_id: str) -> Thread | None:
        return await self._read(get_thread(room, thread_id))

    async def threads(self, room: str, query: ThreadQuery) -> ThreadPage:
        return await self._read(list_threads(room, query))

    async def update_thread(
        self,
        room: str,
        thread_id: str,
        *,
        at: float,
        metadata: Mapping[str, Any] | None = None,
        resolved: tuple[bool, str] | None = None,
        max_metadata_bytes: int,
    ) -> Thread | None:
        return await self._write(
            update_thread(room, thread_id, at, metadata, resolved, max_metadata_bytes)
        )

    async def delete_thread(self, room: str, thread_id: str) -> bool:
        return await self._write(delete_thread(room, thread_id))

    async def add_comment(self, room: str, comment: Comment) -> Thread | None:
        return await self._write(add_comment(room, comment))

    async def edit_comment(
        self, room: str, comment: Comment, *, deleted: bool = False
    ) -> Thread | None:
        return await self._write(edit_comment(room, comment, deleted))

    async def react(
        self, room: str, thread_id: str, comment_id: str, reaction: Reaction
    ) -> tuple[Thread, bool] | None:
        return await self._write(react(room, thread_id, comment_id, reaction))

    async def follow(self, room: str, thread_id: str, user: str, choice: Following) -> bool:
        return await self._write(follow(room, thread_id, user, choice))

    async def subscribers(self, room: str, thread_id: str) -> set[str]:
        return await self._read(subscribers(room, thread_id))

    async def add_notifications(self, notifications: Sequence[Notification]) -> None:
        await self._write(add_notifications(notifications))

    async def notifications(self, user: str, *, limit: int) -> list[Notification]:
        return await self._read(list_notifications(user, limit))

    async def mark_read(self, user: str, notification_id: str | None, at: float) -> int:
        return await self._write(mark_read(user, notification_id, at))

    async def record_reader(self, room: str, user: str, role: str, at: float) -> None:
        await self._write(record_reader(room, user, role, at))

    async def reader_role(self, room: str, user: str) -> str | None:
        return await self._read(reader_role(room, user))

    async def delete_room(self, room: str) -> None:
        await self._write(delete_room(room))

    async def export_room(self, room: str) -> dict[str, Any]:
        return await self._read(export_room(room))

    async def import_room(self, room: str, data: Mapping[str, Any]) -> None:
        await self._write(import_room(room, data))
