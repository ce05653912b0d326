"""Deleting a room on two real nodes (real redis-server, one SQLite store): JS clients closed
with 4410 and not reconnecting, every row of the room gone, an offline client's reconnect
refused instead of resurrecting it; export and import of a room archive."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from ysync.persistence.comment_sql import ROOM_TABLES

from support.aio import run
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess

ROOM = "gdpr/case"
API = "/api/rooms/gdpr%2Fcase"
THREAD = {
    "body": {"version": 1, "content": [{"type": "paragraph", "children": [{"text": "hi"}]}]},
    "anchor": {"kind": "none"},
}


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[list[YsyncProcess], Path]]:
    with RedisProcess() as redis, ExitStack() as stack:
        db = tmp_path / "shared.db"
        nodes = [YsyncProcess("--redis-url", redis.url, store=f"sqlite:///{db}") for _ in range(2)]
        for node in nodes:
            stack.enter_context(node)
        yield nodes, db


def rows_of(db: Path, room: str) -> dict[str, int]:
    tables = {"rooms": "name", "updates": "room", "snapshots": "room", "ysync_versions": "room"}
    tables |= {"ysync_webhook_outbox": "room", "ysync_seeded": "room"}
    tables.update({table: "room" for table in ROOM_TABLES})
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} = ?", (room,)
            ).fetchone()[0]
            for table, column in tables.items()
        }


def test_delete_closes_clients_everywhere_removes_every_row_and_stays_deleted(
    two_nodes: tuple[list[YsyncProcess], Path], js_clients_dir: Path
) -> None:
    (a, b), db = two_nodes

    async def main() -> None:
        async with (
            JSClient.start(js_clients_dir) as on_a,
            JSClient.start(js_clients_dir) as on_b,
            JSClient.start(js_clients_dir) as offline,
            httpx.AsyncClient(base_url=a.http_url, timeout=20) as api,
        ):
            for client, node in ((on_a, a), (on_b, b), (offline, b)):
                await client.call("connect", url=node.ws_url, room=ROOM)
                await client.call("wait_synced")
            await on_a.call("text_insert", name="t", index=0, value="personal data")
            for client in (on_b, offline):
                await client.call("wait_for", name="t", kind="text", equals="personal data")
            assert (await api.post(f"{API}/threads", json=THREAD)).status_code == 201
            assert (await api.post(f"{API}/versions", json={"name": "v1"})).status_code == 201
            await offline.call("disconnect")
            await offline.call("text_insert", name="t", index=0, value="offline ")

            deleted = await api.delete(API)
            assert deleted.status_code == 200, deleted.text
            for client in (on_a, on_b):
                close = (await client.call("wait_close"))["close"]
                assert (close["code"], close["reason"]) == (4410, "room deleted")
                status = await client.call("status")
                assert status["terminal_close"]["code"] == 4410 and not status["should_connect"]

            counts = rows_of(db, ROOM)
            assert set(counts.values()) == {0}, counts

            await offline.call("reconnect")
            close = (await offline.call("wait_close"))["close"]
            assert close["code"] == 4410
            assert set(rows_of(db, ROOM).values()) == {0}
            async with httpx.AsyncClient(base_url=b.http_url, timeout=20) as api_b:
                refused = await api_b.post(
                    f"{API}/doc",
                    json={"ops": [{"op": "insert", "root": "t", "index": 0, "text": "x"}]},
                )
                assert refused.status_code == 410 and refused.json()["code"] == "room_deleted"
            with sqlite3.connect(db) as conn:
                tombstone = conn.execute(
                    "SELECT expires_at - deleted_at FROM ysync_tombstones WHERE room = ?", (ROOM,)
                ).fetchone()
            assert tombstone[0] == pytest.approx(30 * 86400)

    run(main(), timeout=90)


def test_an_export_imports_into_an_empty_room_with_its_versions_and_comments(
    tmp_path: Path,
) -> None:
    with (
        YsyncProcess(store=f"sqlite:///{tmp_path}/x.db") as server,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        op = {"op": "set", "root": "m", "key": "k", "value": "kept"}
        assert api.post(f"{API}/doc", json={"ops": [op]}).status_code == 200
        assert api.post(f"{API}/versions", json={"name": "v1"}).status_code == 201
        assert api.post(f"{API}/threads", json=THREAD).status_code == 201
        archive: dict[str, Any] = api.get(f"{API}/export").json()
        assert archive["format"] == "ysync-room" and set(archive["parts"]) >= {
            "CommentsExtension",
            "VersionsExtension",
        }

        copy = "/api/rooms/copy"
        assert api.post(f"{copy}/import", json=archive).status_code == 200, "import"
        assert api.get(f"{copy}/doc").json()["content"] == {"m": {"k": "kept"}}
        assert [v["name"] for v in api.get(f"{copy}/versions").json()["versions"]] == ["v1"]
        assert len(api.get(f"{copy}/threads").json()["threads"]) == 1

        again = api.post(f"{copy}/import", json=archive)
        assert again.status_code == 409 and again.json()["code"] == "room_not_empty"
        bad = api.post("/api/rooms/other/import", json={"format": "zip"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_archive"

        # An owner importing into a deleted room recreates it.
        assert api.delete(copy).status_code == 200
        assert api.post(f"{copy}/doc", json={"ops": [op]}).status_code == 410
        assert api.post(f"{copy}/import", json=archive).status_code == 200
        assert api.get(f"{copy}/doc").json()["content"] == {"m": {"k": "kept"}}
