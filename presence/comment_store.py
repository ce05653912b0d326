"""The storage boundary of comments: `CommentStore`, implemented by every store.

Every ysync store (memory, SQLite, PostgreSQL) has a `comments` attribute that
is a `CommentStore` (`ysync.persistence.comment_sql`); a store that has none
gets an in-memory one (comments then do not outlive the process). Each method
is one transaction: a failure raises `StoreError` and changes nothing; a
`CommentError` raised inside (e.g. merged metadata over its limit) rolls back too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ysync.presence.comments import Comment, Thread
from ysync.presence.notifications import Following, Notification


@dataclass(frozen=True, slots=True)
class ThreadQuery:
    """Filters of a thread list; newest first, `limit` at a time after `cursor`."""

    resolved: bool | None = None
    since: float | None = None  # updated at or after (Unix time)
    mentions: str | None = None  # a comment mentions this user
    metadata: Mapping[str, str] = field(default_factory=dict)  # key -> value as text
    cursor: tuple[float, str] | None = None  # (created_at, id) of the last one seen
    limit: int = 50


@dataclass(frozen=True, slots=True)
class ThreadPage:
    threads: tuple[Thread, ...]
    more: bool  # there are threads after the last one


@dataclass(frozen=True, slots=True)
class Reaction:
    emoji: str
    user: str
    at: float
    add: bool  # False: take it back


class CommentStore(Protocol):
    async def create_thread(self, thread: Thread) -> None:
        """Store a new thread with its first comment."""
        ...

    async def thread(self, room: str, thread_id: str) -> Thread | None: ...

    async def threads(self, room: str, query: ThreadQuery) -> ThreadPage: ...

    async def update_thread(
        self,
        room: str,
        thread_id: str,
        *,
        at: float,
        metadata: Mapping[str, Any] | None = None,
        resolved: tuple[bool, str] | None = None,  # (resolved, by whom)
        max_metadata_bytes: int,
    ) -> Thread | None:
        """Merge `metadata` (null removes a key) and/or set `resolved`; None: no thread."""
        ...

    async def delete_thread(self, room: str, thread_id: str) -> bool: ...

    async def add_comment(self, room: str, comment: Comment) -> Thread | None:
        """Append a reply; None when the thread does not exist."""
        ...

    async def edit_comment(
        self, room: str, comment: Comment, *, deleted: bool = False
    ) -> Thread | None:
        """Replace a comment's body (or soft-delete it); None when it does not exist."""
        ...

    async def react(
        self, room: str, thread_id: str, comment_id: str, reaction: Reaction
    ) -> tuple[Thread, bool] | None:
        """Add or take back a reaction: the thread and whether anything changed."""
        ...

    async def follow(self, room: str, thread_id: str, user: str, choice: Following) -> bool: ...

    async def subscribers(self, room: str, thread_id: str) -> set[str]:
        """The thread's participants and followers, less those who muted it."""
        ...

    async def add_notifications(self, notifications: Sequence[Notification]) -> None: ...

    async def notifications(self, user: str, *, limit: int) -> list[Notification]:
        """The user's notifications, unread first, newest first."""
        ...

    async def mark_read(self, user: str, notification_id: str | None, at: float) -> int:
        """Mark one (or, with None, every) unread notification of the user read."""
        ...

    async def record_reader(self, room: str, user: str, role: str, at: float) -> None:
        """`user` was let into `room` with `role` (decides who may be notified)."""
        ...

    async def reader_role(self, room: str, user: str) -> str | None: ...

    async def delete_room(self, room: str) -> None:
        """Everything kept of `room`: threads, comments, reactions, notifications, ..."""
        ...

    async def export_room(self, room: str) -> dict[str, Any]: ...

    async def import_room(self, room: str, data: Mapping[str, Any]) -> None: ...


class HasComments(Protocol):
    """A store that keeps comments too."""

    @property
    def comments(self) -> CommentStore: ...
