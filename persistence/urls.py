"""Store URLs (`--store` / `YSYNC_STORE`) → an opened store.

memory://                    in-process, lost on exit (`memory` works too)
sqlite:///./data/ysync.db    a file, relative to the working directory
sqlite:////var/lib/ysync.db  an absolute path (four slashes)
postgresql://user:pw@host:5432/db   (or postgres://)
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from ysync.rooms.protocols import Store

SUPPORTED = ("memory://", "sqlite:///PATH", "postgresql://...", "postgres://...")


class OpenedStore(Store, Protocol):
    """A `Store` as `open_store` returns it: ready to use, and able to say what it is."""

    durable: bool  # False: everything is lost when the process exits

    def describe(self) -> str:
        """One line for the start-up log; never holds a password."""
        ...


async def open_store(url: str) -> OpenedStore:
    """Open the store `url` names (see the module doc); `close()` it when done.

    Raises `ValueError` for a URL this function does not understand and
    `StoreError` when the store cannot be opened.
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "memory":
        if url.lower() not in ("memory", "memory:", "memory://"):
            raise ValueError(f"memory store URL takes no path: {url!r}; use 'memory://'")
        from ysync.persistence.memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from ysync.persistence.sqlite import SQLiteStore

        sqlite = SQLiteStore(sqlite_path(url))
        await sqlite.open()
        return sqlite
    if scheme in ("postgresql", "postgres"):
        # Imported here so asyncpg is needed only by those who use PostgreSQL.
        from ysync.persistence.postgres import PostgresStore

        postgres = PostgresStore(url)
        await postgres.open()
        return postgres
    raise ValueError(f"unsupported store URL {url!r}: expected one of {', '.join(SUPPORTED)}")


def sqlite_path(url: str) -> Path:
    """`sqlite:///rel/path.db` → `rel/path.db`; `sqlite:////abs/path.db` → `/abs/path.db`."""
    prefix = "sqlite:///"
    if not url.lower().startswith(prefix) or "?" in url or "#" in url:
        raise ValueError(
            f"bad SQLite store URL {url!r}: use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = unquote(url[len(prefix) :])
    if not path or path.endswith("/") or path == ":memory:":
        raise ValueError(f"bad SQLite store URL {url!r}: it names no database file")
    return Path(path)
