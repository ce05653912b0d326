"""Comments across real nodes and restarts: an SSE subscriber of node B sees a comment made
on node A; threads survive a restart; a deleted room leaves no comment rows; archives."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from ysync.persistence.comment_sql import ROOM_TABLES
from ysync.server import create_app
from ysync.server.settings import Settings

from support.aio import run
from support.servers import RedisProcess, YsyncProcess
from support.threaded_server import ThreadedServer

ROOM = "team/review"
PATH = "/api/rooms/team%2Freview/threads"


def body(text: str, *mentions: str) -> dict[str, Any]:
    children: list[dict[str, Any]] = [{"text": text}]
    children += [{"type": "mention", "id": user} for user in mentions]
    return {"version": 1, "content": [{"type": "paragraph", "children": children}]}


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[list[YsyncProcess]]:
    with RedisProcess() as redis, ExitStack() as stack:
        store = f"sqlite:///{tmp_path}/shared.db"
        nodes = [
            YsyncProcess("--redis-url", redis.url, store=store, log_path=tmp_path / f"n{i}.log")
            for i in range(2)
        ]
        for node in nodes:
            stack.enter_context(node)
        yield nodes


async def next_event(lines: Any, kind: str) -> dict[str, Any]:
    """The data of the next SSE event of type `kind`."""
    current = None
    async for line in lines:
        if line.startswith("event: "):
            current = line[len("event: ") :]
        elif line.startswith("data: ") and current == kind:
            event: dict[str, Any] = json.loads(line[len("data: ") :])
            return event
    raise AssertionError(f"the stream ended before a {kind} event")


def test_a_comment_made_on_node_a_reaches_an_sse_subscriber_of_node_b(
    two_nodes: list[YsyncProcess],
) -> None:
    a, b = two_nodes

    async def main() -> None:
        async with (
            httpx.AsyncClient(base_url=a.http_url, timeout=10) as on_a,
            httpx.AsyncClient(base_url=b.http_url, timeout=10) as on_b,
            on_b.stream("GET", f"/api/rooms/{ROOM.replace('/', '%2F')}/events") as feed,
        ):
            assert feed.status_code == 200  # subscribed on B (locally and on the bus)
            lines = feed.aiter_lines()
            thread = (await on_a.post(PATH, json={"body": body("on A")})).json()
            created = await next_event(lines, "thread.created")
            assert created["data"]["thread"]["id"] == thread["id"]
            reply = await on_a.post(f"{PATH}/{thread['id']}/comments", json={"body": body("hi B")})
            seen = await next_event(lines, "comment.created")
            assert seen["room"] == ROOM and seen["data"]["comment"]["id"] == reply.json()["id"]
            assert seen["data"]["comment"]["text"] == "hi B"
            # Both nodes read the same threads.
            assert (await on_b.get(f"{PATH}/{thread['id']}")).json()["comments"][1][
                "text"
            ] == "hi B"

    run(main())
    # And they survive a restart.
    a.restart()
    listed = httpx.get(a.http_url + PATH, timeout=10).json()["threads"]
    assert [c["text"] for c in listed[0]["comments"]] == ["on A", "hi B"]


def test_a_deleted_room_leaves_no_comment_rows_and_archives_carry_them(tmp_path: Path) -> None:
    database = tmp_path / "ysync.db"
    settings = Settings(store=f"sqlite:///{database}", demo=False)
    with (
        ThreadedServer(create_app(settings)) as server,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        thread = api.post(PATH, json={"body": body("x", "bob"), "metadata": {"k": "v"}}).json()
        one = f"{PATH}/{thread['id']}"
        reply = api.post(one + "/comments", json={"body": body("y")}).json()
        api.post(f"{one}/comments/{reply['id']}/reactions", json={"emoji": "👍"})
        api.put(one + "/subscription", json={"state": "muted"})
        api.post("/api/rooms/other/threads", json={"body": body("kept")})

        node = server.app.state.ysync

        def on_loop(coro: Any) -> Any:
            assert server.loop is not None
            return asyncio.run_coroutine_threadsafe(coro, server.loop).result(10)

        archive = on_loop(node.extensions.export(ROOM))
        assert [t["id"] for t in archive["CommentsExtension"]["tables"]["threads"]] == [
            thread["id"]
        ]
        on_loop(node.extensions.delete(ROOM))
        with sqlite3.connect(database) as db:
            left = {
                table: db.execute(
                    f"SELECT count(*) FROM {table} WHERE room = ?", (ROOM,)
                ).fetchone()[0]
                for table in ROOM_TABLES
            }
            kept = db.execute("SELECT count(*) FROM ysync_threads WHERE room = 'other'").fetchone()[
                0
            ]
        assert left == dict.fromkeys(ROOM_TABLES, 0)
        assert kept == 1
        assert api.get(one).status_code == 404

        on_loop(node.extensions.import_(ROOM, archive))
        restored = api.get(one).json()
        assert [c["text"] for c in restored["comments"]] == ["x@bob", "y"]
        assert restored["comments"][1]["reactions"] == {"👍": ["anonymous"]}
