"""SQLite store: the embedded default. One file, safe for several processes on one host.

Every call runs on one dedicated thread that owns the `sqlite3` connection,
so the event loop never waits on disk. WAL lets readers and the writer
proceed together; `synchronous=FULL` makes every commit fsync'd before
`append` returns; `busy_timeout` makes processes sharing the file queue for
the write lock instead of failing.

Schema (version 2, in `PRAGMA user_version`):

- `rooms(id, name, last_seq, last_change)`: one row per stored room; `last_seq`
  is the room's sequence (never wall-clock), `id` is never reused, so a room
  deleted and re-created is told apart from the old one.
- `updates(room, seq, data)`: the log, ordered by `seq` within a room.
- `snapshots(room, seq, data)`: the merged document; it holds every update of
  the room with `seq <= snapshots.seq`, except log rows compaction kept.
- version 2: comment threads and notifications (`ysync.persistence.comment_sql`).
- version 3: versions, room tombstones and seed claims, webhooks (`ysync.persistence.version_sql`,
  `tombstone_sql`, `webhook_sql`).
- version 4: finished sessions and update authors (`ysync.persistence.activity_sql`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from ysync.persistence import activity_sql, comment_sql, tombstone_sql, version_sql, webhook_sql
from ysync.persistence.comment_sql import Operation, SqlComments
from ysync.persistence.merge import Merged, merge
from ysync.rooms.protocols import RoomInfo, StoreError

T = TypeVar("T")

# Migration N brings the schema from version N-1 to N. Append; never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE rooms (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            last_seq INTEGER NOT NULL,
            last_change REAL NOT NULL
        )""",
        """CREATE TABLE updates (
            room TEXT NOT NULL,
            seq INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (room, seq)
        )""",
        """CREATE TABLE snapshots (
            room TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            data BLOB NOT NULL
        )""",
    ),
    comment_sql.MIGRATION,  # 2: comment threads, notifications (shared with PostgreSQL)
    (
        *version_sql.MIGRATION,
        *tombstone_sql.MIGRATION,
        *webhook_sql.MIGRATION,
    ),  # 3: versions, tombstones and seed claims, webhooks (shared with PostgreSQL)
    activity_sql.MIGRATION,  # 4: finished sessions, for the activity API (shared)
)
SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True, slots=True)
class _CompactionInput:
    room_id: int
    snapshot: bytes | None
    seqs: list[int]
    log: list[bytes]


