"""RoomRegistry and GroupCommit: load once, unload after the grace, persist by origin."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pycrdt import Doc, Text

from ysync.persistence.group_commit import GroupCommit
from ysync.persistence.memory import MemoryStore
from ysync.rooms.extensions import Extensions, from_hooks
from ysync.rooms.hooks import Hooks
from ysync.rooms.local_bus import LocalBus, LocalHub
from ysync.rooms.protocols import Envelope, StoreError
from ysync.rooms.registry import RoomRegistry
from ysync.rooms.replication import Replicator
from ysync.rooms.room import Source
from ysync.rooms.vocabulary import EnvelopeKind

from support import aio


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.fail_appends = 0

    async def load(self, room: str) -> list[bytes]:
        self.loads += 1
        await asyncio.sleep(0.01)  # let concurrent joiners pile up
        return await super().load(room)

    async def append(self, batch: Sequence[tuple[str, bytes]]) -> None:
        if self.fail_appends:
            self.fail_appends -= 1
            raise StoreError("store is down")
        await super().append(batch)


class SeedingHooks(Hooks):
    async def load_document(self, room: str, doc: Doc) -> None:
        text = doc.get("t", type=Text)
        if not str(text):
            text += "seed"


def text_update(content: str) -> bytes:
    doc = Doc()
    doc["t"] = text = Text()
    text += content
    return doc.get_update()


async def with_registry(store: CountingStore, scenario: Any, **kwargs: Any) -> Any:
    log = GroupCommit(store, flush_window=0.01)
    hooks = kwargs.pop("hooks", None)
    extensions = Extensions([Replicator(LocalBus()), *([from_hooks(hooks)] if hooks else [])])
    registry = RoomRegistry(store, log, extensions, **kwargs)
    committer = asyncio.create_task(log.run())
    try:
        return await scenario(registry, log)
    finally:
        await registry.close()
        committer.cancel()


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=20)


def test_simultaneous_joins_load_the_room_once() -> None:
    store = CountingStore()

    async def scenario(registry: RoomRegistry, _: GroupCommit) -> None:
        rooms = await asyncio.gather(*(registry.acquire("r") for _ in range(50)))
        assert all(room is rooms[0] for room in rooms)

    run(with_registry(store, scenario))
    assert store.loads == 1


def test_seed_is_created_once_and_stored_and_room_reloads_after_the_grace() -> None:
    store = CountingStore()

    async def scenario(registry: RoomRegistry, log: GroupCommit) -> None:
        room = await registry.acquire("r")
        room.apply_update(text_update(" more"), Source.SERVER)
        registry.release("r")
        async with asyncio.timeout(5):
            while "r" in registry.rooms:
                await asyncio.sleep(0.01)
        again = await registry.acquire("r")
        assert again is not room
        assert str(again.doc.get("t", type=Text)).count("seed") == 1

    run(with_registry(store, scenario, hooks=SeedingHooks(), unload_grace=0.05))
    assert store.loads == 2
    reloaded = Doc()
    for update in run(store.load("r")):
        reloaded.apply_update(update)
    assert "seed" in str(reloaded.get("t", type=Text))


def test_updates_from_the_bus_are_applied_and_stored_by_every_holder() -> None:
    store = CountingStore()
    hub = LocalHub()
    other_node = LocalBus(hub)

    async def scenario() -> bytes:
        log = GroupCommit(store, flush_window=0.01)
        registry = RoomRegistry(store, log, Extensions([Replicator(LocalBus(hub))]))
        committer = asyncio.create_task(log.run())
        room = await registry.acquire("r")
        update = text_update("from node B")
        other_node.publish(Envelope(other_node.node_id, 1, "r", EnvelopeKind.UPDATE, update))
        await hub.settled()
        assert str(room.doc.get("t", type=Text)) == "from node B"
        await log.flush()
        await registry.close()
        committer.cancel()
        return update

    update = run(scenario())
    # Node B may die before it commits what it published (issue 14).
    assert run(store.load("r")) == [update]


def test_failed_commits_are_retried_whole_and_refusal_starts_past_the_bound() -> None:
    store = CountingStore()
    store.fail_appends = 3

    async def scenario() -> None:
        log = GroupCommit(store, flush_window=0.001, max_pending_bytes=50)
        committer = asyncio.create_task(log.run())
        log.append("r", text_update("a" * 10))
        assert log.refusal() is None
        log.append("r", text_update("b" * 40))
        assert log.refusal() is not None  # refuse new edits, keep the queued ones
        async with asyncio.timeout(10):
            await log.flush()
        assert log.healthy and log.refusal() is None
        committer.cancel()

    run(scenario())
    assert len(run(store.load("r"))) == 1  # the two updates of one batch, merged


def test_rooms_are_compacted_once_their_log_grows() -> None:
    store = CountingStore()

    async def scenario() -> None:
        log = GroupCommit(store, flush_window=0.001, compact_after=10)
        committer = asyncio.create_task(log.run())
        for i in range(25):
            log.append("r", text_update(str(i)))
        await log.flush()
        async with asyncio.timeout(5):
            while len(await store.load("r")) > 1:
                await asyncio.sleep(0.01)
        committer.cancel()

    run(scenario())
