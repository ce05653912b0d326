"""The versions store, on the memory store, a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ysync.persistence.memory import MemoryStore
from ysync.persistence.urls import open_store
from ysync.presence.versions import Version, VersionError, new_version_id

from support.aio import run

ROOM = "team/plan"


def version(at: float, kind: str = "auto", room: str = ROOM) -> Version:
    return Version(
        room,
        new_version_id(),
        f"v{at}",
        "",
        "ada",
        kind,
        at,
        b"\x01\x02",
        b"\x00" + bytes([int(at)]),
    )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/v.db"


def test_versions_page_newest_first_prune_only_automatic_ones_and_archive(store_url: str) -> None:
    async def main() -> None:
        store: Any = MemoryStore() if store_url == "memory://" else await open_store(store_url)
        try:
            made = [version(float(i), "named" if i == 1 else "auto") for i in range(1, 6)]
            for item in made:
                await store.versions.create(item)
            await store.versions.create(version(9.0, room="other"))
            first = await store.versions.page(ROOM, None, 2)
            assert [v.created_at for v in first.versions] == [5.0, 4.0]
            rest = await store.versions.page(ROOM, first.next_cursor, 10)
            assert [v.created_at for v in rest.versions] == [
                3.0,
                2.0,
                1.0,
            ] and rest.next_cursor is None
            assert await store.versions.get(ROOM, made[2].id) == made[2]
            assert (await store.versions.latest(ROOM)) == made[4]
            with pytest.raises(VersionError):
                await store.versions.page(ROOM, "%%", 2)

            archive = await store.versions.export_room(ROOM)
            # Keep the 2 newest automatic ones and every named one; then older than 4.5 go too.
            assert await store.versions.prune(ROOM, 2, None) == 2
            assert await store.versions.prune(ROOM, 0, 4.5) == 1
            kept = (await store.versions.page(ROOM, None, 10)).versions
            assert [(v.created_at, v.kind) for v in kept] == [(5.0, "auto"), (1.0, "named")]

            assert await store.versions.delete(ROOM, kept[1].id)
            assert not await store.versions.delete(ROOM, kept[1].id)
            await store.versions.delete_room(ROOM)
            assert (await store.versions.page(ROOM, None, 10)).versions == []
            assert len((await store.versions.page("other", None, 10)).versions) == 1
            await store.versions.import_room("copy", archive)
            copied = (await store.versions.page("copy", None, 10)).versions
            assert [v.data for v in copied] == [v.data for v in reversed(made)]
            with pytest.raises(ValueError):
                await store.versions.import_room("copy2", {"version": 99})
        finally:
            await store.close()

    run(main())


def test_tombstones_expire_and_a_seed_is_claimed_once_until_cleared(store_url: str) -> None:
    async def main() -> None:
        store: Any = MemoryStore() if store_url == "memory://" else await open_store(store_url)
        try:
            stones = store.tombstones
            assert await stones.until(ROOM) is None
            await stones.put(ROOM, 10.0, 20.0)
            await stones.put(ROOM, 11.0, 30.0)  # deleted again: the later tombstone
            assert await stones.until(ROOM) == 30.0
            await stones.clear(ROOM)
            assert await stones.until(ROOM) is None
            assert await stones.claim_seed(ROOM, 1.0)
            assert not await stones.claim_seed(ROOM, 2.0)
            await stones.clear_seed(ROOM)
            assert await stones.claim_seed(ROOM, 3.0)
        finally:
            await store.close()

    run(main())
