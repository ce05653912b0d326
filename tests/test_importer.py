"""`ysync import` on stores written by the real peers, then read back through ysync.

The stores are made by running the peers themselves: Hocuspocus 3 with
@hocuspocus/extension-sqlite and the y-websocket server with y-leveldb (npm,
tests/peers, edited through their real providers), and pycrdt-store's
SQLiteYStore (PyPI). Each import is run twice: the second adds nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text
from pycrdt.store import SQLiteYStore

from ysync.loadtest.servers import terminate
from ysync.persistence.urls import open_store

from support import aio
from support.jsclient import JSClient, ensure_node_modules
from support.servers import free_port

PEERS = Path(__file__).parent / "peers"
pytestmark = pytest.mark.timeout(600)  # the first install builds sqlite3 from source
# With SQLite's headers installed, node-gyp builds the sqlite3 addon against the
# system library: four small C++ files instead of the 9 MB amalgamation (about
# 10 s of CPU instead of 55 s on a 2-core machine). The prebuilt binaries would
# come from GitHub, which the test machines cannot reach.
SYSTEM_SQLITE = Path("/usr/include/sqlite3.h")
CONTENT = {"notes/a": "alpha", "notes/b": "beta βeta", "solo": "only one"}


@pytest.fixture(scope="session")
def peers_dir() -> Path:
    """tests/peers installed in a cache outside the checkout, keyed by its lock: the
    first install builds the sqlite3 addon (see SYSTEM_SQLITE), later ones and fresh
    clones on the same machine reuse it."""
    lock = (PEERS / "package-lock.json").read_bytes()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    target = base / "ysync-test-peers" / hashlib.sha256(lock).hexdigest()[:16]
    target.mkdir(parents=True, exist_ok=True)
    for path in PEERS.iterdir():
        copy = target / path.name
        # Only when changed: a fresh mtime on package-lock.json would re-run `npm ci`.
        if path.is_file() and (not copy.exists() or copy.read_bytes() != path.read_bytes()):
            shutil.copyfile(path, copy)
    with pytest.MonkeyPatch.context() as env:
        if SYSTEM_SQLITE.exists():
            env.setenv("npm_config_sqlite", str(SYSTEM_SQLITE.parent.parent))
        ensure_node_modules(target)
    return target


def ysync_import(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ysync", "import", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def stored_texts(store_url: str, names: list[str]) -> dict[str, str]:
    async def read() -> dict[str, str]:
        store = await open_store(store_url)
        try:
            texts = {}
            for name in names:
                doc: Doc[Any] = Doc()
                for update in await store.load(name):
                    doc.apply_update(update)
                texts[name] = str(doc.get("t", type=Text))
            return texts
        finally:
            await store.close()

    return aio.run(read())


def rows(store_url: str) -> int:
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
        return int(db.execute("SELECT count(*) FROM updates").fetchone()[0])


@contextmanager
def node_server(peers_dir: Path, args: list[str], env: dict[str, str]) -> Iterator[int]:
    port = free_port()
    node = shutil.which("node")
    assert node is not None
    proc = subprocess.Popen(
        [node, *args],
        cwd=peers_dir,
        env={**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        aio.run(_listening(port, proc))
        yield port
    finally:
        terminate(proc)


async def _listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(20):
        while True:
            assert proc.poll() is None, "the peer exited at start"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


def check_import(source: str, path: Path, tmp_path: Path) -> str:
    store = f"sqlite:///{tmp_path / 'ysync.db'}"
    dry = ysync_import(source, str(path), "--store", store, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would import {len(CONTENT)} documents" in dry.stdout
    assert not (tmp_path / "ysync.db").exists()  # a dry run writes nothing
    first = ysync_import(source, str(path), "--store", store)
    assert first.returncode == 0, first.stderr
    assert f"imported {len(CONTENT)} documents" in first.stdout and "0 failed" in first.stdout
    assert stored_texts(store, list(CONTENT)) == CONTENT
    before = rows(store)
    again = ysync_import(source, str(path), "--store", store)
    assert again.returncode == 0, again.stderr
    assert f"imported 0 documents (0 bytes), {len(CONTENT)} unchanged" in again.stdout
    assert rows(store) == before and stored_texts(store, list(CONTENT)) == CONTENT
    return store


def test_hocuspocus_sqlite_store(peers_dir: Path, js_clients_dir: Path, tmp_path: Path) -> None:
    database = tmp_path / "hocuspocus.sqlite"
    with node_server(peers_dir, ["hocuspocus-sqlite.mjs", str(database)], {}) as port:

        async def write() -> None:
            async with JSClient.start(js_clients_dir, "hpclient.mjs") as client:
                await client.call("connect", url=f"ws://127.0.0.1:{port}", version=3)
                for name, text in CONTENT.items():
                    await client.call("open", doc=name)
                    await client.call("wait", doc=name, until="synced", timeout_ms=10_000)
                    await client.call("edit", doc=name, kind="text", name="t", value=text)
                    await client.call("wait", doc=name, until="unsynced_zero")
                await client.call("disconnect")
            # Hocuspocus stores a document when its last client leaves.
            async with asyncio.timeout(20):
                while _count(database, "documents") < len(CONTENT):
                    await asyncio.sleep(0.1)

        aio.run(write(), timeout=60)
    check_import("hocuspocus-sqlite", database, tmp_path)


def test_y_websocket_leveldb_directory(
    peers_dir: Path, js_clients_dir: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "leveldb"
    server_js = "node_modules/@y/websocket-server/src/server.js"
    with node_server(peers_dir, [server_js], {"YPERSISTENCE": str(directory)}) as port:

        async def write() -> None:
            # One writer and one reader process; `destroy` closes the provider's socket
            # cleanly (after what it sent) and drops its doc, so the next `connect` is a
            # new client of the next document.
            async with (
                JSClient.start(js_clients_dir) as writer,
                JSClient.start(js_clients_dir) as reader,
            ):
                for name, text in CONTENT.items():
                    await writer.call("connect", url=f"ws://127.0.0.1:{port}", room=name)
                    await writer.call("wait_synced")
                    await writer.call("text_insert", name="t", index=0, value=text)
                    await writer.call("map_set", name="m", key="k", value=1)
                    await writer.call("destroy")
                    # What the server holds is in LevelDB: a fresh client reads it back.
                    await reader.call("connect", url=f"ws://127.0.0.1:{port}", room=name)
                    await reader.call("wait_for", name="t", kind="text", equals=text)
                    await reader.call("destroy")

        aio.run(write(), timeout=60)
    store = check_import("y-leveldb", directory, tmp_path)

    async def maps() -> object:
        opened = await open_store(store)
        doc: Doc[Any] = Doc()
        for update in await opened.load("notes/a"):
            doc.apply_update(update)
        await opened.close()
        return doc.get("m", type=Map).to_py()

    assert aio.run(maps()) == {"k": 1.0}


def test_pycrdt_store_sqlite(tmp_path: Path) -> None:
    database = tmp_path / "ystore.db"

    class YStore(SQLiteYStore):  # how pycrdt-store is configured: a subclass
        db_path = str(database)

    async def write() -> None:
        for name, text in CONTENT.items():
            doc: Doc[Any] = Doc()
            updates: list[bytes] = []
            doc.observe(lambda event, kept=updates: kept.append(event.update))
            async with YStore(name) as ystore:
                doc["t"] = t = Text()
                for i, piece in enumerate(text.split(" ")):  # several updates per document
                    t += piece if i == 0 else " " + piece
                for update in updates:
                    await ystore.write(update)

    aio.run(write())
    check_import("pycrdt-sqlite", database, tmp_path)


def test_a_directory_of_update_files_and_what_does_not_decode(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    for name, text in CONTENT.items():
        doc: Doc[Any] = Doc()
        doc["t"] = Text(text)
        path = exports / f"{name}{'.ysync' if name == 'solo' else '.bin'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(doc.get_update())
    store = check_import("files", exports, tmp_path)
    (exports / "broken.bin").write_bytes(b"\xff\xfe not an update")
    (exports / "readme.txt").write_text("ignored: not .bin or .ysync")
    result = ysync_import("files", str(exports), "--store", store)
    assert result.returncode == 1  # one document failed; the others were still checked
    assert f"0 documents (0 bytes), {len(CONTENT)} unchanged, 1 failed" in result.stdout
    assert "broken: not a Yjs update" in result.stdout
    missing = ysync_import("hocuspocus-sqlite", str(tmp_path / "nope.sqlite"), "--store", store)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def _count(database: Path, table: str) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return 0
