"""Initial content, once: 20 clients on 3 real nodes (real redis-server, one SQLite store)
join a new room at the same moment and the seed appears exactly once, though the host's
hook makes a different update on every call; seed files in each accepted form."""

from __future__ import annotations

import asyncio
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text

from ysync.clients.session import connect
from ysync.rooms.doc_render import render
from ysync.rooms.hooks import Hooks
from ysync.server import create_app
from ysync.server.seeding import read_seed
from ysync.server.settings import Settings

from support.aio import run, wait_until
from support.servers import RedisProcess
from support.threaded_server import ThreadedServer

SEED = "Seeded once. "


class FreshSeed(Hooks):
    """Each call a new update (a new client id): applied twice, it would be there twice."""

    async def seed_document(self, room: str) -> bytes | None:
        doc: Doc[Any] = Doc()
        doc.get("t", type=Text).insert(0, SEED)
        return doc.get_update()


def test_twenty_clients_on_three_nodes_joining_at_once_see_the_seed_exactly_once(
    tmp_path: Path,
) -> None:
    with RedisProcess() as redis, ExitStack() as stack:
        settings = Settings(
            store=f"sqlite:///{tmp_path}/seed.db", redis_url=redis.url, gc_tuning=False
        )
        nodes = [
            stack.enter_context(ThreadedServer(create_app(settings, FreshSeed()))) for _ in range(3)
        ]

        async def main() -> None:
            sessions = [
                connect(nodes[i % 3].ws_url, "new/room", reconnect=False) for i in range(20)
            ]
            async with contextlib_all(sessions) as opened:
                await asyncio.gather(*(session.synced() for session in opened))
                for session in opened:
                    text = session.doc.get("t", type=Text)
                    await wait_until(lambda text=text: str(text) == SEED, timeout=15)
                for node in nodes:
                    async with httpx.AsyncClient(base_url=node.http_url) as api:
                        body = (await api.get("/api/rooms/new%2Froom/doc")).json()
                    assert body["content"]["t"] == SEED

        run(main(), timeout=60)


class contextlib_all:
    """Enter every session at once (they connect concurrently); close them all on exit."""

    def __init__(self, sessions: list[Any]) -> None:
        self.sessions = sessions

    async def __aenter__(self) -> list[Any]:
        return list(await asyncio.gather(*(session.start() for session in self.sessions)))

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(session.close() for session in self.sessions))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (json.dumps({"t": "hello", "m": {"k": 1}}), {"t": "hello", "m": {"k": 1}}),
        (
            json.dumps({"ops": [{"op": "insert", "root": "a", "index": 0, "values": [1]}]}),
            {"a": [1]},
        ),
    ],
)
def test_a_json_seed_file_is_the_same_update_every_time(
    tmp_path: Path, content: str, expected: dict[str, Any]
) -> None:
    path = tmp_path / "seed.json"
    path.write_text(content)
    update = read_seed(str(path))
    assert read_seed(str(path)) == update  # the same bytes on every node
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    assert render(doc)["content"] == expected


def test_a_binary_seed_is_taken_as_is_and_a_bad_file_is_named(tmp_path: Path) -> None:
    doc: Doc[Any] = Doc()
    doc.get("t", type=Text).insert(0, "binary")
    (tmp_path / "seed.bin").write_bytes(doc.get_update())
    assert read_seed(str(tmp_path / "seed.bin")) == doc.get_update()
    (tmp_path / "bad").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ValueError, match="neither JSON nor a Yjs update"):
        read_seed(str(tmp_path / "bad"))
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="object"):
        read_seed(str(tmp_path / "list.json"))
    with pytest.raises(ValueError, match="missing"):
        read_seed(str(tmp_path / "missing"))


def test_serve_refuses_a_bad_seed_file_with_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "seed.json"
    bad.write_text("[1]")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ysync",
            "serve",
            "--store",
            "memory://",
            "--seed-document",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"ysync: error: --seed-document {bad}: a JSON seed is an object"
