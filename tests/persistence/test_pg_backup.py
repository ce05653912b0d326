"""docs/deploy.md's scheduled-dump backup: `pg_dump --format=custom` of the database of a
running ysync node, restored with `pg_restore` into an empty database, serves every edit
committed before the dump (and none made after it)."""

from __future__ import annotations

import asyncio
import glob
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pycrdt import Doc, Map

from ysync.clients import connect
from ysync.persistence.urls import open_store

from support.aio import run
from support.servers import YsyncProcess

ROOMS = [f"backup/{n}" for n in range(5)]


def client_binary(name: str) -> str:
    # The client tools of the newest installed PostgreSQL (Debian keeps them off PATH).
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    assert found[-1], f"{name} is not installed (apt-get install postgresql)"
    return str(found[-1])


async def set_key(server: YsyncProcess, room: str, key: str) -> None:
    async with connect(server.ws_url, room) as session:
        await session.synced(10)
        session.doc.get("map", type=Map)[key] = key
        await session.flush(10)  # the server has applied it


async def committed(store_url: str, room: str, key: str) -> None:
    """Wait until the store holds `key` in `room` (commits follow within the flush window)."""
    async with asyncio.timeout(10):
        while True:
            store = await open_store(store_url)
            try:
                updates = await store.load(room)
            finally:
                await store.close()
            doc = Doc()
            for update in updates:
                doc.apply_update(update)
            if key in doc.get("map", type=Map):
                return
            await asyncio.sleep(0.05)


async def served_keys(server: YsyncProcess, room: str) -> set[str]:
    async with connect(server.ws_url, room) as session:
        await session.synced(10)
        return set(session.doc.get("map", type=Map).keys())


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_a_dump_of_a_live_store_restores_what_was_committed(
    postgres_url: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    dump = tmp_path / "ysync.dump"
    with YsyncProcess(store=postgres_url, log_path=tmp_path / "before.log") as server:
        for room in ROOMS:
            run(set_key(server, room, "before"))
            run(committed(postgres_url, room, "before"))
        # The CronJob's command, against the live database.
        pg_dump = [client_binary("pg_dump"), "--format=custom", "--file", str(dump)]
        subprocess.run([*pg_dump, "--dbname", postgres_url], check=True)
        run(set_key(server, ROOMS[0], "after"))

    name = f"ysync_restore_{uuid.uuid4().hex[:12]}"
    restored = urlunsplit(urlsplit(postgres_admin_url)._replace(path=f"/{name}"))
    run(admin(postgres_admin_url, f'CREATE DATABASE "{name}"'))
    try:
        restore = [client_binary("pg_restore"), "--no-owner", "--exit-on-error"]
        subprocess.run([*restore, "--dbname", restored, str(dump)], check=True)
        with YsyncProcess(store=restored, log_path=tmp_path / "after.log") as server:
            served = {room: run(served_keys(server, room)) for room in ROOMS}
    finally:
        run(admin(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert served == {room: {"before"} for room in ROOMS}
