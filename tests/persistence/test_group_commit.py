"""GroupCommit's background compaction, against a store whose compaction takes a while."""

from __future__ import annotations

import asyncio

from pycrdt import Doc, Map, merge_updates

from ysync.persistence.group_commit import GroupCommit
from ysync.persistence.memory import MemoryStore


class SlowCompactingStore(MemoryStore):
    """Compacts like the real stores: merges what it read, keeps what came after."""

    def __init__(self) -> None:
        super().__init__()
        self.compactions = 0

    async def compact(self, room: str) -> None:
        self.compactions += 1
        read = list(self._rooms.get(room, ()))
        await asyncio.sleep(0.05)  # appends land meanwhile
        if len(read) > 1:
            self._rooms[room][: len(read)] = [merge_updates(*read)]


def updates(count: int) -> list[bytes]:
    doc: Doc = Doc()
    found: list[bytes] = []
    doc.observe(lambda event: found.append(event.update))
    for n in range(count):
        doc.get("map", type=Map)[str(n)] = n
    return found


def test_updates_appended_during_a_compaction_are_compacted_without_new_ones() -> None:
    store = SlowCompactingStore()
    stream = updates(40)
    first, during = stream[:10], stream[10:]

    async def scenario() -> None:
        log = GroupCommit(store, flush_window=0.001, compact_after=10)
        committer = asyncio.create_task(log.run())
        for update in first:
            log.append("r", update)
        await log.flush()
        await asyncio.sleep(0.01)  # the compaction has read the log and is merging
        assert store.compactions == 1
        for update in during:
            log.append("r", update)
        await log.flush()
        # No more updates come: the 30 that landed meanwhile are compacted anyway.
        async with asyncio.timeout(5):
            while len(await store.load("r")) > 1:
                await asyncio.sleep(0.01)
        assert store.compactions == 2
        committer.cancel()

    asyncio.run(scenario())


def test_settled_returns_under_a_steady_stream_of_updates() -> None:
    store = MemoryStore()

    async def scenario() -> None:
        log = GroupCommit(store, flush_window=0.005)
        committer = asyncio.create_task(log.run())
        log.append("r", b"\x00\x00")

        async def keep_appending() -> None:
            for _ in range(2000):  # bounded: 10 s at most
                log.append("r", b"\x00\x00")
                await asyncio.sleep(0.005)

        feeder = asyncio.create_task(keep_appending())
        async with asyncio.timeout(5):
            await log.settled()  # flush() would wait for the feeder to stop
        assert not feeder.done()
        assert len(await store.load("r")) >= 1
        feeder.cancel()
        committer.cancel()

    asyncio.run(scenario())
