"""`ysync.clients.http` against a real server, sync and async, plus error mapping."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from ysync.clients import ConnectError, connect
from ysync.clients.http import AsyncClient, Client, HTTPError, Readiness, RoomInfo, http_base_url

from support import aio
from support import authtokens as tk
from support.servers import YsyncProcess, free_port


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=30)


def test_sync_client_health_ready_and_rooms(server: YsyncProcess) -> None:
    async def scenario() -> None:
        async with (
            connect(server.ws_url, "http/room") as a,
            connect(server.ws_url, "http/room") as b,
        ):
            await a.synced()
            await b.synced()
            a.awareness.set_local_state({"user": "a"})
            await b.awareness.wait_for(lambda s: a.doc.client_id in s, 5)
            # The blocking client from a thread, while the sessions stay connected.
            rooms = await asyncio.to_thread(rooms_now, server.ws_url)  # a ws:// URL works too
            assert RoomInfo("http/room", 2, 1) in rooms.rooms
            assert rooms.connections >= 2
            detail = await asyncio.to_thread(room_now, server.ws_url, "http/room")
            assert detail["name"] == "http/room" and len(detail["connections"]) == 2

    run(scenario())
    with Client(server.http_url) as api:
        assert api.health() == {"status": "ok"}
        assert api.ready() == Readiness(True, ())


def rooms_now(url: str) -> Any:
    with Client(url) as api:
        return api.rooms()


def room_now(url: str, name: str) -> Any:
    with Client(url) as api:
        return api.room(name)


def test_async_client(server: YsyncProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.ws_url) as api:
            assert await api.health() == {"status": "ok"}
            assert (await api.ready()).ready
            async with connect(server.ws_url, "http/async") as session:
                await session.synced()
                rooms = await api.rooms()
                assert "http/async" in [room.name for room in rooms.rooms]
                assert rooms.node.get("ready") is True  # the node's own report
                assert (await api.room("http/async"))["clients"] == 1
                assert "ysync" in await api.metrics()
            with pytest.raises(HTTPError) as caught:
                await api.room("not/loaded")
            assert caught.value.status == 404

    run(scenario())


def test_errors_are_typed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            return httpx.Response(503, json={"ready": False, "problems": ["draining"]})
        if request.url.path == "/api/rooms":
            assert request.headers["authorization"] == "Bearer s3cret"
            return httpx.Response(401, json={"error": "token expired"})
        return httpx.Response(500, text="boom")

    with Client("http://ysync.test", token="s3cret", transport=httpx.MockTransport(handler)) as api:
        assert api.ready() == Readiness(False, ("draining",))  # 503 is an answer
        with pytest.raises(HTTPError, match="token expired") as caught:
            api.rooms()
        assert caught.value.status == 401
        with pytest.raises(HTTPError, match=r"HTTP 500.*boom"):
            api.health()

    with (
        Client(f"http://127.0.0.1:{free_port()}", timeout=2) as nowhere,
        pytest.raises(ConnectError, match="cannot reach"),
    ):
        nowhere.health()


def test_base_url_accepts_websocket_urls() -> None:
    assert http_base_url("ws://h:1234") == "http://h:1234"
    assert http_base_url("wss://h/collab/") == "https://h/collab"
    assert http_base_url("http://h:1/") == "http://h:1"


def test_api_with_auth_on_takes_a_bearer_token(tmp_path: Any) -> None:
    owner = tk.token("root", {"*": "owner"})
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:
        with Client(server.ws_url) as anonymous, pytest.raises(HTTPError) as caught:
            anonymous.rooms()
        assert caught.value.status == 401 and "token" in caught.value.error
        with Client(server.ws_url, token=owner) as api:
            assert api.rooms().connections == 0
            assert api.health() == {"status": "ok"}
