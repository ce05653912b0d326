"""Async Python client for any y-websocket-protocol server.

    async with connect("ws://127.0.0.1:1234", "my-room") as session:
        await session.synced()
        text = session.doc.get("text", type=Text)
        text += "hello"
        session.awareness.set_local_state({"user": {"name": "bot"}})

`session.doc` is a pycrdt Doc kept in sync both ways; `session.awareness`
holds every client's presence state. Closing sends the removal of our own
awareness state so our cursor vanishes at once for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

from pycrdt import Doc, TransactionEvent
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.rooms import codec

log = logging.getLogger("ysync.clients")

RENEW_INTERVAL = 15.0  # as the JS provider: others drop states older than 30 s


class PermissionDenied(Exception):
    """The server refused one of our document edits (read-only connection)."""


class ClientAwareness:
    """Our own presence state plus everyone else's, as the server reports them."""

    def __init__(self, client_id: int, send: Callable[[bytes], None]) -> None:
        self.client_id = client_id
        self.states: dict[int, Any] = {}  # client id -> decoded state
        self._clocks: dict[int, int] = {}
        self._send = send
        self._changed = asyncio.Event()

    @property
    def local_state(self) -> Any:
        return self.states.get(self.client_id)

    def set_local_state(self, state: Any) -> None:
        """Publish our state (any JSON value; None removes us)."""
        clock = self._clocks.get(self.client_id, 0) + 1
        self._clocks[self.client_id] = clock
        if state is None:
            self.states.pop(self.client_id, None)
        else:
            self.states[self.client_id] = state
        entry = codec.AwarenessEntry(self.client_id, clock, json.dumps(state))
        self._send(codec.encode_awareness([entry]))

    async def wait_for(self, predicate: Callable[[dict[int, Any]], bool], timeout: float) -> None:
        """Wait until `predicate(states)` holds; raise TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while not predicate(self.states):
                self._changed.clear()
                await self._changed.wait()

    def _apply(self, entries: tuple[codec.AwarenessEntry, ...]) -> None:
        for entry in entries:
            if entry.client_id == self.client_id:
                # We are the authority on our own state. Told we were removed
                # (e.g. after a reconnect), re-announce at a newer clock.
                own_clock = self._clocks.get(self.client_id, 0)
                if entry.removed and entry.clock >= own_clock and self.local_state is not None:
                    self._clocks[self.client_id] = entry.clock
                    self.set_local_state(self.local_state)
                continue
            if entry.clock < self._clocks.get(entry.client_id, 0):
                continue
            self._clocks[entry.client_id] = entry.clock
            if entry.removed:
                self.states.pop(entry.client_id, None)
            else:
                self.states[entry.client_id] = json.loads(entry.state)
        self._changed.set()


class Session:
    """One live connection to a room. Use `connect(...)` to get one."""

    def __init__(self, websocket: ClientConnection, doc: Doc) -> None:
        self.doc = doc
        self.permission_denied: str | None = None
        self._ws = websocket
        self._synced = asyncio.Event()
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._remote = False  # True while applying an update from the server
        self.awareness = ClientAwareness(doc.client_id, self._outbox.put_nowait)
        self._subscription = doc.observe(self._on_local_change)
        self._tasks: list[asyncio.Task[None]] = []

    async def synced(self, timeout: float = 10.0) -> None:
        """Wait until the server sent us the whole document (its SyncStep2)."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    @property
    def is_synced(self) -> bool:
        return self._synced.is_set()

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    async def closed(self, timeout: float = 10.0) -> None:
        """Wait until the server closes the connection."""
        async with asyncio.timeout(timeout):
            await self._ws.wait_closed()

    async def close(self) -> None:
        """Remove our presence, send what is queued, and close."""
        if self.awareness.local_state is not None:
            self.awareness.set_local_state(None)
        self._outbox.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError, ConnectionClosed):
            async with asyncio.timeout(5):
                await self._tasks[0]  # the writer drains the outbox first
        for task in self._tasks:
            task.cancel()
        self.doc.unobserve(self._subscription)
        await self._ws.close()

    def _start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_loop()),
            asyncio.create_task(self._read_loop()),
            asyncio.create_task(self._renew_loop()),
        ]
        self._outbox.put_nowait(codec.encode_sync_step1(self.doc.get_state()))

    def _on_local_change(self, event: TransactionEvent) -> None:
        if not self._remote:
            self._outbox.put_nowait(codec.encode_update(event.update))

    def _apply_remote(self, update: bytes) -> None:
        self._remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self._remote = False

    async def _write_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (frame := await self._outbox.get()) is not None:
                await self._ws.send(frame)

    async def _read_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self._ws:
                if isinstance(frame, str):
                    continue
                try:
                    self._handle(codec.decode(frame))
                except codec.ProtocolError as exc:
                    log.warning("ignoring malformed message from server: %s", exc.reason)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(RENEW_INTERVAL)
            if self.awareness.local_state is not None:
                self.awareness.set_local_state(self.awareness.local_state)

    def _handle(self, message: codec.Message) -> None:
        if isinstance(message, codec.SyncStep1):
            self._outbox.put_nowait(codec.encode_sync_step2(self.doc.get_update(message.state_vector)))
        elif isinstance(message, codec.SyncStep2):
            self._apply_remote(message.update)
            self._synced.set()
        elif isinstance(message, codec.SyncUpdate):
            self._apply_remote(message.update)
        elif isinstance(message, codec.AwarenessUpdate):
            self.awareness._apply(message.entries)
        elif isinstance(message, codec.QueryAwareness):
            if self.awareness.local_state is not None:
                self.awareness.set_local_state(self.awareness.local_state)
        elif isinstance(message, codec.Auth):
            self.permission_denied = message.reason


def room_url(url: str, room: str, params: dict[str, str] | None = None) -> str:
    """`ws://host:port` + `/room` (+ `?query`), as the JS provider builds it."""
    full = url.rstrip("/") + "/" + quote(room, safe="/")
    return full + ("?" + urlencode(params) if params else "")


@contextlib.asynccontextmanager
async def connect(
    url: str,
    room: str,
    *,
    doc: Doc | None = None,
    params: dict[str, str] | None = None,
    max_size: int = 64 * 1024 * 1024,
) -> AsyncIterator[Session]:
    """Connect to `room` on the server at `url`; the session closes on exit."""
    websocket = await ws_connect(
        room_url(url, room, params), max_size=max_size, compression=None, proxy=None
    )
    session = Session(websocket, doc if doc is not None else Doc())
    session._start()
    try:
        yield session
    finally:
        await session.close()