class SQLiteStore:
    """A `Store` in one SQLite file. Call `await open()` first, `await close()` last.

    `path` is created with its parent directory if missing. `busy_timeout` is
    how long (seconds) to wait for another process holding the write lock.
    """

    durable = True

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        #: The `CommentStore` of this file (`ysync.persistence.comment_sql`).
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
        return f"SQLite {self.path.absolute()} (WAL, synchronous=FULL)"

    def health(self) -> str | None:
        return None if self._conn is not None else f"store: SQLite {self.path} is not open"

    async def open(self) -> None:
        """Open (creating if needed) the file and bring its schema up to date."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ysync-sqlite")
        try:
            await self._run(self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def load(self, room: str) -> list[bytes]:
        return await self._run(self._load, room)

    async def append(self, batch: Sequence[tuple[str, bytes]]) -> None:
        if batch:
            await self._run(self._append, list(batch), time.time())

    async def compact(self, room: str) -> None:
        """Merge snapshot and log into a new snapshot.

        The merge runs on a separate thread, so appends (from this and other
        processes) go on meanwhile; they land after the merged sequence number
        and survive. If another compaction of the room commits a newer snapshot
        first, this one is dropped.
        """
        state = await self._run(self._read_for_compaction, room)
        if state is None:
            return
        merged = await asyncio.to_thread(merge, state.snapshot, state.log)
        await self._run(self._write_compaction, room, state, merged, time.time())

    async def delete(self, room: str) -> None:
        await self._run(self._delete, room)

    async def list_rooms(self) -> list[RoomInfo]:
        return await self._run(self._list_rooms)

    async def _transact(self, operation: Operation[T], write: bool) -> T:
        return await self._run(self._drive, operation, write)

    # --- everything below runs on the store's thread ---------------------------

    def _drive(self, operation: Operation[T], write: bool) -> T:
        with _transaction(self._db(), "BEGIN IMMEDIATE" if write else "BEGIN") as db:
            return comment_sql.drive(operation, partial(comment_sql.run_sqlite, db))

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise StoreError(f"SQLite store {self.path} is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._translated, func, *args))

    def _translated(self, func: Callable[..., T], *args: object) -> T:
        # The one place sqlite3 and file-system errors cross into ysync.
        try:
            return func(*args)
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"SQLite {self.path}: {error}") from error

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"SQLite store {self.path} is not open")
        return self._conn

    def _connect(self) -> None:
        if sqlite3.sqlite_version_info < (3, 35, 0):  # for UPSERT ... RETURNING
            raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old: ysync needs 3.35+")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; each method says BEGIN itself.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            _migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL fails at once with "database is locked"
        # while another process opens it too (no busy handler): retry meanwhile.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                break
            except sqlite3.OperationalError as error:
                busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        if mode != "wal":
            raise StoreError(f"SQLite {self.path}: cannot use WAL mode (got {mode!r})")

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _load(self, room: str) -> list[bytes]:
        # One read transaction: a compaction committing between the two queries
        # must not make us see the old snapshot without the rows it deleted.
        with _transaction(self._db(), "BEGIN") as db:
            snapshot = db.execute("SELECT data FROM snapshots WHERE room = ?", (room,)).fetchone()
            rows = db.execute(
                "SELECT data FROM updates WHERE room = ? ORDER BY seq", (room,)
            ).fetchall()
        updates = [row[0] for row in rows]
        return [snapshot[0], *updates] if snapshot else updates

    def _append(self, batch: list[tuple[str, bytes]], now: float) -> None:
        with _transaction(self._db(), "BEGIN IMMEDIATE") as db:
            # Reserve each room's sequence numbers with one upsert per room.
            next_seq: dict[str, int] = {}
            for room, count in Counter(room for room, _ in batch).items():
                (last,) = db.execute(
                    """INSERT INTO rooms (name, last_seq, last_change) VALUES (?, ?, ?)
                    ON CONFLICT (name) DO UPDATE
                    SET last_seq = last_seq + excluded.last_seq, last_change = excluded.last_change
                    RETURNING last_seq""",
                    (room, count, now),
                ).fetchall()[0]
                next_seq[room] = last - count + 1
            rows = []
            for room, data in batch:
                rows.append((room, next_seq[room], data))
                next_seq[room] += 1
            db.executemany("INSERT INTO updates (room, seq, data) VALUES (?, ?, ?)", rows)

    def _read_for_compaction(self, room: str) -> _CompactionInput | None:
        with _transaction(self._db(), "BEGIN") as db:
            found = db.execute("SELECT id FROM rooms WHERE name = ?", (room,)).fetchone()
            snapshot = db.execute("SELECT data FROM snapshots WHERE room = ?", (room,)).fetchone()
            rows = db.execute(
                "SELECT seq, data FROM updates WHERE room = ? ORDER BY seq", (room,)
            ).fetchall()
        if found is None or not rows:
            return None
        return _CompactionInput(
            room_id=found[0],
            snapshot=snapshot[0] if snapshot else None,
            seqs=[seq for seq, _ in rows],
            log=[data for _, data in rows],
        )

    def _write_compaction(
        self, room: str, state: _CompactionInput, merged: Merged, now: float
    ) -> None:
        upto = state.seqs[-1]
        with _transaction(self._db(), "BEGIN IMMEDIATE") as db:
            found = db.execute("SELECT id FROM rooms WHERE name = ?", (room,)).fetchone()
            if found is None or found[0] != state.room_id:
                return  # deleted (and maybe re-created) meanwhile: our merge is stale
            current = db.execute("SELECT seq FROM snapshots WHERE room = ?", (room,)).fetchone()
            if current is not None and current[0] >= upto:
                return  # another compaction already covered at least as much
            db.execute(
                "INSERT OR REPLACE INTO snapshots (room, seq, data) VALUES (?, ?, ?)",
                (room, upto, merged.snapshot),
            )
            if len(merged.covered) == len(state.seqs):
                db.execute("DELETE FROM updates WHERE room = ? AND seq <= ?", (room, upto))
            else:  # some entries are pending (see merge.py): delete only the others
                db.executemany(
                    "DELETE FROM updates WHERE room = ? AND seq = ?",
                    [(room, state.seqs[i]) for i in merged.covered],
                )
            db.execute("UPDATE rooms SET last_change = ? WHERE id = ?", (now, state.room_id))

    def _delete(self, room: str) -> None:
        with _transaction(self._db(), "BEGIN IMMEDIATE") as db:
            db.execute("DELETE FROM updates WHERE room = ?", (room,))
            db.execute("DELETE FROM snapshots WHERE room = ?", (room,))
            db.execute("DELETE FROM rooms WHERE name = ?", (room,))

    def _list_rooms(self) -> list[RoomInfo]:
        with _transaction(self._db(), "BEGIN") as db:
            rows = db.execute(
                """SELECT r.name,
                    coalesce(s.size, 0) + coalesce(u.size, 0),
                    coalesce(u.n, 0),
                    r.last_change
                FROM rooms r
                LEFT JOIN (SELECT room, length(data) AS size FROM snapshots) s ON s.room = r.name
                LEFT JOIN (SELECT room, count(*) AS n, sum(length(data)) AS size
                           FROM updates GROUP BY room) u ON u.room = r.name
                ORDER BY r.name"""
            ).fetchall()
        return [RoomInfo(name, size, n, changed) for name, size, n, changed in rows]


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[sqlite3.Connection]:
    """`with _transaction(conn, "BEGIN IMMEDIATE") as db:` commits, or rolls back on error."""
    conn.execute(begin)
    try:
        yield conn
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:  # an error before or during COMMIT
            conn.execute("ROLLBACK")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to `SCHEMA_VERSION`. Idempotent; the write lock makes
    processes opening the same file at once migrate one after the other."""
    with _transaction(conn, "BEGIN IMMEDIATE") as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite {path}: schema version {version} is newer than this ysync "
                f"supports ({SCHEMA_VERSION}); upgrade ysync"
            )
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
