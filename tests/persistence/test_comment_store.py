"""The `CommentStore` contract, on the memory store, a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ysync.persistence.comment_sql import ROOM_TABLES, Operation, Query
from ysync.persistence.memory import MemoryStore
from ysync.persistence.urls import open_store
from ysync.presence.comment_store import Reaction, ThreadQuery
from ysync.presence.comments import Comment, CommentError, Thread, edited, new_comment, new_id
from ysync.presence.notifications import Following, Kind, notification

from support.aio import run

ROOM = "team/board"


def body(text: str, *mentions: str) -> dict[str, Any]:
    children: list[dict[str, Any]] = [{"text": text}]
    children += [{"type": "mention", "id": user} for user in mentions]
    return {"version": 1, "content": [{"type": "paragraph", "children": children}]}


def thread(at: float, *, by: str = "ada", room: str = ROOM, **fields: Any) -> Thread:
    tid = new_id("th")
    first = new_comment(tid, by, body(f"first at {at}", *fields.pop("mentions", ())), at)
    return Thread(
        tid, room, {"kind": "none"}, fields.pop("metadata", {}), by, at, at, comments=(first,)
    )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Awaitable[Any]]:
    """Opens the same store again each call (the memory store: one instance)."""
    if request.param == "memory":
        memory = MemoryStore()

        async def same() -> Any:
            return memory

        return same
    url = f"sqlite:///{tmp_path}/ysync.db"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")

    async def fresh() -> Any:
        return await open_store(url)

    return fresh


def rows_of(room: str) -> Operation[dict[str, int]]:
    counts = {}
    for table in ROOM_TABLES:
        rows = yield Query(f"SELECT count(*) FROM {table} WHERE room = ?", (room,))
        counts[table] = int(rows[0][0])
    return counts


def test_threads_round_trip_with_comments_reactions_and_filters(opener: Any) -> None:
    async def main() -> None:
        store = await opener()
        comments = store.comments
        old = thread(1000.0, metadata={"color": "red", "x": 120})
        new = thread(2000.0, by="bob", mentions=("ada",), metadata={"color": "blue"})
        await comments.create_thread(old)
        await comments.create_thread(new)
        await comments.create_thread(thread(1500.0, room="elsewhere"))
        got = await comments.thread(ROOM, old.id)
        assert got == old

        async def ids(**query: Any) -> list[str]:
            page = await comments.threads(ROOM, ThreadQuery(**query))
            return [t.id for t in page.threads]

        assert await ids() == [new.id, old.id]  # newest first
        assert await ids(mentions="ada") == [new.id]
        assert await ids(metadata={"color": "red", "x": "120"}) == [old.id]
        assert await ids(metadata={"color": "green"}) == []
        assert await ids(since=1500.0) == [new.id]
        first = await comments.threads(ROOM, ThreadQuery(limit=1))
        assert first.more and first.threads[0].id == new.id
        cursor = (first.threads[0].created_at, first.threads[0].id)
        rest = await comments.threads(ROOM, ThreadQuery(limit=1, cursor=cursor))
        assert [t.id for t in rest.threads] == [old.id] and not rest.more

        resolved = await comments.update_thread(
            ROOM,
            old.id,
            at=3000.0,
            resolved=(True, "bob"),
            metadata={"x": None},
            max_metadata_bytes=4096,
        )
        assert resolved is not None
        assert (resolved.resolved, resolved.resolved_by, resolved.resolved_at) == (
            True,
            "bob",
            3000.0,
        )
        assert resolved.metadata == {"color": "red"} and resolved.updated_at == 3000.0
        assert await ids(resolved=True) == [old.id]
        assert await ids(resolved=False) == [new.id]
        assert await ids(metadata={"x": "120"}) == []
        with pytest.raises(CommentError):  # merged metadata over the limit: nothing changes
            await comments.update_thread(
                ROOM,
                old.id,
                at=4000.0,
                metadata={"big": "x" * 100},
                resolved=(False, "bob"),
                max_metadata_bytes=64,
            )
        unchanged = await comments.thread(ROOM, old.id)
        assert unchanged == resolved

        reply = new_comment(old.id, "cy", body("a reply", "dan"), 3500.0)
        after = await comments.add_comment(ROOM, reply)
        assert after is not None and [c.id for c in after.comments] == [
            old.comments[0].id,
            reply.id,
        ]
        assert await ids(mentions="dan") == [old.id]
        assert (
            await comments.add_comment(ROOM, new_comment("th_missing", "cy", body("x"), 1.0))
            is None
        )

        like = Reaction("👍", "ada", 3600.0, add=True)
        first_like = await comments.react(ROOM, old.id, reply.id, like)
        again = await comments.react(ROOM, old.id, reply.id, like)
        assert first_like is not None and first_like[1] and again is not None and not again[1]
        assert again[0].comment(reply.id).reactions == {"👍": ("ada",)}  # type: ignore[union-attr]
        taken = await comments.react(
            ROOM, old.id, reply.id, Reaction("👍", "ada", 3700.0, add=False)
        )
        assert taken is not None and taken[1] and taken[0].comment(reply.id).reactions == {}  # type: ignore[union-attr]

        changed = edited(reply, body("a better reply"), 3800.0)
        after_edit = await comments.edit_comment(ROOM, changed)
        assert after_edit is not None and after_edit.comment(reply.id) == changed
        assert await ids(mentions="dan") == []  # the mention went with the edit
        await comments.react(ROOM, old.id, reply.id, like)
        gone = Comment(reply.id, old.id, "cy", None, reply.created_at, changed.edited_at, 3900.0)
        after_delete = await comments.edit_comment(ROOM, gone, deleted=True)
        assert after_delete is not None
        soft = after_delete.comment(reply.id)
        assert (
            soft is not None
            and soft.body is None
            and soft.deleted_at == 3900.0
            and soft.reactions == {}
        )
        assert await comments.edit_comment(ROOM, gone, deleted=True) is None  # already deleted
        assert await comments.react(ROOM, old.id, reply.id, like) is None

        assert await comments.delete_thread(ROOM, new.id)
        assert not await comments.delete_thread(ROOM, new.id)
        assert await ids() == [old.id]
        await store.close()

    run(main())


def test_followers_notifications_and_readers(opener: Any) -> None:
    async def main() -> None:
        store = await opener()
        comments = store.comments
        t = thread(10.0, by="ada")
        await comments.create_thread(t)
        await comments.add_comment(ROOM, new_comment(t.id, "bob", body("hi"), 11.0))
        assert await comments.subscribers(ROOM, t.id) == {"ada", "bob"}
        assert await comments.follow(ROOM, t.id, "cy", Following.SUBSCRIBED)
        assert await comments.follow(ROOM, t.id, "bob", Following.MUTED)
        assert await comments.subscribers(ROOM, t.id) == {"ada", "cy"}
        assert await comments.follow(ROOM, t.id, "bob", Following.DEFAULT)
        assert await comments.subscribers(ROOM, t.id) == {"ada", "bob", "cy"}
        assert not await comments.follow(ROOM, "th_missing", "cy", Following.SUBSCRIBED)

        first, second = (
            notification(ROOM, t.comments[0], "dan", Kind.MENTION, 20.0),
            notification(ROOM, t.comments[0], "dan", Kind.REPLY, 30.0),
        )
        await comments.add_notifications([first, second])
        assert [n.id for n in await comments.notifications("dan", limit=10)] == [
            second.id,
            first.id,
        ]
        assert await comments.notifications("eve", limit=10) == []
        assert await comments.mark_read("dan", second.id, 40.0) == 1
        assert await comments.mark_read("eve", first.id, 40.0) == 0  # not hers
        listed = await comments.notifications("dan", limit=10)
        assert [n.id for n in listed] == [first.id, second.id]  # unread first
        assert listed[1].read_at == 40.0
        assert await comments.mark_read("dan", None, 50.0) == 1
        assert await comments.mark_read("dan", None, 60.0) == 0

        assert await comments.reader_role(ROOM, "dan") is None
        await comments.record_reader(ROOM, "dan", "viewer", 70.0)
        await comments.record_reader(ROOM, "dan", "commenter", 71.0)
        assert await comments.reader_role(ROOM, "dan") == "commenter"
        await store.close()

    run(main())


def test_comments_survive_reopening_and_a_deleted_room_leaves_no_rows(opener: Any) -> None:
    async def main() -> None:
        store = await opener()
        t = thread(5.0, mentions=("bob",), metadata={"k": "v"})
        await store.comments.create_thread(t)
        reply = new_comment(t.id, "bob", body("r"), 6.0)
        await store.comments.add_comment(ROOM, reply)
        await store.comments.react(ROOM, t.id, reply.id, Reaction("🎉", "ada", 7.0, add=True))
        await store.comments.follow(ROOM, t.id, "cy", Following.MUTED)
        await store.comments.add_notifications([notification(ROOM, reply, "ada", Kind.REPLY, 8.0)])
        await store.comments.record_reader(ROOM, "ada", "editor", 9.0)
        other = thread(5.0, room="other")
        await store.comments.create_thread(other)
        if not isinstance(store, MemoryStore):
            await store.close()
            store = await opener()
        kept = await store.comments.thread(ROOM, t.id)
        assert kept is not None and len(kept.comments) == 2

        archive = await store.comments.export_room(ROOM)
        await store.comments.import_room("copy", archive)
        copied = await store.comments.thread("copy", t.id)
        assert copied is not None and copied.comments == kept.comments and copied.room == "copy"
        assert await store.comments.subscribers("copy", t.id) == {"ada", "bob"}
        assert len(await store.comments.notifications("ada", limit=10)) == 2
        with pytest.raises(ValueError):
            await store.comments.import_room(
                "bad", {"version": 1, "tables": {"threads": [{"id": 1}]}}
            )
        assert sum((await store.comments._transact(rows_of("bad"), False)).values()) == 0

        assert min((await store.comments._transact(rows_of(ROOM), False)).values()) >= 1
        await store.comments.delete_room(ROOM)
        left = await store.comments._transact(rows_of(ROOM), False)
        assert left == dict.fromkeys(ROOM_TABLES, 0)
        assert await store.comments.thread("other", other.id) is not None
        assert await store.comments.thread("copy", t.id) is not None
        await store.close()

    run(main())
