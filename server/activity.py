"""Durable per-room sessions for the activity API: `ActivityExtension`.

Each connection's stay in a room is one session: who (verified user id, None
when anonymous), which node, connected/disconnected, and the updates and bytes
it sent. A session is written to the store's `activity` table when it ends
(batched: one transaction per second at most), so what a SIGKILLed node had
open is lost; finished sessions survive restarts. Rows older than
`--activity-retention-days` are pruned hourly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ysync.persistence.activity_sql import AuthorRow, SessionRow, SqlActivity
from ysync.rooms.extensions import Background, Extension
from ysync.rooms.hooks import ConnectionRequest
from ysync.rooms.protocols import Peer, StoreError
from ysync.rooms.room import Origin, Room, Source

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.activity")

FLUSH_SECONDS = 1.0
PRUNE_SECONDS = 3600.0
MAX_BUFFERED = 100_000  # rows waiting for the store (an outage); past it the oldest go


@dataclass(slots=True)
class _Open:
    room: str
    user_id: str | None
    connected_at: float
    updates: int = 0
    bytes: int = 0


class ActivityExtension(Extension):
    def __init__(self, *, retention_days: float) -> None:
        self.retention_days = retention_days
        self._node: Node | None = None
        self._open: dict[Peer, _Open] = {}
        self._finished: list[SessionRow] = []
        self._authors: list[AuthorRow] = []

    @property
    def name(self) -> str:
        return "activity"

    @property
    def store(self) -> SqlActivity | None:
        store = getattr(self._node.store, "activity", None) if self._node is not None else None
        return store if isinstance(store, SqlActivity) else None

    async def on_start(self, node: Any) -> None:
        self._node = node

    def on_join(self, room: Room, peer: Peer, request: ConnectionRequest) -> None:
        self._open[peer] = _Open(room.name, peer.identity.user_id, time.time())

    def on_change(self, room: Room, update: bytes, origin: Origin) -> None:
        if origin is Source.STORE or origin is Source.BUS:
            return  # the node that accepted it records it
        author = None
        if not isinstance(origin, Source):
            author = origin.identity.user_id
            session = self._open.get(origin)
            if session is not None:
                session.updates += 1
                session.bytes += len(update)
        self._authors.append(AuthorRow(room.name, time.time(), author, len(update)))
        if len(self._authors) > MAX_BUFFERED:
            del self._authors[: len(self._authors) - MAX_BUFFERED]

    def on_leave(self, room: Room, peer: Peer) -> None:
        session = self._open.pop(peer, None)
        if session is None or self._node is None:
            return
        node = self._node.replicator.node_id
        self._finished.append(
            SessionRow(
                session.room,
                session.user_id,
                node,
                session.connected_at,
                time.time(),
                session.updates,
                session.bytes,
            )
        )
        if len(self._finished) > MAX_BUFFERED:
            del self._finished[: len(self._finished) - MAX_BUFFERED]

    async def flush(self) -> None:
        store = self.store
        if store is None:
            return
        batch, self._finished = self._finished, []
        authors, self._authors = self._authors, []
        try:
            await store.record(batch, authors)
        except StoreError as exc:
            log.warning("activity: could not record %d sessions (%s); retrying", len(batch), exc)
            self._finished[:0] = batch
            self._authors[:0] = authors

    def background(self) -> Sequence[Background]:
        return (("activity", self.run),)

    async def run(self) -> None:
        next_prune = time.monotonic()
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                await self.flush()
                store = self.store
                if store is not None and time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_SECONDS
                    with contextlib.suppress(StoreError):
                        await store.prune(time.time() - self.retention_days * 86400)
        finally:
            with contextlib.suppress(StoreError):
                await self.flush()


def activity_of(node: Node) -> ActivityExtension:
    for extension in node.extensions.all:
        if isinstance(extension, ActivityExtension):
            return extension
    raise RuntimeError("this node runs without activity")
