"""Versions of each room's document: `VersionsExtension` (see docs/versions.md).

A version is an immutable snapshot (`ysync.presence.versions.Version`), kept in
the store's `versions` table (`ysync.persistence.version_sql`). Made on
request (named), automatically (every `--auto-version-interval` for the rooms
this node accepted edits for meanwhile, unless the document equals the latest
version), and around every restore: "pre-restore" just before, "restore" just
after. A restore computes on the server the update that turns today's document
into the version's content (`ysync.rooms.doc_diff.restore_update`) and applies
it as a server edit, so every client on every node converges without reloading
and clients offline meanwhile merge their edits on top. Events `version.created`
and `version.restored` go to the room's feed. Deletion, export and import of a
room cover its versions through `on_delete`/`on_export`/`on_import`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ysync.persistence.memory import MemoryStore
from ysync.persistence.version_sql import SqlVersions
from ysync.presence.events import Event
from ysync.presence.versions import Version, new_version_id
from ysync.rooms.doc_diff import restore_update
from ysync.rooms.extensions import Background, Extension
from ysync.rooms.room import Origin, Room, Source
from ysync.server.doc_api import apply, opened

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.versions")


class VersionsExtension(Extension):
    """Named, automatic and restore versions of every room (see the module doc)."""

    def __init__(self, *, interval: float, retention: int, max_age_days: float) -> None:
        self.interval = interval
        self.retention = retention
        self.max_age = max_age_days * 86400.0
        self._node: Node | None = None
        self._store: SqlVersions | None = None
        self._changed: set[str] = (
            set()
        )  # rooms this node accepted edits for since their last version

    # -- hooks ---------------------------------------------------------------------------

    async def on_start(self, node: Any) -> None:
        self._node = node
        store = getattr(node.store, "versions", None)
        if store is None:
            log.warning("the store keeps no versions: they are kept in memory, lost on exit")
            store = MemoryStore().versions
        self._store = store

    def on_change(self, room: Room, update: bytes, origin: Origin) -> None:
        if self.interval > 0 and origin is not Source.BUS:  # the accepting node versions it
            self._changed.add(room.name)

    async def on_delete(self, room: str) -> None:
        self._changed.discard(room)
        await self.store.delete_room(room)

    async def on_export(self, room: str) -> Mapping[str, Any] | None:
        return await self.store.export_room(room)

    async def on_import(self, room: str, data: Mapping[str, Any]) -> None:
        await self.store.import_room(room, data)

    def routes(self) -> Sequence[Any]:
        from ysync.server import versions_api

        return versions_api.routes

    def background(self) -> Sequence[Background]:
        return [("automatic versions", self.run_automatic)] if self.interval > 0 else []

    # -- what the API calls ------------------------------------------------------------------

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError("VersionsExtension used before the node started")
        return self._node

    @property
    def store(self) -> SqlVersions:
        if self._store is None:
            raise RuntimeError("VersionsExtension used before the node started")
        return self._store

    async def create(
        self, room: str, *, name: str, description: str = "", author: str | None, kind: str
    ) -> Version:
        """A version of `room`'s document now."""
        async with opened(self.node, room) as loaded:
            version = self._snapshot(loaded, name, description, author, kind)
        await self._keep(version)
        return version

    async def restore(
        self, room: str, target: Version, author: str | None
    ) -> tuple[Version, Version]:
        """Make `room` hold `target`'s content; returns the (pre-restore, restore) versions."""
        async with opened(self.node, room, writing=True) as loaded:
            before = self._snapshot(
                loaded, f"Before restoring {target.name}", "", author, "pre-restore"
            )
            apply(loaded, restore_update(loaded.doc, target.data))
            after = self._snapshot(
                loaded, f"Restored {target.name}", f"restored from {target.id}", author, "restore"
            )
        await self._keep(before)
        await self._keep(after)
        self.node.events.publish(
            Event(
                "version.restored",
                room,
                {"version": target.id, "restore": after.id, "before": before.id, "by": author},
            )
        )
        return before, after

    async def run_automatic(self) -> None:
        """Forever: every interval, a version of each room that changed meanwhile."""
        while True:
            await asyncio.sleep(self.interval)
            await self.automatic_round()

    async def automatic_round(self) -> None:
        changed, self._changed = self._changed, set()
        for room in sorted(changed):
            try:
                latest = await self.store.latest(room)
                async with opened(self.node, room) as loaded:
                    if latest is not None and latest.state_vector == loaded.doc.get_state():
                        continue  # another node (or a restore) versioned this state already
                    version = self._snapshot(loaded, "Automatic", "", None, "auto")
                await self._keep(version)
            except Exception:
                log.warning("automatic version of %s failed", room, exc_info=True)
                self._changed.add(room)  # try again next round

    # -- internals -------------------------------------------------------------------------

    def _snapshot(
        self, room: Room, name: str, description: str, author: str | None, kind: str
    ) -> Version:
        return Version(
            room.name,
            new_version_id(),
            name,
            description,
            author,
            kind,
            time.time(),
            room.doc.get_state(),
            room.doc.get_update(),
        )

    async def _keep(self, version: Version) -> None:
        await self.store.create(version)
        older_than = time.time() - self.max_age if self.max_age else None
        if version.kind != "named" and (self.retention or older_than is not None):
            await self.store.prune(version.room, self.retention, older_than)
        summary = version.summary()
        summary.pop("state_vector")
        self.node.events.publish(Event("version.created", version.room, summary))
