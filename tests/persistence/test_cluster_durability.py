"""No accepted edit is lost when a node dies (issue 14), deterministically.

Two nodes in one process, each with its own store connection to one real
SQLite file or PostgreSQL database, replicating over a real redis-server.
Node 1 accepts `x` and publishes it; its commit never happens (as if it were
SIGKILLed inside its flush window); node 2 applied `x`, and later edits
depend on `x`. After everything is reloaded from the store, all of it must be
there and nothing may be left pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pycrdt import Doc, Text

from ysync.persistence.group_commit import GroupCommit
from ysync.persistence.urls import OpenedStore, open_store
from ysync.rooms.extensions import Extensions
from ysync.rooms.redis_bus import RedisBus
from ysync.rooms.registry import RoomRegistry
from ysync.rooms.replication import Replicator
from ysync.rooms.room import Room, Source

from support.aio import run, wait_until
from support.servers import RedisProcess


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    with RedisProcess() as process:
        yield process


class Node:
    """One node's registry, replicator, bus and store connection."""

    def __init__(
        self, name: str, store: OpenedStore, redis_url: str, *, compact_after: int = 1000
    ) -> None:
        self.store = store
        self.bus = RedisBus(redis_url, node_id=name)
        self.replicator = Replicator(self.bus)
        self.commit = GroupCommit(store, 0.01, compact_after=compact_after)
        self.registry = RoomRegistry(store, self.commit, Extensions([self.replicator]))
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, *, commits: bool = True) -> Node:
        await self.bus.connect()
        self.tasks.append(asyncio.create_task(self.bus.run()))
        if commits:  # without it, nothing this node queues is ever committed
            self.tasks.append(asyncio.create_task(self.commit.run()))
        return self

    async def die(self) -> None:
        """As a SIGKILL: no flush, no goodbye; its Redis connection drops."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.bus.close()
        await self.store.close()

    async def stop(self) -> None:
        """A clean shutdown: every room unloaded, its updates committed."""
        self.tasks[-1:] = []  # keep the group commit running while rooms unload
        await self.registry.close()
        await self.commit.compactions_done()
        await self.die()


def edit(room: Room, content: str) -> None:
    """A client edit appending `content`, made on a copy of the room's document."""
    doc: Doc[Any] = Doc()
    doc.apply_update(room.doc.get_update())
    before = doc.get_state()
    text = doc.get("t", type=Text)
    text.insert(len(text), content)
    room.apply_update(doc.get_update(before), Source.SERVER)


def text_of(room: Room) -> str:
    return str(room.doc.get("t", type=Text))


# 1: compaction after every commit, folding snapshots while x is missing (issue 14
# lost the most edits with compaction forced often).
@pytest.mark.parametrize("compact_after", [1000, 1])
def test_an_edit_whose_accepting_node_dies_before_commit_is_stored_by_another_holder(
    store_url: str, redis: RedisProcess, compact_after: int
) -> None:
    async def scenario() -> None:
        node1 = await Node("n1", await open_store(store_url), redis.url).start(commits=False)
        store2 = await open_store(store_url)
        node2 = await Node("n2", store2, redis.url, compact_after=compact_after).start()
        room1 = await node1.registry.acquire("doc")
        room2 = await node2.registry.acquire("doc")
        edit(room1, "x")  # node 1 accepts x and publishes it; it never commits
        await wait_until(lambda: text_of(room2) == "x", 5)
        await node1.die()
        for part in ("y1", "y2", "y3", "a1"):  # all of them depend on x
            edit(room2, part)
            await node2.commit.flush()
        await node2.stop()
        reloaded = await reload_text(store_url, "doc")
        assert text_of(reloaded) == "xy1y2y3a1"
        assert not reloaded.pending, "updates stranded behind a missing dependency"

    run(scenario())


async def reload_text(store_url: str, name: str) -> Room:
    store = await open_store(store_url)
    try:
        updates = await store.load(name)
    finally:
        await store.close()
    room = Room(name)
    room.load(updates)
    return room


def test_an_edit_waiting_for_a_dependency_that_comes_later_over_the_bus_is_stored(
    store_url: str, redis: RedisProcess
) -> None:
    async def scenario() -> None:
        node1 = await Node("n1", await open_store(store_url), redis.url).start(commits=False)
        node2 = await Node("n2", await open_store(store_url), redis.url).start()
        room1 = await node1.registry.acquire("late")
        room2 = await node2.registry.acquire("late")
        publish = node1.bus.publish
        node1.bus.publish = lambda envelope: None  # type: ignore[method-assign]
        edit(room1, "x")  # lost on the way: node 2 never hears of x
        node1.bus.publish = publish  # type: ignore[method-assign]
        # A client of node 2 that saw x elsewhere sends y, which builds on x.
        copy = Room("copy")
        copy.apply_update(room1.doc.get_update(), Source.STORE)
        before = copy.doc.get_state()
        edit(copy, "y")
        room2.apply_update(copy.doc.get_update(before), Source.SERVER)
        assert len(room2.pending) == 1 and text_of(room2) == ""
        edit(room1, "z")  # node 2 sees a gap in node 1's numbers and asks for x
        await wait_until(lambda: not room2.pending and len(text_of(room2)) == 3, 5)
        await node1.die()
        await node2.stop()
        reloaded = await reload_text(store_url, "late")
        assert sorted(text_of(reloaded)) == ["x", "y", "z"]
        assert not reloaded.pending

    run(scenario())


def test_the_store_check_writes_what_the_store_lacks_once(
    store_url: str, redis: RedisProcess
) -> None:
    async def scenario() -> None:
        node = await Node("n1", await open_store(store_url), redis.url).start()
        room = await node.registry.acquire("audit")
        edit(room, "stored ")
        other = Room("other")  # content that reached the document but not the store
        other.apply_update(room.doc.get_update(), Source.STORE)
        before = other.doc.get_state()
        edit(other, "unstored")
        room.apply_update(other.doc.get_update(before), Source.STORE)
        assert await node.registry.check_store("audit")
        assert not await node.registry.check_store("audit")  # written now: nothing lacks
        await node.stop()
        assert text_of(await reload_text(store_url, "audit")) == "stored unstored"

    run(scenario())


def test_the_store_check_does_not_count_edits_on_their_way_to_the_store(
    store_url: str, redis: RedisProcess
) -> None:
    async def scenario() -> None:
        node = await Node("n1", await open_store(store_url), redis.url).start()
        room = await node.registry.acquire("busy")

        async def keep_editing() -> None:
            for i in range(3000):  # bounded: 3 s at most
                edit(room, f"{i},")
                await asyncio.sleep(0.001)

        editor = asyncio.create_task(keep_editing())
        await asyncio.sleep(0.1)
        for _ in range(5):
            assert not await node.registry.check_store("busy")
        assert node.registry.store_repairs == 0
        editor.cancel()
        await node.stop()

    run(scenario())
