"""PostgreSQL store: for clusters, where several nodes write the same rooms.

Schema (tables prefixed `ysync_`, so the database can be shared):

- `ysync_updates(id, room, data, created_at)`: the log. `id` is an identity
  column giving one global order; no per-room counter is shared between nodes,
  so appends never contend on a hot row.
- `ysync_snapshots(room, data, updated_at)`: the merged document.
- `ysync_schema_version(version, applied_at)`: applied migrations.
- version 2: comment threads and notifications (`ysync.persistence.comment_sql`).
- version 3: versions, room tombstones and seed claims, webhooks (`ysync.persistence.version_sql`,
  `tombstone_sql`, `webhook_sql`).
- version 4: finished sessions and update authors (`ysync.persistence.activity_sql`).

A room's content is its snapshot plus *all* its remaining log rows. Identity
values are handed out before commit, so a row with a smaller id may commit
after a larger one: compaction therefore deletes exactly the rows it merged,
never "everything up to id N". Compactions and deletes of one room take a
per-room advisory lock, so two nodes compacting at once take turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg  # no stubs shipped: see [tool.mypy.overrides]

from ysync.persistence import activity_sql, comment_sql, tombstone_sql, version_sql, webhook_sql
from ysync.persistence.comment_sql import Operation, Query, Rows, SqlComments
from ysync.persistence.merge import merge
from ysync.rooms.protocols import RoomInfo, StoreError

T = TypeVar("T")

# Advisory lock keys (two int4s; a space separate from single-bigint locks).
_LOCK_CLASS_MIGRATIONS = 0x7953_0001
_LOCK_CLASS_ROOM = 0x7953_0002

# Migration N brings the schema from version N-1 to N. Append; never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE ysync_updates (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            room text NOT NULL,
            data bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""",
        "CREATE INDEX ysync_updates_room_id ON ysync_updates (room, id)",
        """CREATE TABLE ysync_snapshots (
            room text PRIMARY KEY,
            data bytea NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
    ),
    comment_sql.MIGRATION,  # 2: comment threads, notifications (shared with SQLite)
    (
        *version_sql.MIGRATION,
        *tombstone_sql.MIGRATION,
        *webhook_sql.MIGRATION,
    ),  # 3: versions, tombstones and seed claims, webhooks (shared with SQLite)
    activity_sql.MIGRATION,  # 4: finished sessions, for the activity API (shared)
)
SCHEMA_VERSION = len(_MIGRATIONS)

# InternalClientError: seen when the server kills a connection mid-query.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


class PostgresStore:
    """A `Store` in PostgreSQL via an asyncpg pool. `await open()` first, `await close()` last.

    `dsn` is a libpq-style URL (`postgresql://user:password@host:port/db`).
    `connect_timeout` bounds each connection attempt and `command_timeout`
    each statement (seconds), so an outage surfaces as `StoreError` instead of
    a hang.
    """

    durable = True

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        #: The `CommentStore` of this database (`ysync.persistence.comment_sql`).
        self.comments = SqlComments(self._transact)
        #: The versions of every room (`ysync.persistence.version_sql`).
        self.versions = version_sql.SqlVersions(self._transact)
        #: Deleted rooms' tombstones (`ysync.persistence.tombstone_sql`).
        self.tombstones = tombstone_sql.SqlTombstones(self._transact)
        #: Webhook endpoints and outbox (`ysync.persistence.webhook_sql`).
        self.webhooks = webhook_sql.SqlWebhooks(self._transact)
        #: Finished sessions (`ysync.persistence.activity_sql`).
        self.activity = activity_sql.SqlActivity(self._transact)

    def describe(self) -> str:
        return f"PostgreSQL {redact(self.dsn)} (pool {self.min_size}..{self.max_size})"

    def health(self) -> str | None:
        return None if self._pool is not None else "store: PostgreSQL pool is not open"

    async def open(self) -> None:
        """Connect the pool and create or migrate the schema."""
        if self._pool is not None:
            return
        with _translated("connect"):
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                # A commit returns only once its WAL is flushed, whatever the
                # server's default: that is the durability `append` promises.
                server_settings={"synchronous_commit": "on"},
            )
        try:
            with _translated("migrate"):
                async with pool.acquire() as conn:
                    await _migrate(conn)
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with _translated("close"):
                await pool.close()

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def load(self, room: str) -> list[bytes]:
        # One statement, so one snapshot of the database: a compaction
        # committing midway cannot hide rows from us.
        with _translated(f"load {room!r}"):
            rows = await self._open_pool().fetch(
                """SELECT data FROM (
                    SELECT 0 AS part, 0::bigint AS id, data FROM ysync_snapshots WHERE room = $1
                    UNION ALL
                    SELECT 1, id, data FROM ysync_updates WHERE room = $1
                ) stored ORDER BY part, id""",
                room,
            )
        return [row[0] for row in rows]

    async def append(self, batch: Sequence[tuple[str, bytes]]) -> None:
        if not batch:
            return
        # One statement is one transaction: all of the batch or none of it.
        # WITH ORDINALITY + ORDER BY keeps the batch order in the ids.
        with _translated("append"):
            await self._open_pool().execute(
                """INSERT INTO ysync_updates (room, data)
                SELECT room, data FROM unnest($1::text[], $2::bytea[])
                    WITH ORDINALITY AS batch(room, data, n)
                ORDER BY n""",
                [room for room, _ in batch],
                [data for _, data in batch],
            )

    async def compact(self, room: str) -> None:
        """Merge snapshot and log into a new snapshot, in one transaction.

        Appends go on meanwhile (they take no lock); rows committed after we
        read the log are not deleted, so they survive.
        """
        with _translated(f"compact {room!r}"):
            async with self._open_pool().acquire() as conn, conn.transaction():
                await _lock_room(conn, room)
                snapshot = await conn.fetchval(
                    "SELECT data FROM ysync_snapshots WHERE room = $1", room
                )
                rows = await conn.fetch(
                    "SELECT id, data FROM ysync_updates WHERE room = $1 ORDER BY id", room
                )
                if not rows:
                    return
                merged = await asyncio.to_thread(merge, snapshot, [row[1] for row in rows])
                await conn.execute(
                    """INSERT INTO ysync_snapshots (room, data) VALUES ($1, $2)
                    ON CONFLICT (room) DO UPDATE SET data = excluded.data, updated_at = now()""",
                    room,
                    merged.snapshot,
                )
                await conn.execute(
                    "DELETE FROM ysync_updates WHERE room = $1 AND id = ANY($2::bigint[])",
                    room,
                    [rows[i][0] for i in merged.covered],
                )

    async def delete(self, room: str) -> None:
        with _translated(f"delete {room!r}"):
            async with self._open_pool().acquire() as conn, conn.transaction():
                await _lock_room(conn, room)
                await conn.execute("DELETE FROM ysync_updates WHERE room = $1", room)
                await conn.execute("DELETE FROM ysync_snapshots WHERE room = $1", room)

    async def list_rooms(self) -> list[RoomInfo]:
        with _translated("list rooms"):
            rows = await self._open_pool().fetch(
                """SELECT room, sum(size)::bigint, sum(n)::bigint,
                    extract(epoch FROM max(changed))::float8
                FROM (
                    SELECT room, octet_length(data) AS size, 1 AS n, created_at AS changed
                    FROM ysync_updates
                    UNION ALL
                    SELECT room, octet_length(data), 0, updated_at FROM ysync_snapshots
                ) stored GROUP BY room ORDER BY room"""
            )
        return [RoomInfo(name, size, n, changed) for name, size, n, changed in rows]

    async def _transact(self, operation: Operation[T], write: bool) -> T:
        with _translated("comments"):
            async with self._open_pool().acquire() as conn, conn.transaction():

                async def run(query: Query) -> Rows:
                    sql = comment_sql.postgres_sql(query.sql, query.lock, query.skip_locked)
                    if query.many:
                        await conn.executemany(sql, query.args)
                        return []
                    return [tuple(row) for row in await conn.fetch(sql, *query.args)]

                return await comment_sql.drive_async(operation, run)

    def _open_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"PostgreSQL store {redact(self.dsn)} is not open")
        return self._pool


def redact(dsn: str) -> str:
    """`dsn` without password or query (which may hold one), for logs."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The one place asyncpg and socket errors cross into ysync, as `StoreError`."""
    try:
        yield
    except _DRIVER_ERRORS as error:
        raise StoreError(f"PostgreSQL {action}: {type(error).__name__}: {error}") from error


async def _lock_room(conn: asyncpg.Connection, room: str) -> None:
    """Serialize compactions and deletes of `room` across nodes until commit."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS_ROOM, room)


async def _migrate(conn: asyncpg.Connection) -> None:
    """Bring the schema to `SCHEMA_VERSION`. Idempotent; nodes starting at once
    wait for each other on an advisory lock, so each migration runs once."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", _LOCK_CLASS_MIGRATIONS)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS ysync_schema_version (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM ysync_schema_version")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"PostgreSQL schema version {version} is newer than this ysync supports "
                f"({SCHEMA_VERSION}); upgrade ysync"
            )
        for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO ysync_schema_version (version) VALUES ($1)", number)
