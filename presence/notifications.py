"""Notifications of comments: who is told about a new or edited comment. Pure.

A mention notifies the mentioned user once per comment (an edit that adds a
mention notifies only the newly mentioned); a reply notifies the thread's
subscribers: its participants (creator and commenters) and whoever followed it,
less whoever muted it. Nobody is notified of their own comment, nor twice for one.
Whether a recipient may read the room is decided by the caller (it needs I/O).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ysync.presence.comments import Comment, iso, new_id

EXCERPT = 280  # characters of the comment's text a notification carries


class Kind(StrEnum):
    MENTION = "mention"
    REPLY = "reply"


class Following(StrEnum):
    """A user's choice about one thread; DEFAULT: follow it if they take part."""

    SUBSCRIBED = "subscribed"
    MUTED = "muted"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    user_id: str
    room: str
    thread_id: str
    comment_id: str
    kind: Kind
    author: str
    text: str
    created_at: float
    read_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "userId": self.user_id,
            "room": self.room,
            "threadId": self.thread_id,
            "commentId": self.comment_id,
            "kind": self.kind.value,
            "author": self.author,
            "text": self.text,
            "createdAt": iso(self.created_at),
            "readAt": iso(self.read_at),
        }


def recipients(
    comment: Comment,
    subscribers: Iterable[str],
    *,
    mentioned_before: Iterable[str] = (),
    replying: bool = True,
) -> dict[str, Kind]:
    """Who is notified of `comment` and why: newly mentioned users (mentions the
    comment had before an edit excluded) and, for a new reply, the subscribers."""
    told: dict[str, Kind] = {}
    before = set(mentioned_before)
    for user in comment.mentions:
        if user != comment.author and user not in before:
            told[user] = Kind.MENTION
    if replying:
        for user in subscribers:
            if user != comment.author:
                told.setdefault(user, Kind.REPLY)
    return told


def notification(room: str, comment: Comment, user: str, kind: Kind, now: float) -> Notification:
    text = comment.text or ""
    if len(text) > EXCERPT:
        text = text[: EXCERPT - 1] + "…"
    return Notification(
        new_id("nt"), user, room, comment.thread_id, comment.id, kind, comment.author, text, now
    )
