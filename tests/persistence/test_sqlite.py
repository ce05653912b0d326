"""SQLite specifics: file set-up, errors at the boundary, several processes, kills."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pycrdt import Doc, Map

from ysync.persistence.sqlite import SCHEMA_VERSION, SQLiteStore
from ysync.rooms.protocols import StoreError

# A child process: open the store, put `count` keys of its own into room
# "shared" in small batches, compacting now and then; print each committed key.
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pycrdt import Doc, Map
    from ysync.persistence.sqlite import SQLiteStore

    async def main(path, name, count, preload):
        doc = Doc()
        keys = doc.get("map", type=Map)
        updates = []
        doc.observe(lambda event: updates.append(event.update))
        for i in range(preload + count):
            keys[f"{name}-{i}"] = i
        store = SQLiteStore(path)
        await store.open()
        if preload:
            await store.append([("shared", update) for update in updates[:preload]])
        print("ready", flush=True)
        for i in range(preload, preload + count, 2):
            await store.append([("shared", update) for update in updates[i : i + 2]])
            print(i, i + 1, flush=True)
            if i % 20 == 0:
                await store.compact("shared")
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
)


def writer(path: Path, name: str, count: int, preload: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(count), str(preload)],
        stdout=subprocess.PIPE,
        text=True,
    )


def keys_in(path: Path) -> set[str]:
    async def load() -> list[bytes]:
        async with SQLiteStore(path) as store:
            return await store.load("shared")

    doc: Doc = Doc()
    for update in asyncio.run(load()):
        doc.apply_update(update)
    return set(doc.get("map", type=Map).keys())


def test_two_processes_appending_and_compacting_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    children = [writer(path, name, 200) for name in ("left", "right")]
    for child in children:
        child.communicate(timeout=60)
        assert child.returncode == 0
    assert keys_in(path) == {f"{name}-{i}" for name in ("left", "right") for i in range(200)}


def test_a_process_killed_mid_compaction_loses_no_committed_update(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    for run in range(3):
        name = f"run{run}"
        child = writer(path, name, count=3000, preload=5000)
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        time.sleep(random.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        output, _err = child.communicate(timeout=10)
        committed = {f"{name}-{i}" for i in range(5000)}
        committed |= {f"{name}-{i}" for line in output.splitlines() for i in map(int, line.split())}
        assert committed <= keys_in(path)


def test_the_file_uses_wal_and_full_synchronous_commits(tmp_path: Path) -> None:
    async def main() -> None:
        async with SQLiteStore(tmp_path / "deep" / "er" / "ysync.db") as store:
            synchronous = await store._run(
                lambda: store._db().execute("PRAGMA synchronous").fetchone()[0]
            )
            assert synchronous == 2  # FULL
            assert "synchronous=FULL" in store.describe()

    asyncio.run(main())
    with sqlite3.connect(tmp_path / "deep" / "er" / "ysync.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_an_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(StoreError, match="a-file"):
        asyncio.run(SQLiteStore(tmp_path / "a-file" / "ysync.db").open())


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(StoreError, match="not a database"):
        asyncio.run(SQLiteStore(path).open())


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this ysync supports"):
        asyncio.run(SQLiteStore(path).open())


def test_a_broken_database_is_an_error_not_an_empty_room(tmp_path: Path) -> None:
    async def main() -> None:
        async with SQLiteStore(tmp_path / "broken.db") as store:
            await store.append([("room", b"\x00\x00")])
            with sqlite3.connect(tmp_path / "broken.db") as conn:
                conn.execute("DROP TABLE updates")
            conn.close()
            with pytest.raises(StoreError, match="no such table"):
                await store.load("room")
            with pytest.raises(StoreError):
                await store.list_rooms()

    asyncio.run(main())
