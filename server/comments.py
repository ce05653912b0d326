"""Comment threads as server-owned data next to each room's document: `CommentsExtension`.

The HTTP API (`ysync.server.threads_api`, `ysync.server.notifications_api`)
parses requests and calls this extension, which decides (the pure rules of
`ysync.presence.comment_rules`), stores (the store's `CommentStore`), tells the
room's event feed (`thread.created`, `comment.created`, ... on every node) and
notifies (mentions and replies, `mention.created`). Room deletion, export and
import cover comments through `on_delete`/`on_export`/`on_import`.

Who may be notified: a user the host's `user_role` hook says reads the room;
without such an answer, one ysync has let into the room (a WebSocket connection
or a comments API call, viewer or more) — recorded in the store, so every node
knows; with auth off, anyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pycrdt import Doc

from ysync.persistence.memory import MemoryStore
from ysync.presence.anchors import resolve_all
from ysync.presence.comment_store import CommentStore, Reaction, ThreadPage, ThreadQuery
from ysync.presence.comments import Comment, CommentError, Thread, edited, new_comment, new_id
from ysync.presence.comments import now as clock
from ysync.presence.events import Event
from ysync.presence.notifications import Following, Kind, Notification, notification, recipients
from ysync.rooms.extensions import Extension
from ysync.rooms.hooks import ConnectionRequest, Identity, Role
from ysync.rooms.protocols import Peer
from ysync.rooms.room import Room

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.comments")

ANONYMOUS = "anonymous"  # the author with auth off, where nobody has a user id
_READERS_REMEMBERED = 100_000  # (room, user, role) this node already recorded


def user_of(identity: Identity) -> str:
    return identity.user_id or ANONYMOUS


class CommentsExtension(Extension):
    """Threads, comments, reactions and notifications of every room (see the module doc)."""

    def __init__(self, *, max_comment_bytes: int, max_metadata_bytes: int) -> None:
        self.max_comment_bytes = max_comment_bytes
        self.max_metadata_bytes = max_metadata_bytes
        self._node: Node | None = None
        self._store: CommentStore | None = None
        self._recorded: set[tuple[str, str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- hooks ---------------------------------------------------------------------------

    async def on_start(self, node: Any) -> None:
        self._node = node
        store = getattr(node.store, "comments", None)
        if store is None:
            log.warning("the store keeps no comments: they are kept in memory, lost on exit")
            store = MemoryStore().comments
        self._store = store

    def on_join(self, room: Room, peer: Peer, request: ConnectionRequest) -> None:
        identity = peer.identity
        if identity.user_id is not None:
            task = asyncio.get_running_loop().create_task(self.record_reader(room.name, identity))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def on_delete(self, room: str) -> None:
        await self.store.delete_room(room)

    async def on_export(self, room: str) -> Mapping[str, Any] | None:
        return await self.store.export_room(room)

    async def on_import(self, room: str, data: Mapping[str, Any]) -> None:
        await self.store.import_room(room, data)

    def routes(self) -> Sequence[Any]:
        from ysync.server import notifications_api, threads_api

        return [*threads_api.routes, *notifications_api.routes]

    # -- what the API calls ------------------------------------------------------------------

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError("CommentsExtension used before the node started")
        return self._node

    @property
    def store(self) -> CommentStore:
        if self._store is None:
            raise RuntimeError("CommentsExtension used before the node started")
        return self._store

    async def record_reader(self, room: str, identity: Identity) -> None:
        """Remember that `identity` may read `room` (once per node and role)."""
        if identity.user_id is None:
            return
        key = (room, identity.user_id, identity.role.value)
        if key in self._recorded:
            return
        try:
            await self.store.record_reader(room, identity.user_id, identity.role.value, clock())
        except Exception:
            log.warning("could not record a reader of %s", room, exc_info=True)
            return
        if len(self._recorded) >= _READERS_REMEMBERED:
            self._recorded.clear()
        self._recorded.add(key)

    async def threads(self, room: str, query: ThreadQuery) -> ThreadPage:
        return await self.store.threads(room, query)

    async def thread(self, room: str, thread_id: str) -> Thread | None:
        return await self.store.thread(room, thread_id)

    async def resolved_anchors(self, room: str, threads: Sequence[Thread]) -> list[dict[str, Any]]:
        """Each thread's anchor as it is in the room's current document."""
        if all(thread.anchor.get("kind") == "none" for thread in threads):
            return [{"orphaned": False} for _ in threads]
        registry = self.node.registry
        loaded = await registry.acquire(room)
        try:
            doc: Doc[Any] = loaded.doc
            return resolve_all([thread.anchor for thread in threads], doc)
        finally:
            registry.release(room)

    async def create_thread(
        self,
        room: str,
        author: str,
        anchor: Mapping[str, Any],
        metadata: Mapping[str, Any],
        body: Mapping[str, Any],
    ) -> Thread:
        at = clock()
        thread_id = new_id("th")
        first = new_comment(thread_id, author, body, at)
        thread = Thread(thread_id, room, anchor, metadata, author, at, at, comments=(first,))
        await self.store.create_thread(thread)
        self.publish(room, "thread.created", {"thread": thread.to_json()})
        await self._notify(room, first, replying=False)
        return thread

    async def reply(
        self, room: str, thread_id: str, author: str, body: Mapping[str, Any]
    ) -> Comment | None:
        comment = new_comment(thread_id, author, body, clock())
        thread = await self.store.add_comment(room, comment)
        if thread is None:
            return None
        self.publish(room, "comment.created", {"threadId": thread_id, "comment": comment.to_json()})
        await self._notify(room, comment, replying=True)
        return comment

    async def edit(self, room: str, comment: Comment, body: Mapping[str, Any]) -> Comment | None:
        changed = edited(comment, body, clock())
        if await self.store.edit_comment(room, changed) is None:
            return None
        self.publish(
            room, "comment.edited", {"threadId": comment.thread_id, "comment": changed.to_json()}
        )
        await self._notify(room, changed, replying=False, mentioned_before=comment.mentions)
        return changed

    async def delete_comment(self, room: str, comment: Comment) -> bool:
        at = clock()
        gone = Comment(
            comment.id,
            comment.thread_id,
            comment.author,
            None,
            comment.created_at,
            comment.edited_at,
            at,
        )
        if await self.store.edit_comment(room, gone, deleted=True) is None:
            return False
        self.publish(
            room, "comment.deleted", {"threadId": comment.thread_id, "commentId": comment.id}
        )
        return True

    async def update_thread(
        self,
        room: str,
        thread: Thread,
        user: str,
        *,
        metadata: Mapping[str, Any] | None,
        resolved: bool | None,
    ) -> Thread | None:
        updated = await self.store.update_thread(
            room,
            thread.id,
            at=clock(),
            metadata=metadata,
            resolved=None if resolved is None else (resolved, user),
            max_metadata_bytes=self.max_metadata_bytes,
        )
        if updated is None:
            return None
        if metadata is not None:
            self.publish(
                room, "thread.updated", {"threadId": thread.id, "metadata": updated.metadata}
            )
        if updated.resolved != thread.resolved:
            kind = "thread.resolved" if updated.resolved else "thread.reopened"
            self.publish(room, kind, {"threadId": thread.id, "by": user})
        return updated

    async def delete_thread(self, room: str, thread_id: str) -> bool:
        if not await self.store.delete_thread(room, thread_id):
            return False
        self.publish(room, "thread.deleted", {"threadId": thread_id})
        return True

    async def react(
        self, room: str, thread_id: str, comment_id: str, emoji: str, user: str, *, add: bool
    ) -> Comment | None:
        result = await self.store.react(
            room, thread_id, comment_id, Reaction(emoji, user, clock(), add)
        )
        if result is None:
            return None
        thread, changed = result
        if changed:
            kind = "reaction.added" if add else "reaction.removed"
            data = {"threadId": thread_id, "commentId": comment_id, "emoji": emoji, "userId": user}
            self.publish(room, kind, data)
        return thread.comment(comment_id)

    async def follow(self, room: str, thread_id: str, user: str, choice: Following) -> bool:
        return await self.store.follow(room, thread_id, user, choice)

    def publish(self, room: str, kind: str, data: Mapping[str, Any]) -> None:
        self.node.events.publish(Event(kind, room, data))

    # -- notifications ---------------------------------------------------------------------------

    async def _notify(
        self,
        room: str,
        comment: Comment,
        *,
        replying: bool,
        mentioned_before: Sequence[str] = (),
    ) -> None:
        subscribers = await self.store.subscribers(room, comment.thread_id) if replying else set()
        told = recipients(
            comment, subscribers, mentioned_before=mentioned_before, replying=replying
        )
        at = clock()
        notes: list[Notification] = []
        for user, kind in told.items():
            if await self.may_read(room, user):
                notes.append(notification(room, comment, user, kind, at))
        if not notes:
            return
        await self.store.add_notifications(notes)
        for note in notes:
            if note.kind is Kind.MENTION:
                data = {"notificationId": note.id, **note.to_json()}
                self.publish(room, "mention.created", data)

    async def may_read(self, room: str, user: str) -> bool:
        """Whether `user` may read `room` (see the module doc)."""
        extensions = self.node.extensions
        if not extensions.authenticates:
            return True
        role = await extensions.user_role(user, room)
        if role is None:
            recorded = await self.store.reader_role(room, user)
            role = Role(recorded) if recorded in set(Role) else None
        return role is not None and role.rank >= Role.VIEWER.rank

    # -- notifications of the caller ----------------------------------------------------------

    async def notifications(self, user: str, *, limit: int) -> list[Notification]:
        return await self.store.notifications(user, limit=limit)

    async def mark_read(self, user: str, notification_id: str | None) -> int:
        return await self.store.mark_read(user, notification_id, clock())


def comments_of(node: Node) -> CommentsExtension:
    """The node's comments extension."""
    for extension in node.extensions.all:
        if isinstance(extension, CommentsExtension):
            return extension
    raise RuntimeError("this node runs without comments")


__all__ = ["CommentError", "CommentsExtension", "comments_of", "user_of"]
