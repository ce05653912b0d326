"""The SDK and the CLI for presence and locks, against an in-process server (auth off)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from ysync.clients import connect
from ysync.clients.http import AsyncClient, Client, HTTPError
from ysync.server import create_app
from ysync.server.cli import main
from ysync.server.settings import Settings

from support.aio import run
from support.threaded_server import ThreadedServer


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app(Settings(store="memory://", demo=False))) as running:
        yield running


def test_presence_and_locks_through_the_async_sdk(server: ThreadedServer) -> None:
    room = "sdk/board"

    async def scenario() -> None:
        async with AsyncClient(server.http_url) as api:
            assert await api.presence(room) == []
            agent = await api.add_presence(room, {"thinking": True}, ttl=30)
            (user,) = await api.presence(room)
            assert user["state"] == {"thinking": True} and user["anonymous"] is True
            async with api.lock(room, "frame/1") as held:
                assert held["fence"] >= 1
                with pytest.raises(HTTPError) as refused:
                    await api.acquire_lock(room, "frame/1")
                assert refused.value.status == 409
                assert [lock["elementId"] for lock in await api.locks(room)] == ["frame/1"]
            assert await api.locks(room) == []
            await api.remove_presence(room, agent["presenceId"])
            assert await api.presence(room) == []

    run(scenario())


def test_a_sessions_presence_lists_verified_users(server: ThreadedServer) -> None:
    async def scenario() -> None:
        async with (
            connect(server.ws_url, "sdk/session") as me,
            connect(server.ws_url, "sdk/session") as other,
        ):
            await me.synced()
            await other.synced()
            other.awareness.set_local_state({"cursor": 1})
            await me.awareness.wait_for(lambda s: other.doc.client_id in s, 5)
            (user,) = me.presence()
            assert user["anonymous"] is True and user["connections"] == 1
            assert user["state"] == {"cursor": 1}

    run(scenario())


def test_blocking_sdk_lock_and_the_cli(
    server: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    room = "sdk/cli"
    with Client(server.http_url) as api:
        api.add_presence(room, {"cursor": 3}, ttl=30)
        with api.lock(room, "layer 2"):
            assert main(["locks", room, "--url", server.http_url, "--json"]) == 0
            (line,) = capsys.readouterr().out.splitlines()
            assert json.loads(line)["elementId"] == "layer 2"
        assert api.locks(room) == []
    assert main(["presence", room, "--url", server.http_url]) == 0
    out = capsys.readouterr().out
    assert "Anonymous" in out and '"cursor": 3' in out
    assert main(["locks", room, "--url", "http://127.0.0.1:1"]) == 1  # unreachable: error


def test_a_user_without_changes_turns_idle() -> None:
    settings = Settings(store="memory://", demo=False, presence_idle_after=0.5)
    with ThreadedServer(create_app(settings)) as running:

        async def scenario() -> None:
            async with AsyncClient(running.http_url) as api:
                await api.add_presence("sdk/idle", {"typing": False}, ttl=30)
                (user,) = await api.presence("sdk/idle")
                assert user["idle"] is False
                for _ in range(100):  # bounded: 5 s
                    (user,) = await api.presence("sdk/idle")
                    if user["idle"]:
                        break
                    await asyncio.sleep(0.05)
                assert user["idle"] is True

        run(scenario())
