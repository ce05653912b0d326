"""Serve an ASGI app with uvicorn in a background thread, on 127.0.0.1 and a free port.

    with ThreadedServer(app) as server:
        ... connect to server.ws_url ...
        server.call(lambda: ...)          # run a function on the server's event loop
        await server.acall(lambda: ...)   # the same, from async test code

Used by the client SDK tests for host apps with hooks and for the
pycrdt-websocket reference server; both need their own event loop, apart from
the test's `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import uvicorn

from support.servers import free_port

T = TypeVar("T")
START_TIMEOUT = 10.0


class ThreadedServer:
    def __init__(self, app: Any, *, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            ws_per_message_deflate=False,
            ws_max_size=64 * 1024 * 1024,
            lifespan="on",
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def _run(self) -> None:
        assert self._server is not None

        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            assert self._server is not None
            await self._server.serve()

        asyncio.run(serve())

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(15)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(5)
        self._server = self._thread = None

    def restart(self) -> None:
        """Stop, then serve the same app again on the same port."""
        self.stop()
        self.start()

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run `fn()` on the server's event loop and return its result."""
        assert self.loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    async def acall(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        assert self.loop is not None

        async def run() -> T:
            return fn()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pycrdt_websocket_app() -> Any:
    """The pycrdt-websocket reference server (WebsocketServer + ASGIServer) as an ASGI
    app whose lifespan runs the WebsocketServer."""
    from pycrdt.websocket import ASGIServer, WebsocketServer

    websocket_server = WebsocketServer(auto_clean_rooms=False)
    asgi = ASGIServer(websocket_server)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await asgi(scope, receive, send)
            return
        async with AsyncExitStack() as stack:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await stack.enter_async_context(websocket_server)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await stack.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    return app
