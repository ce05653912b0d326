"""A small blocking y-websocket client for load tests, reporting through a callback.

`YClient` holds one pycrdt `Doc` and one WebSocket (`websockets.sync`): it syncs
(SyncStep1 both ways), makes real Yjs edits, sets its awareness state, and times
every edit it receives from others. Each edit is a new key in the map ``"e"``
whose value starts with the sender's wall-clock send time (``time.time()``,
so clients in other processes on synchronised clocks can time it too)::

    client = YClient("ws://127.0.0.1:1234", "room-1", report=print)
    client.connect()                # returns once synced; reports "connect"
    client.edit(payload_bytes=100)  # reports "edit"
    while running:
        client.receive(timeout=1)   # applies frames; reports "delivery" for others' edits

`report(name, response_time_ms, response_length, exception)` is called for every
operation; the locust User (`ysync.loadtest.user`) turns it into locust request
events. The client is not thread-safe: call `receive` from one thread (or greenlet)
and `edit` from the same one or, under gevent, from another greenlet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Map, MapEvent, TransactionEvent
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from ysync.clients.events import map_changes
from ysync.clients.sync import DocSync
from ysync.rooms import codec

Report = Callable[[str, float, int, BaseException | None], None]
EDITS = "e"  # the map that carries the timed edits
_MAX_FRAME = 64 * 1024 * 1024


class YClient:
    def __init__(self, url: str, room: str, report: Report, *, open_timeout: float = 30) -> None:
        self.url = url.rstrip("/") + "/" + room.lstrip("/")
        self.room = room
        self.report = report
        self.open_timeout = open_timeout
        self.doc: Doc[Any] = Doc()
        self.edits: Map[Any] = self.doc.get(EDITS, type=Map)
        self.ws: ClientConnection | None = None
        self.sync = DocSync(self.doc)
        self.seq = 0
        self.awareness_clock = 0
        self.doc.observe(self._on_local_change)
        self.edits.observe(self._on_edits)

    # -- connection ---------------------------------------------------------------------

    def connect(self) -> None:
        """Open the WebSocket and sync; reports "connect" (time until our SyncStep2 arrived)."""
        started = time.perf_counter()
        try:
            # Entered by hand: the connection outlives this call (closed by `close`).
            self.ws = connect(
                self.url,
                open_timeout=self.open_timeout,
                max_size=_MAX_FRAME,
                compression=None,
            ).__enter__()
            self.ws.send(self.sync.start())
            deadline = started + self.open_timeout
            while not self.sync.synced:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError(f"not synced within {self.open_timeout} s")
                self.receive(timeout=left)
        except Exception as exc:
            self.report("connect", _ms_since(started), 0, exc)
            self.close()
            raise
        self.report("connect", _ms_since(started), 0, None)

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()

    # -- receiving ----------------------------------------------------------------------

    def receive(self, timeout: float | None = None) -> bool:
        """Handle one incoming frame; False if none came within `timeout`.

        Raises `websockets.exceptions.ConnectionClosed` once the connection is gone.
        """
        assert self.ws is not None, "connect() first"
        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return False
        if isinstance(frame, str):
            return True  # not part of the protocol: ignore
        self.handle(frame)
        return True

    @property
    def synced(self) -> bool:
        return self.sync.synced

    def handle(self, frame: bytes) -> None:
        reply = self.sync.handle(codec.decode(frame))
        if reply is not None:
            self._send(reply)

    def _on_edits(self, event: MapEvent) -> None:
        if not self.sync.applying_remote:
            return
        now = time.time()
        for change in map_changes(event).values():
            value = change.get("newValue")
            if isinstance(value, str):
                sent = float(value.partition("|")[0])
                self.report("delivery", max(0.0, (now - sent) * 1000), len(value), None)

    # -- sending ------------------------------------------------------------------------

    def edit(self, payload_bytes: int = 100) -> None:
        """Add one timed edit (a new key in map "e") and send the Yjs update; reports "edit"."""
        started = time.perf_counter()
        self.seq += 1
        value = f"{time.time():.6f}|" + "x" * payload_bytes
        try:
            self.edits[f"{self.doc.client_id}-{self.seq}"] = value  # → _on_local_change → send
        except Exception as exc:
            self.report("edit", _ms_since(started), len(value), exc)
            raise
        self.report("edit", _ms_since(started), len(value), None)

    def set_awareness(self, state: dict[str, Any] | None) -> None:
        """Send our awareness state (e.g. a cursor); None removes it."""
        self.awareness_clock += 1
        text = "null" if state is None else json.dumps(state, separators=(",", ":"))
        entry = codec.AwarenessEntry(self.doc.client_id, self.awareness_clock, text)
        self._send(codec.encode_awareness([entry]))

    def _on_local_change(self, event: TransactionEvent) -> None:
        if not self.sync.applying_remote and self.ws is not None:
            self._send(codec.encode_update(event.update))

    def _send(self, frame: bytes) -> None:
        assert self.ws is not None
        self.ws.send(frame)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


__all__ = ["EDITS", "ConnectionClosed", "Report", "YClient"]
