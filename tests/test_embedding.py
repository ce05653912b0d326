"""ysync mounted inside a host Starlette app, with hooks, over real sockets."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import websockets
from pycrdt import Doc, Text
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from ysync.clients import connect
from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity, Refused
from ysync.server import create_app
from ysync.server.settings import Settings
from ysync.server.ws_protocol import YsyncWebSocketProtocol

from support import aio
from support.servers import free_port


class RecordingHooks(Hooks):
    def __init__(self) -> None:
        self.loads: list[str] = []
        self.changes: list[tuple[str, str]] = []
        self.stored: dict[str, str] = {}

    async def authenticate(self, request: ConnectionRequest) -> Identity:
        token = request.query.get("token")
        if token is None:
            raise Refused(4401, "token missing")
        if token == "reader":
            return Identity(user_id="r", read_only=True)
        if token != "writer":
            raise Refused(4403, f"no access to {request.room}")
        return Identity(user_id="w")

    async def load_document(self, room: str, doc: Doc) -> None:
        self.loads.append(room)
        text = doc.get("t", type=Text)
        if len(text) == 0:
            text += "seeded once by the server. "

    def on_change(self, room: str, update: bytes, origin: str) -> None:
        self.changes.append((room, origin))

    async def store_document(self, room: str, doc: Doc) -> None:
        self.stored[room] = str(doc.get("t", type=Text))


async def echo(websocket: WebSocket) -> None:
    """A host app's own WebSocket route, next to ysync's."""
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text.upper())


# uvicorn's own WebSocket protocol, and ysync's (what `ysync serve` runs).
@pytest.fixture(params=["auto", YsyncWebSocketProtocol], ids=["uvicorn-ws", "ysync-ws"])
def host_app(request: pytest.FixtureRequest) -> Iterator[tuple[str, RecordingHooks]]:
    """A host app with ysync mounted at /collab, served by uvicorn in a thread."""
    hooks = RecordingHooks()
    collab = create_app(Settings(store="memory://", unload_grace=0.0), hooks)
    app = Starlette(
        routes=[
            Route("/", lambda request: PlainTextResponse("host")),
            WebSocketRoute("/echo", echo),
            Mount("/collab", app=collab),
        ],
        lifespan=collab.router.lifespan_context,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, port=port, log_config=None, ws_per_message_deflate=False, ws=request.param
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/collab", hooks
    finally:
        server.should_exit = True
        thread.join(10)


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=30)


def test_hooks_authenticate_seed_observe_and_store(host_app: tuple[str, RecordingHooks]) -> None:
    url, hooks = host_app

    async def scenario() -> None:
        async with (
            connect(url, "doc", params={"token": "writer"}) as a,
            connect(url, "doc", params={"token": "writer"}) as b,
        ):
            await a.synced()
            await b.synced()
            assert str(a.doc.get("t", type=Text)) == "seeded once by the server. "
            a.doc.get("t", type=Text).insert(0, "edit ")
            async with asyncio.timeout(5):
                while not str(b.doc.get("t", type=Text)).startswith("edit "):
                    await asyncio.sleep(0.01)
        async with asyncio.timeout(5):
            while "doc" not in hooks.stored:  # unload_grace=0: stored as soon as both left
                await asyncio.sleep(0.01)

    run(scenario())
    assert hooks.loads == ["doc"]  # two clients joining at once: loaded once
    assert ("doc", "server") in hooks.changes  # the seed
    assert ("doc", "client") in hooks.changes
    assert hooks.stored["doc"] == "edit seeded once by the server. "


@pytest.mark.parametrize(("params", "code"), [({}, 4401), ({"token": "nope"}, 4403)])
def test_refused_connections_get_the_hook_code_and_no_content(
    host_app: tuple[str, RecordingHooks], params: dict[str, str], code: int
) -> None:
    url, hooks = host_app

    async def scenario() -> None:
        async with connect(url, "secret", params=params) as session:
            await session.closed()
            assert session.close_code == code
            assert not session.is_synced  # not a byte of the room was sent
            assert str(session.doc.get("t", type=Text)) == ""

    run(scenario())
    assert hooks.loads == []


def test_read_only_connection_is_told_and_its_edits_go_nowhere(
    host_app: tuple[str, RecordingHooks],
) -> None:
    url, _ = host_app

    async def scenario() -> None:
        async with (
            connect(url, "ro", params={"token": "writer"}) as writer,
            connect(url, "ro", params={"token": "reader"}) as reader,
        ):
            await writer.synced()
            await reader.synced()
            reader.doc.get("t", type=Text).insert(0, "vandalism ")
            async with asyncio.timeout(5):
                while reader.permission_denied is None:
                    await asyncio.sleep(0.01)
            writer.doc.get("t", type=Text).insert(0, "legit ")
            async with asyncio.timeout(5):  # the reader still receives live edits
                while "legit" not in str(reader.doc.get("t", type=Text)):
                    await asyncio.sleep(0.01)
            assert "vandalism" not in str(writer.doc.get("t", type=Text))
        async with connect(url, "ro", params={"token": "writer"}) as late:
            await late.synced()
            assert "vandalism" not in str(late.doc.get("t", type=Text))

    run(scenario())


def test_the_host_apps_own_websocket_routes_still_work(
    host_app: tuple[str, RecordingHooks],
) -> None:
    url, _ = host_app

    async def scenario() -> None:
        async with websockets.connect(url.removesuffix("/collab") + "/echo") as ws:
            await ws.send("hello")
            assert await ws.recv() == "HELLO"

    run(scenario())
