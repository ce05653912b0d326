"""pycrdt-websocket as an ASGI app, for the benchmark (documents in memory).

Run: ``uvicorn ysync.loadtest.pycrdt_peer:app``. `ASGIServer` answers the
lifespan protocol without starting its `WebsocketServer`, so this wrapper runs
the server for the app's lifetime.
"""

from __future__ import annotations

from typing import Any

from pycrdt.websocket import ASGIServer, WebsocketServer

websocket_server = WebsocketServer()
_asgi = ASGIServer(websocket_server)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        await _asgi(scope, receive, send)
        return
    async with websocket_server:
        await receive()  # lifespan.startup
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})
