"""PostgreSQL specifics: migrations, driver errors at the boundary, reconnecting."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ysync.loadtest.servers import free_port
from ysync.persistence.postgres import SCHEMA_VERSION, PostgresStore
from ysync.rooms.protocols import StoreError


def test_a_refused_connection_is_a_store_error() -> None:
    store = PostgresStore(f"postgresql://ysync:secret@127.0.0.1:{free_port()}/ysync")
    with pytest.raises(StoreError, match="connect"):
        asyncio.run(store.open())


def test_nodes_starting_at_once_migrate_once(postgres_url: str) -> None:
    async def main() -> None:
        stores = [PostgresStore(postgres_url, min_size=1, max_size=2) for _ in range(5)]
        await asyncio.gather(*(store.open() for store in stores))
        for store in stores:
            await store.close()
        conn = await asyncpg.connect(postgres_url)
        try:
            versions = await conn.fetch("SELECT version FROM ysync_schema_version")
        finally:
            await conn.close()
        assert [row[0] for row in versions] == list(range(1, SCHEMA_VERSION + 1))

    asyncio.run(main())


def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    async def main() -> None:
        async with PostgresStore(postgres_url):
            pass
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(
                "INSERT INTO ysync_schema_version (version) VALUES ($1)", SCHEMA_VERSION + 1
            )
        finally:
            await conn.close()
        with pytest.raises(StoreError, match="newer than this ysync supports"):
            await PostgresStore(postgres_url).open()

    asyncio.run(main())


def test_a_broken_database_is_an_error_not_an_empty_room(postgres_url: str) -> None:
    async def main() -> None:
        async with PostgresStore(postgres_url) as store:
            await store.append([("room", b"\x00\x00")])
            conn = await asyncpg.connect(postgres_url)
            try:
                await conn.execute("DROP TABLE ysync_updates")
            finally:
                await conn.close()
            with pytest.raises(StoreError, match="ysync_updates"):
                await store.load("room")

    asyncio.run(main())


def test_the_store_recovers_after_its_connections_are_killed(postgres_url: str) -> None:
    async def main() -> None:
        async with PostgresStore(postgres_url, min_size=2, max_size=2) as store:
            await store.append([("room", b"\x00\x00")])
            conn = await asyncpg.connect(postgres_url)
            try:
                await conn.execute(
                    """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()"""
                )
            finally:
                await conn.close()
            # A call may fail (as StoreError, never anything else); then the pool reconnects.
            for _ in range(5):
                try:
                    assert await store.load("room") == [b"\x00\x00"]
                    break
                except StoreError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the store did not recover")

    asyncio.run(main())


def test_describe_never_shows_the_password() -> None:
    store = PostgresStore("postgresql://alice:s3cret@db.example:6543/docs?sslmode=require")
    assert store.describe() == "PostgreSQL postgresql://alice@db.example:6543/docs (pool 1..10)"
    assert store.durable
