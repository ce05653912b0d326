"""Deleting, exporting and importing a room: `RoomLifecycle` (see docs/http-api.md).

Delete (owner): first a tombstone, so that no client recreates the room for
`--tombstone-days` (a reconnecting client's offline state would otherwise
bring it back; `on_connect` refuses it with 4410); then every node closes the
room's clients with 4410 "room deleted" (the JS provider does not reconnect
after 44xx), drops the room, commits what it had queued and deletes the
document from the store; then every extension's `on_delete` (comments,
versions, ...) removes its part. Every node deletes the document itself after
its own commits, so a late commit of another node cannot leave data behind.

Export (owner): one JSON archive, the document as a base64 Yjs update and each
extension's `on_export` part by name. Import (owner) into a room with no
document: the document as a server edit, each part to its extension's
`on_import`; it lifts a tombstone (an owner recreating the room).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ysync.persistence.memory import MemoryStore
from ysync.persistence.tombstone_sql import SqlTombstones
from ysync.presence.events import Event
from ysync.rooms.extensions import Extension
from ysync.rooms.hooks import ConnectionRequest
from ysync.rooms.protocols import Envelope, StoreError
from ysync.rooms.vocabulary import CloseCode, EnvelopeKind, Refusal, Refused
from ysync.server.doc_api import apply, opened
from ysync.server.routing import ApiError

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.lifecycle")

DELETED = Refusal(CloseCode.ROOM_DELETED, "room deleted")
ARCHIVE_FORMAT = "ysync-room"
ARCHIVE_VERSION = 1
_TOPIC = "\x1frooms-deleted"  # node-wide bus topic: the payload is the room's name
_CACHE_SECONDS = 10.0  # how long a node trusts its answer to "is this room tombstoned?"
_CACHE_SIZE = 10_000


class RoomLifecycle(Extension):
    """Room deletion with tombstones, and room archives (see the module doc)."""

    priority = 950  # refuse a deleted room before authentication and limits work on it

    def __init__(self, *, tombstone_days: float) -> None:
        self.tombstone_seconds = tombstone_days * 86400.0
        self._node: Node | None = None
        self._tombstones: SqlTombstones | None = None
        self._known: dict[str, tuple[float | None, float]] = {}  # room -> (until, checked at)
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_start(self, node: Any) -> None:
        self._node = node
        tombstones = getattr(node.store, "tombstones", None)
        if tombstones is None:
            log.warning("the store keeps no tombstones: they are kept in memory, lost on exit")
            tombstones = MemoryStore().tombstones
        self._tombstones = tombstones
        if not node.bus.alone:
            await node.bus.subscribe(_TOPIC, self._on_envelope)

    async def on_connect(self, request: ConnectionRequest) -> None:
        try:
            deleted = await self.tombstoned(request.room)
        except StoreError:
            # A store outage must not refuse every client of a loaded room: serve, don't guess.
            log.warning("tombstone of %s unreadable: admitting", request.room, exc_info=True)
            return
        if deleted:
            raise Refused(DELETED)

    def routes(self) -> Sequence[Any]:
        from ysync.server import lifecycle_api

        return lifecycle_api.routes

    # -- what the API calls ------------------------------------------------------------------

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError("RoomLifecycle used before the node started")
        return self._node

    @property
    def tombstones(self) -> SqlTombstones:
        if self._tombstones is None:
            raise RuntimeError("RoomLifecycle used before the node started")
        return self._tombstones

    async def tombstoned(self, room: str) -> bool:
        """Whether `room` was deleted less than `--tombstone-days` ago."""
        now = time.time()
        known = self._known.get(room)
        if known is None or now - known[1] > _CACHE_SECONDS:
            if len(self._known) >= _CACHE_SIZE:
                self._known.clear()
            known = (await self.tombstones.until(room), now)
            self._known[room] = known
        return known[0] is not None and known[0] > now

    async def delete(self, room: str) -> None:
        """Delete `room` everywhere (see the module doc)."""
        now = time.time()
        if self.tombstone_seconds:
            await self.tombstones.put(room, now, now + self.tombstone_seconds)
            self._known[room] = (now + self.tombstone_seconds, now)
        node = self.node
        if not node.bus.alone:
            node.bus.publish(
                Envelope(node.bus.node_id, 0, _TOPIC, EnvelopeKind.EVENT, room.encode())
            )
        await self._forget(room)
        await node.extensions.delete(room)
        node.events.publish(Event("room.deleted", room, {}))

    async def export(self, room: str) -> dict[str, Any]:
        async with opened(self.node, room) as loaded:
            document = loaded.doc.get_update()
        return {
            "format": ARCHIVE_FORMAT,
            "version": ARCHIVE_VERSION,
            "room": room,
            "exported_at": time.time(),
            "document": base64.b64encode(document).decode(),
            "parts": await self.node.extensions.export(room),
        }

    async def import_(self, room: str, archive: Any) -> None:
        """Import an `export` archive into `room`, which must hold no document."""
        document, parts = _parsed(archive)
        await self.tombstones.clear(room)
        self._known.pop(room, None)
        await self.tombstones.claim_seed(room, time.time())  # the archive is its content
        async with opened(self.node, room) as loaded:
            if loaded.doc.get_state() != b"\x00":
                raise ApiError(409, "room_not_empty", "import needs a room with no document")
            if document:
                apply(loaded, document)
        try:
            await self.node.extensions.import_(room, parts)
        except ValueError as exc:
            raise ApiError(400, "invalid_archive", str(exc)) from None

    # -- internals -------------------------------------------------------------------------

    async def _forget(self, room: str) -> None:
        """Close the room's clients here, drop it, commit and delete its document."""
        node = self.node
        loaded = node.registry.rooms.get(room)
        if loaded is not None:
            for peer in list(loaded.peers):
                peer.close(DELETED)
        await node.registry.drop(room)
        await node.update_log.flush()
        await node.store.delete(room)

    def _on_envelope(self, envelope: Envelope) -> None:
        if envelope.node == self.node.bus.node_id or envelope.kind is not EnvelopeKind.EVENT:
            return
        room = envelope.payload.decode("utf-8", "replace")
        self._known.pop(room, None)
        task = asyncio.get_running_loop().create_task(self._forget(room))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _parsed(archive: Any) -> tuple[bytes, Mapping[str, Mapping[str, Any]]]:
    if not isinstance(archive, dict) or archive.get("format") != ARCHIVE_FORMAT:
        raise ApiError(
            400, "invalid_archive", f'not a room archive: "format" must be "{ARCHIVE_FORMAT}"'
        )
    if archive.get("version") != ARCHIVE_VERSION:
        raise ApiError(400, "invalid_archive", f"archive version {ARCHIVE_VERSION} expected")
    parts = archive.get("parts", {})
    if not isinstance(parts, dict) or not all(isinstance(p, dict) for p in parts.values()):
        raise ApiError(400, "invalid_archive", "parts must be an object of objects")
    try:
        document = base64.b64decode(str(archive.get("document", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_archive", "document must be a base64 Yjs update") from None
    return document, parts
