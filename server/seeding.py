"""Initial content, once: `SeedOnce` applies a new room's seed exactly once cluster-wide.

Never seed from the client: two clients that each insert the initial text into
a new room both succeed, and the text is there twice, forever (Yjs merges the
two inserts; it cannot know they meant the same thing). So the server does it,
when a room is loaded with an empty document: the seed is `--seed-document FILE`
(a binary Yjs update, or JSON: `{"ops": [...]}` as `POST /doc` takes, or
`{"root": value}` with strings for text, objects for maps, lists for arrays),
else the first `seed_document(room)` hook of an extension or the host's `Hooks`.
One node wins the store's seed claim for the room (a row inserted once) and
applies the seed as a server edit (stored, sent to every node); the others see
it arrive like any edit. A JSON seed is also built with a fixed client id, so
its update is the same bytes on every node (applying it twice changes nothing).
Deleting the room releases its claim.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pycrdt import Doc, get_state

from ysync.persistence.memory import MemoryStore
from ysync.persistence.tombstone_sql import SqlTombstones
from ysync.rooms.content import apply_json
from ysync.rooms.doc_ops import OpError, ops_update
from ysync.rooms.extensions import Extension
from ysync.rooms.room import Room, Source

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.seeding")

SEED_CLIENT_ID = 0x5EED  # the fixed author of a JSON seed: the same update on every node


def read_seed(path: str) -> bytes:
    """The seed update of `path`; ValueError naming the file's problem."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"--seed-document {path}: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            get_state(raw)
        except ValueError:
            raise ValueError(f"--seed-document {path}: neither JSON nor a Yjs update") from None
        return raw
    doc: Doc[Any] = Doc(client_id=SEED_CLIENT_ID)
    try:
        if isinstance(data, dict) and "ops" in data:
            return ops_update(doc, data, client_id=SEED_CLIENT_ID)
        if not isinstance(data, dict):
            raise ValueError("a JSON seed is an object")
        apply_json(doc, data)
    except (OpError, ValueError) as exc:
        raise ValueError(f"--seed-document {path}: {exc}") from None
    return doc.get_update()


class SeedOnce(Extension):
    """Applies a new room's initial content once (see the module doc)."""

    priority = 90  # after replication (800) filled the room from the other nodes

    def __init__(self, seed_file: str = "") -> None:
        self.file_seed = read_seed(seed_file) if seed_file else None
        self._node: Node | None = None
        self._claims: SqlTombstones | None = None

    async def on_start(self, node: Any) -> None:
        self._node = node
        self._claims = getattr(node.store, "tombstones", None) or MemoryStore().tombstones

    async def on_load_document(self, room: Room) -> None:
        if self._node is None or self._claims is None or room.doc.get_state() != b"\x00":
            return
        seed = self.file_seed or await self._node.extensions.seed(room.name)
        if not seed:
            return
        if not await self._claims.claim_seed(room.name, time.time()):
            return  # another node (or an earlier load) seeded it
        room.apply_update(seed, Source.SERVER)
        log.info("seeded a new room", extra={"room": room.name})

    async def on_delete(self, room: str) -> None:
        if self._claims is not None:
            await self._claims.clear_seed(room)
