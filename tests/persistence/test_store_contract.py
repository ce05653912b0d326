"""The `Store` contract, run against a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from functools import cache
from typing import Any, cast

import pytest
from pycrdt import Array, Doc, Map, Text

from ysync.persistence.urls import OpenedStore, open_store
from ysync.rooms.protocols import StoreError


def recorded(doc: Doc) -> list[bytes]:
    """A list that receives every update `doc` makes from now on."""
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    return updates


def content(updates: Iterable[bytes]) -> dict[str, Any]:
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return {
        "text": str(doc.get("text", type=Text)),
        "map": doc.get("map", type=Map).to_py(),
        "array": doc.get("array", type=Array).to_py(),
    }


def edits(count: int, client: int = 1) -> list[bytes]:
    """`count` small updates of one client: typing, map writes, array pushes, deletions."""
    doc: Doc = Doc(client_id=client)
    text, map_, array = (
        doc.get("text", type=Text),
        doc.get("map", type=Map),
        doc.get("array", type=Array),
    )
    updates = recorded(doc)
    for i in range(count):
        match i % 8:
            case 0 | 1 | 4 | 5:
                text.insert(len(text), chr(ord("a") + i % 26))
            case 2 | 6:
                map_[f"k{client}-{i}"] = i
            case 3:
                array.append(i)
            case _:
                del text[0:1]
    return updates


@cache
def twenty_thousand_keystrokes() -> tuple[bytes, ...]:
    doc: Doc = Doc(client_id=7)
    text = doc.get("text", type=Text)
    updates = recorded(doc)
    for i in range(20_000):
        if i % 10 == 9:
            del text[len(text) - 1]  # a correction now and then
        else:
            text.insert(len(text), chr(ord("a") + i % 26))
    return tuple(updates)


def test_round_trip_gives_identical_content(store_url: str) -> None:
    async def main() -> None:
        doc: Doc = Doc()
        updates = recorded(doc)
        text, map_, array = (
            doc.get("text", type=Text),
            doc.get("map", type=Map),
            doc.get("array", type=Array),
        )
        text += "Hello, wörld! ✓"
        text.insert(5, " there")
        del text[0:1]
        map_["title"] = "notes"
        map_["count"] = 3
        map_["nested"] = Map({"flag": True, "list": [1, 2.5, "x"]})
        array.extend([1, "two", {"three": 3}])
        array.insert(0, "zero")
        del array[2]
        expected = content([doc.get_update()])

        store = await open_store(store_url)
        await store.append([("room", update) for update in updates[:3]])
        await store.append([("room", update) for update in updates[3:]])
        assert content(await store.load("room")) == expected
        await store.close()

        reopened = await open_store(store_url)
        assert await reopened.load("room") == updates
        assert content(await reopened.load("room")) == expected
        await reopened.close()

    asyncio.run(main())


def test_unknown_room_loads_empty(store_url: str) -> None:
    async def main() -> None:
        store = await open_store(store_url)
        assert await store.load("nobody-here") == []
        await store.append([])  # an empty batch is a no-op
        assert await store.list_rooms() == []
        await store.close()

    asyncio.run(main())


def test_a_failing_batch_stores_nothing(store_url: str) -> None:
    async def main() -> None:
        store = await open_store(store_url)
        good = edits(2)
        bad = cast(bytes, None)  # violates NOT NULL in the middle of the batch
        with pytest.raises(StoreError):
            await store.append([("a", good[0]), ("b", good[0]), ("a", bad), ("a", good[1])])
        assert await store.load("a") == []
        assert await store.load("b") == []
        assert await store.list_rooms() == []
        # The store is still usable, and a retry of a good batch lands whole.
        await store.append([("a", good[0]), ("b", good[0]), ("a", good[1])])
        assert await store.load("a") == good
        assert await store.load("b") == good[:1]
        await store.close()

    asyncio.run(main())


def test_updates_load_in_the_order_appended_per_room(store_url: str) -> None:
    async def main() -> None:
        store = await open_store(store_url)
        a, b = edits(60, client=1), edits(60, client=2)
        # Interleave the rooms, in batches of varying size.
        pairs = [pair for i in range(60) for pair in (("a", a[i]), ("b", b[i]))]
        rng, start = random.Random(1), 0
        while start < len(pairs):
            size = rng.randint(1, 7)
            await store.append(pairs[start : start + size])
            start += size
        assert await store.load("a") == a
        assert await store.load("b") == b
        await store.close()

    asyncio.run(main())


def test_rooms_are_isolated(store_url: str) -> None:
    async def main() -> None:
        store = await open_store(store_url)
        names = ["plain", "team/doc 1", "ünïcødé ✓", "'; DROP TABLE updates; --", "plain2"]
        docs = {name: edits(8, client=i + 1) for i, name in enumerate(names)}
        await store.append([(name, update) for name in names for update in docs[name]])
        await store.delete("plain2")
        await store.compact("team/doc 1")
        for name in names[:-1]:
            assert content(await store.load(name)) == content(docs[name])
        assert await store.load("plain") == docs["plain"]  # untouched by its neighbours
        assert await store.load("plain2") == []
        assert await store.load("plai") == []  # no prefix matching
        assert sorted(info.name for info in await store.list_rooms()) == sorted(names[:-1])
        await store.close()

    asyncio.run(main())


def test_compaction_of_20000_updates_keeps_the_document_in_far_fewer_bytes(
    store_url: str,
) -> None:
    updates = twenty_thousand_keystrokes()
    expected = content(updates)

    async def main() -> None:
        store = await open_store(store_url)
        for start in range(0, len(updates), 1000):
            await store.append([("big", update) for update in updates[start : start + 1000]])
        (before,) = await store.list_rooms()
        assert before.updates == 20_000

        started = time.perf_counter()
        await store.compact("big")
        compaction = time.perf_counter() - started
        started = time.perf_counter()
        loaded = await store.load("big")
        load = time.perf_counter() - started
        print(f"compaction of 20,000 updates: {compaction:.3f} s; load after: {load:.4f} s")

        assert len(loaded) == 1
        assert content(loaded) == expected
        (after,) = await store.list_rooms()
        assert after.updates == 0
        assert after.size_bytes == len(loaded[0])
        assert after.size_bytes * 5 < before.size_bytes  # 233 kB -> 43 kB
        assert after.last_change >= before.last_change

        # Appends after a compaction load after the snapshot; compacting again merges them.
        more = edits(5, client=99)
        await store.append([("big", update) for update in more])
        assert await store.load("big") == [loaded[0], *more]
        await store.compact("big")
        await store.compact("big")  # nothing left to merge: a no-op
        assert content(await store.load("big")) == content([*updates, *more])
        await store.close()

    asyncio.run(main())


def test_compaction_keeps_updates_whose_dependencies_are_not_stored_yet(store_url: str) -> None:
    # In a cluster, node B may commit an edit that builds on one node A has not
    # committed yet. Compacting in between must not drop B's edit.
    doc: Doc = Doc()
    updates = recorded(doc)
    text = doc.get("text", type=Text)
    text += "hello"  # committed late, by "node A"
    text += " world"  # builds on it
    del text[0:1]  # deletes from it
    first, *later = updates

    async def main() -> None:
        store = await open_store(store_url)
        await store.append([("room", update) for update in later])
        await store.compact("room")
        await store.append([("room", first)])
        assert content(await store.load("room"))["text"] == "ello world"
        await store.compact("room")
        assert content(await store.load("room"))["text"] == "ello world"
        (info,) = await store.list_rooms()
        assert info.updates == 0  # dependencies arrived: everything is in the snapshot
        await store.close()

    asyncio.run(main())


def test_concurrent_compaction_and_appends_from_two_stores_lose_nothing(store_url: str) -> None:
    writers = {name: edits(240, client=client) for client, name in enumerate(["one", "two"], 1)}

    async def main() -> None:
        one, two = await open_store(store_url), await open_store(store_url)
        done = asyncio.Event()

        async def append(store: OpenedStore, updates: list[bytes]) -> None:
            for start in range(0, len(updates), 3):
                await store.append([("shared", update) for update in updates[start : start + 3]])
                await asyncio.sleep(0)

        async def compact(store: OpenedStore) -> int:
            rounds = 0
            while not done.is_set():
                await store.compact("shared")
                rounds += 1
                await asyncio.sleep(0.001)
            return rounds

        compactions = [asyncio.create_task(compact(one)), asyncio.create_task(compact(two))]
        await asyncio.gather(append(one, writers["one"]), append(two, writers["two"]))
        done.set()
        rounds = await asyncio.gather(*compactions)
        assert min(rounds) >= 2
        await one.close()
        await two.close()

        check = await open_store(store_url)
        assert content(await check.load("shared")) == content([*writers["one"], *writers["two"]])
        await check.close()

    asyncio.run(main())


def test_delete_removes_everything_of_a_room(store_url: str) -> None:
    async def main() -> None:
        store = await open_store(store_url)
        updates = edits(10)
        await store.append([("gone", update) for update in updates])
        await store.compact("gone")
        await store.append([("gone", updates[0]), ("kept", updates[0])])
        await store.delete("gone")
        await store.delete("never-existed")
        assert await store.load("gone") == []
        assert [info.name for info in await store.list_rooms()] == ["kept"]
        # The name can be used again, from scratch.
        await store.append([("gone", updates[1])])
        assert await store.load("gone") == [updates[1]]
        await store.close()

    asyncio.run(main())


def test_list_rooms_reports_size_count_and_last_change(store_url: str) -> None:
    async def main() -> None:
        store = await open_store(store_url)
        a, b = edits(5, client=1), edits(3, client=2)
        started = time.time()
        await store.append([("a", update) for update in a] + [("b", update) for update in b])
        ended = time.time()
        rooms = {info.name: info for info in await store.list_rooms()}
        assert set(rooms) == {"a", "b"}
        assert rooms["a"].updates == 5
        assert rooms["a"].size_bytes == sum(map(len, a))
        assert rooms["b"].updates == 3
        assert rooms["b"].size_bytes == sum(map(len, b))
        for info in rooms.values():
            assert started - 1 <= info.last_change <= ended + 1  # the database's clock
        await store.close()

    asyncio.run(main())


def test_opening_again_and_at_once_is_idempotent(store_url: str) -> None:
    async def main() -> None:
        stores = await asyncio.gather(*(open_store(store_url) for _ in range(4)))
        await stores[0].append([("room", edits(1)[0])])
        for store in stores:
            assert len(await store.load("room")) == 1
            await store.close()
        again = await open_store(store_url)
        assert len(await again.load("room")) == 1
        await again.close()

    asyncio.run(main())


def test_a_closed_store_raises_store_error(store_url: str) -> None:
    async def main() -> None:
        store = await open_store(store_url)
        assert store.durable
        await store.close()
        await store.close()  # closing twice is fine
        with pytest.raises(StoreError):
            await store.load("room")
        with pytest.raises(StoreError):
            await store.append([("room", b"\x00\x00")])

    asyncio.run(main())
